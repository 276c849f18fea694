//! Where bundle files live: a content-addressed artifact store (objects named by their sha256),
//! and reading files from disk without trusting them (regular files only, bounded). The resolver
//! that serves a version's files from the store, a cache and a fallback is a use case, in ops.
//!
//! Many processes share these directories (resolvers, publishers, `gc`): every write goes to a
//! temp file of its own and is renamed into place, so a reader sees a whole file or none.

/// The pure layer below, under the name the modules of this crate use for it.
use ospdeck_domain as domain;

mod files;
mod s3;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

pub use files::{
    Capped, LeftOver, TEMP_PREFIX, check_regular, copy_hashing, open_regular_file, sha256_file,
    stale_temp_files, temp_file_in,
};
pub use s3::{S3ArtifactStore, S3Config};

pub use crate::domain::template::DEFAULT_MAX_ARTIFACT_BYTES;

/// What an over-limit artifact is measured against, in its error.
pub const ARTIFACT_LIMIT: &str = "one artifact ([artifacts] max_artifact_bytes)";

/// An object as a store lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredObject {
    pub sha256: String,
    pub size_bytes: u64,
    /// When it was last written: a publish rewrites every object it stores, even one already
    /// there, so this is never older than the newest publish that uploaded it.
    #[serde(skip)]
    pub modified: SystemTime,
}

/// A store of immutable objects named by their sha256. Immutability comes from the names (and the
/// database's rows), never from the store: an S3-style store may overwrite on every put.
pub trait ArtifactStore: Send + Sync {
    fn location(&self) -> String;
    /// The largest object a put accepts.
    fn max_object_bytes(&self) -> u64;
    /// Streams the regular file `src` into the store under its sha256; answers (sha256, size).
    /// The object appears whole or not at all, and is written afresh even when it exists.
    fn put_file(&self, src: &Path) -> io::Result<(String, u64)>;
    /// Streams the object named `sha256` into `dest`, failing once more than `max_bytes` came.
    fn fetch(&self, sha256: &str, dest: &mut dyn Write, max_bytes: u64) -> io::Result<u64>;
    /// Every object; anything else under the store's root or prefix is left out.
    fn list_objects(&self) -> io::Result<Vec<StoredObject>>;
    /// Removes the object unless it was written at or after `cutoff` (a publish may have just
    /// stored it again); answers whether it was removed.
    fn remove_object(&self, sha256: &str, cutoff: SystemTime) -> io::Result<bool>;
    /// Temp files of interrupted puts, last written before `cutoff` (none where the store keeps
    /// no local files).
    fn stale_temp_files(&self, cutoff: SystemTime) -> io::Result<Vec<LeftOver>>;
}

/// True for a 64-character lower-case hex name, the only names objects have.
pub fn is_object_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Refuses a name that is not an object's before it becomes part of a path or a key.
fn check_object_name(name: &str) -> io::Result<()> {
    if is_object_name(name) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an object name"),
        ))
    }
}

/// Objects as files under `root/ab/abcdef…`.
#[derive(Debug, Clone)]
pub struct FsArtifactStore {
    root: PathBuf,
    max_object_bytes: u64,
}

impl FsArtifactStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            max_object_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
        }
    }

    pub fn with_max_object_bytes(mut self, max: u64) -> Self {
        self.max_object_bytes = max;
        self
    }

    pub fn object_path(&self, sha256: &str) -> PathBuf {
        object_path(&self.root, sha256)
    }
}

pub fn object_path(root: &Path, sha256: &str) -> PathBuf {
    root.join(sha256.get(..2).unwrap_or("xx")).join(sha256)
}

