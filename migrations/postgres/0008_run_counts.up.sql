-- Exact counts kept by the runs' own triggers, so a console shows exact figures on a store of
-- millions with a read of a few hundred rows: runs per project, queue and status now, and per
-- minute the runs that finished (event = the status they reached) and the deploy runs that
-- started (event = 'deploy_started'). Each statement adds its net change once (transition
-- tables), into a stripe of its own backend, so concurrent workers never wait on one counter row.
CREATE TABLE ops.run_counts (
    project_id bigint   NOT NULL,
    queue      text     NOT NULL,
    status     text     NOT NULL,
    stripe     smallint NOT NULL,
    n          bigint   NOT NULL,
    PRIMARY KEY (project_id, queue, status, stripe)
);

CREATE TABLE ops.run_minute_counts (
    minute     timestamptz NOT NULL,
    project_id bigint      NOT NULL,
    queue      text        NOT NULL,
    event      text        NOT NULL
               CHECK (event IN ('succeeded', 'failed', 'canceled', 'deploy_started')),
    stripe     smallint    NOT NULL,
    n          bigint      NOT NULL,
    PRIMARY KEY (minute, project_id, queue, event, stripe)
);

-- The oldest queued run of a queue in one index probe (the Overview's "oldest" column).
CREATE INDEX runs_due_idx ON ops.runs (queue, run_after) WHERE status = 'queued';

CREATE FUNCTION ops.count_runs() RETURNS trigger
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

CREATE TRIGGER runs_counted_insert AFTER INSERT ON ops.runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.count_runs();
CREATE TRIGGER runs_counted_update AFTER UPDATE ON ops.runs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ops.count_runs();
CREATE TRIGGER runs_counted_delete AFTER DELETE ON ops.runs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.count_runs();

INSERT INTO ops.run_counts (project_id, queue, status, stripe, n)
SELECT project_id, queue, status, 0, count(*) FROM ops.runs GROUP BY project_id, queue, status;
INSERT INTO ops.run_minute_counts (minute, project_id, queue, event, stripe, n)
SELECT date_trunc('minute', finished_at), project_id, queue, status, 0, count(*) FROM ops.runs
WHERE finished_at > now() - interval '1 day' AND status IN ('succeeded', 'failed', 'canceled')
GROUP BY 1, 2, 3, 4;
INSERT INTO ops.run_minute_counts (minute, project_id, queue, event, stripe, n)
SELECT date_trunc('minute', r.started_at), r.project_id, r.queue, 'deploy_started', 0, count(*)
FROM ops.runs r JOIN ops.workflows w ON w.id = r.workflow_id
WHERE r.started_at > now() - interval '1 day' AND w.workflow_type = 'deploy'
GROUP BY 1, 2, 3;

-- Members see the counts of the projects whose runs they see; only the trigger writes them.
GRANT SELECT ON ops.run_counts, ops.run_minute_counts TO ospdeck_member;
ALTER TABLE ops.run_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.run_minute_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON ops.run_counts FOR SELECT
    USING (project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));
CREATE POLICY read ON ops.run_minute_counts FOR SELECT
    USING (project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));

-- Minutes older than a day are of no screen's use; any worker's rescue pass removes them.
CREATE FUNCTION ops.prune_run_counts() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM ops.run_minute_counts WHERE minute < now() - interval '1 day';
$$;
REVOKE EXECUTE ON FUNCTION ops.prune_run_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.prune_run_counts() TO ospdeck_member;
