-- A fragment, not a query: sends events for the rows of {source}, as
-- NOTIFY payloads `e` + a JSON array of [kind, id, name(, progress)],
-- chunked so that each stays under NOTIFY's 8,000-byte limit (names are cut
-- to 2,000 characters, progress over 4,000 bytes is left out). Spliced in
-- as `(SELECT count(*) FROM (<this>) AS sent)`, an uncorrelated subquery
-- that runs once per statement.
SELECT pg_notify({channel}, 'e' || json_agg(e ORDER BY n)::text)
FROM (
    SELECT e, n, sum(length(e::text) + 1) OVER (ORDER BY n) / 6000 AS chunk
    FROM (
        SELECT CASE WHEN {progress} IS NOT NULL AND length({progress}::text) <= 4000
                    THEN json_build_array({kind}, id, left(name, 2000), {progress})
                    ELSE json_build_array({kind}, id, left(name, 2000))
               END AS e,
               row_number() OVER () AS n
        FROM {source}
    ) AS listed
) AS chunked
GROUP BY chunk
