-- Versioned template bundles (seed 002). Artifacts are content-addressed (sha256); a version's
-- files can change only while it is a draft; the default points at a stable version only.

CREATE TABLE templates (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL UNIQUE
                       CHECK (length(name) BETWEEN 1 AND 63 AND name GLOB '[a-z]*'
                              AND name NOT GLOB '*[^a-z0-9_-]*'),
    default_version_id INTEGER,
    created_by         TEXT NOT NULL,
    created_at         INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);

CREATE TABLE template_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    template_id INTEGER NOT NULL REFERENCES templates (id),
    semver      TEXT NOT NULL,
    major       INTEGER NOT NULL CHECK (major >= 0),
    minor       INTEGER NOT NULL CHECK (minor >= 0),
    patch       INTEGER NOT NULL CHECK (patch >= 0),
    status      TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'stable', 'deprecated')),
    digest      TEXT NOT NULL CHECK (length(digest) = 64 AND digest NOT GLOB '*[^0-9a-f]*'),
    changelog   TEXT,
    deprecation TEXT,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    UNIQUE (template_id, semver)
);

CREATE TABLE template_artifacts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    version_id   INTEGER NOT NULL REFERENCES template_versions (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    locale       TEXT CHECK (locale IN ('fr', 'en')),
    role         TEXT CHECK (role IN ('system', 'manager', 'user')),
    path         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    size_bytes   INTEGER NOT NULL CHECK (size_bytes >= 0),
    UNIQUE (version_id, path)
);

CREATE TABLE template_labels (
    template_id INTEGER NOT NULL REFERENCES templates (id),
    label       TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 36 AND label NOT GLOB '*[^a-z0-9_.-]*'
                                     AND label <> 'latest'),
    version_id  INTEGER NOT NULL REFERENCES template_versions (id),
    percent     INTEGER NOT NULL DEFAULT 100 CHECK (percent BETWEEN 0 AND 100),
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    PRIMARY KEY (template_id, label)
);

CREATE TRIGGER template_versions_update_guard BEFORE UPDATE ON template_versions
BEGIN
    SELECT RAISE(ABORT, 'template rule: a template version''s identity and digest never change')
    WHERE NEW.id IS NOT OLD.id OR NEW.template_id IS NOT OLD.template_id OR NEW.semver IS NOT OLD.semver
       OR NEW.digest IS NOT OLD.digest OR NEW.created_at IS NOT OLD.created_at;
    SELECT RAISE(ABORT, 'template rule: illegal template version transition')
    WHERE NEW.status <> OLD.status AND NOT (
          (OLD.status = 'draft' AND NEW.status = 'stable')
       OR (OLD.status = 'stable' AND NEW.status = 'deprecated'));
END;
CREATE TRIGGER template_versions_delete_guard BEFORE DELETE ON template_versions
BEGIN
    SELECT RAISE(ABORT, 'template rule: only drafts can be deleted') WHERE OLD.status <> 'draft';
END;

CREATE TRIGGER template_artifacts_insert_guard BEFORE INSERT ON template_artifacts
BEGIN
    SELECT RAISE(ABORT, 'template rule: the files of a published version are immutable')
    WHERE (SELECT status FROM template_versions WHERE id = NEW.version_id) <> 'draft';
END;
CREATE TRIGGER template_artifacts_update_guard BEFORE UPDATE ON template_artifacts
BEGIN
    SELECT RAISE(ABORT, 'template rule: the files of a published version are immutable')
    WHERE (SELECT status FROM template_versions WHERE id = OLD.version_id) <> 'draft';
END;
CREATE TRIGGER template_artifacts_delete_guard BEFORE DELETE ON template_artifacts
BEGIN
    SELECT RAISE(ABORT, 'template rule: the files of a published version are immutable')
    WHERE (SELECT status FROM template_versions WHERE id = OLD.version_id) <> 'draft';
END;

CREATE TRIGGER templates_default_guard BEFORE UPDATE OF default_version_id ON templates
WHEN NEW.default_version_id IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'template rule: the default must be a stable version of this template')
    WHERE NOT EXISTS (SELECT 1 FROM template_versions
                      WHERE id = NEW.default_version_id AND template_id = NEW.id AND status = 'stable');
END;

CREATE TRIGGER template_labels_insert_guard BEFORE INSERT ON template_labels
BEGIN
    SELECT RAISE(ABORT, 'template rule: a label names a stable version of its template')
    WHERE NOT EXISTS (SELECT 1 FROM template_versions
                      WHERE id = NEW.version_id AND template_id = NEW.template_id AND status = 'stable');
END;
CREATE TRIGGER template_labels_update_guard BEFORE UPDATE ON template_labels
BEGIN
    SELECT RAISE(ABORT, 'template rule: a label names a stable version of its template')
    WHERE NOT EXISTS (SELECT 1 FROM template_versions
                      WHERE id = NEW.version_id AND template_id = NEW.template_id AND status = 'stable');
END;
