-- Deletes a job unless it is running (the row lock waits for a reserve
-- taking it, and then sees it running). Deleting the row frees the unique
-- key it holds (a key's holder is the newest job with it) and takes it out
-- of every index. Returns its status, and whether it was deleted; no row
-- if there is no such job.
--
--   $1 uuid  id
WITH target AS (
    SELECT id, status FROM {schema}.jobs WHERE id = $1 FOR UPDATE
),
gone AS (
    DELETE FROM {schema}.jobs j
    USING target t
    WHERE j.id = t.id AND t.status <> 'R'
    RETURNING j.id
)
SELECT status::text AS status, (SELECT count(*) FROM gone) AS deleted
FROM target
