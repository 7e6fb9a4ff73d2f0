-- Reserves up to $2 ready jobs of queue $1 under a lease of $3 µs, most
-- urgent first, then in the order they became ready. Nothing from a paused
-- queue. Sends a `started` event per job (chunked under NOTIFY's 8,000
-- byte payload limit).
--
-- The CTE picks and locks the rows first (SKIP LOCKED: concurrent workers
-- take different jobs, nobody waits) and is an optimisation fence: the
-- UPDATE cannot touch more rows than the LIMIT. Uses jobs_waiting.
--
--   $1 text   the queue
--   $2 int8   at most this many
--   $3 int8   the lease, µs
WITH next AS (
    SELECT id
    FROM {schema}.jobs
    WHERE queue = $1
      AND status IN ('P', 'T')
      AND run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = $1 AND q.paused)
    ORDER BY priority, run_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
taken AS (
    UPDATE {schema}.jobs j
    SET status = 'R',
        attempts = j.attempts + 1,
        token = nextval('{schema}.lease_tokens'),
        lease_until = now() + make_interval(secs => $3 / 1e6),
        started_at = now()
    FROM next
    WHERE j.id = next.id
    RETURNING j.*
)
SELECT {columns},
       (SELECT count(*) FROM ({events_of_taken}) AS sent) AS events
FROM taken
ORDER BY priority, run_at, seq
