//! Template bundles: publish (hash, store by hash, one transaction), lifecycle, and which version
//! a selector means.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::{Applied, Ops, OpsError, OpsResult, Outcome, Scope};
use crate::domain::InvalidInput;
use crate::domain::manifest::parse_version;
use crate::domain::permission::Permission;
use crate::domain::template::{
    BUNDLE_MANIFEST, BundleManifest, MAX_BUNDLE_MANIFEST_BYTES, StoredArtifact, TemplateSummary,
    TemplateVersion, VersionMove, VersionStatus, bundle_digest, check_bundle_manifest, check_label,
    check_template_name, check_template_version, in_canary,
};
use ospdeck_artifacts::{ARTIFACT_LIMIT, ArtifactStore, Capped, check_regular, open_regular_file};
use ospdeck_store::templates::{NewVersionRecord, Pointers, ProjectRef};

#[derive(Debug, Clone, Default)]
pub struct PublishRequest<'a> {
    pub template: &'a str,
    /// The project a new template joins; an existing template stays in its own. None for a new
    /// template makes it shared, which only an administrator may publish or govern.
    pub project: Option<&'a str>,
    pub version: &'a str,
    pub status: Option<VersionStatus>,
    pub changelog: Option<&'a str>,
    pub set_default: bool,
    pub label: Option<&'a str>,
}

/// How a caller names the version it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Version(String),
    Label(String),
    /// The default pointer, else `latest`.
    Default,
}

/// One version with where the template's pointers stand, for lists (the console's Templates pane).
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    #[serde(flatten)]
    pub version: TemplateVersion,
    pub is_default: bool,
    /// `stable`, `canary@10%`, …
    pub labels: Vec<String>,
}

/// A template version with the pointers that name it: the one object `template versions`,
/// `publish`, `promote`, `deprecate`, `default`, `label` and `delete` answer with.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    #[serde(flatten)]
    pub version: TemplateVersion,
    pub is_default: bool,
    pub labels: Vec<VersionLabel>,
}

/// A label naming a version; `percent` below 100 makes it a canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionLabel {
    pub name: String,
    pub percent: i32,
}

