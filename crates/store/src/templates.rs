//! Template bundles in the database: templates, versions, their artifacts, default and labels.
//! Written once for both backends; only the row lock a lifecycle change takes (`FOR UPDATE` on
//! PostgreSQL, the write lock `BEGIN IMMEDIATE` already holds on SQLite) differs.

use async_trait::async_trait;
use chrono::Utc;
use semver::Version;
use serde::Serialize;
use serde_json::json;

use super::{AuditEntry, StoreError, StoreResult};
use crate::domain::template::{
    Label, StoredArtifact, TemplateSummary, TemplateVersion, VersionStatus,
};
use crate::shared::{conflict_as, decode, require_changed};
use crate::sql::{Backend, Time, Tx, dialects, row, stmt};

/// A version as publish hands it over: its files are already in the artifact store.
#[derive(Debug, Clone)]
pub struct NewVersionRecord {
    pub template: String,
    /// The project a new template joins (None: shared, administrators only); an existing
    /// template keeps its own.
    pub project_id: Option<i64>,
    pub version: Version,
    pub status: VersionStatus,
    pub changelog: Option<String>,
    pub digest: String,
    pub artifacts: Vec<StoredArtifact>,
    pub set_default: bool,
    pub label: Option<String>,
}

/// A project as a template names it: its id, and its key for the people reading about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: i64,
    pub key: String,
}

/// A `(project_id, workspace_key)` row of a template LEFT JOIN projects, if the template exists.
fn project_ref(row: Option<(Option<i64>, Option<String>)>) -> Option<Option<ProjectRef>> {
    row.map(|(id, key)| Some(ProjectRef { id: id?, key: key? }))
}

/// Where a template's default and labels point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pointers {
    pub default_version: Option<String>,
    pub labels: Vec<Label>,
}

#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// One transaction: the template (created on first publish), the version, its artifacts,
    /// then its status, default and label. Nothing of it is visible until it all is.
    async fn publish_version(
        &self,
        actor: &str,
        new: &NewVersionRecord,
    ) -> StoreResult<TemplateVersion>;
    async fn list_templates(&self) -> StoreResult<Vec<TemplateSummary>>;
    /// The project a template belongs to: None when the template is unknown, Some(None) when it
    /// is shared (no project).
    async fn template_project(&self, template: &str) -> StoreResult<Option<Option<ProjectRef>>>;
    /// Versions in semver order (numeric, never text).
    async fn template_versions(&self, template: &str) -> StoreResult<Vec<TemplateVersion>>;
    async fn version_artifacts(
        &self,
        template: &str,
        version: &str,
    ) -> StoreResult<Vec<StoredArtifact>>;
    async fn pointers(&self, template: &str) -> StoreResult<Pointers>;
    /// None when the version is in `to` already: then nothing is written and nothing audited,
    /// decided under the row lock so two callers racing cannot both change it.
    async fn set_version_status(
        &self,
        actor: &str,
        template: &str,
        version: &str,
        to: VersionStatus,
        message: Option<&str>,
    ) -> StoreResult<Option<TemplateVersion>>;
    /// False when `version` is the default already (nothing written, nothing audited).
    async fn set_default(&self, actor: &str, template: &str, version: &str) -> StoreResult<bool>;
    /// False when the label names `version` with `percent` already (nothing written).
    async fn set_label(
        &self,
        actor: &str,
        template: &str,
        label: &str,
        version: &str,
        percent: i32,
    ) -> StoreResult<bool>;
    async fn delete_draft(&self, actor: &str, template: &str, version: &str) -> StoreResult<()>;
    /// The sha256 of every artifact any version references (drafts and deprecated ones too),
    /// each once, sorted. Everything else in the artifact store is garbage once old enough.
    async fn referenced_artifacts(&self) -> StoreResult<Vec<String>>;
    /// The audit event of one `gc --delete` on the artifact store at `location`.
    async fn record_artifact_gc(
        &self,
        actor: &str,
        location: &str,
        removed: &GcTally,
    ) -> StoreResult<()>;
}

/// What one `gc --delete` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GcTally {
    pub objects: u64,
    pub object_bytes: u64,
    pub temp_files: u64,
    pub temp_bytes: u64,
    /// The grace period it kept younger files for.
    pub older_than_secs: u64,
}

