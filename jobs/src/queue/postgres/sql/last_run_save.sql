-- Records that occurrence $2 of periodic task $1 ran, keeping the later of
-- the stored time and this one. One statement: concurrent saves of one
-- task serialize on its row (the upsert locks it), and the greatest wins
-- whatever their order.
--
--   $1 text        the task
--   $2 timestamptz the occurrence
INSERT INTO {schema}.last_runs AS l (task, occurrence)
VALUES ($1, $2)
ON CONFLICT (task) DO UPDATE SET occurrence = EXCLUDED.occurrence
    WHERE l.occurrence < EXCLUDED.occurrence