impl VersionView {
    fn new(version: TemplateVersion, pointers: &Pointers) -> Self {
        Self {
            is_default: pointers.default_version.as_deref() == Some(version.version.as_str()),
            labels: pointers
                .labels
                .iter()
                .filter(|l| l.version == version.version)
                .map(|l| VersionLabel {
                    name: l.label.clone(),
                    percent: l.percent,
                })
                .collect(),
            version,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactChange {
    pub path: String,
    pub change: &'static str,
    pub before: Option<String>,
    pub after: Option<String>,
}

fn invalid(message: String) -> OpsError {
    OpsError::Invalid(InvalidInput::new(message))
}

/// Reads and checks a bundle folder: its manifest, and that every file it lists is a regular file
/// inside it of at most `max_artifact_bytes`. Everything is checked before anything is stored, and
/// nothing is opened that could block (a FIFO) or never end (a device).
fn read_bundle(
    dir: &Path,
    max_artifact_bytes: u64,
) -> OpsResult<(BundleManifest, Vec<std::path::PathBuf>)> {
    let root = dir
        .canonicalize()
        .map_err(|e| invalid(format!("cannot open bundle {}: {e}", dir.display())))?;
    let manifest_path = root.join(BUNDLE_MANIFEST);
    let cannot_read = |e: std::io::Error| invalid(format!("{}: {e}", manifest_path.display()));
    let limit = MAX_BUNDLE_MANIFEST_BYTES;
    let file = open_regular_file(&manifest_path, limit, BUNDLE_MANIFEST).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    Capped::new(file, limit, BUNDLE_MANIFEST)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    let manifest: BundleManifest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("invalid {BUNDLE_MANIFEST}: {e}")))?;
    check_bundle_manifest(&manifest)?;
    let mut files = Vec::with_capacity(manifest.artifacts.len());
    for a in &manifest.artifacts {
        let path = root.join(&a.path);
        // Symlinks are followed, then the target must still be inside the bundle.
        let real = path
            .canonicalize()
            .map_err(|e| invalid(format!("{}: {e}", a.path)))?;
        if !real.starts_with(&root) {
            return Err(invalid(format!("{} points outside the bundle", a.path)));
        }
        std::fs::metadata(&real)
            .and_then(|meta| check_regular(&meta, max_artifact_bytes, ARTIFACT_LIMIT))
            .map_err(|e| invalid(format!("{}: {e}", a.path)))?;
        files.push(real);
    }
    Ok((manifest, files))
}

impl Ops {
    /// Publishes a bundle folder: files into the artifact store by sha256, then the version and its
    /// artifacts in one transaction. A crash before the commit leaves only unreferenced objects.
    pub async fn publish_bundle(
        &self,
        dir: &Path,
        req: &PublishRequest<'_>,
        store: Arc<dyn ArtifactStore>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> OpsResult<TemplateVersion> {
        check_template_name(req.template)?;
        let version = parse_version(req.version)?;
        check_template_version(&version)?;
        let status = req.status.unwrap_or(VersionStatus::Draft);
        if status == VersionStatus::Deprecated {
            return Err(invalid("publish as draft or stable".into()));
        }
        if let Some(label) = req.label {
            check_label(label)?;
        }
        if (req.set_default || req.label.is_some()) && status != VersionStatus::Stable {
            return Err(invalid(
                "--set-default and --label need --status stable (they name stable versions only)"
                    .into(),
            ));
        }
        let project = self.publish_project(req).await?;
        let mut needs = vec![Permission::PublishDraftTemplate];
        if status == VersionStatus::Stable {
            needs.push(Permission::PromoteTemplate);
        }
        if req.set_default || req.label.is_some() {
            needs.push(Permission::MovePointers);
        }
        self.authorize_template(
            project.as_ref(),
            &needs,
            &format!("publishing {} {version}", req.template),
        )
        .await?;
        let existing = self.store.template_versions(req.template).await?;
        if existing.iter().any(|v| v.version == version.to_string()) {
            return Err(OpsError::Refused(format!(
                "{} {version} is already published; versions are immutable, publish a new one",
                req.template
            )));
        }
        let (manifest, files) = read_bundle(dir, store.max_object_bytes())?;
        let total = files.len() as u64;
        let mut artifacts = Vec::with_capacity(files.len());
        for (i, (entry, file)) in manifest.artifacts.iter().zip(files).enumerate() {
            let store = store.clone();
            let (sha256, size) = tokio::task::spawn_blocking(move || store.put_file(&file))
                .await
                .map_err(|e| OpsError::Refused(format!("publish task failed: {e}")))?
                .map_err(|e| OpsError::Refused(format!("cannot store {}: {e}", entry.path)))?;
            artifacts.push(StoredArtifact {
                kind: entry.kind.clone(),
                locale: entry.locale.clone(),
                role: entry.role.clone(),
                path: entry.path.clone(),
                content_type: entry.content_type.clone(),
                sha256,
                size_bytes: i64::try_from(size)
                    .map_err(|_| invalid(format!("{}: {size} bytes is too large", entry.path)))?,
            });
            progress(i as u64 + 1, total);
        }
        let record = NewVersionRecord {
            template: req.template.to_owned(),
            project_id: project.as_ref().map(|p| p.id),
            digest: bundle_digest(&artifacts),
            version,
            status,
            changelog: req.changelog.map(str::to_owned),
            artifacts,
            set_default: req.set_default,
            label: req.label.map(str::to_owned),
        };
        Ok(self.store.publish_version(self.actor(), &record).await?)
    }

    /// Where a publish lands: the template's own project, else the one asked for.
    async fn publish_project(&self, req: &PublishRequest<'_>) -> OpsResult<Option<ProjectRef>> {
        let asked = match req.project {
            Some(key) => {
                let p = self.project(key).await?;
                Some(ProjectRef {
                    id: p.id,
                    key: p.key,
                })
            }
            None => None,
        };
        let Some(current) = self.store.template_project(req.template).await? else {
            return Ok(asked);
        };
        if let Some(asked) = &asked
            && current.as_ref() != Some(asked)
        {
            return Err(invalid(format!(
                "{} belongs to {}, not to project {}",
                req.template,
                current
                    .as_ref()
                    .map(|p| format!("project {}", p.key))
                    .unwrap_or_else(|| "no project (shared)".into()),
                asked.key
            )));
        }
        Ok(current)
    }

    /// The project role check for a template; a shared template is an administrator's.
    async fn authorize_template(
        &self,
        project: Option<&ProjectRef>,
        needs: &[Permission],
        what: &str,
    ) -> OpsResult<()> {
        match project {
            Some(p) => {
                let scope = Scope {
                    project_id: p.id,
                    project: &p.key,
                };
                self.authorize(scope, needs, what).await
            }
            None => self.require_administrator(&format!("{what}, a shared template (no project),")),
        }
    }

    /// Checks `needs` on an existing template's project.
    async fn authorize_on_template(
        &self,
        template: &str,
        needs: &[Permission],
        what: &str,
    ) -> OpsResult<()> {
        if self.identity().administrator {
            return Ok(());
        }
        let project = self
            .store
            .template_project(template)
            .await?
            .ok_or_else(|| {
                OpsError::NotFound(format!(
                    "unknown template {template:?} (see `ospdeck template list`)"
                ))
            })?;
        self.authorize_template(project.as_ref(), needs, what).await
    }

    pub async fn list_templates(&self) -> OpsResult<Vec<TemplateSummary>> {
        Ok(self.store.list_templates().await?)
    }

    /// Every version of every template, newest first within a template, with its pointers.
    pub async fn version_rows(&self) -> OpsResult<Vec<VersionRow>> {
        let mut rows = Vec::new();
        for t in self.store.list_templates().await? {
            let versions = self.store.template_versions(&t.name).await?;
            for v in versions.into_iter().rev() {
                let labels = t
                    .labels
                    .iter()
                    .filter(|l| l.version == v.version)
                    .map(|l| {
                        if l.percent < 100 {
                            format!("{}@{}%", l.label, l.percent)
                        } else {
                            l.label.clone()
                        }
                    })
                    .collect();
                rows.push(VersionRow {
                    is_default: t.default_version.as_deref() == Some(v.version.as_str()),
                    labels,
                    version: v,
                });
            }
        }
        Ok(rows)
    }

    pub async fn version_artifacts(
        &self,
        template: &str,
        version: &str,
    ) -> OpsResult<Vec<StoredArtifact>> {
        let v = self.template_version(template, version).await?;
        Ok(self.store.version_artifacts(template, &v.version).await?)
    }

    pub async fn template_versions(&self, template: &str) -> OpsResult<Vec<TemplateVersion>> {
        check_template_name(template)?;
        let versions = self.store.template_versions(template).await?;
        if versions.is_empty() {
            return Err(OpsError::NotFound(format!(
                "unknown template {template:?} (see `ospdeck template list`)"
            )));
        }
        Ok(versions)
    }

    /// Every version of a template with its pointers, in semver order.
    pub async fn version_views(&self, template: &str) -> OpsResult<Vec<VersionView>> {
        let versions = self.template_versions(template).await?;
        let pointers = self.store.pointers(template).await?;
        Ok(versions
            .into_iter()
            .map(|v| VersionView::new(v, &pointers))
            .collect())
    }

    /// One version with its pointers.
    pub async fn version_view(&self, template: &str, version: &str) -> OpsResult<VersionView> {
        let v = self.template_version(template, version).await?;
        let pointers = self.store.pointers(template).await?;
        Ok(VersionView::new(v, &pointers))
    }

    /// The version as a verb left it: `done` if it changed something, else `already`.
    async fn applied_view(
        &self,
        template: &str,
        version: &str,
        changed: bool,
        done: Outcome,
        already: Outcome,
    ) -> OpsResult<Applied<VersionView>> {
        let outcome = if changed { done } else { already };
        Ok(Applied::new(
            self.version_view(template, version).await?,
            outcome,
        ))
    }

    /// The version, if it is in `status`; else a refusal that says why (`reason`).
    async fn version_in_status(
        &self,
        template: &str,
        version: &str,
        wanted: VersionMove,
    ) -> OpsResult<TemplateVersion> {
        let v = self.template_version(template, version).await?;
        // The default check of a deprecation needs the pointers: `deprecate_version` does it.
        match wanted.refused(template, &v.version, v.status, false) {
            Some(why) => Err(OpsError::Refused(why)),
            None => Ok(v),
        }
    }

    async fn template_version(&self, template: &str, version: &str) -> OpsResult<TemplateVersion> {
        let version = parse_version(version)?.to_string();
        self.template_versions(template)
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| OpsError::NotFound(format!("{template} has no version {version}")))
    }

