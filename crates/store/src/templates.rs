//! Template bundles in the database: templates, versions, their artifacts, default and labels.

use async_trait::async_trait;
use semver::Version;
use serde::Serialize;
use sqlx::FromRow;

use super::{AuditEntry, StoreError, StoreResult};
use crate::domain::template::{
    Label, StoredArtifact, TemplateSummary, TemplateVersion, VersionStatus,
};

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
pub(super) fn project_ref(
    row: Option<(Option<i64>, Option<String>)>,
) -> Option<Option<ProjectRef>> {
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
    async fn set_version_status(
        &self,
        actor: &str,
        template: &str,
        version: &str,
        to: VersionStatus,
        message: Option<&str>,
    ) -> StoreResult<TemplateVersion>;
    async fn set_default(&self, actor: &str, template: &str, version: &str) -> StoreResult<()>;
    async fn set_label(
        &self,
        actor: &str,
        template: &str,
        label: &str,
        version: &str,
        percent: i32,
    ) -> StoreResult<()>;
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

pub(super) fn gc_audit<'a>(actor: &'a str, location: &str, removed: &GcTally) -> AuditEntry<'a> {
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
pub(super) fn template_audit<'a>(
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

/// An artifact row as both stores select it (no times, so one type serves both).
#[derive(FromRow)]
pub(super) struct ArtifactRow {
    kind: String,
    locale: Option<String>,
    role: Option<String>,
    path: String,
    content_type: String,
    sha256: String,
    size_bytes: i64,
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
pub(super) fn version_part(part: u64) -> StoreResult<i32> {
    i32::try_from(part).map_err(|_| {
        StoreError::Invalid(format!(
            "version part {part} is larger than {} (the stores' integer columns)",
            i32::MAX
        ))
    })
}
