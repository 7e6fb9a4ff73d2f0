-- A fragment, not a query: the CTE `freed`, which gives back the slots the
-- rows of {source} held: their concurrency key's and their queue's.
freed AS (
    UPDATE {schema}.slots s
    SET running = greatest(s.running - f.n, 0)
    FROM (SELECT k AS conc_key, count(*)::int AS n
          FROM (SELECT conc_key AS k FROM {source}
                UNION ALL
                SELECT qslot FROM {source}) AS held_slots
          WHERE k IS NOT NULL
          GROUP BY k) AS f,
         -- Locked in key order first, as reserve locks them: two
         -- statements freeing (or taking) several keys cannot deadlock.
         (SELECT key FROM {schema}.slots
          WHERE key IN (SELECT conc_key FROM {source} UNION SELECT qslot FROM {source})
          ORDER BY key
          FOR UPDATE) AS l
    WHERE s.key = f.conc_key AND l.key = s.key
    RETURNING s.key
)