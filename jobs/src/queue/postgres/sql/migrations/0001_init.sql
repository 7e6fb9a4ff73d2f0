-- The first schema: the jobs table, its indexes, the sequences for FIFO
-- order and lease tokens, and the named queues' pause state.
--
-- `{schema}` is the configured schema, quoted (the migrator creates it and
-- substitutes it here and in every query).

CREATE SEQUENCE {schema}.job_seq;
CREATE SEQUENCE {schema}.lease_tokens;

CREATE TABLE {schema}.jobs (
    id           uuid        PRIMARY KEY,
    queue        text        NOT NULL,
    name         text        NOT NULL,
    -- The priority rank: 0 = critical .. 3 = low (reserve takes low first).
    priority     smallint    NOT NULL,
    -- P pending, R running, T retrying, C completed, F failed,
    -- X cancelled, E expired.
    status       "char"      NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    max_retries  integer     NOT NULL,
    -- The lease token of the current (or last) reservation; 0 if none.
    token        bigint      NOT NULL DEFAULT 0,
    -- The order within a priority: when the job became ready (run_at),
    -- then seq. A released job gets -infinity and a negative seq: the
    -- front of its priority.
    run_at       timestamptz NOT NULL,
    seq          bigint      NOT NULL,
    -- The job's own scheduled_at (what `get` shows); run_at is the order.
    scheduled_at timestamptz,
    lease_until  timestamptz,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    completed_at timestamptz,
    result       jsonb,
    last_error   text,
    progress     jsonb,
    -- The job as enqueued (or as put back by retry). The columns above are
    -- authoritative for what they hold; this is never rewritten by a state
    -- change.
    record       jsonb       NOT NULL
);

-- Reserve: the next waiting jobs of one queue, most urgent first. Partial,
-- so running and finished rows (any number) cost reserve nothing.
CREATE INDEX jobs_waiting ON {schema}.jobs (queue, priority, run_at, seq)
    WHERE status IN ('P', 'T');

-- Lease recovery: running jobs by lease deadline.
CREATE INDEX jobs_running ON {schema}.jobs (lease_until)
    WHERE status = 'R';

-- Retention and list: finished jobs, oldest first.
CREATE INDEX jobs_finished ON {schema}.jobs (completed_at)
    WHERE status IN ('C', 'F', 'X', 'E');

-- list: newest first, by status.
CREATE INDEX jobs_created ON {schema}.jobs (status, created_at DESC);

CREATE TABLE {schema}.queues (
    name   text    PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);
