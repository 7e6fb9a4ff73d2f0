-- Each key's holder, the newest job with it, and the time now (the
-- transaction's: the jobs inserted next get it as their unique_at). Uses
-- jobs_unique.
--
--   $1 text[]  the unique keys
SELECT now() AS now, h.unique_key, h.id, h.status::text AS status, h.unique_at
FROM (SELECT 1) AS one
LEFT JOIN (
    SELECT DISTINCT ON (unique_key) unique_key, id, status, unique_at
    FROM {schema}.jobs
    WHERE unique_key = ANY($1::text[])
    ORDER BY unique_key, seq DESC
) AS h ON true
