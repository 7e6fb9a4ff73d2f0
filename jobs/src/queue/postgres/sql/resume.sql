-- Resumes queue $1 and wakes waiting workers; one row if it was paused.
UPDATE {schema}.queues SET paused = false
WHERE name = $1 AND paused
RETURNING pg_notify({channel}, 'w')::text AS woke
