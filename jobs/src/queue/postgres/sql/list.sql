-- Up to $2 jobs with status $1 (any if NULL), newest first. Uses
-- jobs_created when a status is given.
SELECT {columns}
FROM {schema}.jobs
WHERE $1::text IS NULL OR status = $1::text::"char"
ORDER BY created_at DESC, seq DESC
LIMIT $2
