-- Reserves up to $2 ready jobs of queue $1 under a lease of $3 µs, most
-- urgent first, then in the order they became ready. Nothing from a paused
-- queue. Sends a `started` event per job (chunked under NOTIFY's 8,000-byte
-- payload limit).
--
-- The `next` CTE picks and locks the candidates (SKIP LOCKED: concurrent
-- workers take different jobs, nobody waits) and is an optimisation fence:
-- the UPDATE cannot touch more rows than the LIMIT. Uses jobs_waiting.
--
-- Limits: the queue's own rows (`slots` and `rates`, if the take limits
-- it) are locked first and cap the LIMIT; then the rows of the candidates'
-- concurrency and rate keys are locked (FOR UPDATE reads their latest
-- version, so what another reserve just took is counted). A candidate over
-- its concurrency key's free slots, or then over its rate key's room in the
-- window, is held (`held` = its key, or chr(2) || its rate key), keeping
-- its place (run_at, seq); what the chosen jobs take is written back.
--
--   $1 text   the queue
--   $2 int8   at most this many
--   $3 int8   the lease, µs
--   $4 text   the queue's slots key if the take limits its concurrency
--             (the caller upserted the row), else NULL
--   $5 text   the queue's rates key if the take limits its rate (the
--             caller upserted the row), else NULL
--
-- Commits without waiting for the WAL flush (`async_commit`): a reserve
-- lost in a crash only puts its jobs back to waiting, as a lost lease
-- would (at-least-once either way), and the flush of any later finish —
-- which waits for it — covers every reserve before it in the WAL, so no
-- acknowledged outcome depends on a reserve that could be lost. It saves
-- one flush per reserve, the dominant cost of a reserve on most disks.
WITH async_commit AS (
    SELECT set_config('synchronous_commit', 'off', true)
),
qslot AS (
    SELECT key, greatest(max - running, 0) AS free
    FROM {schema}.slots
    WHERE key = $4
    FOR UPDATE
),
qrate AS (
    SELECT key,
           greatest(max - (SELECT count(*) FROM unnest(starts) AS t
                           WHERE t > now() - make_interval(secs => period_us / 1e6)), 0) AS free
    FROM {schema}.rates
    WHERE key = $5
    FOR UPDATE
),
next AS (
    SELECT id, conc_key, rate_key, priority, run_at, seq
    FROM {schema}.jobs
    WHERE queue = $1
      AND status IN ('P', 'T')
      AND held IS NULL
      AND run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = $1 AND q.paused)
    ORDER BY priority, run_at, seq
    LIMIT least($2, coalesce((SELECT free FROM qslot), $2), coalesce((SELECT free FROM qrate), $2))
    FOR UPDATE SKIP LOCKED
),
cfree AS (
    SELECT key, greatest(max - running, 0) AS free
    FROM {schema}.slots
    WHERE key IN (SELECT conc_key FROM next)
    ORDER BY key
    FOR UPDATE
),
rfree AS (
    SELECT key,
           greatest(max - (SELECT count(*) FROM unnest(starts) AS t
                           WHERE t > now() - make_interval(secs => period_us / 1e6)), 0) AS free
    FROM {schema}.rates
    WHERE key IN (SELECT rate_key FROM next)
    ORDER BY key
    FOR UPDATE
),
by_conc AS (
    SELECT n.*, c.free AS cfree,
           row_number() OVER (PARTITION BY n.conc_key ORDER BY n.priority, n.run_at, n.seq) AS kc
    FROM next n
    LEFT JOIN cfree c ON c.key = n.conc_key
),
by_rate AS (
    SELECT b.*, r.free AS rfree,
           row_number() OVER (PARTITION BY b.rate_key ORDER BY b.priority, b.run_at, b.seq) AS kr
    FROM by_conc b
    LEFT JOIN rfree r ON r.key = b.rate_key
    WHERE b.conc_key IS NULL OR b.kc <= coalesce(b.cfree, 0)
),
chosen AS (
    SELECT id, conc_key, rate_key
    FROM by_rate
    WHERE rate_key IS NULL OR kr <= coalesce(rfree, 0)
),
held AS (
    UPDATE {schema}.jobs j
    SET held = CASE WHEN b.conc_key IS NOT NULL AND b.kc > coalesce(b.cfree, 0) THEN b.conc_key
                    ELSE chr(2) || b.rate_key END
    FROM by_conc b
    WHERE j.id = b.id AND b.id NOT IN (SELECT id FROM chosen)
    RETURNING j.id
),
conc_taken AS (
    UPDATE {schema}.slots s
    SET running = s.running + u.n
    FROM (SELECT conc_key, count(*)::int AS n FROM chosen
          WHERE conc_key IS NOT NULL GROUP BY conc_key) AS u
    WHERE s.key = u.conc_key
),
rate_taken AS (
    UPDATE {schema}.rates r
    SET starts = array(SELECT t FROM unnest(r.starts) AS t
                       WHERE t > now() - make_interval(secs => r.period_us / 1e6))
                 || array_fill(now(), ARRAY[u.n])
    FROM (SELECT rate_key, count(*)::int AS n FROM chosen
          WHERE rate_key IS NOT NULL GROUP BY rate_key) AS u
    WHERE r.key = u.rate_key
),
queue_taken AS (
    UPDATE {schema}.slots s
    SET running = s.running + (SELECT count(*) FROM chosen)
    FROM qslot
    WHERE s.key = qslot.key
),
queue_rate_taken AS (
    UPDATE {schema}.rates r
    SET starts = array(SELECT t FROM unnest(r.starts) AS t
                       WHERE t > now() - make_interval(secs => r.period_us / 1e6))
                 || array_fill(now(), ARRAY[(SELECT count(*)::int FROM chosen)])
    FROM qrate
    WHERE r.key = qrate.key AND EXISTS (SELECT 1 FROM chosen)
),
taken AS (
    UPDATE {schema}.jobs j
    SET status = 'R',
        attempts = j.attempts + 1,
        token = nextval('{schema}.lease_tokens'),
        lease_until = now() + make_interval(secs => $3 / 1e6),
        started_at = now(),
        qslot = $4
    FROM chosen
    WHERE j.id = chosen.id
    RETURNING j.*
)
SELECT {columns},
       (SELECT count(*) FROM held) AS held,
       (SELECT count(*) FROM ({events_of_taken}) AS sent) AS events,
       (SELECT count(*) FROM async_commit) AS async_commit
FROM taken
ORDER BY priority, run_at, seq
