-- The reports of the workers alive (the pruner deletes lapsed ones; until
-- it does, they are left out here).
SELECT report::text AS report FROM {schema}.workers WHERE lapses_at > now() ORDER BY id
