-- Versioned template bundles (seed 002). Artifacts are content-addressed (sha256); a version's
-- files can change only while it is a draft; the default points at a stable version only.

CREATE TABLE ops.templates (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    default_version_id bigint,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ops.template_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id bigint NOT NULL REFERENCES ops.templates (id),
    semver      text NOT NULL,
    major       integer NOT NULL CHECK (major >= 0),
    minor       integer NOT NULL CHECK (minor >= 0),
    patch       integer NOT NULL CHECK (patch >= 0),
    status      text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'stable', 'deprecated')),
    digest      text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    changelog   text,
    deprecation text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (template_id, semver)
);
ALTER TABLE ops.templates ADD FOREIGN KEY (default_version_id) REFERENCES ops.template_versions (id);

CREATE TABLE ops.template_artifacts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version_id   bigint NOT NULL REFERENCES ops.template_versions (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    locale       text CHECK (locale IN ('fr', 'en')),
    role         text CHECK (role IN ('system', 'manager', 'user')),
    path         text NOT NULL,
    content_type text NOT NULL,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    UNIQUE (version_id, path)
);

CREATE TABLE ops.template_labels (
    template_id bigint NOT NULL REFERENCES ops.templates (id),
    label       text NOT NULL CHECK (label ~ '^[a-z0-9_.-]{1,36}$' AND label <> 'latest'),
    version_id  bigint NOT NULL REFERENCES ops.template_versions (id),
    percent     integer NOT NULL DEFAULT 100 CHECK (percent BETWEEN 0 AND 100),
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, label)
);

CREATE FUNCTION ops.template_versions_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'template version %: only drafts can be deleted', OLD.semver
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.id <> OLD.id OR NEW.template_id <> OLD.template_id OR NEW.semver <> OLD.semver
       OR NEW.digest <> OLD.digest OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'a template version''s identity and digest never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (
           (OLD.status = 'draft' AND NEW.status = 'stable')
        OR (OLD.status = 'stable' AND NEW.status = 'deprecated')) THEN
        RAISE EXCEPTION 'illegal template version transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER template_versions_guard BEFORE UPDATE OR DELETE ON ops.template_versions
    FOR EACH ROW EXECUTE FUNCTION ops.template_versions_guard();

CREATE FUNCTION ops.template_artifacts_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    version_status text;
BEGIN
    SELECT status INTO version_status FROM ops.template_versions
     WHERE id = CASE WHEN TG_OP = 'INSERT' THEN NEW.version_id ELSE OLD.version_id END;
    -- A draft's files may change; a deleted draft takes its files with it (status NULL).
    IF version_status IS NOT NULL AND version_status <> 'draft' THEN
        RAISE EXCEPTION 'the files of a % version are immutable', version_status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;
CREATE TRIGGER template_artifacts_guard BEFORE INSERT OR UPDATE OR DELETE ON ops.template_artifacts
    FOR EACH ROW EXECUTE FUNCTION ops.template_artifacts_guard();

CREATE FUNCTION ops.templates_default_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.default_version_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM ops.template_versions
         WHERE id = NEW.default_version_id AND template_id = NEW.id AND status = 'stable') THEN
        RAISE EXCEPTION 'the default must be a stable version of this template'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER templates_default_guard BEFORE INSERT OR UPDATE ON ops.templates
    FOR EACH ROW EXECUTE FUNCTION ops.templates_default_guard();

CREATE FUNCTION ops.template_labels_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.template_versions
                   WHERE id = NEW.version_id AND template_id = NEW.template_id AND status = 'stable') THEN
        RAISE EXCEPTION 'a label names a stable version of its template'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER template_labels_guard BEFORE INSERT OR UPDATE ON ops.template_labels
    FOR EACH ROW EXECUTE FUNCTION ops.template_labels_guard();
