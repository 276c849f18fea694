//! Artifacts in S3-compatible object storage (Supabase Storage's S3 endpoint, MinIO, AWS) through
//! the object_store crate. Such endpoints overwrite on every put: the objects' sha256 names and the
//! database rows are what keep them immutable, and every read is hash-checked by the resolver.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, WriteMultipart};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use super::{
    ARTIFACT_LIMIT, ArtifactStore, Capped, DEFAULT_MAX_ARTIFACT_BYTES, LeftOver, StoredObject,
    check_object_name, copy_hashing, is_object_name, open_regular_file,
};
use crate::domain::template::hex;

/// `[artifacts.s3]` in config.toml. Keys never leave this struct: not on screen, not in logs.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Objects go under this prefix (default `artifacts`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &"***")
            .field("secret_access_key", &"***")
            .finish()
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_prefix() -> String {
    "artifacts".into()
}

pub struct S3ArtifactStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    runtime: Handle,
    max_object_bytes: u64,
}

impl S3ArtifactStore {
    /// Needs a tokio runtime; the store's calls block on it (they run on blocking threads).
    pub fn new(config: &S3Config) -> io::Result<Self> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&config.endpoint)
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(io::Error::other)?;
        Ok(Self {
            store: Arc::new(store),
            prefix: config.prefix.trim_matches('/').to_owned(),
            location: format!("s3 {}/{}", config.endpoint, config.bucket),
            runtime: Handle::try_current().map_err(io::Error::other)?,
            max_object_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
        })
    }

    pub fn with_max_object_bytes(mut self, max: u64) -> Self {
        self.max_object_bytes = max;
        self
    }

    fn key(&self, sha256: &str) -> ObjectPath {
        ObjectPath::from(format!(
            "{}/{}/{}",
            self.prefix,
            &sha256[..2.min(sha256.len())],
            sha256
        ))
    }

    /// The object name of a key, if the key is one of this store's objects.
    fn object_name<'k>(&self, key: &'k ObjectPath) -> Option<&'k str> {
        let rest = key.as_ref().strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let (dir, name) = rest.split_once('/')?;
        (is_object_name(name) && name.starts_with(dir) && dir.len() == 2).then_some(name)
    }
}

impl ArtifactStore for S3ArtifactStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes
    }

    /// Hashes first (the key must be known), then streams the file up in parts while hashing it
    /// again: a multipart upload becomes visible only when completed, and it is completed only if
    /// the bytes sent are the ones the key names; otherwise it is aborted and nothing appears.
    fn put_file(&self, src: &Path) -> io::Result<(String, u64)> {
        let limit = self.max_object_bytes;
        let mut file = open_regular_file(src, limit, ARTIFACT_LIMIT)?;
        let (sha, _) = copy_hashing(
            &mut Capped::new(&mut file, limit, ARTIFACT_LIMIT),
            &mut io::sink(),
        )?;
        file.seek(SeekFrom::Start(0))?;
        let key = self.key(&sha);
        let store = self.store.clone();
        let expected = sha.clone();
        let size = self.runtime.block_on(async move {
            let upload = store.put_multipart(&key).await.map_err(io::Error::other)?;
            let mut writer = WriteMultipart::new(upload);
            let mut input = Capped::new(file, limit, ARTIFACT_LIMIT);
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            let sent = loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(e),
                };
                // Bounded memory: at most a few parts in flight.
                if let Err(e) = writer.wait_for_capacity(4).await {
                    break Err(io::Error::other(e));
                }
                hasher.update(&buf[..n]);
                writer.write(&buf[..n]);
                size += n as u64;
            };
            let sent = sent.and_then(|()| {
                if hex(&hasher.finalize()) == expected {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the file changed while it was being stored",
                    ))
                }
            });
            match sent {
                Ok(()) => writer.finish().await.map_err(io::Error::other)?,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            Ok::<u64, io::Error>(size)
        })?;
        Ok((sha, size))
    }

    fn fetch(&self, sha256: &str, dest: &mut dyn Write, max_bytes: u64) -> io::Result<u64> {
        let key = self.key(sha256);
        let store = self.store.clone();
        self.runtime.block_on(async move {
            let mut chunks = store
                .get(&key)
                .await
                .map_err(io::Error::other)?
                .into_stream();
            let mut size = 0u64;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(io::Error::other)?;
                size += chunk.len() as u64;
                if size > max_bytes {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("more than {max_bytes} bytes, this artifact's recorded size"),
                    ));
                }
                dest.write_all(&chunk)?;
            }
            Ok(size)
        })
    }

    fn list_objects(&self) -> io::Result<Vec<StoredObject>> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let store = self.store.clone();
        let listed: Vec<ObjectMeta> = self.runtime.block_on(async move {
            store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(io::Error::other)
        })?;
        let mut objects: Vec<StoredObject> = listed
            .iter()
            .filter_map(|meta| {
                Some(StoredObject {
                    sha256: self.object_name(&meta.location)?.to_owned(),
                    size_bytes: meta.size,
                    modified: meta.last_modified.into(),
                })
            })
            .collect();
        objects.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        Ok(objects)
    }

    /// S3 has no conditional delete here: the object's age is read again right before deleting
    /// it, which leaves a put in the same instant (milliseconds, against a grace period of hours).
    fn remove_object(&self, sha256: &str, cutoff: SystemTime) -> io::Result<bool> {
        check_object_name(sha256)?;
        let key = self.key(sha256);
        let store = self.store.clone();
        self.runtime.block_on(async move {
            let meta = match store.head(&key).await {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(io::Error::other(e)),
            };
            if SystemTime::from(meta.last_modified) >= cutoff {
                return Ok(false);
            }
            store.delete(&key).await.map_err(io::Error::other)?;
            Ok(true)
        })
    }

    /// Interrupted multipart uploads are invisible and the bucket's lifecycle rules expire them.
    fn stale_temp_files(&self, _cutoff: SystemTime) -> io::Result<Vec<LeftOver>> {
        Ok(Vec::new())
    }
}
