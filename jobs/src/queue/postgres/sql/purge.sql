-- Removes every job (and so every slot taken) and every workflow; keeps
-- the named queues and their pause state.
WITH gone AS (DELETE FROM {schema}.jobs RETURNING 1),
reset AS (UPDATE {schema}.slots SET running = 0),
workflows_gone AS (DELETE FROM {schema}.workflows),
deps_gone AS (DELETE FROM {schema}.job_deps)
SELECT count(*) AS removed FROM gone
