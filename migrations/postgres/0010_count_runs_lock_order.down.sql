CREATE OR REPLACE FUNCTION ops.count_runs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    own_stripe smallint := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops.run_counts AS c (project_id, queue, status, stripe, n)
        SELECT project_id, queue, status, own_stripe, count(*) FROM new_rows
        GROUP BY project_id, queue, status
        ON CONFLICT (project_id, queue, status, stripe) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops.run_counts AS c (project_id, queue, status, stripe, n)
        SELECT project_id, queue, status, own_stripe, -count(*) FROM old_rows
        GROUP BY project_id, queue, status
        ON CONFLICT (project_id, queue, status, stripe) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        -- Lease renewals and cancel requests change no status: their net is zero, nothing is
        -- written.
        INSERT INTO ops.run_counts AS c (project_id, queue, status, stripe, n)
        SELECT project_id, queue, status, own_stripe, sum(d) FROM (
            SELECT project_id, queue, status, 1 AS d FROM new_rows
            UNION ALL
            SELECT project_id, queue, status, -1 FROM old_rows
        ) moved
        GROUP BY project_id, queue, status HAVING sum(d) <> 0
        ON CONFLICT (project_id, queue, status, stripe) DO UPDATE SET n = c.n + excluded.n;
        INSERT INTO ops.run_minute_counts AS c (minute, project_id, queue, event, stripe, n)
        SELECT date_trunc('minute', nr.finished_at), nr.project_id, nr.queue, nr.status, own_stripe,
               count(*)
        FROM new_rows nr JOIN old_rows o ON o.id = nr.id
        WHERE nr.status IN ('succeeded', 'failed', 'canceled') AND o.status <> nr.status
          AND nr.finished_at IS NOT NULL
        GROUP BY 1, 2, 3, 4
        ON CONFLICT (minute, project_id, queue, event, stripe) DO UPDATE SET n = c.n + excluded.n;
        INSERT INTO ops.run_minute_counts AS c (minute, project_id, queue, event, stripe, n)
        SELECT date_trunc('minute', nr.started_at), nr.project_id, nr.queue, 'deploy_started',
               own_stripe, count(*)
        FROM new_rows nr JOIN old_rows o ON o.id = nr.id
             JOIN ops.workflows w ON w.id = nr.workflow_id
        WHERE nr.status = 'running' AND o.status <> 'running' AND nr.started_at IS NOT NULL
          AND w.workflow_type = 'deploy'
        GROUP BY 1, 2, 3
        ON CONFLICT (minute, project_id, queue, event, stripe) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;
