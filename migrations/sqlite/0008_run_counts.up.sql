-- Exact counts kept by the runs' own triggers, so a console shows exact figures on a store of
-- millions with a read of a few hundred rows: runs per project, queue and status now, and per
-- minute (ms, cut to the minute) the runs that finished (event = the status they reached) and
-- the deploy runs that started (event = 'deploy_started').
CREATE TABLE run_counts (
    project_id INTEGER NOT NULL,
    queue      TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (project_id, queue, status)
) WITHOUT ROWID;

CREATE TABLE run_minute_counts (
    minute     INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    queue      TEXT    NOT NULL,
    event      TEXT    NOT NULL
               CHECK (event IN ('succeeded', 'failed', 'canceled', 'deploy_started')),
    n          INTEGER NOT NULL,
    PRIMARY KEY (minute, project_id, queue, event)
) WITHOUT ROWID;

-- The oldest queued run of a queue in one index probe (the Overview's "oldest" column).
CREATE INDEX runs_due_idx ON runs (queue, run_after) WHERE status = 'queued';

CREATE TRIGGER runs_counted_insert AFTER INSERT ON runs
BEGIN
    INSERT INTO run_counts (project_id, queue, status, n)
    VALUES (NEW.project_id, NEW.queue, NEW.status, 1)
    ON CONFLICT (project_id, queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER runs_counted_update AFTER UPDATE OF status ON runs
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE run_counts SET n = n - 1
    WHERE project_id = OLD.project_id AND queue = OLD.queue AND status = OLD.status;
    INSERT INTO run_counts (project_id, queue, status, n)
    VALUES (NEW.project_id, NEW.queue, NEW.status, 1)
    ON CONFLICT (project_id, queue, status) DO UPDATE SET n = n + 1;
    INSERT INTO run_minute_counts (minute, project_id, queue, event, n)
    SELECT NEW.finished_at / 60000 * 60000, NEW.project_id, NEW.queue, NEW.status, 1
    WHERE NEW.status IN ('succeeded', 'failed', 'canceled') AND NEW.finished_at IS NOT NULL
    ON CONFLICT (minute, project_id, queue, event) DO UPDATE SET n = n + 1;
    INSERT INTO run_minute_counts (minute, project_id, queue, event, n)
    SELECT NEW.started_at / 60000 * 60000, NEW.project_id, NEW.queue, 'deploy_started', 1
    WHERE NEW.status = 'running' AND NEW.started_at IS NOT NULL
      AND EXISTS (SELECT 1 FROM workflows w
                  WHERE w.id = NEW.workflow_id AND w.workflow_type = 'deploy')
    ON CONFLICT (minute, project_id, queue, event) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER runs_counted_delete AFTER DELETE ON runs
BEGIN
    UPDATE run_counts SET n = n - 1
    WHERE project_id = OLD.project_id AND queue = OLD.queue AND status = OLD.status;
END;

INSERT INTO run_counts (project_id, queue, status, n)
SELECT project_id, queue, status, count(*) FROM runs GROUP BY project_id, queue, status;
INSERT INTO run_minute_counts (minute, project_id, queue, event, n)
SELECT finished_at / 60000 * 60000, project_id, queue, status, count(*) FROM runs
WHERE finished_at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - 86400000
  AND status IN ('succeeded', 'failed', 'canceled')
GROUP BY 1, 2, 3, 4;
INSERT INTO run_minute_counts (minute, project_id, queue, event, n)
SELECT r.started_at / 60000 * 60000, r.project_id, r.queue, 'deploy_started', count(*)
FROM runs r JOIN workflows w ON w.id = r.workflow_id
WHERE r.started_at > CAST(unixepoch('subsec') * 1000 AS INTEGER) - 86400000
  AND w.workflow_type = 'deploy'
GROUP BY 1, 2, 3;
