//! Template bundles on both stores: publish, resolve from store / cache / filesystem with hash
//! checks, lifecycle, canary labels, and a publish that dies before its commit.

mod common;

conformance!(
    publish_then_resolve_from_store_then_cache,
    tampered_copies_are_never_served,
    a_warm_cache_resolves_with_the_store_unreachable,
    rollback_is_moving_the_default_back,
    deprecated_versions_resolve_only_when_pinned,
    canary_labels_send_a_sticky_share,
    a_publish_that_dies_before_commit_leaves_nothing,
    bad_bundles_are_refused_and_nothing_is_written,
    lifecycle_rules_hold_for_ops_and_raw_sql,
    concurrent_cold_cache_resolves_neither_fail_nor_raise_false_alarms,
    concurrent_publishes_store_whole_objects_and_each_version_once,
    hostile_bundle_files_are_refused_before_anything_is_stored,
    the_store_names_every_referenced_artifact_once,
    gc_removes_only_old_unreferenced_objects_and_audits_it,
    gc_is_the_administrators_and_only_lists_when_read_only,
    gc_through_the_cli_lists_then_removes,
);

mod cases {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use std::collections::BTreeSet;
    use std::time::SystemTime;

    use ospdeck::artifacts::{ArtifactStore, FsArtifactStore};
    use ospdeck::domain::permission::Identity;
    use ospdeck::domain::template::VersionStatus;
    use ospdeck::ops::{GcItem, GcItemKind, GcRequest, Ops, OpsError, PublishRequest, Selector};
    use ospdeck::ops::{ResolveRequest, Resolver, ResolverConfig, Source};
    use ospdeck::store::{self, StoreKind, StoreOptions};

    use super::common::{Harness, TestResult};

    const T: &str = "section7";

