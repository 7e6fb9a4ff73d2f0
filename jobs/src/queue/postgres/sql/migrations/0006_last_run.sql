-- The last run of each periodic task (`PostgresLastRunStore`), shared by
-- every scheduler on the schema: a restarted scheduler catches up on the
-- occurrences it missed. One row per task; a save keeps the later time
-- (last_run_save.sql), so schedulers saving out of order cannot move it
-- back. The occurrences themselves are enqueued once because their job
-- ids are derived from the task and the time (the primary key of `jobs`
-- refuses a second), not by this table.
CREATE TABLE {schema}.last_runs (
    task       text        PRIMARY KEY,
    occurrence timestamptz NOT NULL
);
