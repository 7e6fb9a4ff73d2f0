-- Unique jobs: the key a unique job holds, and when it took it. The holder
-- of a key is the newest job with it (highest seq); it blocks a twin while
-- in one of the twin's `states` and within its `period`. Deleting the job
-- (retention, purge) frees the key.
ALTER TABLE {schema}.jobs
    ADD COLUMN unique_key text,
    ADD COLUMN unique_at  timestamptz;

CREATE INDEX jobs_unique ON {schema}.jobs (unique_key, seq DESC)
    WHERE unique_key IS NOT NULL;
