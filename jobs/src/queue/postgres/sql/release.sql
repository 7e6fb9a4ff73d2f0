-- Hands held jobs back to the front of their priority, in the order given
-- (the first ends up first), the attempt not counted: run_at -infinity and
-- a negative seq, more negative for later calls. Returns the ids released;
-- sends `released` events and a wake-up.
--
--   $1 uuid[]  ids
--   $2 int8[]  tokens
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int8[]) WITH ORDINALITY AS t(id, token, ord)
),
base AS (
    SELECT nextval('{schema}.job_seq') * 1048576 AS v
),
released AS (
    UPDATE {schema}.jobs j
    SET status = CASE WHEN j.attempts > 1 THEN 'T' ELSE 'P' END,
        attempts = greatest(j.attempts - 1, 0),
        started_at = NULL,
        lease_until = NULL,
        run_at = '-infinity',
        seq = -(base.v + cardinality($1::uuid[]) - i.ord)
    FROM input i, base
    WHERE j.id = i.id AND j.token = i.token AND j.status = 'R'
    RETURNING j.id, j.name, j.conc_key, j.qslot
),
{free_slots_of_released}
SELECT id,
       (SELECT count(*) FROM freed) AS freed,
       (SELECT pg_notify({channel}, 'w') FROM freed WHERE left(key, 1) = chr(1) LIMIT 1)
           AS queue_freed,
       (SELECT count(*) FROM ({events_of_released}) AS sent) AS events,
       (SELECT pg_notify({channel}, 'w')) AS woke
FROM released
