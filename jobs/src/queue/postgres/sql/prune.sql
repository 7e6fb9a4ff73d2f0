-- Retention: deletes finished jobs beyond the newest $1 and, if $2 > 0,
-- those finished more than $2 µs ago; at most $3 per call, so each call is
-- a short transaction. Uses jobs_finished. Returns how many. Also deletes
-- throughput older than 24 hours and lapsed worker reports.
WITH beyond AS (
    SELECT id FROM {schema}.jobs
    WHERE status IN ('C', 'F', 'X', 'E')
    ORDER BY completed_at DESC
    OFFSET $1
    LIMIT $3
),
aged AS (
    SELECT id FROM {schema}.jobs
    WHERE $2 > 0
      AND status IN ('C', 'F', 'X', 'E')
      AND completed_at < now() - make_interval(secs => $2 / 1e6)
    LIMIT $3
),
-- The minutes of throughput beyond the last 24 hours (primary key), and
-- the workers whose report lapsed.
old_minutes AS (
    DELETE FROM {schema}.throughput WHERE minute < now() - interval '24 hours'
),
lapsed AS (
    DELETE FROM {schema}.workers WHERE lapses_at < now()
),
gone AS (
    DELETE FROM {schema}.jobs
    WHERE id IN (SELECT id FROM beyond UNION SELECT id FROM aged)
    RETURNING 1
)
SELECT count(*) AS removed FROM gone
