-- Pauses queue $1; one row if it was not paused before.
INSERT INTO {schema}.queues (name, paused) VALUES ($1, true)
ON CONFLICT (name) DO UPDATE SET paused = true WHERE NOT {schema}.queues.paused
RETURNING name
