-- Cancels a waiting or running job. Returns its status before, if it was
-- cancelled now; sends a `cancelled` event and, for a running job, `r`
-- (revoked): every worker checks its leases at once.
--
--   $1 uuid  id
WITH before AS (
    SELECT id, status FROM {schema}.jobs WHERE id = $1 FOR UPDATE
),
cancelled AS (
    UPDATE {schema}.jobs j
    SET status = 'X', completed_at = now(), lease_until = NULL, held = NULL
    FROM before b
    WHERE j.id = b.id AND b.status IN ('P', 'T', 'R')
    RETURNING j.id, j.name, b.status AS was,
              CASE WHEN b.status = 'R' THEN j.conc_key END AS conc_key,
              CASE WHEN b.status = 'R' THEN j.qslot END AS qslot
),
{free_slots_of_cancelled}
SELECT was::text AS was,
       (SELECT count(*) FROM freed) AS freed,
       (SELECT pg_notify({channel}, 'w') FROM freed WHERE left(key, 1) = chr(1) LIMIT 1)
           AS queue_freed,
       (SELECT count(*) FROM ({events_of_cancelled}) AS sent) AS events,
       (SELECT pg_notify({channel}, 'r') FROM cancelled WHERE was = 'R') AS revoked
FROM cancelled