    pub async fn promote_version(
        &self,
        template: &str,
        version: &str,
    ) -> OpsResult<TemplateVersion> {
        Ok(self
            .promote_version_applied(template, version)
            .await?
            .value
            .version)
    }

    /// Draft → stable; a stable version answers as it is, `already_stable`.
    pub async fn promote_version_applied(
        &self,
        template: &str,
        version: &str,
    ) -> OpsResult<Applied<VersionView>> {
        let v = self.template_version(template, version).await?;
        if v.status != VersionStatus::Stable
            && let Some(why) = VersionMove::Promote.refused(template, &v.version, v.status, false)
        {
            return Err(OpsError::Refused(why));
        }
        self.authorize_on_template(
            template,
            &[Permission::PromoteTemplate],
            &format!("promoting {template} {}", v.version),
        )
        .await?;
        let changed = self
            .store
            .set_version_status(
                self.actor(),
                template,
                &v.version,
                VersionStatus::Stable,
                None,
            )
            .await?;
        self.applied_view(
            template,
            &v.version,
            changed.is_some(),
            Outcome::Promoted,
            Outcome::AlreadyStable,
        )
        .await
    }

    pub async fn deprecate_version(
        &self,
        template: &str,
        version: &str,
        message: Option<&str>,
    ) -> OpsResult<TemplateVersion> {
        let v = self
            .version_in_status(template, version, VersionMove::Deprecate)
            .await?;
        self.authorize_on_template(
            template,
            &[Permission::DeprecateTemplate],
            &format!("deprecating {template} {}", v.version),
        )
        .await?;
        let pointers = self.store.pointers(template).await?;
        let is_default = pointers.default_version.as_deref() == Some(v.version.as_str());
        if let Some(why) =
            VersionMove::Deprecate.refused(template, &v.version, v.status, is_default)
        {
            return Err(OpsError::Refused(why));
        }
        self.store
            .set_version_status(
                self.actor(),
                template,
                &v.version,
                VersionStatus::Deprecated,
                message,
            )
            .await?
            .ok_or_else(|| {
                OpsError::Refused(format!("{template} {} is deprecated already", v.version))
            })
    }

