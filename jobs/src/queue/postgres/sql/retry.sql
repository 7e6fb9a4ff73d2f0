-- Puts a failed, cancelled or expired job back in the queue, as the caller
-- reset it (Job::reset_for_retry), if it did not change since it was read
-- (same status and token). Returns one row if it did; wakes workers.
--
--   $1 uuid  id
--   $2 text  the status read
--   $3 int8  the token read
--   $4 text  the reset job's JSON
UPDATE {schema}.jobs
SET status = 'P',
    attempts = 0,
    started_at = NULL,
    completed_at = NULL,
    scheduled_at = NULL,
    lease_until = NULL,
    run_at = now(),
    seq = nextval('{schema}.job_seq'),
    record = $4::jsonb,
    -- The record holds the errors so far.
    errors = NULL
WHERE id = $1 AND status = $2::"char" AND token = $3
RETURNING pg_notify({channel}, 'w')::text AS woke
