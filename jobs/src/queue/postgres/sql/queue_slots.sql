-- Creates or updates a queue's slots row (reserve.sql's $4) with the
-- take's max.
--
--   $1 text   the key
--   $2 int4   the max
INSERT INTO {schema}.slots (key, max) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET max = EXCLUDED.max
WHERE {schema}.slots.max <> EXCLUDED.max
