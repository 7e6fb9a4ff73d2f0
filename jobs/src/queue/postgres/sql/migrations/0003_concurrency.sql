-- Concurrency limits by key. A job with a limit names its key and max;
-- `slots` counts each key's running jobs (a row per key, updated with a
-- row lock, so concurrent reserves cannot both take its last slot). A job
-- that reserve found over its key's limit is held (`held` = the key): out
-- of the waiting index, with its place (run_at, seq) kept, until a slot
-- frees and unhold.sql puts it back.
ALTER TABLE {schema}.jobs
    ADD COLUMN conc_key text,
    ADD COLUMN conc_max integer,
    ADD COLUMN held     text;

DROP INDEX {schema}.jobs_waiting;
CREATE INDEX jobs_waiting ON {schema}.jobs (queue, priority, run_at, seq)
    WHERE status IN ('P', 'T') AND held IS NULL;

CREATE INDEX jobs_held ON {schema}.jobs (held, priority, run_at, seq)
    WHERE held IS NOT NULL;

CREATE TABLE {schema}.slots (
    key     text    PRIMARY KEY,
    max     integer NOT NULL,
    running integer NOT NULL DEFAULT 0,
    -- What the last reserve took (read back in its RETURNING).
    granted integer NOT NULL DEFAULT 0
);
