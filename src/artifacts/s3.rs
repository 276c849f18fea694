//! Artifacts in S3-compatible object storage (Supabase Storage's S3 endpoint, MinIO, AWS) through
//! the object_store crate. Such endpoints overwrite on every put: the objects' sha256 names and the
//! database rows are what keep them immutable, and every read is hash-checked by the resolver.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use serde::Deserialize;
use tokio::runtime::Handle;

use super::{ArtifactStore, sha256_file};

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
        })
    }

    fn key(&self, sha256: &str) -> ObjectPath {
        ObjectPath::from(format!(
            "{}/{}/{}",
            self.prefix,
            &sha256[..2.min(sha256.len())],
            sha256
        ))
    }
}

impl ArtifactStore for S3ArtifactStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// Hashes first (the name must be known), then streams the file up in parts.
    fn put_file(&self, src: &Path) -> io::Result<(String, u64)> {
        let sha = sha256_file(src)?;
        let key = self.key(&sha);
        let store = self.store.clone();
        let size = self.runtime.block_on(async move {
            let upload = store.put_multipart(&key).await.map_err(io::Error::other)?;
            let mut writer = WriteMultipart::new(upload);
            let mut file = std::fs::File::open(src)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                // Bounded memory: at most a few parts in flight.
                writer
                    .wait_for_capacity(4)
                    .await
                    .map_err(io::Error::other)?;
                writer.write(&buf[..n]);
                size += n as u64;
            }
            writer.finish().await.map_err(io::Error::other)?;
            Ok::<u64, io::Error>(size)
        })?;
        Ok((sha, size))
    }

    fn fetch(&self, sha256: &str, dest: &Path) -> io::Result<()> {
        let key = self.key(sha256);
        let store = self.store.clone();
        let bytes = self.runtime.block_on(async move {
            store
                .get(&key)
                .await
                .map_err(io::Error::other)?
                .bytes()
                .await
                .map_err(io::Error::other)
        })?;
        let mut out = std::fs::File::create(dest)?;
        out.write_all(&bytes)?;
        out.sync_all()
    }
}
