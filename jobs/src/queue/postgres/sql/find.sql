-- One page of find_jobs: for each status of $1, its newest $4 jobs (by
-- created_at, then id) of name $2 and queue $3 (each any if NULL), read in
-- index order from jobs_by_name when a name is given ({name_filter}), else
-- from jobs_created; those merged newest first, $5 skipped, $6 returned.
-- So a page costs about offset + limit rows per status, not a scan of the
-- table (a queue filter reads on until enough rows match).
--
--   $1 text[]  status codes
--   $2 text    name (NULL: any)
--   $3 text    queue (NULL: any)
--   $4 int8    rows per status: offset + limit + 1
--   $5 int8    offset
--   $6 int8    limit + 1 (the last one only says that more follow)
SELECT {columns}
FROM unnest($1::text[]) AS s(code)
CROSS JOIN LATERAL (
    SELECT *
    FROM {schema}.jobs j
    WHERE j.status = s.code::"char"
      AND {name_filter}
      AND ($3::text IS NULL OR j.queue = $3::text)
    ORDER BY j.created_at DESC, j.id DESC
    LIMIT $4
) AS j
ORDER BY j.created_at DESC, j.id DESC
OFFSET $5
LIMIT $6
