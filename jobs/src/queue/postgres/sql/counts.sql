-- Jobs per status, and of the waiting ones those due later. A full scan of
-- the table's status column; fine for dashboards, not for a hot path.
SELECT status::text AS status,
       count(*) AS n,
       -- A step held for its dependencies (held chr(3)) is pending, not
       -- scheduled.
       count(*) FILTER (WHERE status IN ('P', 'T') AND run_at > now()
                        AND held IS DISTINCT FROM chr(3)) AS later
FROM {schema}.jobs
GROUP BY status
