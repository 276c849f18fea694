//! Where bundle files live: a content-addressed artifact store (objects named by their sha256), a
//! local cache keyed the same way, and the resolver that serves a version's files from them.
//!
//! Many processes share these directories (resolvers, publishers): every write goes to a
//! temp file of its own and is renamed into place, so a reader sees a whole file or none.

mod files;
mod resolver;
mod s3;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use files::{
    Capped, TEMP_PREFIX, check_regular, copy_hashing, open_regular_file, sha256_file, temp_file_in,
};
pub use resolver::{
    Resolution, ResolveRequest, ResolvedArtifact, Resolver, ResolverConfig, Source,
};
pub use s3::{S3ArtifactStore, S3Config};

pub use crate::domain::template::DEFAULT_MAX_ARTIFACT_BYTES;

/// What an over-limit artifact is measured against, in its error.
pub const ARTIFACT_LIMIT: &str = "one artifact ([artifacts] max_artifact_bytes)";

/// A store of immutable objects named by their sha256. Immutability comes from the names (and the
/// database's rows), never from the store: an S3-style store may overwrite on every put.
pub trait ArtifactStore: Send + Sync {
    fn location(&self) -> String;
    /// The largest object a put accepts.
    fn max_object_bytes(&self) -> u64;
    /// Streams the regular file `src` into the store under its sha256; answers (sha256, size).
    /// The object appears whole or not at all.
    fn put_file(&self, src: &Path) -> io::Result<(String, u64)>;
    /// Streams the object named `sha256` into `dest`, failing once more than `max_bytes` came.
    fn fetch(&self, sha256: &str, dest: &mut dyn Write, max_bytes: u64) -> io::Result<u64>;
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
        // Replacing an existing copy (same bytes) is harmless.
        tmp.persist(&dest).map_err(|e| e.error)?;
        Ok((sha, size))
    }

    fn fetch(&self, sha256: &str, dest: &mut dyn Write, max_bytes: u64) -> io::Result<u64> {
        let what = "this artifact's recorded size";
        let object = open_regular_file(&self.object_path(sha256), max_bytes, what)?;
        let (_, size) = copy_hashing(&mut Capped::new(object, max_bytes, what), dest)?;
        Ok(size)
    }
}