    /// Moves the default pointer; rolling back is moving it back.
    pub async fn set_default_version(&self, template: &str, version: &str) -> OpsResult<()> {
        self.set_default_applied(template, version).await?;
        Ok(())
    }

    /// [`Self::set_default_version`]; the default already answers as it is, `already_default`.
    pub async fn set_default_applied(
        &self,
        template: &str,
        version: &str,
    ) -> OpsResult<Applied<VersionView>> {
        let v = self
            .version_in_status(template, version, VersionMove::MakeDefault)
            .await?;
        self.authorize_on_template(
            template,
            &[Permission::MovePointers],
            &format!("moving the default of {template}"),
        )
        .await?;
        let moved = self
            .store
            .set_default(self.actor(), template, &v.version)
            .await?;
        self.applied_view(
            template,
            &v.version,
            moved,
            Outcome::DefaultSet,
            Outcome::AlreadyDefault,
        )
        .await
    }

    pub async fn set_label(
        &self,
        template: &str,
        label: &str,
        version: &str,
        percent: Option<i32>,
    ) -> OpsResult<()> {
        self.set_label_applied(template, label, version, percent)
            .await?;
        Ok(())
    }

    /// [`Self::set_label`]; a label that names the version with that share already answers
    /// `already_labeled`.
    pub async fn set_label_applied(
        &self,
        template: &str,
        label: &str,
        version: &str,
        percent: Option<i32>,
    ) -> OpsResult<Applied<VersionView>> {
        check_label(label)?;
        let percent = percent.unwrap_or(100);
        if !(0..=100).contains(&percent) {
            return Err(invalid(format!("invalid percent {percent}: 0 to 100")));
        }
        let v = self
            .version_in_status(template, version, VersionMove::Label)
            .await?;
        self.authorize_on_template(
            template,
            &[Permission::MovePointers],
            &format!("moving label {label} of {template}"),
        )
        .await?;
        let moved = self
            .store
            .set_label(self.actor(), template, label, &v.version, percent)
            .await?;
        self.applied_view(
            template,
            &v.version,
            moved,
            Outcome::Labeled,
            Outcome::AlreadyLabeled,
        )
        .await
    }

