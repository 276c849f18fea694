//! Template bundles on SQLite (times in milliseconds; writes take the lock up front).

use async_trait::async_trait;
use serde_json::json;
use sqlx::{FromRow, Sqlite, Transaction};

use super::{SqliteStore, audit, ts};
use crate::domain::template::{
    Label, StoredArtifact, TemplateSummary, TemplateVersion, VersionStatus,
};
use crate::shared::{conflict_as, decode};
use crate::templates::{
    ArtifactRow, GcTally, NewVersionRecord, Pointers, ProjectRef, TemplateStore, gc_audit,
    project_ref, template_audit as entry, version_part,
};
use crate::{StoreError, StoreResult};

#[derive(FromRow)]
struct VersionRow {
    id: i64,
    template: String,
    semver: String,
    status: String,
    digest: String,
    changelog: Option<String>,
    deprecation: Option<String>,
    created_by: String,
    created_at: i64,
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
            created_at: ts(self.created_at),
        })
    }
}

const VERSION_SELECT: &str =
    "SELECT v.id, t.name AS template, v.semver, v.status, v.digest, v.changelog,
        v.deprecation, v.created_by, v.created_at
 FROM template_versions v JOIN templates t ON t.id = v.template_id ";

async fn version_in(
    tx: &mut Transaction<'static, Sqlite>,
    template: &str,
    version: &str,
) -> StoreResult<TemplateVersion> {
    let row: Option<VersionRow> = sqlx::query_as(&format!(
        "{VERSION_SELECT} WHERE t.name = ?1 AND v.semver = ?2"
    ))
    .bind(template)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?;
    row.ok_or_else(|| StoreError::NotFound(format!("{template} has no version {version}")))?
        .into_domain()
}

