//! The S3 artifact store against a real S3-compatible server started here (moto_server, from
//! PyPI: `pip install 'moto[server]'`). Its puts overwrite silently, as Supabase Storage's do.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ospdeck::artifacts::{ArtifactStore, S3ArtifactStore, S3Config};
use ospdeck::domain::template::VersionStatus;
use ospdeck::ops::{GcRequest, PublishRequest, Selector};
use ospdeck::ops::{ResolveRequest, Resolver, ResolverConfig, Source};

use common::{Harness, TestResult};

/// A moto server on a free port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Result<Self, common::BoxError> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("moto_server is needed for the S3 test (pip install 'moto[server]'): {e}")
            })?;
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("moto_server did not start within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }

    /// Creates a bucket (moto takes unsigned requests) and answers the store's settings.
    fn bucket(&self, name: &str) -> Result<S3Config, common::BoxError> {
        let status = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{}/{name}", self.endpoint)])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("could not create bucket {name}").into());
        }
        Ok(S3Config {
            endpoint: self.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: name.into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            prefix: "artifacts".into(),
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

conformance!(
    publish_to_s3_resolve_and_catch_a_silent_overwrite,
    gc_on_s3_removes_only_old_unreferenced_objects,
);

mod cases {
    use super::*;

    /// Publishes `bundle` as a version of section7; a stable one becomes the default.
    async fn publish(
        h: &Harness,
        bundle: &std::path::Path,
        version: &str,
        status: VersionStatus,
        store: Arc<dyn ArtifactStore>,
    ) -> Result<(), ospdeck::ops::OpsError> {
        let request = PublishRequest {
            template: "section7",
            version,
            status: Some(status),
            set_default: status == VersionStatus::Stable,
            ..Default::default()
        };
        h.ops
            .publish_bundle(bundle, &request, store, &|_, _| {})
            .await
            .map(|_| ())
    }

    pub async fn publish_to_s3_resolve_and_catch_a_silent_overwrite(h: Harness) -> TestResult {
        let moto = Moto::start()?;
        let config = moto.bucket("ospdeck-test")?;
        let store: Arc<dyn ArtifactStore> = Arc::new(S3ArtifactStore::new(&config)?);
        let work = tempfile::tempdir()?;
        let bundle = work.path().join("bundle");
        std::fs::create_dir_all(bundle.join("fr"))?;
        std::fs::write(bundle.join("fr/master.md"), "bonjour")?;
        // Big enough for a multipart upload (parts of 5 MiB).
        let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(bundle.join("model.bin"), &big)?;
        std::fs::write(
            bundle.join("manifest.json"),
            r#"{"artifacts": [
                {"kind": "master_prompt", "locale": "fr", "path": "fr/master.md", "content_type": "text/markdown"},
                {"kind": "asset", "path": "model.bin", "content_type": "application/octet-stream"}]}"#,
        )?;
        publish(&h, &bundle, "1.0.0", VersionStatus::Stable, store.clone()).await?;
        let resolver = |cache: &str, fallback: bool| {
            Resolver::new(
                h.ops.clone(),
                ResolverConfig {
                    remote: Some(store.clone()),
                    cache_dir: work.path().join(cache),
                    fallback_dir: fallback.then(|| work.path().join("fallback")),
                    pointer_ttl: Duration::from_secs(60),
                },
            )
        };
        let req = ResolveRequest {
            template: "section7".into(),
            selector: Selector::Default,
            locale: Some("fr".into()),
            unit: None,
        };
        let r = resolver("cache-1", false).resolve(&req).await?;
        assert!(r.artifacts.iter().all(|a| a.source == Source::Remote));
        let model = r
            .artifacts
            .iter()
            .find(|a| a.path == "model.bin")
            .ok_or("model")?;
        assert_eq!(std::fs::read(&model.file)?, big);

        // The endpoint overwrites an object without a word; the hash check catches it.
        let fr = r
            .artifacts
            .iter()
            .find(|a| a.path == "fr/master.md")
            .ok_or("fr")?;
        let status = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                "--data-binary",
                "overwritten",
                &format!(
                    "{}/ospdeck-test/artifacts/{}/{}",
                    moto.endpoint,
                    &fr.sha256[..2],
                    fr.sha256
                ),
            ])
            .stdout(Stdio::null())
            .status()?;
        assert!(status.success(), "could not overwrite the object");
        let fallback = work.path().join("fallback/section7/1.0.0/fr");
        std::fs::create_dir_all(&fallback)?;
        std::fs::write(fallback.join("master.md"), "bonjour")?;
        let r = resolver("cache-2", true).resolve(&req).await?;
        let fr = r
            .artifacts
            .iter()
            .find(|a| a.path == "fr/master.md")
            .ok_or("fr")?;
        assert_eq!(fr.source, Source::Filesystem);
        assert_eq!(std::fs::read_to_string(&fr.file)?, "bonjour");
        Ok(())
    }

    /// A PUT of `body` to `key` of the bucket, as any other client of the bucket could make.
    fn put_raw(moto: &Moto, bucket: &str, key: &str, body: &str) -> Result<(), common::BoxError> {
        let url = format!("{}/{bucket}/{key}", moto.endpoint);
        let status = Command::new("curl")
            .args(["-sf", "-X", "PUT", "--data-binary", body, &url])
            .stdout(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("could not put {key}").into())
        }
    }

    /// Whether the bucket lists `key` (moto answers unsigned listings, not unsigned reads).
    fn exists_raw(moto: &Moto, bucket: &str, key: &str) -> Result<bool, common::BoxError> {
        let url = format!("{}/{bucket}?list-type=2&prefix={key}", moto.endpoint);
        let out = Command::new("curl").args(["-sf", &url]).output()?;
        if !out.status.success() {
            return Err(format!("could not list {bucket}").into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).contains(&format!("<Key>{key}</Key>")))
    }

    pub async fn gc_on_s3_removes_only_old_unreferenced_objects(h: Harness) -> TestResult {
        let moto = Moto::start()?;
        let config = moto.bucket("ospdeck-gc")?;
        let store: Arc<dyn ArtifactStore> = Arc::new(S3ArtifactStore::new(&config)?);
        let work = tempfile::tempdir()?;
        for (version, status) in [
            ("1.0.0", VersionStatus::Stable),
            ("1.1.0", VersionStatus::Draft),
        ] {
            let bundle = work.path().join(version);
            std::fs::create_dir_all(&bundle)?;
            std::fs::write(bundle.join("master.md"), format!("bonjour {version}"))?;
            std::fs::write(bundle.join("config.json"), "{}")?;
            std::fs::write(
                bundle.join("manifest.json"),
                r#"{"artifacts": [
                    {"kind": "master_prompt", "locale": "fr", "path": "master.md", "content_type": "text/markdown"},
                    {"kind": "json_config", "path": "config.json", "content_type": "application/json"}]}"#,
            )?;
            publish(&h, &bundle, version, status, store.clone()).await?;
        }
        let draft = h.store.version_artifacts("section7", "1.1.0").await?;
        let garbage = draft
            .iter()
            .find(|a| a.path == "master.md")
            .ok_or("draft master")?
            .clone();
        h.ops.delete_draft("section7", "1.1.0").await?;
        // Other keys in the bucket, under the prefix and outside it, are not ospdeck's objects.
        let stranger = format!("other/{}", garbage.sha256);
        put_raw(&moto, "ospdeck-gc", "artifacts/notes.txt", "keep me")?;
        put_raw(&moto, "ospdeck-gc", &stranger, "keep me too")?;

        let gc = |delete: bool, older_than: Duration| {
            let (ops, store) = (h.ops.clone(), store.clone());
            async move {
                ops.collect_garbage(
                    store,
                    &GcRequest {
                        older_than,
                        delete,
                        cache_dir: None,
                    },
                )
                .await
            }
        };
        // Everything was written just now: within the grace period, nothing is garbage yet.
        let young = gc(false, Duration::from_secs(3600)).await?;
        assert_eq!((young.count, young.referenced, young.recent), (0, 2, 1));
        let dry = gc(false, Duration::ZERO).await?;
        assert_eq!(
            dry.removed
                .iter()
                .map(|i| (i.name.as_str(), i.size_bytes))
                .collect::<Vec<_>>(),
            vec![(garbage.sha256.as_str(), garbage.size_bytes as u64)]
        );
        // The store's calls block on the runtime, so they run on a blocking thread.
        let objects = |store: Arc<dyn ArtifactStore>| async move {
            tokio::task::spawn_blocking(move || store.list_objects()).await
        };
        assert_eq!(
            objects(store.clone()).await??.len(),
            3,
            "a dry run removed something"
        );
        let done = gc(true, Duration::ZERO).await?;
        assert_eq!((done.removed, done.bytes), (dry.removed, dry.bytes));
        let left: Vec<String> = objects(store.clone())
            .await??
            .into_iter()
            .map(|o| o.sha256)
            .collect();
        let mut referenced = h.store.referenced_artifacts().await?;
        referenced.sort();
        assert_eq!(left, referenced);
        assert!(exists_raw(&moto, "ospdeck-gc", "artifacts/notes.txt")?);
        assert!(exists_raw(&moto, "ospdeck-gc", &stranger)?);
        assert_eq!(
            h.scalar(&format!(
                "SELECT count(*) FROM {} WHERE action = 'gc'",
                h.table("audit_log")
            ))
            .await,
            1
        );
        // The live version still resolves from the bucket.
        let r = Resolver::new(
            h.ops.clone(),
            ResolverConfig {
                remote: Some(store.clone()),
                cache_dir: work.path().join("cache"),
                fallback_dir: None,
                pointer_ttl: Duration::from_secs(60),
            },
        )
        .resolve(&ResolveRequest {
            template: "section7".into(),
            selector: Selector::Default,
            locale: None,
            unit: None,
        })
        .await?;
        assert_eq!(r.version, "1.0.0");
        assert!(r.artifacts.iter().all(|a| a.source == Source::Remote));
        Ok(())
    }
}
