//! Where bundle files live: a content-addressed artifact store (objects named by their sha256), a
//! local cache keyed the same way, and the resolver that serves a version's files from them.

mod resolver;
mod s3;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use resolver::{
    Resolution, ResolveRequest, ResolvedArtifact, Resolver, ResolverConfig, Source,
};
pub use s3::{S3ArtifactStore, S3Config};

use crate::domain::template::hex;

const CHUNK: usize = 1 << 20;

/// A store of immutable objects named by their sha256. Immutability comes from the names (and the
/// database's rows), never from the store: an S3-style store may overwrite on every put.
pub trait ArtifactStore: Send + Sync {
    fn location(&self) -> String;
    /// Streams `src` into the store under its sha256 in one pass; answers (sha256, size).
    fn put_file(&self, src: &Path) -> io::Result<(String, u64)>;
    /// Copies the object named `sha256` to `dest`.
    fn fetch(&self, sha256: &str, dest: &Path) -> io::Result<()>;
}

/// Objects as files under `root/ab/abcdef…`.
#[derive(Debug, Clone)]
pub struct FsArtifactStore {
    root: PathBuf,
}

impl FsArtifactStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn object_path(&self, sha256: &str) -> PathBuf {
        object_path(&self.root, sha256)
    }
}

pub fn object_path(root: &Path, sha256: &str) -> PathBuf {
    root.join(sha256.get(..2).unwrap_or("xx")).join(sha256)
}

/// Copies `src` to a temporary file in `dir` while hashing it; answers the temp path, the sha256
/// and the size. The caller renames the file into place (or removes it).
pub fn copy_hashing(src: &Path, dir: &Path) -> io::Result<(PathBuf, String, u64)> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".incoming-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let result = (|| {
        let mut input = File::open(src)?;
        let mut out = File::create(&tmp)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
        out.sync_all()?;
        Ok((hex(&hasher.finalize()), size))
    })();
    match result {
        Ok((sha, size)) => Ok((tmp, sha, size)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// The sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut input = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

impl ArtifactStore for FsArtifactStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put_file(&self, src: &Path) -> io::Result<(String, u64)> {
        let (tmp, sha, size) = copy_hashing(src, &self.root)?;
        let dest = self.object_path(&sha);
        let placed = dest
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|()| std::fs::rename(&tmp, &dest));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok((sha, size))
    }

    fn fetch(&self, sha256: &str, dest: &Path) -> io::Result<()> {
        std::fs::copy(self.object_path(sha256), dest).map(|_| ())
    }
}
