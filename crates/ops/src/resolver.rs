//! The resolver, shared by the CLI and the console: which version a request means (cached for a
//! TTL), and for each of its files a verified local path with the source that served it.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use ospdeck_artifacts::{
    ArtifactStore, Capped, copy_hashing, object_path, open_regular_file, temp_file_in,
};

use crate::domain::template::{StoredArtifact, hex};
use crate::{Ops, OpsError, OpsResult, Selector};

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
            .store
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
        let size = u64::try_from(a.size_bytes).unwrap_or(0);
        let cached = object_path(&self.config.cache_dir, &a.sha256);
        if verified(&cached, &a.sha256, size, "cache", true) {
            return Ok((cached, Source::Cache));
        }
        if let Some(remote) = &self.config.remote {
            let remote = remote.clone();
            let sha = a.sha256.clone();
            let dest = cached.clone();
            let fetched =
                tokio::task::spawn_blocking(move || download(&*remote, &sha, size, &dest))
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
            if verified(&file, &a.sha256, size, "filesystem", false) {
                return Ok((file, Source::Filesystem));
            }
        }
        Err(OpsError::NotFound(format!(
            "{template} {version}: {} (sha256 {}) is not available from any source",
            a.path, a.sha256
        )))
    }
}

/// Downloads an object into the cache: into a temp file of this download alone, hashed on the
/// way, renamed into place only when it holds exactly `sha256`. Resolvers that download the same
/// object at once each rename a whole, identical copy; none ever reads another's partial one.
fn download(remote: &dyn ArtifactStore, sha256: &str, size: u64, dest: &Path) -> io::Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| io::Error::other("cache path without a directory"))?;
    let mut tmp = temp_file_in(dir)?;
    let mut hashing = HashingWriter::new(tmp.as_file_mut());
    remote.fetch(sha256, &mut hashing, size)?;
    let actual = hashing.finish();
    if actual != sha256 {
        tracing::error!(
            expected = sha256,
            actual,
            source = "remote",
            "sha256 mismatch; not served"
        );
        return Err(io::Error::other("sha256 mismatch"));
    }
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Hashes what it passes on.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// True when `path` holds exactly `sha256` (`size` bytes; a longer file is not read past that).
/// A mismatch is logged and, for copies we own, discarded, but only while the path still names
/// the file that was checked: another resolver may have just renamed a good copy into place.
fn verified(path: &Path, sha256: &str, size: u64, source: &str, discard: bool) -> bool {
    let checked = (|| -> io::Result<(Metadata, io::Result<(String, u64)>)> {
        let mut file = open_regular_file(path, u64::MAX, "a file")?;
        let meta = file.metadata()?;
        let hashed = copy_hashing(
            &mut Capped::new(&mut file, size, "the artifact's recorded size"),
            &mut io::sink(),
        );
        Ok((meta, hashed))
    })();
    let (meta, problem) = match checked {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, source, "unreadable copy; not served");
            return false;
        }
        Ok((_, Ok((actual, _)))) if actual == sha256 => return true,
        Ok((meta, Ok((actual, _)))) => (meta, actual),
        Ok((meta, Err(e))) => (meta, e.to_string()),
    };
    tracing::error!(path = %path.display(), expected = sha256, actual = problem, source, "sha256 mismatch; not served");
    if discard {
        let still_there = std::fs::symlink_metadata(path)
            .is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino());
        if still_there {
            let _ = std::fs::remove_file(path);
        }
    }
    false
}
