//! `gc`: removing what no template version references from the artifact store, and the temp
//! files interrupted writes left in it and in the local cache.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Ops, OpsError, OpsResult};
use ospdeck_artifacts::{ArtifactStore, LeftOver, StoredObject, stale_temp_files};
use ospdeck_store::templates::GcTally;

/// A publish stores its objects before the transaction that references them commits, and a
/// download or put in progress keeps writing its temp file: anything written this recently stays.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone)]
pub struct GcRequest<'a> {
    /// Objects and temp files last written less than this long ago are kept.
    pub older_than: Duration,
    /// Remove; without it, only answer what would be removed.
    pub delete: bool,
    /// The local resolve cache, whose stale temp files go too.
    pub cache_dir: Option<&'a Path>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GcItemKind {
    /// An object of the artifact store that no version references.
    Object,
    /// A temp file an interrupted write left (artifact store or cache).
    TempFile,
}

impl GcItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GcItemKind::Object => "object",
            GcItemKind::TempFile => "temp_file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcItem {
    pub kind: GcItemKind,
    /// The object's sha256, or the temp file's path.
    pub name: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// The artifact store.
    pub store: String,
    pub dry_run: bool,
    pub older_than_secs: u64,
    /// Objects kept because a version references them.
    pub referenced: usize,
    /// Unreferenced objects kept because they were written within the grace period.
    pub recent: usize,
    /// What was removed, or in a dry run what would be.
    pub removed: Vec<GcItem>,
    pub count: usize,
    pub bytes: u64,
}

/// What a gc would remove, as listed before anything is.
struct GcPlan {
    objects: Vec<StoredObject>,
    temp_files: Vec<LeftOver>,
    referenced: usize,
    recent: usize,
}

fn plan(
    store: &dyn ArtifactStore,
    referenced: &HashSet<String>,
    cache_dir: Option<&Path>,
    cutoff: SystemTime,
) -> std::io::Result<GcPlan> {
    let mut plan = GcPlan {
        objects: Vec::new(),
        temp_files: store.stale_temp_files(cutoff)?,
        referenced: 0,
        recent: 0,
    };
    for object in store.list_objects()? {
        if referenced.contains(&object.sha256) {
            plan.referenced += 1;
        } else if object.modified >= cutoff {
            plan.recent += 1;
        } else {
            plan.objects.push(object);
        }
    }
    if let Some(dir) = cache_dir {
        plan.temp_files.extend(stale_temp_files(dir, cutoff)?);
    }
    Ok(plan)
}

fn object_item(o: &StoredObject) -> GcItem {
    GcItem {
        kind: GcItemKind::Object,
        name: o.sha256.clone(),
        size_bytes: o.size_bytes,
    }
}

fn temp_item(t: &LeftOver) -> GcItem {
    GcItem {
        kind: GcItemKind::TempFile,
        name: t.path.display().to_string(),
        size_bytes: t.size_bytes,
    }
}

/// Removes what the plan lists, each object only if it is still older than `cutoff`. Answers
/// what went, the objects found young again, and the error that stopped it, if one did.
fn execute(
    store: &dyn ArtifactStore,
    plan: &GcPlan,
    cutoff: SystemTime,
) -> (Vec<GcItem>, usize, Option<String>) {
    let mut removed = Vec::new();
    let mut recent = 0;
    for object in &plan.objects {
        match store.remove_object(&object.sha256, cutoff) {
            Ok(true) => removed.push(object_item(object)),
            Ok(false) => recent += 1,
            Err(e) => return (removed, recent, Some(format!("{}: {e}", object.sha256))),
        }
    }
    for temp in &plan.temp_files {
        match std::fs::remove_file(&temp.path) {
            Ok(()) => removed.push(temp_item(temp)),
            // Finished (renamed into place) or removed by another gc since it was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return (
                    removed,
                    recent,
                    Some(format!("{}: {e}", temp.path.display())),
                );
            }
        }
    }
    (removed, recent, None)
}

fn tally(removed: &[GcItem], older_than: Duration) -> GcTally {
    let mut t = GcTally {
        older_than_secs: older_than.as_secs(),
        ..GcTally::default()
    };
    for item in removed {
        match item.kind {
            GcItemKind::Object => {
                t.objects += 1;
                t.object_bytes += item.size_bytes;
            }
            GcItemKind::TempFile => {
                t.temp_files += 1;
                t.temp_bytes += item.size_bytes;
            }
        }
    }
    t
}

impl Ops {
    /// Lists (dry run) or removes the objects of `store` that no template version references and
    /// that were written before the grace period, and stale temp files there and in the cache.
    /// Objects are shared by every project, so this is the store administrator's; a removal is
    /// audited with its counts and bytes, even when it stopped on an error midway.
    pub async fn collect_garbage(
        &self,
        store: Arc<dyn ArtifactStore>,
        req: &GcRequest<'_>,
    ) -> OpsResult<GcReport> {
        self.require_administrator(
            "collecting artifact garbage (objects are shared by every project)",
        )?;
        if req.delete && self.store.is_read_only() {
            return Err(OpsError::Refused(
                "the store is open read-only, and `gc --delete` removes objects and writes an \
                 audit event; run it without --read-only, or without --delete for a dry run"
                    .into(),
            ));
        }
        // Read before listing the objects: a version committed after this read references
        // objects written after it, which the grace period keeps.
        let referenced: HashSet<String> = self
            .store
            .referenced_artifacts()
            .await?
            .into_iter()
            .collect();
        let cutoff = SystemTime::now()
            .checked_sub(req.older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let cache_dir: Option<PathBuf> = req.cache_dir.map(Path::to_owned);
        let delete = req.delete;
        let blocking_store = store.clone();
        let (plan, removed, recent_again, failure) = tokio::task::spawn_blocking(move || {
            let plan = plan(&*blocking_store, &referenced, cache_dir.as_deref(), cutoff)?;
            let (removed, recent_again, failure) = if delete {
                execute(&*blocking_store, &plan, cutoff)
            } else {
                let listed = plan.objects.iter().map(object_item);
                (
                    listed
                        .chain(plan.temp_files.iter().map(temp_item))
                        .collect(),
                    0,
                    None,
                )
            };
            Ok::<_, std::io::Error>((plan, removed, recent_again, failure))
        })
        .await
        .map_err(|e| OpsError::Refused(format!("gc task failed: {e}")))?
        .map_err(|e| {
            OpsError::Refused(format!(
                "cannot list the artifact store {}: {e}",
                store.location()
            ))
        })?;
        let location = store.location();
        let tallied = tally(&removed, req.older_than);
        if delete {
            self.store
                .record_artifact_gc(self.actor(), &location, &tallied)
                .await?;
        }
        if let Some(failure) = failure {
            return Err(OpsError::Refused(format!(
                "gc stopped after removing {} files ({} bytes): cannot remove {failure}",
                removed.len(),
                tallied.object_bytes + tallied.temp_bytes
            )));
        }
        Ok(GcReport {
            store: location,
            dry_run: !delete,
            older_than_secs: req.older_than.as_secs(),
            referenced: plan.referenced,
            recent: plan.recent + recent_again,
            count: removed.len(),
            bytes: tallied.object_bytes + tallied.temp_bytes,
            removed,
        })
    }
}
