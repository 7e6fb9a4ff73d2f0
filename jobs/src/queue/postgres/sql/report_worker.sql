-- A worker's report, good for $3 µs (by the database's clock).
--
--   $1 text  worker id
--   $2 text  the report (WorkerInfo JSON)
--   $3 int8  time to live (µs)
INSERT INTO {schema}.workers AS w (id, report, lapses_at)
VALUES ($1, $2::jsonb, now() + make_interval(secs => $3 / 1e6))
ON CONFLICT (id) DO UPDATE SET report = EXCLUDED.report, lapses_at = EXCLUDED.lapses_at
