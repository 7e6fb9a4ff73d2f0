-- Puts held jobs back where a slot is free: per key, the earliest first
-- (their place, run_at and seq, was kept), as many as its free slots.
-- Wakes the workers if any went back. Uses jobs_held.
WITH free AS (
    SELECT s.key, s.max - s.running AS n
    FROM {schema}.slots s
    WHERE s.running < s.max
      AND EXISTS (SELECT 1 FROM {schema}.jobs h WHERE h.held = s.key)
),
back AS (
    UPDATE {schema}.jobs j
    SET held = NULL
    FROM (SELECT h.id
          FROM free f
          CROSS JOIN LATERAL (SELECT id FROM {schema}.jobs h
                              WHERE h.held = f.key
                              ORDER BY priority, run_at, seq
                              LIMIT f.n) AS h) AS u
    WHERE j.id = u.id
    RETURNING j.id
)
SELECT count(*) AS back,
       (SELECT pg_notify({channel}, 'w') FROM back LIMIT 1) AS woke
FROM back
