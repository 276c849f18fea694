-- Services with governed manifests (seed 000) and their worker registry (seed 001). The manifest
-- rules are triggers, so sqlite3 at a prompt cannot break them either.

CREATE TABLE services (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL CHECK (length(trim(name)) BETWEEN 1 AND 200),
    schema_name TEXT NOT NULL UNIQUE
                CHECK (length(schema_name) BETWEEN 2 AND 63 AND schema_name GLOB '[a-z]*'
                       AND schema_name NOT GLOB '*[^a-z0-9_]*' AND substr(schema_name, 1, 3) <> 'pg_'),
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

-- No REFERENCES here: SQLite cannot drop a column that a foreign key uses, and the down
-- migration must. ops writes it only with the id of the service it just created.
ALTER TABLE workflows ADD COLUMN service_id INTEGER;

CREATE TABLE manifest_transitions (
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
INSERT INTO manifest_transitions VALUES
    ('draft', 'active'), ('active', 'locked'), ('locked', 'active'),
    ('active', 'superseded'), ('locked', 'superseded');

CREATE TABLE service_manifests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id       INTEGER NOT NULL REFERENCES services (id),
    service_name     TEXT NOT NULL,
    version          TEXT NOT NULL CHECK (version GLOB '[0-9]*.[0-9]*.[0-9]*'
                                          AND version NOT GLOB '*[^0-9.]*'),
    manifest_content TEXT NOT NULL CHECK (json_valid(manifest_content)
                                          AND json_type(manifest_content) = 'object'
                                          AND length(CAST(manifest_content AS BLOB)) <= 1048576),
    status           TEXT NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'active', 'locked', 'superseded')),
    locked_fields    TEXT NOT NULL DEFAULT '["service_id","schema_name"]'
                     CHECK (json_valid(locked_fields) AND json_type(locked_fields) = 'array'),
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (service_id, version)
);
CREATE UNIQUE INDEX service_manifests_one_governing ON service_manifests (service_id)
    WHERE status IN ('active', 'locked');

CREATE TRIGGER service_manifests_insert_guard BEFORE INSERT ON service_manifests
BEGIN
    SELECT RAISE(ABORT, 'manifest rule: a manifest is created draft or active')
    WHERE NEW.status NOT IN ('draft', 'active');
    SELECT RAISE(ABORT, 'manifest rule: the service is locked: nothing can be activated until it is unlocked')
    WHERE NEW.status = 'active' AND EXISTS (
        SELECT 1 FROM service_manifests WHERE service_id = NEW.service_id AND status = 'locked');
    SELECT RAISE(ABORT, 'manifest rule: a locked field cannot change')
    WHERE EXISTS (
        SELECT 1 FROM service_manifests g, json_each(g.locked_fields) f
        WHERE g.service_id = NEW.service_id AND g.status IN ('active', 'locked')
          AND json_extract(g.manifest_content, '$."' || f.value || '"')
              IS NOT json_extract(NEW.manifest_content, '$."' || f.value || '"'));
END;

CREATE TRIGGER service_manifests_update_guard BEFORE UPDATE ON service_manifests
BEGIN
    SELECT RAISE(ABORT, 'manifest rule: a manifest''s identity never changes')
    WHERE NEW.id IS NOT OLD.id OR NEW.service_id IS NOT OLD.service_id OR NEW.version IS NOT OLD.version
       OR NEW.created_at IS NOT OLD.created_at OR NEW.created_by IS NOT OLD.created_by;
    SELECT RAISE(ABORT, 'manifest rule: only a draft''s content can change')
    WHERE OLD.status <> 'draft'
      AND (NEW.manifest_content IS NOT OLD.manifest_content OR NEW.locked_fields IS NOT OLD.locked_fields);
    SELECT RAISE(ABORT, 'manifest rule: illegal manifest transition')
    WHERE NEW.status <> OLD.status AND NOT EXISTS (
        SELECT 1 FROM manifest_transitions WHERE from_status = OLD.status AND to_status = NEW.status);
    SELECT RAISE(ABORT, 'manifest rule: the service is locked: nothing can be activated until it is unlocked')
    WHERE OLD.status = 'draft' AND NEW.status = 'active' AND EXISTS (
        SELECT 1 FROM service_manifests WHERE service_id = NEW.service_id AND status = 'locked');
    SELECT RAISE(ABORT, 'manifest rule: a locked field cannot change')
    WHERE OLD.status = 'draft' AND NEW.status = 'active' AND EXISTS (
        SELECT 1 FROM service_manifests g, json_each(g.locked_fields) f
        WHERE g.service_id = NEW.service_id AND g.id <> NEW.id AND g.status IN ('active', 'locked')
          AND json_extract(g.manifest_content, '$."' || f.value || '"')
              IS NOT json_extract(NEW.manifest_content, '$."' || f.value || '"'));
END;

CREATE TRIGGER service_manifests_delete_guard BEFORE DELETE ON service_manifests
BEGIN
    SELECT RAISE(ABORT, 'manifest rule: only drafts can be deleted') WHERE OLD.status <> 'draft';
END;

CREATE TABLE worker_registry (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id        INTEGER NOT NULL UNIQUE REFERENCES services (id),
    service_schema    TEXT NOT NULL,
    manifest_id       INTEGER REFERENCES service_manifests (id),
    manifest_path     TEXT,
    deployment_status TEXT NOT NULL DEFAULT 'pending'
                      CHECK (deployment_status IN ('pending', 'deploying', 'deployed', 'failed', 'stopped')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    logs              TEXT,
    deployed_at       INTEGER,
    last_heartbeat    INTEGER,
    worker_id         TEXT,
    worker_version    TEXT,
    updated_at        INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

CREATE TABLE worker_deploy_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    registry_id INTEGER NOT NULL REFERENCES worker_registry (id),
    attempt     INTEGER NOT NULL,
    step        TEXT NOT NULL CHECK (step IN ('create', 'deploy', 'rollback')),
    exit_code   INTEGER,
    output      TEXT NOT NULL CHECK (length(CAST(output AS BLOB)) <= 65536),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX worker_deploy_attempts_registry_idx ON worker_deploy_attempts (registry_id, id);
