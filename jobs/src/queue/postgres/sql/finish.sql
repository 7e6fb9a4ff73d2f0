-- Records how attempts ended, for many leases at once; a lease no longer
-- held (another token, or the job is no longer running) changes nothing.
-- Returns the ids of the jobs changed. Sends one event per job, and a
-- wake-up for the earliest retry or snooze time (`d` + µs). Stores the next
-- runs of recurring jobs whose finish took effect, in the same statement
-- (a next run whose id is taken is there already: skipped). A failed
-- attempt (T, F) adds its error to `errors`; the attempts that ended (all
-- but snoozes) are counted in `throughput`, of them T and F as failed.
--
--   $1 uuid[]        ids
--   $2 int8[]        tokens
--   $3 text[]        outcome: C, T (retry), F, X, E, or S (snoozed: the
--                    attempt does not count; P or T after)
--   $4 text[]        the attempt's result JSON (NULL: keep)
--   $5 text[]        last error (NULL: keep)
--   $6 timestamptz[] when a retried or snoozed job is due (NULL otherwise)
--   $7 uuid[]        next runs: the id of the job whose finish stores it
--   $8 .. $21        next runs, as $1 .. $14 of enqueue.sql (a next run's
--                    unique key is stored, not checked: the series holds it)
WITH input AS (
    SELECT *
    FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
        AS t(id, token, code, result, last_error, at)
),
done AS (
    UPDATE {schema}.jobs j
    SET status = CASE WHEN i.code <> 'S' THEN i.code::"char"
                      WHEN j.attempts > 1 THEN 'T'
                      ELSE 'P' END,
        attempts = CASE WHEN i.code = 'S' THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
        result = coalesce(i.result::jsonb, j.result),
        last_error = coalesce(i.last_error, j.last_error),
        scheduled_at = coalesce(i.at, j.scheduled_at),
        run_at = coalesce(i.at, j.run_at),
        seq = CASE WHEN i.at IS NULL THEN j.seq ELSE nextval('{schema}.job_seq') END,
        started_at = CASE WHEN i.code = 'S' THEN NULL ELSE j.started_at END,
        completed_at = CASE WHEN i.code IN ('C', 'F', 'X', 'E') THEN now() END,
        lease_until = NULL,
        errors = CASE WHEN i.code IN ('T', 'F') THEN
                     {keep_errors}
                     || jsonb_build_array(jsonb_build_object(
                            'attempt', j.attempts, 'at', now(),
                            'error', coalesce(i.last_error, 'failed')))
                 ELSE j.errors END
    FROM input i
    WHERE j.id = i.id AND j.token = i.token AND j.status = 'R'
    RETURNING j.id, j.name, i.code, i.at, j.conc_key, j.qslot
),
{free_slots_of_done},
-- One upsert per statement, on the row of this minute and connection.
counted AS (
    INSERT INTO {schema}.throughput AS t (minute, shard, processed, failed)
    SELECT date_trunc('minute', now()), (pg_backend_pid() % 16)::smallint,
           count(*) FILTER (WHERE code <> 'S'), count(*) FILTER (WHERE code IN ('T', 'F'))
    FROM done
    HAVING count(*) FILTER (WHERE code <> 'S') > 0
    ON CONFLICT (minute, shard) DO UPDATE
        SET processed = t.processed + EXCLUDED.processed, failed = t.failed + EXCLUDED.failed
),
following AS (
    SELECT t.*
    FROM unnest($7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::int2[], $12::int4[],
                $13::timestamptz[], $14::timestamptz[], $15::text[], $16::text[],
                $17::text[], $18::int4[], $19::text[], $20::int4[], $21::int8[])
        WITH ORDINALITY AS t(after, id, queue, name, priority, max_retries, scheduled_at,
                             created_at, record, unique_key, conc_key, conc_max,
                             rate_key, rate_max, rate_period_us, ord)
    WHERE t.after IN (SELECT id FROM done)
    ORDER BY ord
),
limited AS (
    INSERT INTO {schema}.slots AS s (key, max)
    SELECT DISTINCT ON (conc_key) conc_key, conc_max FROM following
    WHERE conc_key IS NOT NULL
    ORDER BY conc_key, ord DESC
    ON CONFLICT (key) DO UPDATE SET max = EXCLUDED.max WHERE s.max <> EXCLUDED.max
),
rated AS (
    INSERT INTO {schema}.rates AS r (key, max, period_us)
    SELECT DISTINCT ON (rate_key) rate_key, rate_max, rate_period_us FROM following
    WHERE rate_key IS NOT NULL
    ORDER BY rate_key, ord DESC
    ON CONFLICT (key) DO UPDATE SET max = EXCLUDED.max, period_us = EXCLUDED.period_us
        WHERE r.max <> EXCLUDED.max OR r.period_us <> EXCLUDED.period_us
),
registered AS (
    INSERT INTO {schema}.queues (name)
    SELECT DISTINCT queue FROM following
    ON CONFLICT (name) DO NOTHING
),
stored AS (
    INSERT INTO {schema}.jobs (id, queue, name, priority, status, max_retries, run_at, seq,
                               scheduled_at, created_at, record, unique_key, unique_at,
                               conc_key, conc_max, rate_key, rate_max, rate_period_us)
    SELECT id, queue, name, priority, 'P', max_retries,
           greatest(coalesce(scheduled_at, now()), now()), nextval('{schema}.job_seq'),
           scheduled_at, created_at, record::jsonb, unique_key,
           CASE WHEN unique_key IS NOT NULL THEN now() END, conc_key, conc_max,
           rate_key, rate_max, rate_period_us
    FROM following
    ON CONFLICT (id) DO NOTHING
    RETURNING run_at
)
SELECT id,
       (SELECT count(*) FROM freed) AS freed,
       (SELECT pg_notify({channel}, 'w') FROM freed WHERE left(key, 1) = chr(1) LIMIT 1)
           AS queue_freed,
       (SELECT count(*) FROM ({events_of_done}) AS sent) AS events,
       (SELECT pg_notify({channel},
                         CASE WHEN min(run_at) <= now() THEN 'w'
                              ELSE 'd' || (extract(epoch FROM min(run_at)) * 1000000)::bigint
                         END)
        FROM stored HAVING count(*) > 0) AS next_woke,
       (SELECT pg_notify({channel}, 'd' || (extract(epoch FROM min(at)) * 1000000)::bigint)
        FROM done WHERE at IS NOT NULL HAVING count(*) > 0) AS woke
FROM done