impl ArtifactStore for FsArtifactStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    fn put_file(&self, src: &Path) -> io::Result<(String, u64)> {
        let input = open_regular_file(src, self.max_object_bytes, ARTIFACT_LIMIT)?;
        // The name is known only once the bytes are hashed: the temp file sits at the root, on
        // the same file system as its final place, and is dropped (removed) on any error.
        let mut tmp = temp_file_in(&self.root)?;
        let (sha, size) = copy_hashing(
            &mut Capped::new(input, self.max_object_bytes, ARTIFACT_LIMIT),
            tmp.as_file_mut(),
        )?;
        tmp.as_file().sync_all()?;
        let dest = self.object_path(&sha);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Replacing an existing copy (same bytes) is harmless, and its fresh mtime keeps `gc`'s
        // grace period away from an object this publish is about to reference.
        tmp.persist(&dest).map_err(|e| e.error)?;
        Ok((sha, size))
    }

    fn fetch(&self, sha256: &str, dest: &mut dyn Write, max_bytes: u64) -> io::Result<u64> {
        let what = "this artifact's recorded size";
        let object = open_regular_file(&self.object_path(sha256), max_bytes, what)?;
        let (_, size) = copy_hashing(&mut Capped::new(object, max_bytes, what), dest)?;
        Ok(size)
    }

    fn list_objects(&self) -> io::Result<Vec<StoredObject>> {
        let mut objects = Vec::new();
        let top = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(objects),
            Err(e) => return Err(e),
        };
        for dir in top {
            let dir = dir?;
            let prefix = dir.file_name();
            let Some(prefix) = prefix.to_str() else {
                continue;
            };
            if prefix.len() != 2 || !dir.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(dir.path())? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                // Not following links: a link here was not put by ospdeck.
                let meta = entry.metadata()?;
                if is_object_name(name) && name.starts_with(prefix) && meta.is_file() {
                    objects.push(StoredObject {
                        sha256: name.to_owned(),
                        size_bytes: meta.len(),
                        modified: meta.modified()?,
                    });
                }
            }
        }
        objects.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        Ok(objects)
    }

    fn remove_object(&self, sha256: &str, cutoff: SystemTime) -> io::Result<bool> {
        check_object_name(sha256)?;
        let path = self.object_path(sha256);
        // Moved aside first, then judged by the file actually moved: a publish that stores the
        // object again meanwhile writes a new file at `path`, which is never the one removed. The
        // aside name is a temp file's, so a gc that dies here leaves a leftover the next one finds.
        let aside = match tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .rand_bytes(12)
            .make_in(&self.root, |aside| std::fs::rename(&path, aside))
        {
            Ok(aside) => aside.keep().map_err(|e| e.error)?.1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match std::fs::metadata(&aside).and_then(|m| m.modified()) {
            Ok(modified) if modified < cutoff => {
                std::fs::remove_file(&aside)?;
                Ok(true)
            }
            judged => {
                // Put back without replacing: if a publish stored the object again meanwhile,
                // its fresh copy stays and this one goes.
                match std::fs::hard_link(&aside, &path) {
                    Ok(()) => std::fs::remove_file(&aside)?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        std::fs::remove_file(&aside)?
                    }
                    Err(_) => std::fs::rename(&aside, &path)?,
                }
                judged.map(|_| false)
            }
        }
    }

    fn stale_temp_files(&self, cutoff: SystemTime) -> io::Result<Vec<LeftOver>> {
        stale_temp_files(&self.root, cutoff)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_object_is_removed_only_when_older_than_the_cutoff() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = FsArtifactStore::new(dir.path().join("store"));
        let src = dir.path().join("file");
        std::fs::write(&src, "bytes")?;
        let (sha, size) = store.put_file(&src)?;
        assert_eq!(size, 5);
        let listed = store.list_objects()?;
        assert_eq!(listed.iter().map(|o| &o.sha256).collect::<Vec<_>>(), [&sha]);
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        assert!(
            !store.remove_object(&sha, an_hour_ago)?,
            "a fresh object went"
        );
        assert_eq!(sha256_file(&store.object_path(&sha))?, sha);
        assert!(
            store
                .stale_temp_files(SystemTime::now() + Duration::from_secs(60))?
                .is_empty()
        );
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        assert!(store.remove_object(&sha, in_a_minute)?);
        assert!(!store.object_path(&sha).exists());
        assert!(!store.remove_object(&sha, in_a_minute)?, "already gone");
        assert!(
            store
                .remove_object("../../etc/passwd", in_a_minute)
                .is_err()
        );
        assert!(store.list_objects()?.is_empty());
        Ok(())
    }
}