fn gc_audit<'a>(actor: &'a str, location: &str, removed: &GcTally) -> AuditEntry<'a> {
    AuditEntry {
        actor,
        action: "gc",
        entity_type: "artifact_store",
        entity_id: location.to_owned(),
        project_id: None,
        before: None,
        after: serde_json::to_value(removed).ok(),
    }
}

/// The audit row of a change to a template version; callers add before/after.
fn entry<'a>(
    actor: &'a str,
    action: &'static str,
    template: &str,
    version: &str,
) -> AuditEntry<'a> {
    AuditEntry {
        actor,
        action,
        entity_type: "template",
        entity_id: format!("{template}@{version}"),
        project_id: None,
        before: None,
        after: None,
    }
}

row! {
    struct ArtifactRow {
        kind: String,
        locale: Option<String>,
        role: Option<String>,
        path: String,
        content_type: String,
        sha256: String,
        size_bytes: i64,
    }
}

impl From<ArtifactRow> for StoredArtifact {
    fn from(r: ArtifactRow) -> Self {
        StoredArtifact {
            kind: r.kind,
            locale: r.locale,
            role: r.role,
            path: r.path,
            content_type: r.content_type,
            sha256: r.sha256,
            size_bytes: r.size_bytes,
        }
    }
}

/// A part of a version as the stores' integer columns hold it; ops refuses bigger ones first
/// (`check_template_version`), so this only guards against a caller that did not.
fn version_part(part: u64) -> StoreResult<i32> {
    i32::try_from(part).map_err(|_| {
        StoreError::Invalid(format!(
            "version part {part} is larger than {} (the stores' integer columns)",
            i32::MAX
        ))
    })
}

row! {
    struct VersionRow {
        id: i64,
        template: String,
        semver: String,
        status: String,
        digest: String,
        changelog: Option<String>,
        deprecation: Option<String>,
        created_by: String,
        created_at: Time,
    }
}

impl VersionRow {
    fn into_domain(self) -> StoreResult<TemplateVersion> {
        Ok(TemplateVersion {
            id: self.id,
            template: self.template,
            version: self.semver,
            status: decode::<VersionStatus>(&self.status)?,
            digest: self.digest,
            changelog: self.changelog,
            deprecation: self.deprecation,
            created_by: self.created_by,
            created_at: self.created_at.into(),
        })
    }
}

const VERSION_SELECT: &str =
    "SELECT v.id, t.name AS template, v.semver, v.status, v.digest, v.changelog,
        v.deprecation, v.created_by, v.created_at
 FROM template_versions v JOIN templates t ON t.id = v.template_id ";

/// How a version is read inside a write transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Held against concurrent lifecycle changes. On PostgreSQL `FOR UPDATE`, which needs the
    /// right to update the row (row-level security); SQLite's write lock already holds it.
    ForUpdate,
    /// A developer's publish and draft deletion read it unlocked: the template rules' triggers
    /// still hold for them.
    None,
}

/// A version read inside a transaction.
async fn version_in(
    tx: &mut Tx,
    template: &str,
    version: &str,
    lock: Lock,
) -> StoreResult<TemplateVersion> {
    let select = format!("{VERSION_SELECT} WHERE t.name = $1 AND v.semver = $2");
    let s = match lock {
        Lock::ForUpdate => dialects(format!("{select} FOR UPDATE OF v"), select),
        Lock::None => stmt(select),
    };
    let row: Option<VersionRow> = tx.fetch_optional(s.bind(template).bind(version)).await?;
    row.ok_or_else(|| StoreError::NotFound(format!("{template} has no version {version}")))?
        .into_domain()
}

/// The template's project, for its audit rows (row-level security files them by project).
async fn template_project_in(tx: &mut Tx, template: &str) -> StoreResult<Option<i64>> {
    let project: Option<(Option<i64>,)> = tx
        .fetch_optional(stmt("SELECT project_id FROM templates WHERE name = $1").bind(template))
        .await?;
    Ok(project.and_then(|(id,)| id))
}

/// Writes `e`, filed under the template's project, in the change's transaction.
async fn record_in(tx: &mut Tx, template: &str, mut e: AuditEntry<'_>) -> StoreResult<()> {
    e.project_id = template_project_in(tx, template).await?;
    e.record(tx).await
}

