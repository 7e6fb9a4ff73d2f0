-- Removes every job (and so every slot taken); keeps the named queues and
-- their pause state.
WITH gone AS (DELETE FROM {schema}.jobs RETURNING 1),
reset AS (UPDATE {schema}.slots SET running = 0)
SELECT count(*) AS removed FROM gone
