-- Services with governed manifests (seed 000) and their worker registry (seed 001), under schema
-- osp_metadata. The manifest rules live here too, so psql and PostgREST cannot break them.

CREATE SCHEMA IF NOT EXISTS osp_metadata;

-- The same reasoning for run payloads (0001 measured jsonb's longer text form against 1 MiB, so a
-- payload ops accepted could still be refused here).
ALTER TABLE ops.runs DROP CONSTRAINT runs_payload_check;
ALTER TABLE ops.runs ADD CONSTRAINT runs_payload_check CHECK (octet_length(payload::text) <= 2097152);

CREATE TABLE osp_metadata.services (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES ops.projects (id),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    schema_name text NOT NULL UNIQUE
                CHECK (schema_name ~ '^[a-z][a-z0-9_]{1,62}$' AND schema_name !~ '^pg_'),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE ops.workflows ADD COLUMN service_id bigint REFERENCES osp_metadata.services (id);

CREATE TABLE osp_metadata.manifest_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO osp_metadata.manifest_transitions VALUES
    ('draft', 'active'), ('active', 'locked'), ('locked', 'active'),
    ('active', 'superseded'), ('locked', 'superseded');

CREATE TABLE osp_metadata.service_manifests (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id       bigint NOT NULL REFERENCES osp_metadata.services (id),
    service_name     text NOT NULL,
    version          text NOT NULL CHECK (version ~ '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'),
    -- ops enforces 1 MiB of compact JSON; jsonb's text form adds a space after every ':' and
    -- ',', so the backstop here allows twice that.
    manifest_content jsonb NOT NULL CHECK (jsonb_typeof(manifest_content) = 'object'
                                           AND octet_length(manifest_content::text) <= 2097152),
    status           text NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'active', 'locked', 'superseded')),
    locked_fields    text[] NOT NULL DEFAULT ARRAY['service_id', 'schema_name'],
    created_by       text NOT NULL DEFAULT current_user,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (service_id, version)
);
-- At most one governing (active or locked) version per service.
CREATE UNIQUE INDEX service_manifests_one_governing ON osp_metadata.service_manifests (service_id)
    WHERE status IN ('active', 'locked');

-- No version may change a field the governing version locks.
CREATE FUNCTION osp_metadata.check_locked_fields(p_service_id bigint, p_except bigint, p_content jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    gov record;
    field text;
BEGIN
    SELECT manifest_content, locked_fields INTO gov FROM osp_metadata.service_manifests
     WHERE service_id = p_service_id AND status IN ('active', 'locked') AND id <> p_except;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOREACH field IN ARRAY gov.locked_fields LOOP
        IF gov.manifest_content -> field IS DISTINCT FROM p_content -> field THEN
            RAISE EXCEPTION 'locked field `%` cannot change', field USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
END;
$$;

CREATE FUNCTION osp_metadata.service_manifests_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'manifest % %: only drafts can be deleted', OLD.service_id, OLD.version
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN ('draft', 'active') THEN
            RAISE EXCEPTION 'a manifest is created draft or active, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.status = 'active' AND EXISTS (SELECT 1 FROM osp_metadata.service_manifests
                WHERE service_id = NEW.service_id AND status = 'locked') THEN
            RAISE EXCEPTION 'the service is locked: nothing can be activated until it is unlocked'
                USING ERRCODE = 'check_violation';
        END IF;
        PERFORM osp_metadata.check_locked_fields(NEW.service_id, -1, NEW.manifest_content);
        RETURN NEW;
    END IF;
    -- UPDATE
    IF NEW.id <> OLD.id OR NEW.service_id <> OLD.service_id OR NEW.version <> OLD.version
       OR NEW.created_at <> OLD.created_at OR NEW.created_by <> OLD.created_by THEN
        RAISE EXCEPTION 'a manifest''s identity never changes' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status <> 'draft' AND (NEW.manifest_content IS DISTINCT FROM OLD.manifest_content
                                  OR NEW.locked_fields IS DISTINCT FROM OLD.locked_fields) THEN
        RAISE EXCEPTION 'manifest % is %: its content is immutable', OLD.version, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM osp_metadata.manifest_transitions
                       WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'illegal manifest transition: % -> %', OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        IF OLD.status = 'draft' AND NEW.status = 'active' THEN
            IF EXISTS (SELECT 1 FROM osp_metadata.service_manifests
                       WHERE service_id = NEW.service_id AND status = 'locked') THEN
                RAISE EXCEPTION 'the service is locked: nothing can be activated until it is unlocked'
                    USING ERRCODE = 'check_violation';
            END IF;
            PERFORM osp_metadata.check_locked_fields(NEW.service_id, NEW.id, NEW.manifest_content);
        END IF;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER service_manifests_guard BEFORE INSERT OR UPDATE OR DELETE ON osp_metadata.service_manifests
    FOR EACH ROW EXECUTE FUNCTION osp_metadata.service_manifests_guard();

-- Seed 000's interface: insert a manifest (same rules as everything else), answer its id.
CREATE FUNCTION osp_metadata.insert_service_manifest(
    p_service_id bigint, p_service_name text, p_version text, p_manifest_content jsonb,
    p_status text DEFAULT 'active', p_locked_fields text[] DEFAULT ARRAY['service_id', 'schema_name']
) RETURNS TABLE (manifest_id bigint)
LANGUAGE sql AS $$
    INSERT INTO osp_metadata.service_manifests
        (service_id, service_name, version, manifest_content, status, locked_fields, created_by)
    VALUES (p_service_id, p_service_name, p_version, p_manifest_content, p_status, p_locked_fields,
            ops.current_actor())
    RETURNING id
$$;

CREATE TABLE osp_metadata.worker_registry (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id        bigint NOT NULL UNIQUE REFERENCES osp_metadata.services (id),
    service_schema    text NOT NULL,
    manifest_id       bigint REFERENCES osp_metadata.service_manifests (id),
    manifest_path     text,
    deployment_status text NOT NULL DEFAULT 'pending'
                      CHECK (deployment_status IN ('pending', 'deploying', 'deployed', 'failed', 'stopped')),
    attempts          integer NOT NULL DEFAULT 0,
    logs              text,
    deployed_at       timestamptz,
    last_heartbeat    timestamptz,
    worker_id         text,
    worker_version    text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Every deployment step's output, bounded, kept for the record.
CREATE TABLE osp_metadata.worker_deploy_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registry_id bigint NOT NULL REFERENCES osp_metadata.worker_registry (id),
    attempt     integer NOT NULL,
    step        text NOT NULL CHECK (step IN ('create', 'deploy', 'rollback')),
    exit_code   integer,
    output      text NOT NULL CHECK (octet_length(output) <= 65536),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_deploy_attempts_registry_idx ON osp_metadata.worker_deploy_attempts (registry_id, id);