    /// A bundle folder: manifest.json and files whose content carries `salt`.
    fn bundle(dir: &Path, salt: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir.join("fr"))?;
        std::fs::create_dir_all(dir.join("en"))?;
        std::fs::write(dir.join("fr/master.md"), format!("bonjour {salt}"))?;
        std::fs::write(dir.join("en/master.md"), format!("hello {salt}"))?;
        std::fs::write(dir.join("config.json"), "{\"max_tokens\": 100}")?;
        std::fs::write(
            dir.join("manifest.json"),
            r#"{"artifacts": [
                {"kind": "master_prompt", "locale": "fr", "role": "system", "path": "fr/master.md", "content_type": "text/markdown"},
                {"kind": "master_prompt", "locale": "en", "role": "system", "path": "en/master.md", "content_type": "text/markdown"},
                {"kind": "json_config", "path": "config.json", "content_type": "application/json"}
            ]}"#,
        )?;
        Ok(dir.to_owned())
    }

    struct Env {
        _tmp: tempfile::TempDir,
        store: Arc<FsArtifactStore>,
        root: PathBuf,
    }

    impl Env {
        fn new() -> std::io::Result<Self> {
            let tmp = tempfile::tempdir()?;
            let root = tmp.path().to_owned();
            Ok(Self {
                store: Arc::new(FsArtifactStore::new(root.join("store"))),
                _tmp: tmp,
                root,
            })
        }

        fn resolver(&self, h: &Harness, remote: bool, fallback: bool) -> Resolver {
            Resolver::new(
                h.ops.clone(),
                ResolverConfig {
                    remote: remote.then(|| self.store.clone() as Arc<dyn ArtifactStore>),
                    cache_dir: self.root.join("cache"),
                    fallback_dir: fallback.then(|| self.root.join("fallback")),
                    pointer_ttl: Duration::from_secs(60),
                },
            )
        }

        async fn publish(
            &self,
            h: &Harness,
            version: &str,
            status: VersionStatus,
            default: bool,
        ) -> Result<(), OpsError> {
            let dir = bundle(&self.root.join(format!("bundle-{version}")), version)
                .map_err(|e| OpsError::Refused(e.to_string()))?;
            h.ops
                .publish_bundle(
                    &dir,
                    &PublishRequest {
                        template: T,
                        version,
                        status: Some(status),
                        set_default: default,
                        ..Default::default()
                    },
                    self.store.clone(),
                    &|_, _| {},
                )
                .await
                .map(|_| ())
        }
    }

    fn req(selector: Selector, locale: Option<&str>) -> ResolveRequest {
        ResolveRequest {
            template: T.into(),
            selector,
            locale: locale.map(str::to_owned),
            unit: None,
        }
    }

    pub async fn publish_then_resolve_from_store_then_cache(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        let first = env
            .resolver(&h, true, false)
            .resolve(&req(Selector::Default, Some("fr")))
            .await?;
        assert_eq!(first.version, "1.0.0");
        assert_eq!(first.digest.len(), 64);
        let paths: Vec<&str> = first.artifacts.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["config.json", "fr/master.md"],
            "fr and locale-free only"
        );
        assert!(first.artifacts.iter().all(|a| a.source == Source::Remote));
        let fr = &first.artifacts[1];
        assert_eq!(std::fs::read_to_string(&fr.file)?, "bonjour 1.0.0");
        let second = env
            .resolver(&h, true, false)
            .resolve(&req(Selector::Version("1.0.0".into()), Some("fr")))
            .await?;
        assert!(second.artifacts.iter().all(|a| a.source == Source::Cache));
        // Content addressing deduplicates: the same config in two versions is one object.
        env.publish(&h, "1.1.0", VersionStatus::Stable, false)
            .await?;
        let objects = walk(&env.root.join("store"));
        assert_eq!(objects, 3 + 2, "config.json stored once");
        Ok(())
    }

    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() { walk(&p) } else { 1 }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    pub async fn tampered_copies_are_never_served(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        let versions = h.ops.template_versions(T).await?;
        let artifacts = h.store.version_artifacts(T, &versions[0].version).await?;
        let fr = artifacts
            .iter()
            .find(|a| a.path == "fr/master.md")
            .ok_or("fr")?;
        // The stored object is tampered with on disk; the fallback folder has the right bytes.
        std::fs::write(env.store.object_path(&fr.sha256), "tampered")?;
        bundle(&env.root.join("fallback").join(T).join("1.0.0"), "1.0.0")?;
        let r = env
            .resolver(&h, true, true)
            .resolve(&req(Selector::Default, Some("fr")))
            .await?;
        let got = r
            .artifacts
            .iter()
            .find(|a| a.path == "fr/master.md")
            .ok_or("fr")?;
        assert_eq!(got.source, Source::Filesystem);
        assert_eq!(std::fs::read_to_string(&got.file)?, "bonjour 1.0.0");
        // Nothing tampered made it into the cache.
        let cached = ospdeck::artifacts::sha256_file(&ospdeck::artifacts::object_path(
            &env.root.join("cache"),
            &fr.sha256,
        ));
        assert!(cached.is_err(), "a bad copy was cached");
        // A tampered cache entry is discarded and fetched again from the (repaired) store.
        env.store
            .put_file(&env.root.join("bundle-1.0.0/fr/master.md"))?;
        env.resolver(&h, true, false)
            .resolve(&req(Selector::Default, Some("fr")))
            .await?;
        let cache_file = ospdeck::artifacts::object_path(&env.root.join("cache"), &fr.sha256);
        std::fs::write(&cache_file, "rotten")?;
        let again = env
            .resolver(&h, true, false)
            .resolve(&req(Selector::Default, Some("fr")))
            .await?;
        let got = again
            .artifacts
            .iter()
            .find(|a| a.path == "fr/master.md")
            .ok_or("fr")?;
        assert_eq!(got.source, Source::Remote);
        assert_eq!(std::fs::read_to_string(&got.file)?, "bonjour 1.0.0");
        // No good copy anywhere: an error, never the bad bytes.
        std::fs::write(env.store.object_path(&fr.sha256), "tampered")?;
        std::fs::write(&cache_file, "rotten")?;
        let err = env
            .resolver(&h, true, false)
            .resolve(&req(Selector::Default, Some("fr")))
            .await
            .err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.to_string().contains("not available from any source")),
            "{err:?}"
        );
        Ok(())
    }

    pub async fn a_warm_cache_resolves_with_the_store_unreachable(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.resolver(&h, true, false)
            .resolve(&req(Selector::Default, None))
            .await?;
        std::fs::remove_dir_all(env.root.join("store"))?;
        let r = env
            .resolver(&h, true, false)
            .resolve(&req(Selector::Default, None))
            .await?;
        assert_eq!(r.artifacts.len(), 3);
        assert!(r.artifacts.iter().all(|a| a.source == Source::Cache));
        // Remote switched off: the cache still serves.
        let r = env
            .resolver(&h, false, false)
            .resolve(&req(Selector::Default, None))
            .await?;
        assert!(r.artifacts.iter().all(|a| a.source == Source::Cache));
        Ok(())
    }

    pub async fn rollback_is_moving_the_default_back(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.publish(&h, "1.1.0", VersionStatus::Stable, true)
            .await?;
        let now = |h: &Harness| {
            let r = env.resolver(h, true, false);
            async move { r.resolve(&req(Selector::Default, Some("fr"))).await }
        };
        assert_eq!(now(&h).await?.version, "1.1.0");
        h.ops.set_default_version(T, "1.0.0").await?;
        let back = now(&h).await?;
        assert_eq!(back.version, "1.0.0");
        let fr = back
            .artifacts
            .iter()
            .find(|a| a.path == "fr/master.md")
            .ok_or("fr")?;
        assert_eq!(std::fs::read_to_string(&fr.file)?, "bonjour 1.0.0");
        let list = h.ops.list_templates().await?;
        assert_eq!(list[0].default_version.as_deref(), Some("1.0.0"));
        Ok(())
    }

    pub async fn deprecated_versions_resolve_only_when_pinned(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.publish(&h, "1.2.0", VersionStatus::Stable, false)
            .await?;
        env.publish(&h, "1.10.0", VersionStatus::Stable, false)
            .await?;
        h.ops.set_label(T, "beta", "1.10.0", None).await?;
        // latest is the highest stable by semver (1.10.0 > 1.2.0).
        let latest = h
            .ops
            .select_version(T, &Selector::Label("latest".into()), None)
            .await?;
        assert_eq!(latest.version, "1.10.0");
        h.ops
            .deprecate_version(T, "1.10.0", Some("use 1.2.0"))
            .await?;
        assert!(matches!(
            h.ops
                .select_version(T, &Selector::Label("beta".into()), None)
                .await,
            Err(OpsError::Refused(_))
        ));
        let pinned = h
            .ops
            .select_version(T, &Selector::Version("1.10.0".into()), None)
            .await?;
        assert_eq!(pinned.status, VersionStatus::Deprecated);
        let latest = h
            .ops
            .select_version(T, &Selector::Label("latest".into()), None)
            .await?;
        assert_eq!(latest.version, "1.2.0");
        // The default cannot be deprecated; a missing label or version is an error.
        assert!(matches!(
            h.ops.deprecate_version(T, "1.0.0", None).await,
            Err(OpsError::Refused(_))
        ));
        assert!(matches!(
            h.ops
                .select_version(T, &Selector::Label("nope".into()), None)
                .await,
            Err(OpsError::NotFound(_))
        ));
        assert!(matches!(
            h.ops
                .select_version(T, &Selector::Version("9.9.9".into()), None)
                .await,
            Err(OpsError::NotFound(_))
        ));
        Ok(())
    }

    pub async fn canary_labels_send_a_sticky_share(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.publish(&h, "2.0.0", VersionStatus::Stable, false)
            .await?;
        h.ops.set_label(T, "canary", "2.0.0", Some(10)).await?;
        let units: Vec<String> = (0..10_000).map(|i| format!("clinic-{i}")).collect();
        let canary = Selector::Label("canary".into());
        let mut in_ten = Vec::new();
        for u in &units {
            let v = h.ops.select_version(T, &canary, Some(u)).await?;
            if v.version == "2.0.0" {
                in_ten.push(u.clone());
            }
        }
        assert!(
            (700..=1300).contains(&in_ten.len()),
            "10% ± 3%: {}",
            in_ten.len()
        );
        h.ops.set_label(T, "canary", "2.0.0", Some(30)).await?;
        let mut in_thirty = 0;
        for u in &units {
            if h.ops.select_version(T, &canary, Some(u)).await?.version == "2.0.0" {
                in_thirty += 1;
            }
        }
        assert!((2700..=3300).contains(&in_thirty), "30% ± 3%: {in_thirty}");
        for u in &in_ten {
            assert_eq!(
                h.ops.select_version(T, &canary, Some(u)).await?.version,
                "2.0.0",
                "{u} dropped out when the share grew"
            );
        }
        Ok(())
    }

    pub async fn a_publish_that_dies_before_commit_leaves_nothing(h: Harness) -> TestResult {
        let env = Env::new()?;
        // The last write of the transaction fails, as if the process died right before commit.
        let (install, remove) = match h.kind() {
            StoreKind::Postgres => (
                "CREATE OR REPLACE FUNCTION public.injected_failure() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
                 CREATE TRIGGER injected BEFORE INSERT ON ops.audit_log
                     FOR EACH ROW EXECUTE FUNCTION public.injected_failure()"
                    .to_owned(),
                "DROP TRIGGER injected ON ops.audit_log".to_owned(),
            ),
            StoreKind::Sqlite => (
                "CREATE TRIGGER injected BEFORE INSERT ON audit_log
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                    .to_owned(),
                "DROP TRIGGER injected".to_owned(),
            ),
        };
        h.raw(&install).await?;
        let result = env.publish(&h, "1.0.0", VersionStatus::Stable, true).await;
        h.raw(&remove).await?;
        assert!(result.is_err());
        for table in [
            "templates",
            "template_versions",
            "template_artifacts",
            "template_labels",
        ] {
            assert_eq!(h.count(table).await, 0, "{table}");
        }
        assert!(matches!(
            h.ops.template_versions(T).await,
            Err(OpsError::NotFound(_))
        ));
        // The same version publishes cleanly afterwards.
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        assert_eq!(h.ops.template_versions(T).await?.len(), 1);
        Ok(())
    }

    pub async fn bad_bundles_are_refused_and_nothing_is_written(h: Harness) -> TestResult {
        let env = Env::new()?;
        let dir = bundle(&env.root.join("b"), "x")?;
        let manifest = dir.join("manifest.json");
        let good = std::fs::read_to_string(&manifest)?;
        let publish = |version: &'static str| {
            let ops = h.ops.clone();
            let store = env.store.clone();
            let dir = dir.clone();
            async move {
                ops.publish_bundle(
                    &dir,
                    &PublishRequest {
                        template: T,
                        version,
                        ..Default::default()
                    },
                    store,
                    &|_, _| {},
                )
                .await
            }
        };
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace("fr/master.md", "../outside.md"),
                "inside the bundle",
            ),
            (
                good.replace("fr/master.md", "/etc/passwd"),
                "inside the bundle",
            ),
            (
                good.replace("config.json\"", "missing.json\""),
                "missing.json",
            ),
            (good.replace("en/master.md", "fr/master.md"), "listed twice"),
            (good.replace("json_config", "poem"), "unknown artifact kind"),
            (good.replace("\"en\"", "\"de\""), "unknown locale"),
            (r#"{"artifacts": []}"#.to_owned(), "no artifacts"),
            ("not json".to_owned(), "invalid manifest.json"),
        ];
        for (text, expect) in cases {
            std::fs::write(&manifest, &text)?;
            let err = publish("1.0.0")
                .await
                .err()
                .ok_or("accepted a bad bundle")?;
            assert!(err.to_string().contains(expect), "{expect}: {err}");
        }
        std::fs::write(&manifest, &good)?;
        // A symlink that leads out of the bundle.
        let outside = env.root.join("secret.txt");
        std::fs::write(&outside, "secret")?;
        std::fs::remove_file(dir.join("config.json"))?;
        std::os::unix::fs::symlink(&outside, dir.join("config.json"))?;
        let err = publish("1.0.0")
            .await
            .err()
            .ok_or("followed a symlink out")?;
        assert!(err.to_string().contains("outside the bundle"), "{err}");
        assert!(matches!(publish("1.2").await, Err(OpsError::Invalid(_))));
        // Beyond the stores' integer columns: refused, never clamped into a wrong order.
        assert!(matches!(
            publish("2147483648.0.0").await,
            Err(OpsError::Invalid(_))
        ));
        assert!(matches!(
            publish("1.0.0-rc.1").await,
            Err(OpsError::Invalid(_))
        ));
        assert_eq!(h.count("templates").await, 0);
        assert_eq!(h.count("template_versions").await, 0);
        Ok(())
    }

    pub async fn lifecycle_rules_hold_for_ops_and_raw_sql(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.publish(&h, "1.1.0", VersionStatus::Draft, false)
            .await?;
        assert!(matches!(
            env.publish(&h, "1.1.0", VersionStatus::Draft, false).await,
            Err(OpsError::Refused(_))
        ));
        // Drafts cannot be the default or labelled; stable ones cannot be deleted.
        assert!(matches!(
            h.ops.set_default_version(T, "1.1.0").await,
            Err(OpsError::Refused(_))
        ));
        assert!(matches!(
            h.ops.set_label(T, "next", "1.1.0", None).await,
            Err(OpsError::Refused(_))
        ));
        assert!(matches!(
            h.ops.delete_draft(T, "1.0.0").await,
            Err(OpsError::Refused(_))
        ));
        for bad in ["latest", "2.0.0", "Bad"] {
            assert!(
                matches!(
                    h.ops.set_label(T, bad, "1.0.0", None).await,
                    Err(OpsError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            h.ops.set_label(T, "canary", "1.0.0", Some(101)).await,
            Err(OpsError::Invalid(_))
        ));
        let diff = h.ops.template_diff(T, "1.0.0", "1.1.0").await?;
        let changed: Vec<(&str, &str)> = diff.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(
            changed,
            vec![("en/master.md", "changed"), ("fr/master.md", "changed")]
        );
        h.ops.promote_version(T, "1.1.0").await?;
        // Promoting a stable version is done already: it succeeds and changes nothing.
        let again = h.ops.promote_version_applied(T, "1.1.0").await?;
        assert_eq!(again.outcome, ospdeck::ops::Outcome::AlreadyStable);
        assert_eq!(again.value.version.status, VersionStatus::Stable);
        env.publish(&h, "1.2.0", VersionStatus::Draft, false)
            .await?;
        h.ops.delete_draft(T, "1.2.0").await?;
        assert_eq!(h.ops.template_versions(T).await?.len(), 2);

        // Raw SQL: a stable version's files, status and default pointer keep the rules.
        let artifacts = h.table("template_artifacts");
        let versions = h.table("template_versions");
        let templates = h.table("templates");
        let stable_id = h
            .scalar(&format!("SELECT id FROM {versions} WHERE semver = '1.0.0'"))
            .await;
        for (sql, what) in [
            (
                format!(
                    "UPDATE {artifacts} SET sha256 = '{}' WHERE version_id = {stable_id}",
                    "0".repeat(64)
                ),
                "edit a stable file",
            ),
            (
                format!("DELETE FROM {artifacts} WHERE version_id = {stable_id}"),
                "delete a stable file",
            ),
            (
                format!("UPDATE {versions} SET status = 'draft' WHERE id = {stable_id}"),
                "stable -> draft",
            ),
            (
                format!("DELETE FROM {versions} WHERE id = {stable_id}"),
                "delete a stable version",
            ),
            (
                format!(
                    "UPDATE {versions} SET digest = '{}' WHERE id = {stable_id}",
                    "1".repeat(64)
                ),
                "change a digest",
            ),
        ] {
            assert!(h.raw(&sql).await.is_err(), "{what} was allowed");
        }
        env.publish(&h, "1.3.0", VersionStatus::Draft, false)
            .await?;
        let draft_id = h
            .scalar(&format!("SELECT id FROM {versions} WHERE semver = '1.3.0'"))
            .await;
        assert!(
            h.raw(&format!(
                "UPDATE {templates} SET default_version_id = {draft_id}"
            ))
            .await
            .is_err(),
            "a draft became the default"
        );
        Ok(())
    }

    /// The real binary with a HOME of its own whose config.toml points at this test's artifact
    /// store and cache, as separate `ospdeck template resolve` processes would run on one host.
    struct CliHome {
        home: PathBuf,
        db: String,
        cache: PathBuf,
    }

    impl CliHome {
        fn new(env: &Env, h: &Harness) -> std::io::Result<Self> {
            let home = env.root.join("home");
            let config = home.join(".config/ospdeck");
            std::fs::create_dir_all(&config)?;
            let cache = env.root.join("cache");
            std::fs::write(
                config.join("config.toml"),
                format!(
                    "[artifacts]\ndir = {:?}\ncache_dir = {:?}\n",
                    env.root.join("store"),
                    cache
                ),
            )?;
            Ok(Self {
                home,
                db: h.url.clone(),
                cache,
            })
        }

        fn command(&self, args: &[&str]) -> std::process::Command {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ospdeck"));
            cmd.arg("--db")
                .arg(&self.db)
                .args(args)
                .env("HOME", &self.home)
                .env_remove("XDG_CONFIG_HOME")
                .env_remove("XDG_CACHE_HOME")
                .env_remove("XDG_STATE_HOME")
                .env_remove("XDG_DATA_HOME")
                .env_remove("OSPDECK_TEMPLATE_REMOTE")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd
        }

        /// Lines of every log file of this HOME that contain `needle`.
        fn log_lines_containing(&self, needle: &str) -> usize {
            let dir = self.home.join(".local/state/ospdeck/logs");
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| {
                            std::fs::read_to_string(e.path())
                                .map(|text| text.lines().filter(|l| l.contains(needle)).count())
                                .unwrap_or(0)
                        })
                        .sum()
                })
                .unwrap_or(0)
        }

        /// `n` resolves started together on a cold cache; answers how many failed. Every answer
        /// that succeeded must name files that hold exactly their sha256.
        fn cold_resolve_round(&self, n: usize) -> Result<usize, super::common::BoxError> {
            match std::fs::remove_dir_all(&self.cache) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            let children = (0..n)
                .map(|_| self.command(&["template", "resolve", T, "--json"]).spawn())
                .collect::<Result<Vec<_>, _>>()?;
            let mut failures = 0;
            for child in children {
                let out = child.wait_with_output()?;
                if !out.status.success() {
                    failures += 1;
                    continue;
                }
                let answer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
                let artifacts = answer["artifacts"].as_array().ok_or("no artifacts")?;
                assert_eq!(artifacts.len(), 4, "{answer}");
                for a in artifacts {
                    let file = a["file"].as_str().ok_or("file")?;
                    assert_eq!(
                        ospdeck::artifacts::sha256_file(Path::new(file))?,
                        a["sha256"].as_str().ok_or("sha256")?,
                        "{file} served with the wrong bytes"
                    );
                }
            }
            Ok(failures)
        }
    }

    /// The demo bundle plus a 4 MiB asset, so that a download takes long enough to overlap.
    fn bundle_with_large_asset(dir: &Path) -> std::io::Result<PathBuf> {
        bundle(dir, "large")?;
        let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("model.bin"), big)?;
        let manifest = std::fs::read_to_string(dir.join("manifest.json"))?.replace(
            "\n            ]}",
            ",\n                {\"kind\": \"asset\", \"path\": \"model.bin\", \"content_type\": \"application/octet-stream\"}\n            ]}",
        );
        std::fs::write(dir.join("manifest.json"), manifest)?;
        Ok(dir.to_owned())
    }

    pub async fn concurrent_cold_cache_resolves_neither_fail_nor_raise_false_alarms(
        h: Harness,
    ) -> TestResult {
        let env = Env::new()?;
        let dir = bundle_with_large_asset(&env.root.join("bundle"))?;
        h.ops
            .publish_bundle(
                &dir,
                &PublishRequest {
                    template: T,
                    version: "1.0.0",
                    status: Some(VersionStatus::Stable),
                    set_default: true,
                    ..Default::default()
                },
                env.store.clone(),
                &|_, _| {},
            )
            .await?;
        let cli = CliHome::new(&env, &h)?;
        let mut eight = 0;
        for _ in 0..10 {
            eight += cli.cold_resolve_round(8)?;
        }
        let mut pairs = 0;
        for _ in 0..20 {
            pairs += cli.cold_resolve_round(2)?;
        }
        let alarms = cli.log_lines_containing("sha256 mismatch");
        println!(
            "cold-cache resolves: {eight} of 80 failed with 8 at once, {pairs} of 40 with 2 at once; {alarms} sha256 alarms"
        );
        assert_eq!((eight, pairs, alarms), (0, 0, 0));
        Ok(())
    }

    /// Every file under `dir`, recursively.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    out.extend(files_under(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    fn publish_request<'a>(template: &'a str, version: &'a str) -> PublishRequest<'a> {
        PublishRequest {
            template,
            version,
            ..Default::default()
        }
    }

    pub async fn concurrent_publishes_store_whole_objects_and_each_version_once(
        h: Harness,
    ) -> TestResult {
        let env = Env::new()?;
        let shared = bundle_with_large_asset(&env.root.join("shared"))?;
        let mut tasks = Vec::new();
        // Eight versions of one new template from the same files: every object is put eight
        // times at once, and the template is created by whichever commits first.
        for i in 0..8 {
            let (ops, store, dir) = (h.ops.clone(), env.store.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                let version = format!("1.{i}.0");
                ops.publish_bundle(&dir, &publish_request(T, &version), store, &|_, _| {})
                    .await
            }));
        }
        // Four other templates from bundles of their own, at the same time.
        for i in 0..4 {
            let dir = bundle(&env.root.join(format!("other-{i}")), &format!("other {i}"))?;
            let (ops, store) = (h.ops.clone(), env.store.clone());
            tasks.push(tokio::spawn(async move {
                let template = format!("other-{i}");
                ops.publish_bundle(
                    &dir,
                    &publish_request(&template, "1.0.0"),
                    store,
                    &|_, _| {},
                )
                .await
            }));
        }
        let mut failures = Vec::new();
        for task in tasks {
            if let Err(e) = task.await? {
                failures.push(e.to_string());
            }
        }
        assert_eq!(failures, Vec::<String>::new());
        let versions = h.ops.template_versions(T).await?;
        assert_eq!(versions.len(), 8);
        assert!(versions.iter().all(|v| v.digest == versions[0].digest));
        assert_eq!(h.ops.list_templates().await?.len(), 5);

        // One version published four times at once: exactly one wins, the rest are refused.
        let mut same = Vec::new();
        for _ in 0..4 {
            let (ops, store, dir) = (h.ops.clone(), env.store.clone(), shared.clone());
            same.push(tokio::spawn(async move {
                ops.publish_bundle(&dir, &publish_request(T, "2.0.0"), store, &|_, _| {})
                    .await
            }));
        }
        let mut published = 0;
        for task in same {
            match task.await? {
                Ok(_) => published += 1,
                Err(e) => assert!(e.to_string().contains("already published"), "{e}"),
            }
        }
        assert_eq!(published, 1);
        assert_eq!(h.ops.template_versions(T).await?.len(), 9);

        // The store holds whole objects, each exactly the bytes its name says, and no temp file:
        // 4 shared ones, plus fr and en of each other template (their config.json is shared).
        let files = files_under(&env.root.join("store"));
        assert_eq!(files.len(), 4 + 4 * 2, "{files:?}");
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).ok_or("name")?;
            assert_eq!(ospdeck::artifacts::sha256_file(&file)?, name, "{file:?}");
        }
        Ok(())
    }

    /// Replaces whatever is at `path` (file, link, FIFO or directory) with nothing.
    fn clear(path: &Path) -> std::io::Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn mkfifo(path: &Path) -> std::io::Result<()> {
        let status = std::process::Command::new("mkfifo").arg(path).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other("mkfifo failed"))
        }
    }

    /// What a hostile bundle puts where a file should be.
    enum Hostile {
        LinkTo(PathBuf),
        Fifo,
        Directory,
        Text(String),
    }

    impl Hostile {
        fn make(&self, path: &Path) -> std::io::Result<()> {
            clear(path)?;
            match self {
                Hostile::LinkTo(target) => std::os::unix::fs::symlink(target, path),
                Hostile::Fifo => mkfifo(path),
                Hostile::Directory => std::fs::create_dir(path),
                Hostile::Text(text) => std::fs::write(path, text),
            }
        }
    }

    pub async fn hostile_bundle_files_are_refused_before_anything_is_stored(
        h: Harness,
    ) -> TestResult {
        let env = Env::new()?;
        let dir = bundle(&env.root.join("b"), "x")?;
        let manifest = dir.join("manifest.json");
        let config = dir.join("config.json");
        let good_manifest = std::fs::read_to_string(&manifest)?;
        let good_config = std::fs::read_to_string(&config)?;
        // A FIFO inside the bundle, for an artifact that links to it.
        mkfifo(&dir.join("pipe"))?;
        let store_dir = env.root.join("store");
        let small_store = Arc::new(FsArtifactStore::new(&store_dir).with_max_object_bytes(10));
        let oversized = format!("{good_manifest}{}", " ".repeat(1 << 20));
        use Hostile::*;
        let cases = [
            (
                &manifest,
                LinkTo("/dev/zero".into()),
                "a character device, not a regular file",
            ),
            (&manifest, Fifo, "a FIFO, not a regular file"),
            (&manifest, Directory, "a directory, not a regular file"),
            (
                &manifest,
                Text(oversized),
                "more than 1048576 bytes, the limit for manifest.json",
            ),
            (&config, Directory, "a directory, not a regular file"),
            (&config, Fifo, "a FIFO, not a regular file"),
            (
                &config,
                LinkTo(dir.join("pipe")),
                "a FIFO, not a regular file",
            ),
            (
                &config,
                LinkTo("/dev/zero".into()),
                "points outside the bundle",
            ),
        ];
        for (path, hostile, expected) in &cases {
            hostile.make(path)?;
            let err = h
                .ops
                .publish_bundle(
                    &dir,
                    &publish_request(T, "1.0.0"),
                    env.store.clone(),
                    &|_, _| {},
                )
                .await
                .err()
                .ok_or(format!("{path:?}: published"))?;
            Text(good_manifest.clone()).make(&manifest)?;
            Text(good_config.clone()).make(&config)?;
            let name = path.file_name().and_then(|n| n.to_str()).ok_or("name")?;
            let message = err.to_string();
            assert!(matches!(err, OpsError::Invalid(_)), "{err:?}");
            assert!(
                message.contains(&format!("{name}: {expected}"))
                    || message.contains(&format!("{name} {expected}")),
                "{message}"
            );
            assert_eq!(message.lines().count(), 1, "{message}");
            assert_eq!(h.count("templates").await, 0, "{message}");
            assert_eq!(files_under(&store_dir), Vec::<PathBuf>::new(), "{message}");
        }
        // A regular artifact over the store's limit (`[artifacts] max_artifact_bytes`).
        let err = h
            .ops
            .publish_bundle(&dir, &publish_request(T, "1.0.0"), small_store, &|_, _| {})
            .await
            .err()
            .ok_or("published over the limit")?;
        assert!(
            err.to_string().contains(
                "config.json: more than 10 bytes, the limit for one artifact \
                 ([artifacts] max_artifact_bytes)"
            ),
            "{err}"
        );
        assert_eq!(h.count("templates").await, 0);
        assert_eq!(files_under(&store_dir), Vec::<PathBuf>::new());
        Ok(())
    }

    /// The sha256 of every artifact of `version`.
    async fn shas(h: &Harness, version: &str) -> Result<BTreeSet<String>, OpsError> {
        Ok(h.store
            .version_artifacts(T, version)
            .await?
            .into_iter()
            .map(|a| a.sha256)
            .collect())
    }

    pub async fn the_store_names_every_referenced_artifact_once(h: Harness) -> TestResult {
        let env = Env::new()?;
        assert_eq!(h.store.referenced_artifacts().await?, Vec::<String>::new());
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.publish(&h, "1.1.0", VersionStatus::Draft, false)
            .await?;
        env.publish(&h, "1.2.0", VersionStatus::Stable, false)
            .await?;
        h.ops.deprecate_version(T, "1.2.0", None).await?;
        env.publish(&h, "1.3.0", VersionStatus::Draft, false)
            .await?;
        let deleted = shas(&h, "1.3.0").await?;
        h.ops.delete_draft(T, "1.3.0").await?;
        let mut expected = BTreeSet::new();
        for v in ["1.0.0", "1.1.0", "1.2.0"] {
            expected.extend(shas(&h, v).await?);
        }
        // config.json is shared by all; fr and en differ per version.
        assert_eq!(expected.len(), 1 + 3 * 2);
        let listed = h.store.referenced_artifacts().await?;
        assert_eq!(listed, expected.iter().cloned().collect::<Vec<_>>());
        let gone: Vec<&String> = deleted.difference(&expected).collect();
        assert_eq!(gone.len(), 2, "the deleted draft's own files");
        assert!(gone.iter().all(|sha| !listed.contains(sha)));
        Ok(())
    }

    /// Sets a file's modification time `secs` into the past.
    fn backdate(path: &Path, secs: u64) -> std::io::Result<()> {
        let then = SystemTime::now() - Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)?
            .set_modified(then)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// The `after` of every `gc` audit row, oldest first.
    async fn gc_audits(h: &Harness) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        let after = match h.kind() {
            StoreKind::Postgres => "after::text",
            StoreKind::Sqlite => "after",
        };
        let sql = format!(
            "SELECT {after} FROM {} WHERE action = 'gc' AND entity_type = 'artifact_store' ORDER BY id",
            h.table("audit_log")
        );
        let mut out = Vec::new();
        for n in 0..h.scalar(&format!("SELECT count(*) FROM ({sql}) g")).await {
            let text = h.scalar_text(&format!("{sql} LIMIT 1 OFFSET {n}")).await;
            out.push(serde_json::from_str(&text)?);
        }
        Ok(out)
    }

    pub async fn gc_removes_only_old_unreferenced_objects_and_audits_it(h: Harness) -> TestResult {
        let env = Env::new()?;
        let cache = env.root.join("cache");
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.publish(&h, "1.1.0", VersionStatus::Draft, false)
            .await?;
        let kept = shas(&h, "1.0.0").await?;
        let draft = h.store.version_artifacts(T, "1.1.0").await?;
        h.ops.delete_draft(T, "1.1.0").await?;
        // Two hours old: the deleted draft's own files (garbage) and the live version's (not:
        // age never makes a referenced object garbage).
        let garbage: Vec<_> = draft.iter().filter(|a| !kept.contains(&a.sha256)).collect();
        assert_eq!(garbage.len(), 2);
        for sha in garbage.iter().map(|a| &a.sha256).chain(&kept) {
            backdate(&env.store.object_path(sha), 2 * 3600)?;
        }
        let garbage_bytes: u64 = garbage.iter().map(|a| a.size_bytes as u64).sum();
        // An object a publish in flight has just stored: no version names it yet.
        std::fs::write(env.root.join("in-flight.md"), "not committed yet")?;
        let (in_flight, _) = env.store.put_file(&env.root.join("in-flight.md"))?;
        // Temp files an interrupted put and an interrupted download left, and a download under way.
        let store_tmp = env.root.join("store/.incoming-crashed");
        let cache_tmp = cache.join("ab/.incoming-crashed");
        let cache_live = cache.join("ab/.incoming-downloading");
        std::fs::create_dir_all(cache.join("ab"))?;
        std::fs::write(&store_tmp, "1234567")?;
        std::fs::write(&cache_tmp, "12345")?;
        std::fs::write(&cache_live, "123")?;
        backdate(&store_tmp, 2 * 3600)?;
        backdate(&cache_tmp, 2 * 3600)?;

        let gc = |delete: bool, older_than: Duration| {
            let (ops, store, cache) = (h.ops.clone(), env.store.clone(), cache.clone());
            async move {
                ops.collect_garbage(
                    store,
                    &GcRequest {
                        older_than,
                        delete,
                        cache_dir: Some(&cache),
                    },
                )
                .await
            }
        };
        let mut expected: Vec<GcItem> = garbage
            .iter()
            .map(|a| GcItem {
                kind: GcItemKind::Object,
                name: a.sha256.clone(),
                size_bytes: a.size_bytes as u64,
            })
            .collect();
        expected.sort_by(|a, b| a.name.cmp(&b.name));
        for (path, size) in [(&store_tmp, 7), (&cache_tmp, 5)] {
            expected.push(GcItem {
                kind: GcItemKind::TempFile,
                name: path.display().to_string(),
                size_bytes: size,
            });
        }
        let before = files_under(&env.root.join("store")).len() + files_under(&cache).len();

        let dry = gc(false, HOUR).await?;
        assert!(dry.dry_run);
        assert_eq!((dry.referenced, dry.recent), (3, 1));
        assert_eq!(dry.removed, expected);
        assert_eq!((dry.count, dry.bytes), (4, garbage_bytes + 7 + 5));
        let after_dry = files_under(&env.root.join("store")).len() + files_under(&cache).len();
        assert_eq!(after_dry, before, "a dry run removed something");
        assert_eq!(
            gc_audits(&h).await?.len(),
            0,
            "a dry run wrote an audit event"
        );

        let done = gc(true, HOUR).await?;
        assert!(!done.dry_run);
        assert_eq!(done.removed, expected);
        assert_eq!((done.count, done.bytes), (4, garbage_bytes + 7 + 5));
        for a in &garbage {
            assert!(
                !env.store.object_path(&a.sha256).exists(),
                "{} kept",
                a.path
            );
        }
        for sha in kept.iter().chain([&in_flight]) {
            assert!(env.store.object_path(sha).exists(), "{sha} removed");
        }
        assert!(!store_tmp.exists() && !cache_tmp.exists());
        assert!(cache_live.exists(), "a download under way lost its file");
        let audits = gc_audits(&h).await?;
        assert_eq!(audits.len(), 1);
        assert_eq!(
            audits[0],
            serde_json::json!({
                "objects": 2, "object_bytes": garbage_bytes, "temp_files": 2, "temp_bytes": 12,
                "older_than_secs": 3600,
            })
        );
        // What is referenced still resolves, from the store, on a cold cache.
        let r = env
            .resolver(&h, true, false)
            .resolve(&req(Selector::Default, None))
            .await?;
        assert!(r.artifacts.iter().all(|a| a.source == Source::Remote));

        // Nothing left but recent files; with no grace period they go too.
        let again = gc(true, HOUR).await?;
        assert_eq!((again.count, again.recent), (0, 1));
        let now = gc(true, Duration::ZERO).await?;
        let live = cache_live.display().to_string();
        assert_eq!(
            now.removed
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            vec![in_flight.as_str(), live.as_str()]
        );
        assert_eq!(gc_audits(&h).await?.len(), 3);
        Ok(())
    }

    pub async fn gc_is_the_administrators_and_only_lists_when_read_only(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Draft, false)
            .await?;
        h.ops.delete_draft(T, "1.0.0").await?;
        let request = |delete| GcRequest {
            older_than: Duration::ZERO,
            delete,
            cache_dir: None,
        };
        let member = Ops::new(h.store.clone(), Identity::member("alice"));
        for delete in [false, true] {
            let err = member
                .collect_garbage(env.store.clone(), &request(delete))
                .await
                .err()
                .ok_or("a member collected garbage")?;
            assert!(matches!(err, OpsError::Forbidden(_)), "{err:?}");
            assert!(err.to_string().contains("administrator"), "{err}");
        }
        let read_only = store::open(
            &h.url,
            &StoreOptions {
                read_only: true,
                max_connections: 2,
                ..Default::default()
            },
        )
        .await?;
        let admin = Ops::new(read_only, Identity::administrator("tester"));
        let err = admin
            .collect_garbage(env.store.clone(), &request(true))
            .await
            .err()
            .ok_or("deleted through a read-only store")?;
        assert!(err.to_string().contains("read-only"), "{err}");
        assert_eq!(files_under(&env.root.join("store")).len(), 3);
        let dry = admin
            .collect_garbage(env.store.clone(), &request(false))
            .await?;
        assert_eq!((dry.count, dry.referenced), (3, 0));
        assert_eq!(files_under(&env.root.join("store")).len(), 3);
        assert_eq!(gc_audits(&h).await?.len(), 0);
        Ok(())
    }

    pub async fn gc_through_the_cli_lists_then_removes(h: Harness) -> TestResult {
        let env = Env::new()?;
        env.publish(&h, "1.0.0", VersionStatus::Stable, true)
            .await?;
        env.publish(&h, "1.1.0", VersionStatus::Draft, false)
            .await?;
        h.ops.delete_draft(T, "1.1.0").await?;
        let cli = CliHome::new(&env, &h)?;
        let run = |args: &[&str]| cli.command(args).output();
        let one_line_error = |out: &std::process::Output, wanted: &str| {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!out.status.success(), "succeeded");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.starts_with("error: ") && err.contains(wanted), "{err}");
        };
        one_line_error(
            &run(&["gc", "--older-than", "soon"])?,
            "invalid age \"soon\"",
        );
        one_line_error(
            &run(&["--read-only", "gc", "--delete", "--older-than", "0"])?,
            "read-only",
        );
        assert_eq!(files_under(&env.root.join("store")).len(), 5);
        let out = run(&["gc", "--older-than", "0", "--json"])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dry: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(
            (&dry["dry_run"], &dry["count"], &dry["referenced"]),
            (
                &serde_json::json!(true),
                &serde_json::json!(2),
                &serde_json::json!(3)
            )
        );
        let out = run(&["gc", "--older-than", "0", "--delete"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = dry["bytes"].as_u64().ok_or("bytes")?;
        assert!(
            text.starts_with(&format!("removed 2 files ({bytes} bytes) from ")),
            "{text}"
        );
        assert_eq!(files_under(&env.root.join("store")).len(), 3);
        let out = run(&["gc", "--older-than", "0", "--json"])?;
        let after: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(after["count"], 0);
        Ok(())
    }
}