    pub async fn delete_draft(&self, template: &str, version: &str) -> OpsResult<()> {
        let v = self
            .version_in_status(template, version, VersionMove::Delete)
            .await?;
        self.authorize_on_template(
            template,
            &[Permission::PublishDraftTemplate],
            &format!("deleting draft {template} {}", v.version),
        )
        .await?;
        Ok(self
            .store
            .delete_draft(self.actor(), template, &v.version)
            .await?)
    }

    pub async fn template_diff(
        &self,
        template: &str,
        from: &str,
        to: &str,
    ) -> OpsResult<Vec<ArtifactChange>> {
        let a = self.template_version(template, from).await?;
        let b = self.template_version(template, to).await?;
        let before = self.store.version_artifacts(template, &a.version).await?;
        let after = self.store.version_artifacts(template, &b.version).await?;
        let mut changes = Vec::new();
        for x in &before {
            match after.iter().find(|y| y.path == x.path) {
                None => changes.push(ArtifactChange {
                    path: x.path.clone(),
                    change: "removed",
                    before: Some(x.sha256.clone()),
                    after: None,
                }),
                Some(y) if y.sha256 != x.sha256 => changes.push(ArtifactChange {
                    path: x.path.clone(),
                    change: "changed",
                    before: Some(x.sha256.clone()),
                    after: Some(y.sha256.clone()),
                }),
                Some(_) => {}
            }
        }
        for y in &after {
            if !before.iter().any(|x| x.path == y.path) {
                changes.push(ArtifactChange {
                    path: y.path.clone(),
                    change: "added",
                    before: None,
                    after: Some(y.sha256.clone()),
                });
            }
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// The version a selector means. Deprecated versions answer only when pinned exactly; a
    /// missing label or version is an error, never a switch to another version.
    pub async fn select_version(
        &self,
        template: &str,
        selector: &Selector,
        unit: Option<&str>,
    ) -> OpsResult<TemplateVersion> {
        let versions = self.template_versions(template).await?;
        let find = |v: &str| versions.iter().find(|x| x.version == v).cloned();
        let latest = || {
            versions
                .iter()
                .rev()
                .find(|v| v.status == VersionStatus::Stable)
                .cloned()
        };
        let pointers = self.store.pointers(template).await?;
        let default = || match &pointers.default_version {
            Some(v) => find(v),
            None => latest(),
        };
        let usable = |v: TemplateVersion, how: &str| {
            if v.status == VersionStatus::Deprecated {
                Err(OpsError::Refused(format!(
                    "{template} {} ({how}) is deprecated; pin it with --version to use it anyway",
                    v.version
                )))
            } else {
                Ok(v)
            }
        };
        match selector {
            Selector::Version(v) => {
                let v = parse_version(v)?.to_string();
                find(&v).ok_or_else(|| OpsError::NotFound(format!("{template} has no version {v}")))
            }
            Selector::Default => {
                let v = default().ok_or_else(|| {
                    OpsError::NotFound(format!("{template} has no default and no stable version"))
                })?;
                usable(v, "default")
            }
            Selector::Label(l) if l == "latest" => latest()
                .ok_or_else(|| OpsError::NotFound(format!("{template} has no stable version"))),
            Selector::Label(l) => {
                let label = pointers
                    .labels
                    .iter()
                    .find(|x| &x.label == l)
                    .ok_or_else(|| OpsError::NotFound(format!("{template} has no label {l:?}")))?;
                let in_share = match unit {
                    Some(u) if label.percent < 100 => in_canary(template, l, u, label.percent),
                    _ => true,
                };
                let chosen = if in_share {
                    find(&label.version)
                } else {
                    default()
                };
                let v = chosen.ok_or_else(|| {
                    OpsError::NotFound(format!(
                        "{template}: unit outside the {l} share and no default to fall back to"
                    ))
                })?;
                usable(v, &format!("label {l}"))
            }
        }
    }
}
