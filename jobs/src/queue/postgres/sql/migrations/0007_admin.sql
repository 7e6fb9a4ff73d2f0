-- What operator tools read (QueueAdmin): each failed attempt's error, an
-- index for find_jobs by status and name, the attempts ended per minute,
-- and the workers alive.

-- The failed attempts' errors since the record was written (retry writes
-- them into the record), oldest first: a JSON array of {attempt, at,
-- error}, the last 25 at most; appended by finish and lease recovery.
ALTER TABLE {schema}.jobs ADD COLUMN errors jsonb;

-- find_jobs with a status and a name, newest first (a status alone uses
-- jobs_created).
CREATE INDEX jobs_by_name ON {schema}.jobs (status, name, created_at DESC, id DESC);

-- Attempts ended per minute, fleet-wide, counted once per finish or
-- recovery statement. Each minute has up to 16 rows (the shard: the
-- counting connection's backend pid, modulo 16), so that concurrent
-- finishes do not all wait for one row's lock; throughput sums them. The
-- pruner deletes the minutes older than 24 hours.
CREATE TABLE {schema}.throughput (
    minute    timestamptz NOT NULL,
    shard     smallint    NOT NULL,
    processed bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, shard)
);

-- The workers that report themselves: the latest report (WorkerInfo as
-- JSON) and when it lapses. Lapsed ones are deleted by the pruner and
-- left out by workers().
CREATE TABLE {schema}.workers (
    id        text        PRIMARY KEY,
    report    jsonb       NOT NULL,
    lapses_at timestamptz NOT NULL
);
