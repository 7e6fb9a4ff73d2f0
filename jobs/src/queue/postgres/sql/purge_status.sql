-- Deletes up to $2 jobs of status $1 (never R: refused before), so that a
-- large purge is a series of short transactions; rows a reserve is taking
-- are skipped (they are running next). Uses jobs_created. Returns how many.
--
--   $1 text  status code
--   $2 int8  at most so many
WITH doomed AS (
    SELECT id FROM {schema}.jobs
    WHERE status = $1::text::"char"
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM {schema}.jobs WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT count(*) AS removed FROM gone
