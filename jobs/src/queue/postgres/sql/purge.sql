-- Removes every job; keeps the named queues and their pause state.
WITH gone AS (DELETE FROM {schema}.jobs RETURNING 1)
SELECT count(*) AS removed FROM gone
