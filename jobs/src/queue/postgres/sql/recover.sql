-- Puts jobs whose lease ran out (their worker died or lost the database)
-- back in the queue, the attempt counted, or fails them if it was their
-- last; up to 1,000 per call. The lost attempt is kept among the job's
-- errors and counted in `throughput`. Uses jobs_running. Returns how many.
WITH expired AS (
    -- The message is made here, from the locked row: the UPDATE below
    -- cannot refer to its own target in a LATERAL of its FROM.
    SELECT id,
           'the worker running attempt ' || attempts
               || ' stopped renewing its lease (it crashed or lost the database)' AS message
    FROM {schema}.jobs
    WHERE status = 'R' AND lease_until < now()
    ORDER BY lease_until
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
),
recovered AS (
    UPDATE {schema}.jobs j
    SET status = CASE WHEN j.attempts > j.max_retries THEN 'F' ELSE 'T' END,
        completed_at = CASE WHEN j.attempts > j.max_retries THEN now() END,
        lease_until = NULL,
        run_at = now(),
        seq = nextval('{schema}.job_seq'),
        last_error = e.message,
        result = jsonb_build_object('success', false, 'error', e.message,
                                    'error_type', 'LeaseExpired',
                                    'retryable', j.attempts <= j.max_retries),
        errors = {keep_errors}
                 || jsonb_build_array(jsonb_build_object(
                        'attempt', j.attempts, 'at', now(), 'error', e.message))
    FROM expired e
    WHERE j.id = e.id
    RETURNING j.id, j.name, j.status, j.conc_key, j.qslot
),
{free_slots_of_recovered},
-- A lost attempt ended in an error: counted as processed and failed.
counted AS (
    INSERT INTO {schema}.throughput AS t (minute, shard, processed, failed)
    SELECT date_trunc('minute', now()), (pg_backend_pid() % 16)::smallint, count(*), count(*)
    FROM recovered
    HAVING count(*) > 0
    ON CONFLICT (minute, shard) DO UPDATE
        SET processed = t.processed + EXCLUDED.processed, failed = t.failed + EXCLUDED.failed
)
SELECT count(*) AS recovered,
       (SELECT count(*) FROM freed) AS freed,
       (SELECT pg_notify({channel}, 'w') FROM freed WHERE left(key, 1) = chr(1) LIMIT 1)
           AS queue_freed,
       (SELECT count(*) FROM ({events_of_recovered}) AS sent) AS events,
       (SELECT pg_notify({channel}, 'w') FROM recovered WHERE status = 'T' LIMIT 1) AS woke
FROM recovered