/// The template's id, created on its first publish.
async fn template_id_for(tx: &mut Tx, actor: &str, new: &NewVersionRecord) -> StoreResult<i64> {
    let lookup = || stmt("SELECT id FROM templates WHERE name = $1").bind(&new.template);
    // Look up before inserting: an upsert would be an UPDATE of the template, which row-level
    // security reserves for those who may move its pointers.
    if let Some((id,)) = tx.fetch_optional::<(i64,)>(lookup()).await? {
        return Ok(id);
    }
    // A concurrent first publish of the same template may insert it in between (PostgreSQL; on
    // SQLite the write lock excludes it): this insert then waits for that one to commit, inserts
    // nothing, and the look-up (a new snapshot) finds it.
    let created: Option<(i64,)> = tx
        .fetch_optional(
            stmt(
                "INSERT INTO templates (name, created_by, project_id) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(&new.template)
            .bind(actor)
            .bind(new.project_id),
        )
        .await?;
    if let Some((id,)) = created {
        return Ok(id);
    }
    let found: Option<(i64,)> = tx.fetch_optional(lookup()).await?;
    found.map(|(id,)| id).ok_or_else(|| {
        StoreError::Conflict(format!(
            "template {} exists in a project you are not a member of",
            new.template
        ))
    })
}

// An UPDATE or DELETE below of a row the transaction has just read must change it: on
// PostgreSQL row-level security may filter it out silently (`require_changed` turns that into
// Forbidden); on SQLite it always does (no row-level security, no RAISE(IGNORE) trigger, and the
// write lock is held since the read), so the same check costs nothing there.

#[async_trait]
impl<B: Backend> TemplateStore for B {
    async fn publish_version(
        &self,
        actor: &str,
        new: &NewVersionRecord,
    ) -> StoreResult<TemplateVersion> {
        let mut tx = self.db().begin().await?;
        let template_id = template_id_for(&mut tx, actor, new).await?;
        let v = &new.version;
        let (version_id,): (i64,) = tx
            .fetch_one(
                stmt(
                    "INSERT INTO template_versions
                         (template_id, semver, major, minor, patch, digest, changelog, created_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(template_id)
                .bind(v.to_string())
                .bind(version_part(v.major)?)
                .bind(version_part(v.minor)?)
                .bind(version_part(v.patch)?)
                .bind(&new.digest)
                .bind(new.changelog.as_deref())
                .bind(actor),
            )
            .await
            .map_err(|e| conflict_as(e, format!("{} {v} is already published", new.template)))?;
        for a in &new.artifacts {
            tx.execute(
                stmt(
                    "INSERT INTO template_artifacts
                         (version_id, kind, locale, role, path, content_type, sha256, size_bytes)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(version_id)
                .bind(&a.kind)
                .bind(a.locale.as_deref())
                .bind(a.role.as_deref())
                .bind(&a.path)
                .bind(&a.content_type)
                .bind(&a.sha256)
                .bind(a.size_bytes),
            )
            .await?;
        }
        if new.status != VersionStatus::Draft {
            let rows = tx
                .execute(
                    stmt("UPDATE template_versions SET status = $2 WHERE id = $1")
                        .bind(version_id)
                        .bind(new.status.as_str()),
                )
                .await?;
            require_changed(rows, || {
                format!("publishing {} as {}", new.template, new.status)
            })?;
        }
        if new.set_default {
            let rows = tx
                .execute(
                    stmt("UPDATE templates SET default_version_id = $2 WHERE id = $1")
                        .bind(template_id)
                        .bind(version_id),
                )
                .await?;
            require_changed(rows, || format!("moving the default of {}", new.template))?;
        }
        if let Some(label) = &new.label {
            tx.execute(
                stmt(
                    "INSERT INTO template_labels (template_id, label, version_id, updated_by)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (template_id, label) DO UPDATE
                        SET version_id = excluded.version_id, percent = 100,
                            updated_by = excluded.updated_by, updated_at = $5",
                )
                .bind(template_id)
                .bind(label)
                .bind(version_id)
                .bind(actor)
                .bind(Utc::now()),
            )
            .await?;
        }
        let version = version_in(&mut tx, &new.template, &v.to_string(), Lock::None).await?;
        let mut e = entry(actor, "publish", &new.template, &version.version);
        e.after = Some(json!({
            "status": version.status, "digest": version.digest, "artifacts": new.artifacts.len(),
            "default": new.set_default, "label": new.label,
        }));
        record_in(&mut tx, &new.template, e).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn list_templates(&self) -> StoreResult<Vec<TemplateSummary>> {
        let rows: Vec<(String, Option<String>, i64)> = self
            .db()
            .fetch_all(stmt(
                "SELECT t.name, d.semver, (SELECT count(*) FROM template_versions v WHERE v.template_id = t.id)
                 FROM templates t LEFT JOIN template_versions d ON d.id = t.default_version_id
                 ORDER BY t.name",
            ))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (name, default_version, versions) in rows {
            let labels = self.pointers(&name).await?.labels;
            out.push(TemplateSummary {
                name,
                default_version,
                versions,
                labels,
            });
        }
        Ok(out)
    }

    async fn template_project(&self, template: &str) -> StoreResult<Option<Option<ProjectRef>>> {
        let row: Option<(Option<i64>, Option<String>)> = self
            .db()
            .fetch_optional(
                stmt(
                    "SELECT t.project_id, p.workspace_key FROM templates t
                     LEFT JOIN projects p ON p.id = t.project_id WHERE t.name = $1",
                )
                .bind(template),
            )
            .await?;
        Ok(project_ref(row))
    }

    async fn template_versions(&self, template: &str) -> StoreResult<Vec<TemplateVersion>> {
        let rows: Vec<VersionRow> = self
            .db()
            .fetch_all(
                stmt(format!(
                    "{VERSION_SELECT} WHERE t.name = $1 ORDER BY v.major, v.minor, v.patch"
                ))
                .bind(template),
            )
            .await?;
        rows.into_iter().map(VersionRow::into_domain).collect()
    }

    async fn version_artifacts(
        &self,
        template: &str,
        version: &str,
    ) -> StoreResult<Vec<StoredArtifact>> {
        let rows: Vec<ArtifactRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT a.kind, a.locale, a.role, a.path, a.content_type, a.sha256, a.size_bytes
                     FROM template_artifacts a
                     JOIN template_versions v ON v.id = a.version_id
                     JOIN templates t ON t.id = v.template_id
                     WHERE t.name = $1 AND v.semver = $2 ORDER BY a.path",
                )
                .bind(template)
                .bind(version),
            )
            .await?;
        Ok(rows.into_iter().map(StoredArtifact::from).collect())
    }

    async fn pointers(&self, template: &str) -> StoreResult<Pointers> {
        let default_version: Option<(String,)> = self
            .db()
            .fetch_optional(
                stmt(
                    "SELECT d.semver FROM templates t JOIN template_versions d ON d.id = t.default_version_id
                     WHERE t.name = $1",
                )
                .bind(template),
            )
            .await?;
        let labels: Vec<(String, String, i32)> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT l.label, v.semver, l.percent FROM template_labels l
                     JOIN templates t ON t.id = l.template_id JOIN template_versions v ON v.id = l.version_id
                     WHERE t.name = $1 ORDER BY l.label",
                )
                .bind(template),
            )
            .await?;
        Ok(Pointers {
            default_version: default_version.map(|(v,)| v),
            labels: labels
                .into_iter()
                .map(|(label, version, percent)| Label {
                    label,
                    version,
                    percent,
                })
                .collect(),
        })
    }

    async fn set_version_status(
        &self,
        actor: &str,
        template: &str,
        version: &str,
        to: VersionStatus,
        message: Option<&str>,
    ) -> StoreResult<Option<TemplateVersion>> {
        let mut tx = self.db().begin().await?;
        let before = version_in(&mut tx, template, version, Lock::ForUpdate).await?;
        if before.status == to {
            // Nothing to write: end the transaction now, so its write lock (SQLite) goes too.
            tx.commit().await?;
            return Ok(None);
        }
        tx.execute(
            stmt(
                "UPDATE template_versions SET status = $2, deprecation = coalesce($3, deprecation)
                 WHERE id = $1",
            )
            .bind(before.id)
            .bind(to.as_str())
            .bind(message),
        )
        .await?;
        let after = version_in(&mut tx, template, version, Lock::ForUpdate).await?;
        let action = if to == VersionStatus::Stable {
            "promote"
        } else {
            "deprecate"
        };
        let mut e = entry(actor, action, template, version);
        e.before = Some(json!({ "status": before.status }));
        e.after = Some(json!({ "status": after.status, "message": message }));
        record_in(&mut tx, template, e).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn set_default(&self, actor: &str, template: &str, version: &str) -> StoreResult<bool> {
        let mut tx = self.db().begin().await?;
        let v = version_in(&mut tx, template, version, Lock::ForUpdate).await?;
        let (before,): (Option<String>,) = tx
            .fetch_one(
                stmt(
                    "SELECT d.semver FROM templates t LEFT JOIN template_versions d ON d.id = t.default_version_id
                     WHERE t.name = $1",
                )
                .bind(template),
            )
            .await?;
        if before.as_deref() == Some(version) {
            // Nothing to write: end the transaction now, so its write lock (SQLite) goes too.
            tx.commit().await?;
            return Ok(false);
        }
        let rows = tx
            .execute(
                stmt("UPDATE templates SET default_version_id = $2 WHERE name = $1")
                    .bind(template)
                    .bind(v.id),
            )
            .await?;
        require_changed(rows, || format!("moving the default of {template}"))?;
        let mut e = entry(actor, "set_default", template, version);
        e.before = Some(json!({ "default": before }));
        e.after = Some(json!({ "default": version }));
        record_in(&mut tx, template, e).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_label(
        &self,
        actor: &str,
        template: &str,
        label: &str,
        version: &str,
        percent: i32,
    ) -> StoreResult<bool> {
        let mut tx = self.db().begin().await?;
        let v = version_in(&mut tx, template, version, Lock::ForUpdate).await?;
        let before: Option<(String, i32)> = tx
            .fetch_optional(
                stmt(
                    "SELECT v.semver, l.percent FROM template_labels l
                     JOIN templates t ON t.id = l.template_id JOIN template_versions v ON v.id = l.version_id
                     WHERE t.name = $1 AND l.label = $2",
                )
                .bind(template)
                .bind(label),
            )
            .await?;
        if before
            .as_ref()
            .is_some_and(|(v, p)| v == version && *p == percent)
        {
            // Nothing to write: end the transaction now, so its write lock (SQLite) goes too.
            tx.commit().await?;
            return Ok(false);
        }
        tx.execute(
            stmt(
                "INSERT INTO template_labels (template_id, label, version_id, percent, updated_by)
                 SELECT t.id, $2, $3, $4, $5 FROM templates t WHERE t.name = $1
                 ON CONFLICT (template_id, label) DO UPDATE
                    SET version_id = excluded.version_id, percent = excluded.percent,
                        updated_by = excluded.updated_by, updated_at = $6",
            )
            .bind(template)
            .bind(label)
            .bind(v.id)
            .bind(percent)
            .bind(actor)
            .bind(Utc::now()),
        )
        .await?;
        let mut e = entry(actor, "label", template, version);
        e.before = before.map(|(v, p)| json!({ "label": label, "version": v, "percent": p }));
        e.after = Some(json!({ "label": label, "version": version, "percent": percent }));
        record_in(&mut tx, template, e).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_draft(&self, actor: &str, template: &str, version: &str) -> StoreResult<()> {
        let mut tx = self.db().begin().await?;
        let v = version_in(&mut tx, template, version, Lock::None).await?;
        let deleted = tx
            .execute(stmt("DELETE FROM template_versions WHERE id = $1").bind(v.id))
            .await?;
        require_changed(deleted, || format!("deleting {template} {version}"))?;
        let mut e = entry(actor, "delete", template, version);
        e.before = Some(json!({ "status": v.status, "digest": v.digest }));
        record_in(&mut tx, template, e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn referenced_artifacts(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = self
            .db()
            .fetch_all(stmt(
                "SELECT DISTINCT sha256 FROM template_artifacts ORDER BY sha256",
            ))
            .await?;
        Ok(rows.into_iter().map(|(sha,)| sha).collect())
    }

    async fn record_artifact_gc(
        &self,
        actor: &str,
        location: &str,
        removed: &GcTally,
    ) -> StoreResult<()> {
        let mut tx = self.db().begin().await?;
        gc_audit(actor, location, removed).record(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
