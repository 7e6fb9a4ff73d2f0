-- The last run of periodic task $1, if any (primary key of last_runs).
SELECT occurrence FROM {schema}.last_runs WHERE task = $1
