-- The run queue (seed 004) on SQLite. Times are integer milliseconds since the Unix epoch so that
-- lease comparisons are plain integer comparisons.

CREATE TABLE projects (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_key TEXT NOT NULL UNIQUE,
    slug          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    odoo_version  TEXT,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

CREATE TABLE project_memberships (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE workflows (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    workflow_type TEXT NOT NULL CHECK (workflow_type IN ('build', 'test', 'deploy', 'backup', 'upgrade', 'service')),
    task_queue    TEXT NOT NULL DEFAULT 'default',
    command       TEXT NOT NULL,
    timeout_secs  INTEGER NOT NULL DEFAULT 3600 CHECK (timeout_secs BETWEEN 1 AND 604800),
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (project_id, name)
);

-- The legal moves of the run state machine; the triggers below and the domain's table must agree
-- (a conformance test compares them).
CREATE TABLE run_transitions (
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
INSERT INTO run_transitions (from_status, to_status) VALUES
    ('queued', 'claimed'), ('queued', 'canceled'),
    ('claimed', 'running'), ('claimed', 'canceled'), ('claimed', 'queued'), ('claimed', 'failed'),
    ('running', 'succeeded'), ('running', 'failed'), ('running', 'canceled'), ('running', 'queued');

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects (id),
    workflow_id      INTEGER NOT NULL REFERENCES workflows (id),
    queue            TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'claimed', 'running', 'succeeded', 'failed', 'canceled')),
    priority         INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    payload          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload) AND length(CAST(payload AS BLOB)) <= 1048576),
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0 AND attempt <= max_attempts),
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    worker_id        TEXT,
    lease_expires_at INTEGER,
    run_after        INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    exit_code        INTEGER,
    error            TEXT,
    retry_of         INTEGER REFERENCES runs (id),
    changed_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    claimed_at       INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER
);

-- The claim path: queued rows of one queue in claim order. Partial, so finished history costs nothing.
CREATE INDEX runs_claim_idx ON runs (queue, priority DESC, id) WHERE status = 'queued';
CREATE INDEX runs_claim_any_idx ON runs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX runs_lease_idx ON runs (lease_expires_at) WHERE status IN ('claimed', 'running');
CREATE INDEX runs_status_idx ON runs (status, id);
CREATE INDEX runs_project_idx ON runs (project_id, id);

CREATE TABLE run_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    event_type  TEXT NOT NULL CHECK (event_type IN ('state_change', 'cancel_requested', 'error', 'warning', 'info')),
    from_status TEXT,
    to_status   TEXT,
    attempt     INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    message     TEXT,
    created_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX run_events_run_idx ON run_events (run_id, id);

CREATE TABLE run_artifacts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    key          TEXT NOT NULL,
    url          TEXT,
    sha256       TEXT CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
    size_bytes   INTEGER CHECK (size_bytes IS NULL OR size_bytes >= 0),
    content_type TEXT,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (run_id, key)
);

CREATE TABLE run_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    level      TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message    TEXT NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX run_logs_run_idx ON run_logs (run_id, id);

-- Full-text search over log messages; an external-content FTS5 table kept in step by triggers.
CREATE VIRTUAL TABLE run_logs_fts USING fts5 (message, content = 'run_logs', content_rowid = 'id');
CREATE TRIGGER run_logs_fts_insert AFTER INSERT ON run_logs BEGIN
    INSERT INTO run_logs_fts (rowid, message) VALUES (NEW.id, NEW.message);
END;

CREATE TABLE tools (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    image      TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (name, version)
);

CREATE TABLE upgrade_advisories (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tool_name    TEXT NOT NULL,
    from_version TEXT NOT NULL,
    to_version   TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'breaking')),
    title        TEXT NOT NULL,
    guide_url    TEXT,
    created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    project_id  INTEGER,
    before      TEXT CHECK (before IS NULL OR json_valid(before)),
    after       TEXT CHECK (after IS NULL OR json_valid(after)),
    at          INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, id);

-- The state machine, enforced for every writer, raw SQL included.
CREATE TRIGGER runs_born_queued BEFORE INSERT ON runs
WHEN NEW.status <> 'queued' OR NEW.attempt <> 0
BEGIN
    SELECT RAISE(ABORT, 'illegal run transition: a run is created queued with attempt 0');
END;

CREATE TRIGGER runs_terminal_frozen BEFORE UPDATE ON runs
WHEN OLD.status IN ('succeeded', 'failed', 'canceled')
BEGIN
    SELECT RAISE(ABORT, 'illegal run transition: a finished run never changes');
END;

CREATE TRIGGER runs_legal_transition BEFORE UPDATE OF status ON runs
WHEN OLD.status <> NEW.status
 AND NOT EXISTS (SELECT 1 FROM run_transitions t WHERE t.from_status = OLD.status AND t.to_status = NEW.status)
BEGIN
    SELECT RAISE(ABORT, 'illegal run transition');
END;

CREATE TRIGGER runs_created_event AFTER INSERT ON runs
BEGIN
    INSERT INTO run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    VALUES (NEW.id, 'state_change', NULL, 'queued', 0, NEW.changed_by,
            CASE WHEN NEW.retry_of IS NOT NULL THEN 'retry of run ' || NEW.retry_of END);
END;

CREATE TRIGGER runs_transition_event AFTER UPDATE OF status ON runs
WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    VALUES (NEW.id, 'state_change', OLD.status, NEW.status, NEW.attempt, NEW.changed_by,
            CASE WHEN NEW.status IN ('failed', 'queued', 'canceled') THEN NEW.error END);
END;

CREATE TRIGGER runs_cancel_requested_event AFTER UPDATE OF cancel_requested ON runs
WHEN NEW.cancel_requested = 1 AND OLD.cancel_requested = 0
BEGIN
    INSERT INTO run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    VALUES (NEW.id, 'cancel_requested', NEW.status, NEW.status, NEW.attempt, NEW.changed_by, NULL);
END;

-- History is append-only.
CREATE TRIGGER run_events_no_update BEFORE UPDATE ON run_events
BEGIN
    SELECT RAISE(ABORT, 'run_events is append-only');
END;
CREATE TRIGGER run_events_no_delete BEFORE DELETE ON run_events
BEGIN
    SELECT RAISE(ABORT, 'run_events is append-only');
END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
