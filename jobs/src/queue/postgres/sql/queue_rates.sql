-- Creates or updates a queue's rates row (reserve.sql's $5) with the
-- take's rate.
--
--   $1 text   the key
--   $2 int4   the max
--   $3 int8   the period, µs
INSERT INTO {schema}.rates (key, max, period_us) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET max = EXCLUDED.max, period_us = EXCLUDED.period_us
WHERE {schema}.rates.max <> EXCLUDED.max OR {schema}.rates.period_us <> EXCLUDED.period_us
