//! The S3 artifact store against a real S3-compatible server started here (moto_server, from
//! PyPI: `pip install 'moto[server]'`). Its puts overwrite silently, as Supabase Storage's do.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ospdeck::artifacts::{
    ArtifactStore, ResolveRequest, Resolver, ResolverConfig, S3ArtifactStore, S3Config, Source,
};
use ospdeck::domain::template::VersionStatus;
use ospdeck::ops::{PublishRequest, Selector};

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

conformance!(publish_to_s3_resolve_and_catch_a_silent_overwrite);

mod cases {
    use super::*;

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
        h.ops
            .publish_bundle(
                &bundle,
                &PublishRequest {
                    template: "section7",
                    version: "1.0.0",
                    status: Some(VersionStatus::Stable),
                    set_default: true,
                    ..Default::default()
                },
                store.clone(),
                &|_, _| {},
            )
            .await?;
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
}