/// The template's project, for its audit rows (row-level security files them by project).
async fn template_project_in(
    tx: &mut Transaction<'static, Sqlite>,
    template: &str,
) -> StoreResult<Option<i64>> {
    let project: Option<Option<i64>> =
        sqlx::query_scalar("SELECT project_id FROM templates WHERE name = ?1")
            .bind(template)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(project.flatten())
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn publish_version(
        &self,
        actor: &str,
        new: &NewVersionRecord,
    ) -> StoreResult<TemplateVersion> {
        let mut tx = self.write_tx().await?;
        let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM templates WHERE name = ?1")
            .bind(&new.template)
            .fetch_optional(&mut *tx)
            .await?;
        let template_id: i64 = match existing {
            Some(id) => id,
            None => {
                sqlx::query_scalar(
                    "INSERT INTO templates (name, created_by, project_id) VALUES (?1, ?2, ?3)
                     RETURNING id",
                )
                .bind(&new.template)
                .bind(actor)
                .bind(new.project_id)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let v = &new.version;
        let version_id: i64 = sqlx::query_scalar(
            "INSERT INTO template_versions
                 (template_id, semver, major, minor, patch, digest, changelog, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        )
        .bind(template_id)
        .bind(v.to_string())
        .bind(version_part(v.major)?)
        .bind(version_part(v.minor)?)
        .bind(version_part(v.patch)?)
        .bind(&new.digest)
        .bind(&new.changelog)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_as(e, format!("{} {v} is already published", new.template)))?;
        for a in &new.artifacts {
            sqlx::query(
                "INSERT INTO template_artifacts
                     (version_id, kind, locale, role, path, content_type, sha256, size_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(version_id)
            .bind(&a.kind)
            .bind(&a.locale)
            .bind(&a.role)
            .bind(&a.path)
            .bind(&a.content_type)
            .bind(&a.sha256)
            .bind(a.size_bytes)
            .execute(&mut *tx)
            .await?;
        }
        if new.status != VersionStatus::Draft {
            sqlx::query("UPDATE template_versions SET status = ?2 WHERE id = ?1")
                .bind(version_id)
                .bind(new.status.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if new.set_default {
            sqlx::query("UPDATE templates SET default_version_id = ?2 WHERE id = ?1")
                .bind(template_id)
                .bind(version_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(label) = &new.label {
            sqlx::query(
                "INSERT INTO template_labels (template_id, label, version_id, updated_by)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (template_id, label) DO UPDATE
                    SET version_id = excluded.version_id, percent = 100,
                        updated_by = excluded.updated_by, updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            )
            .bind(template_id)
            .bind(label)
            .bind(version_id)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        }
        let version = version_in(&mut tx, &new.template, &v.to_string()).await?;
        let mut e = entry(actor, "publish", &new.template, &version.version);
        e.after = Some(json!({
            "status": version.status, "digest": version.digest, "artifacts": new.artifacts.len(),
            "default": new.set_default, "label": new.label,
        }));
        e.project_id = template_project_in(&mut tx, &new.template).await?;
        audit(&mut tx, &e).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn list_templates(&self) -> StoreResult<Vec<TemplateSummary>> {
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT t.name, d.semver, (SELECT count(*) FROM template_versions v WHERE v.template_id = t.id)
             FROM templates t LEFT JOIN template_versions d ON d.id = t.default_version_id
             ORDER BY t.name",
        )
        .fetch_all(&self.pool)
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
        let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT t.project_id, p.workspace_key FROM templates t
             LEFT JOIN projects p ON p.id = t.project_id WHERE t.name = ?1",
        )
        .bind(template)
        .fetch_optional(&self.pool)
        .await?;
        Ok(project_ref(row))
    }

    async fn template_versions(&self, template: &str) -> StoreResult<Vec<TemplateVersion>> {
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "{VERSION_SELECT} WHERE t.name = ?1 ORDER BY v.major, v.minor, v.patch"
        ))
        .bind(template)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(VersionRow::into_domain).collect()
    }

    async fn version_artifacts(
        &self,
        template: &str,
        version: &str,
    ) -> StoreResult<Vec<StoredArtifact>> {
        let rows: Vec<ArtifactRow> = sqlx::query_as(
            "SELECT a.kind, a.locale, a.role, a.path, a.content_type, a.sha256, a.size_bytes
             FROM template_artifacts a
             JOIN template_versions v ON v.id = a.version_id
             JOIN templates t ON t.id = v.template_id
             WHERE t.name = ?1 AND v.semver = ?2 ORDER BY a.path",
        )
        .bind(template)
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredArtifact::from).collect())
    }

    async fn pointers(&self, template: &str) -> StoreResult<Pointers> {
        let default_version: Option<String> = sqlx::query_scalar(
            "SELECT d.semver FROM templates t JOIN template_versions d ON d.id = t.default_version_id
             WHERE t.name = ?1",
        )
        .bind(template)
        .fetch_optional(&self.pool)
        .await?;
        let labels: Vec<(String, String, i32)> = sqlx::query_as(
            "SELECT l.label, v.semver, l.percent FROM template_labels l
             JOIN templates t ON t.id = l.template_id JOIN template_versions v ON v.id = l.version_id
             WHERE t.name = ?1 ORDER BY l.label",
        )
        .bind(template)
        .fetch_all(&self.pool)
        .await?;
        Ok(Pointers {
            default_version,
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
    ) -> StoreResult<TemplateVersion> {
        let mut tx = self.write_tx().await?;
        let before = version_in(&mut tx, template, version).await?;
        sqlx::query(
            "UPDATE template_versions SET status = ?2, deprecation = coalesce(?3, deprecation)
             WHERE id = ?1",
        )
        .bind(before.id)
        .bind(to.as_str())
        .bind(message)
        .execute(&mut *tx)
        .await?;
        let after = version_in(&mut tx, template, version).await?;
        let mut e = entry(
            actor,
            if to == VersionStatus::Stable {
                "promote"
            } else {
                "deprecate"
            },
            template,
            version,
        );
        e.before = Some(json!({ "status": before.status }));
        e.after = Some(json!({ "status": after.status, "message": message }));
        e.project_id = template_project_in(&mut tx, template).await?;
        audit(&mut tx, &e).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn set_default(&self, actor: &str, template: &str, version: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let v = version_in(&mut tx, template, version).await?;
        let before: Option<String> = sqlx::query_scalar(
            "SELECT d.semver FROM templates t LEFT JOIN template_versions d ON d.id = t.default_version_id
             WHERE t.name = ?1",
        )
        .bind(template)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE templates SET default_version_id = ?2 WHERE name = ?1")
            .bind(template)
            .bind(v.id)
            .execute(&mut *tx)
            .await?;
        let mut e = entry(actor, "set_default", template, version);
        e.before = Some(json!({ "default": before }));
        e.after = Some(json!({ "default": version }));
        e.project_id = template_project_in(&mut tx, template).await?;
        audit(&mut tx, &e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_label(
        &self,
        actor: &str,
        template: &str,
        label: &str,
        version: &str,
        percent: i32,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let v = version_in(&mut tx, template, version).await?;
        let before: Option<(String, i32)> = sqlx::query_as(
            "SELECT v.semver, l.percent FROM template_labels l
             JOIN templates t ON t.id = l.template_id JOIN template_versions v ON v.id = l.version_id
             WHERE t.name = ?1 AND l.label = ?2",
        )
        .bind(template)
        .bind(label)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO template_labels (template_id, label, version_id, percent, updated_by)
             SELECT t.id, ?2, ?3, ?4, ?5 FROM templates t WHERE t.name = ?1
             ON CONFLICT (template_id, label) DO UPDATE
                SET version_id = excluded.version_id, percent = excluded.percent,
                    updated_by = excluded.updated_by, updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        )
        .bind(template)
        .bind(label)
        .bind(v.id)
        .bind(percent)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let mut e = entry(actor, "label", template, version);
        e.before = before.map(|(v, p)| json!({ "label": label, "version": v, "percent": p }));
        e.after = Some(json!({ "label": label, "version": version, "percent": percent }));
        e.project_id = template_project_in(&mut tx, template).await?;
        audit(&mut tx, &e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_draft(&self, actor: &str, template: &str, version: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let v = version_in(&mut tx, template, version).await?;
        sqlx::query("DELETE FROM template_versions WHERE id = ?1")
            .bind(v.id)
            .execute(&mut *tx)
            .await?;
        let mut e = entry(actor, "delete", template, version);
        e.before = Some(json!({ "status": v.status, "digest": v.digest }));
        e.project_id = template_project_in(&mut tx, template).await?;
        audit(&mut tx, &e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn referenced_artifacts(&self) -> StoreResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT sha256 FROM template_artifacts ORDER BY sha256")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn record_artifact_gc(
        &self,
        actor: &str,
        location: &str,
        removed: &GcTally,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        audit(&mut tx, &gc_audit(actor, location, removed)).await?;
        tx.commit().await?;
        Ok(())
    }
}
