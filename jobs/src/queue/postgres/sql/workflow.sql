-- A workflow's counts (primary key) and its steps still kept, in the order
-- stored (jobs_workflow), each with how many jobs it still waits for while
-- it is held for its dependencies. One row without a step (id NULL) if
-- none is kept; no row for an unknown workflow.
--
--   $1 uuid  the workflow
SELECT w.name AS wf_name, w.kind AS wf_kind, w.total AS wf_total, w.pending AS wf_pending,
       w.completed AS wf_completed, w.failed AS wf_failed, w.cancelled AS wf_cancelled,
       s.*
FROM {schema}.workflows w
LEFT JOIN LATERAL (
    SELECT {columns},
           CASE WHEN held = chr(3) THEN waiting ELSE 0 END AS waiting_on
    FROM {schema}.jobs
    WHERE workflow_id = w.id
    ORDER BY wf_seq
) AS s ON true
WHERE w.id = $1
