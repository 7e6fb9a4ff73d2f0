-- Reserves up to $2 ready jobs of queue $1 under a lease of $3 µs, most
-- urgent first, then in the order they became ready. Nothing from a paused
-- queue. A job whose concurrency key has no free slot is held instead (see
-- migration 0003), keeping its place; the slots taken are counted in the
-- same statement (`slots`, row-locked: EvalPlanQual re-reads a row another
-- reserve just updated, so no key goes over its max). Sends a `started` event per job (chunked under NOTIFY's 8,000
-- byte payload limit).
--
-- The CTE picks and locks the rows first (SKIP LOCKED: concurrent workers
-- take different jobs, nobody waits) and is an optimisation fence: the
-- UPDATE cannot touch more rows than the LIMIT. Uses jobs_waiting.
--
--   $1 text   the queue
--   $2 int8   at most this many
--   $3 int8   the lease, µs
--   $4 text   the queue's slots key if the take limits its concurrency
--             (the row exists: the caller upserts it), else NULL
WITH qslot AS (
    -- Locked: reserves of a limited queue take turns here.
    SELECT key, greatest(max - running, 0) AS free
    FROM {schema}.slots
    WHERE key = $4
    FOR UPDATE
),
next AS (
    SELECT id, conc_key, priority, run_at, seq
    FROM {schema}.jobs
    WHERE queue = $1
      AND status IN ('P', 'T')
      AND held IS NULL
      AND run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = $1 AND q.paused)
    ORDER BY priority, run_at, seq
    LIMIT least($2, coalesce((SELECT free FROM qslot), $2))
    FOR UPDATE SKIP LOCKED
),
need AS (
    SELECT conc_key, count(*)::int AS n FROM next WHERE conc_key IS NOT NULL GROUP BY conc_key
),
granted AS (
    UPDATE {schema}.slots s
    SET granted = least(need.n, greatest(s.max - s.running, 0)),
        running = s.running + least(need.n, greatest(s.max - s.running, 0))
    FROM need
    WHERE s.key = need.conc_key
    RETURNING s.key, s.granted
),
ranked AS (
    SELECT n.id, n.conc_key, g.granted,
           row_number() OVER (PARTITION BY n.conc_key ORDER BY n.priority, n.run_at, n.seq) AS k
    FROM next n
    LEFT JOIN granted g ON g.key = n.conc_key
),
chosen AS (
    SELECT id FROM ranked WHERE conc_key IS NULL OR k <= coalesce(granted, 0)
),
held AS (
    UPDATE {schema}.jobs j
    SET held = r.conc_key
    FROM ranked r
    WHERE j.id = r.id AND r.conc_key IS NOT NULL AND r.k > coalesce(r.granted, 0)
    RETURNING j.id
),
queue_taken AS (
    UPDATE {schema}.slots s
    SET running = s.running + (SELECT count(*) FROM chosen)
    FROM qslot
    WHERE s.key = qslot.key
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
       (SELECT count(*) FROM ({events_of_taken}) AS sent) AS events
FROM taken
ORDER BY priority, run_at, seq
