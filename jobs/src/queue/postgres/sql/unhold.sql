-- Puts held jobs back where a limit has room: per concurrency key as many
-- as its free slots, per rate key as many as its window has room for, the
-- earliest first (their place, run_at and seq, was kept). Wakes the
-- workers if any went back. Also answers when the next full rate window
-- (of a key with held jobs, or of a queue) opens, in µs, for the waiting
-- workers' sleep. Uses jobs_held. Concurrent unholds skip each other's
-- rows (no waiting, so no deadlock).
WITH windows AS (
    SELECT r.key,
           r.max,
           w.n,
           w.first + make_interval(secs => r.period_us / 1e6) AS opens
    FROM {schema}.rates r
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, min(t) AS first
        FROM unnest(r.starts) AS t
        WHERE t > now() - make_interval(secs => r.period_us / 1e6)
    ) AS w
),
free AS (
    SELECT s.key, s.max - s.running AS n
    FROM {schema}.slots s
    WHERE s.running < s.max
      AND EXISTS (SELECT 1 FROM {schema}.jobs h WHERE h.held = s.key)
    UNION ALL
    SELECT chr(2) || w.key, w.max - w.n
    FROM windows w
    WHERE w.n < w.max
      AND EXISTS (SELECT 1 FROM {schema}.jobs h WHERE h.held = chr(2) || w.key)
),
back AS (
    UPDATE {schema}.jobs j
    SET held = NULL
    FROM (SELECT h.id
          FROM free f
          CROSS JOIN LATERAL (SELECT id FROM {schema}.jobs h
                              WHERE h.held = f.key
                              ORDER BY priority, run_at, seq
                              LIMIT f.n
                              -- Another unhold at it: it puts them back.
                              FOR UPDATE SKIP LOCKED) AS h) AS u
    WHERE j.id = u.id
    RETURNING j.id
)
SELECT count(*) AS back,
       (SELECT pg_notify({channel}, 'w') FROM back LIMIT 1) AS woke,
       (SELECT (extract(epoch FROM min(w.opens)) * 1000000)::bigint
        FROM windows w
        WHERE w.n >= w.max
          AND (left(w.key, 1) = chr(1)
               OR EXISTS (SELECT 1 FROM {schema}.jobs h WHERE h.held = chr(2) || w.key)))
           AS next_open_us
FROM back
