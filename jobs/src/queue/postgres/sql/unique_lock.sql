-- Takes the advisory locks of unique keys $1, in a fixed order (so two
-- enqueues cannot deadlock), held until the transaction ends. With them
-- held, no other enqueue of these keys stores a job before this one
-- commits or rolls back, so the check (unique_holders.sql, a statement of
-- its own so that its snapshot sees what committed while we waited) and
-- the insert that follow are atomic.
--
--   $1 text[]  the unique keys
SELECT count(pg_advisory_xact_lock(hashtextextended({lock_prefix} || k, 0))) AS locked
FROM (SELECT DISTINCT k FROM unnest($1::text[]) AS k ORDER BY k) AS keys
