-- The attempts counted in the last $1 minutes, per minute (the shards
-- summed), with the database's time: always one row at least (minute NULL
-- if none was counted). Uses the primary key.
--
--   $1 int4  minutes
SELECT now() AS now, t.minute, t.processed, t.failed
FROM (SELECT 1) AS one
LEFT JOIN (
    SELECT minute, sum(processed)::int8 AS processed, sum(failed)::int8 AS failed
    FROM {schema}.throughput
    WHERE minute > now() - make_interval(mins => $1)
    GROUP BY minute
) AS t ON true
