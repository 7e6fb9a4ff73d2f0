-- Every named queue that had a job or is paused, with its ready jobs.
SELECT q.name,
       q.paused,
       (SELECT count(*) FROM {schema}.jobs j
        WHERE j.queue = q.name AND j.status IN ('P', 'T') AND j.held IS NULL
          AND j.run_at <= now()) AS ready
FROM {schema}.queues q
