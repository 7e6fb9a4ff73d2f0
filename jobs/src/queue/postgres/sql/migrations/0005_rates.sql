-- Rate limits. A job with one names its key, max and period; `rates` has a
-- row per key (and per queue whose takes limit its rate, keyed
-- chr(1) || 'q:' || queue) with the starts in its current window. Reserve
-- locks the rows it needs (FOR UPDATE, which reads their latest version),
-- so concurrent reserves cannot both take a window's last start. A job a
-- rate holds back is held as chr(2) || its key, until the window has room.
ALTER TABLE {schema}.jobs
    ADD COLUMN rate_key       text,
    ADD COLUMN rate_max       integer,
    ADD COLUMN rate_period_us bigint;

CREATE TABLE {schema}.rates (
    key       text          PRIMARY KEY,
    max       integer       NOT NULL,
    period_us bigint        NOT NULL,
    starts    timestamptz[] NOT NULL DEFAULT '{}'
);
