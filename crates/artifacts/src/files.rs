//! Reading files that others control (bundle folders, caches) without being fooled or stalled,
//! and writing files that others read without ever showing them half of one.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::domain::template::hex;

const CHUNK: usize = 1 << 20;

/// Every temp file ospdeck writes starts with this, so that `gc` can tell leftovers of an
/// interrupted write from anything else in a directory.
pub const TEMP_PREFIX: &str = ".incoming-";

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The error of a file over its limit; `what` names the limit (`one artifact ([artifacts] …)`).
fn too_large(what: &str, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("more than {limit} bytes, the limit for {what}"),
    )
}

/// Refuses anything but a regular file of at most `max_bytes`.
pub fn check_regular(meta: &Metadata, max_bytes: u64, what: &str) -> io::Result<()> {
    let kind = meta.file_type();
    let other = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else {
        Some("not a file")
    };
    if let Some(other) = other {
        return Err(invalid(format!("{other}, not a regular file")));
    }
    if meta.len() > max_bytes {
        return Err(too_large(what, max_bytes));
    }
    Ok(())
}

/// Opens a regular file (links followed) of at most `max_bytes` for reading. The path is checked
/// before opening, so a FIFO or a device is never opened; the opened file is checked again, so a
/// FIFO swapped in between is caught (and O_NONBLOCK keeps that open from hanging).
pub fn open_regular_file(path: &Path, max_bytes: u64, what: &str) -> io::Result<File> {
    check_regular(&std::fs::metadata(path)?, max_bytes, what)?;
    open_checked(path, max_bytes, what)
}

/// The second half of [`open_regular_file`]: what is opened is judged by its descriptor.
fn open_checked(path: &Path, max_bytes: u64, what: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    check_regular(&file.metadata()?, max_bytes, what)?;
    Ok(file)
}

/// A reader that fails once more than `limit` bytes came through: a file that grows while it is
/// read cannot get past a limit checked on its size beforehand.
pub struct Capped<R> {
    inner: R,
    limit: u64,
    seen: u64,
    what: &'static str,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, limit: u64, what: &'static str) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            what,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen = self.seen.saturating_add(n as u64);
        if self.seen > self.limit {
            return Err(too_large(self.what, self.limit));
        }
        Ok(n)
    }
}

/// Copies `input` to `out` in one pass while hashing it; answers the sha256 and the size.
pub fn copy_hashing<R, W>(input: &mut R, out: &mut W) -> io::Result<(String, u64)>
where
    R: Read + ?Sized,
    W: Write + ?Sized,
{
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// The sha256 of a regular file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = open_regular_file(path, u64::MAX, "a file")?;
    Ok(copy_hashing(&mut file, &mut io::sink())?.0)
}

/// A new temp file in `dir` (created if missing) with a name no other writer uses; `persist` it
/// into place (an atomic rename in the same directory tree), or drop it to remove it.
pub fn temp_file_in(dir: &Path) -> io::Result<NamedTempFile> {
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .rand_bytes(12)
        .tempfile_in(dir)
}

/// A file a write left behind: where it is, its size, when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOver {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub modified: SystemTime,
}

/// Temp files (by their prefix) in `dir` and in its subdirectories one level down that were last
/// written before `cutoff`; a write still under way keeps touching its file, so it is left alone.
pub fn stale_temp_files(dir: &Path, cutoff: SystemTime) -> io::Result<Vec<LeftOver>> {
    let mut found = Vec::new();
    let top = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in top {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            for inner in std::fs::read_dir(entry.path())? {
                let inner = inner?;
                collect_stale(&inner.path(), &inner.metadata()?, cutoff, &mut found);
            }
        } else {
            collect_stale(&entry.path(), &meta, cutoff, &mut found);
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

fn collect_stale(path: &Path, meta: &Metadata, cutoff: SystemTime, found: &mut Vec<LeftOver>) {
    let is_temp = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TEMP_PREFIX));
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if is_temp && meta.is_file() && modified < cutoff {
        found.push(LeftOver {
            path: path.to_owned(),
            size_bytes: meta.len(),
            modified,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_open_and_a_fifo_does_not_block() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        assert!(status.success());
        let err = open_regular_file(&fifo, 10, "x")
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("a FIFO, not a regular file"));
        // A FIFO swapped in after the path was checked: opening it (no writer) returns at once,
        // and the opened descriptor is refused.
        let err = open_checked(&fifo, 10, "x").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("a FIFO, not a regular file"));
        let err = open_regular_file(Path::new("/dev/zero"), 10, "x").err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("a character device, not a regular file")
        );
        let err = open_regular_file(dir.path(), 10, "x").err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("a directory, not a regular file")
        );
        let file = dir.path().join("f");
        std::fs::write(&file, "12345")?;
        assert!(open_regular_file(&file, 5, "x").is_ok());
        let err = open_regular_file(&file, 4, "the test").err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("more than 4 bytes, the limit for the test")
        );
        Ok(())
    }

    #[test]
    fn a_capped_reader_stops_at_its_limit() {
        let mut ok = Capped::new(&b"12345"[..], 5, "x");
        assert_eq!(
            copy_hashing(&mut ok, &mut io::sink()).map(|r| r.1).ok(),
            Some(5)
        );
        let mut over = Capped::new(&b"123456"[..], 5, "six");
        let err = copy_hashing(&mut over, &mut io::sink()).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("more than 5 bytes, the limit for six")
        );
    }

    #[test]
    fn stale_temp_files_are_found_by_prefix_and_age() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let old = temp_file_in(&dir.path().join("ab"))?;
        let (_, old_path) = old.keep().map_err(|e| e.error)?;
        std::fs::write(dir.path().join("ab/not-a-temp"), "x")?;
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        let found = stale_temp_files(dir.path(), later)?;
        assert_eq!(
            found.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
            vec![old_path]
        );
        let earlier = SystemTime::UNIX_EPOCH;
        assert!(stale_temp_files(dir.path(), earlier)?.is_empty());
        assert!(stale_temp_files(&dir.path().join("missing"), later)?.is_empty());
        Ok(())
    }
}
