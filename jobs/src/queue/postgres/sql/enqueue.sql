-- Stores a batch of jobs in one statement: all or none (a taken id fails
-- the whole statement with a unique violation on jobs_pkey). Registers
-- their named queues and sends one wake-up for the statement, not one per
-- job: `w` if one is ready now, else `d` and the earliest due time (µs).
--
--   $1 uuid[]        ids
--   $2 text[]        queues
--   $3 text[]        names
--   $4 int2[]        priority ranks
--   $5 int4[]        max_retries
--   $6 timestamptz[] scheduled_at (NULL: ready now)
--   $7 timestamptz[] created_at
--   $8 text[]        the jobs' JSON
--   $9 text[]        unique keys (NULL: not unique); the caller checked
--                    them under their locks (unique_lock.sql)
--   $10 text[]       concurrency keys (NULL: no limit)
--   $11 int4[]       their max
--   $12 text[]       rate keys (NULL: no limit)
--   $13 int4[]       their max
--   $14 int8[]       their period, µs
WITH input AS (
    SELECT *
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::int4[],
                $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[],
                $10::text[], $11::int4[], $12::text[], $13::int4[], $14::int8[])
        WITH ORDINALITY AS t(id, queue, name, priority, max_retries, scheduled_at,
                             created_at, record, unique_key, conc_key, conc_max,
                             rate_key, rate_max, rate_period_us, ord)
    ORDER BY ord
),
limited AS (
    INSERT INTO {schema}.slots AS s (key, max)
    SELECT DISTINCT ON (conc_key) conc_key, conc_max FROM input
    WHERE conc_key IS NOT NULL
    ORDER BY conc_key, ord DESC
    ON CONFLICT (key) DO UPDATE SET max = EXCLUDED.max WHERE s.max <> EXCLUDED.max
),
rated AS (
    INSERT INTO {schema}.rates AS r (key, max, period_us)
    SELECT DISTINCT ON (rate_key) rate_key, rate_max, rate_period_us FROM input
    WHERE rate_key IS NOT NULL
    ORDER BY rate_key, ord DESC
    ON CONFLICT (key) DO UPDATE SET max = EXCLUDED.max, period_us = EXCLUDED.period_us
        WHERE r.max <> EXCLUDED.max OR r.period_us <> EXCLUDED.period_us
),
registered AS (
    INSERT INTO {schema}.queues (name)
    SELECT DISTINCT queue FROM input
    ON CONFLICT (name) DO NOTHING
),
parsed AS (
    SELECT i.*, r.doc, r.doc->'step' AS step,
           jsonb_array_length(coalesce(r.doc->'step'->'depends_on', '[]')) AS deps
    FROM input i
    CROSS JOIN LATERAL (SELECT i.record::jsonb AS doc) AS r
    ORDER BY ord
),
inserted AS (
    INSERT INTO {schema}.jobs (id, queue, name, priority, status, max_retries, run_at, seq,
                               scheduled_at, created_at, record, unique_key, unique_at,
                               conc_key, conc_max, rate_key, rate_max, rate_period_us,
                               workflow_id, wf_seq, held, waiting)
    -- nextval in the order of the input: FIFO within a batch. A workflow
    -- step (its record has `step`) with dependencies is stored held for
    -- them (the jobs_step_stored trigger checks and records them).
    SELECT id, queue, name, priority, 'P', max_retries,
           greatest(coalesce(scheduled_at, now()), now()), nextval('{schema}.job_seq'),
           scheduled_at, created_at, doc, unique_key,
           CASE WHEN unique_key IS NOT NULL THEN now() END, conc_key, conc_max,
           rate_key, rate_max, rate_period_us,
           (step->>'workflow')::uuid,
           CASE WHEN step IS NOT NULL THEN nextval('{schema}.wf_seq') END,
           CASE WHEN deps > 0 THEN chr(3) END,
           CASE WHEN deps > 0 THEN deps END
    FROM parsed
    RETURNING run_at, held
)
SELECT count(*) AS stored,
       (SELECT pg_notify({channel},
                         CASE WHEN min(run_at) <= now() THEN 'w'
                              ELSE 'd' || (extract(epoch FROM min(run_at)) * 1000000)::bigint
                         END)
        FROM inserted WHERE held IS NULL HAVING count(*) > 0) AS woke
FROM inserted
