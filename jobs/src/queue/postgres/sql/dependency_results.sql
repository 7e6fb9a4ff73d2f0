-- What a step's dependencies left (recorded as each finished while the
-- step waited, or at its push), in the order they finished. Uses the
-- primary key of job_deps.
--
--   $1 uuid  the step's job
SELECT parent, step, status::text AS status, result::text AS result
FROM {schema}.job_deps
WHERE child = $1 AND status IS NOT NULL
ORDER BY seq
