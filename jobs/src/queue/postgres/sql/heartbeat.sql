-- Extends the leases still held by $3 µs; returns them (the caller
-- reports the others as lost). Uses the primary key.
--
--   $1 uuid[]  ids
--   $2 int8[]  tokens
--   $3 int8    the lease, µs
UPDATE {schema}.jobs j
SET lease_until = now() + make_interval(secs => $3 / 1e6)
FROM unnest($1::uuid[], $2::int8[]) AS l(id, token)
WHERE j.id = l.id AND j.token = l.token AND j.status = 'R'
RETURNING j.id, j.token
