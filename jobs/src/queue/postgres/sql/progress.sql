-- Records a running job's progress while its lease is held, and sends a
-- `progress` event. Returns one row if the lease is held.
--
--   $1 uuid   id
--   $2 int8   token
--   $3 text   the progress JSON
WITH noted AS (
    UPDATE {schema}.jobs
    SET progress = $3::jsonb
    WHERE id = $1 AND token = $2 AND status = 'R'
    RETURNING id, name, progress
)
SELECT id, (SELECT count(*) FROM ({events_of_noted}) AS sent) AS events
FROM noted
