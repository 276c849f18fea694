//! The resolver, shared by the CLI and the console: which version a request means (cached for a
//! TTL), and for each of its files a verified local path with the source that served it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ArtifactStore, object_path, sha256_file};
use crate::domain::template::StoredArtifact;
use crate::ops::{Ops, OpsError, OpsResult, Selector};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Remote,
    Cache,
    Filesystem,
}

#[derive(Clone)]
pub struct ResolverConfig {
    /// None when remote resolution is switched off (config or environment).
    pub remote: Option<Arc<dyn ArtifactStore>>,
    /// Local content cache, keyed by sha256 like the store.
    pub cache_dir: PathBuf,
    /// Files laid out as `<dir>/<template>/<version>/<path>`, served when nothing else can.
    pub fallback_dir: Option<PathBuf>,
    /// How long a label or default resolution is reused.
    pub pointer_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct ResolveRequest {
    pub template: String,
    pub selector: Selector,
    pub locale: Option<String>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResolvedArtifact {
    pub kind: String,
    pub locale: Option<String>,
    pub role: Option<String>,
    pub path: String,
    pub file: PathBuf,
    pub sha256: String,
    pub size_bytes: i64,
    pub source: Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub template: String,
    pub version: String,
    pub digest: String,
    pub artifacts: Vec<ResolvedArtifact>,
}

struct Resolved {
    version: String,
    digest: String,
    artifacts: Vec<StoredArtifact>,
}

pub struct Resolver {
    ops: Ops,
    config: ResolverConfig,
    /// (template, selector, unit) → version and its files, until the TTL runs out.
    pointers: Mutex<HashMap<String, (Instant, Arc<Resolved>)>>,
}

impl Resolver {
    pub fn new(ops: Ops, config: ResolverConfig) -> Self {
        Self {
            ops,
            config,
            pointers: Mutex::new(HashMap::new()),
        }
    }

    async fn version(&self, req: &ResolveRequest) -> OpsResult<Arc<Resolved>> {
        let key = format!("{}\0{:?}\0{:?}", req.template, req.selector, req.unit);
        // Exact versions never change (their files are immutable), so they can be kept too.
        if let Ok(map) = self.pointers.lock()
            && let Some((at, hit)) = map.get(&key)
            && at.elapsed() < self.config.pointer_ttl
        {
            return Ok(hit.clone());
        }
        let v = self
            .ops
            .select_version(&req.template, &req.selector, req.unit.as_deref())
            .await?;
        let artifacts = self
            .ops
            .store()
            .version_artifacts(&req.template, &v.version)
            .await?;
        let resolved = Arc::new(Resolved {
            version: v.version,
            digest: v.digest,
            artifacts,
        });
        if let Ok(mut map) = self.pointers.lock() {
            map.insert(key, (Instant::now(), resolved.clone()));
        }
        Ok(resolved)
    }

    pub async fn resolve(&self, req: &ResolveRequest) -> OpsResult<Resolution> {
        let resolved = self.version(req).await?;
        let wanted: Vec<&StoredArtifact> = resolved
            .artifacts
            .iter()
            .filter(|a| match (&req.locale, &a.locale) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            })
            .collect();
        let mut artifacts = Vec::with_capacity(wanted.len());
        for a in wanted {
            let (file, source) = self.fetch(&req.template, &resolved.version, a).await?;
            artifacts.push(ResolvedArtifact {
                kind: a.kind.clone(),
                locale: a.locale.clone(),
                role: a.role.clone(),
                path: a.path.clone(),
                file,
                sha256: a.sha256.clone(),
                size_bytes: a.size_bytes,
                source,
            });
        }
        Ok(Resolution {
            template: req.template.clone(),
            version: resolved.version.clone(),
            digest: resolved.digest.clone(),
            artifacts,
        })
    }

    /// Cache, then remote, then the filesystem fallback; every copy's sha256 is checked, and a
    /// bad copy is logged, discarded and never served.
    async fn fetch(
        &self,
        template: &str,
        version: &str,
        a: &StoredArtifact,
    ) -> OpsResult<(PathBuf, Source)> {
        let cached = object_path(&self.config.cache_dir, &a.sha256);
        if verified(&cached, &a.sha256, "cache", true) {
            return Ok((cached, Source::Cache));
        }
        if let Some(remote) = &self.config.remote {
            let remote = remote.clone();
            let sha = a.sha256.clone();
            let dest = cached.clone();
            let fetched = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let tmp = dest.with_extension("incoming");
                remote.fetch(&sha, &tmp)?;
                if verified(&tmp, &sha, "remote", true) {
                    std::fs::rename(&tmp, &dest)
                } else {
                    Err(std::io::Error::other("sha256 mismatch"))
                }
            })
            .await
            .map_err(|e| OpsError::Refused(format!("resolve task failed: {e}")))?;
            match fetched {
                Ok(()) => return Ok((cached, Source::Remote)),
                Err(e) => {
                    tracing::warn!(sha256 = %a.sha256, error = %e, "remote store could not serve")
                }
            }
        }
        if let Some(dir) = &self.config.fallback_dir {
            let file = dir.join(template).join(version).join(&a.path);
            if verified(&file, &a.sha256, "filesystem", false) {
                return Ok((file, Source::Filesystem));
            }
        }
        Err(OpsError::NotFound(format!(
            "{template} {version}: {} (sha256 {}) is not available from any source",
            a.path, a.sha256
        )))
    }
}

/// True when `path` holds exactly `sha256`. A mismatch is logged and, for copies we own, deleted.
fn verified(path: &Path, sha256: &str, source: &str, discard: bool) -> bool {
    match sha256_file(path) {
        Ok(actual) if actual == sha256 => true,
        Ok(actual) => {
            tracing::error!(path = %path.display(), expected = sha256, actual, source, "sha256 mismatch; not served");
            if discard {
                let _ = std::fs::remove_file(path);
            }
            false
        }
        Err(_) => false,
    }
}
