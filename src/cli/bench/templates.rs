//! `ospdeck bench templates`: publishing a large bundle against `sha256sum` over the same files,
//! and resolving a 10-artifact bundle from a warm cache (hash checks included).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::{Figure, counter, figures_table, p50_p99, spinner};
use crate::artifacts::FsArtifactStore;
use crate::cli::output::{self, Unit};
use crate::cli::{Cli, CliError, CliResult, open_store, resolve_config};
use crate::domain::template::VersionStatus;
use crate::ops::{Ops, PublishRequest, Selector};
use crate::ops::{ResolveRequest, Resolver, ResolverConfig};
use crate::store::StoreOptions;

#[derive(Debug, Clone, Args)]
pub struct TemplatesBenchArgs {
    /// Files in the large bundle
    #[arg(long, default_value_t = 64)]
    pub files: usize,
    /// MiB per file
    #[arg(long, default_value_t = 4)]
    pub file_mib: usize,
    /// Warm-cache resolves to time
    #[arg(long, default_value_t = 500)]
    pub resolves: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    bundle_mib: usize,
    files: usize,
    publish_secs: f64,
    sha256sum_secs: Option<f64>,
    publish_vs_sha256sum: Option<f64>,
    resolve_warm_p50_ms: f64,
    resolve_warm_p99_ms: f64,
}

pub async fn templates(cli: &Cli, args: &TemplatesBenchArgs) -> CliResult {
    let resolved = resolve_config(cli)?;
    let store = open_store(&resolved, &StoreOptions::default(), true).await?;
    let ops = Ops::connect_as(store.clone(), cli.as_user.as_deref()).await?;
    let show = !cli.json && std::io::stderr().is_terminal();
    let work = tempfile::tempdir()
        .map_err(|e| CliError::failed(format!("cannot make a work dir: {e}")))?;
    let io = |e: std::io::Error| CliError::failed(format!("bench files: {e}"));
    let stamp = chrono::Utc::now().format("%m%d%H%M%S%3f").to_string();

    // The large bundle: pseudo-random bytes, so nothing compresses or dedupes by accident.
    let bundle_bytes = (args.files as u64)
        .saturating_mul(args.file_mib as u64)
        .saturating_mul(1 << 20);
    let bar = output::progress(
        show,
        &format!("writing {} × {} MiB", args.files, args.file_mib),
        bundle_bytes,
        Unit::Bytes,
    );
    let big = work.path().join("big");
    std::fs::create_dir_all(&big).map_err(io)?;
    let mut entries = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ stamp.len() as u64;
    for i in 0..args.files {
        let path = big.join(format!("part-{i:03}.bin"));
        let mut f = std::fs::File::create(&path).map_err(io)?;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..args.file_mib {
            for chunk in buf.chunks_mut(8) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
            }
            f.write_all(&buf).map_err(io)?;
            bar.inc(buf.len() as u64);
        }
        entries.push(format!(
            r#"{{"kind": "asset", "path": "part-{i:03}.bin", "content_type": "application/octet-stream"}}"#
        ));
    }
    std::fs::write(
        big.join("manifest.json"),
        format!("{{\"artifacts\": [{}]}}", entries.join(",")),
    )
    .map_err(io)?;
    bar.finish_and_clear();

    let artifact_store = Arc::new(FsArtifactStore::new(work.path().join("store")));
    let bar = output::progress(show, "publishing", bundle_bytes, Unit::Bytes);
    let template = format!("bench-big-{stamp}");
    let t = Instant::now();
    ops.publish_bundle(
        &big,
        &PublishRequest {
            template: &template,
            version: "1.0.0",
            ..Default::default()
        },
        artifact_store.clone(),
        // Every file is the same size: bytes stored follow the files done.
        &|done, total| bar.set_position(bundle_bytes.saturating_mul(done) / total.max(1)),
    )
    .await?;
    let publish = t.elapsed();
    bar.finish_and_clear();

    let bar = spinner(show, "sha256sum over the same files");
    let files: Vec<String> = (0..args.files)
        .map(|i| big.join(format!("part-{i:03}.bin")).display().to_string())
        .collect();
    let t = Instant::now();
    let sha256sum = std::process::Command::new("sha256sum")
        .args(&files)
        .stdout(std::process::Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| t.elapsed());
    bar.finish_and_clear();

    // A 10-artifact bundle resolved from a warm cache.
    let small = work.path().join("small");
    std::fs::create_dir_all(&small).map_err(io)?;
    let mut entries = Vec::new();
    for i in 0..10 {
        std::fs::write(
            small.join(format!("a{i}.md")),
            format!("artifact {i}\n").repeat(200),
        )
        .map_err(io)?;
        entries.push(format!(
            r#"{{"kind": "golden_example", "locale": "fr", "path": "a{i}.md", "content_type": "text/markdown"}}"#
        ));
    }
    std::fs::write(
        small.join("manifest.json"),
        format!("{{\"artifacts\": [{}]}}", entries.join(",")),
    )
    .map_err(io)?;
    let small_name = format!("bench-small-{stamp}");
    ops.publish_bundle(
        &small,
        &PublishRequest {
            template: &small_name,
            version: "1.0.0",
            status: Some(VersionStatus::Stable),
            set_default: true,
            ..Default::default()
        },
        artifact_store.clone(),
        &|_, _| {},
    )
    .await?;
    let resolver = Resolver::new(
        ops.clone(),
        ResolverConfig {
            remote: Some(artifact_store),
            cache_dir: work.path().join("cache"),
            fallback_dir: None,
            pointer_ttl: Duration::from_secs(60),
        },
    );
    let req = ResolveRequest {
        template: small_name,
        selector: Selector::Default,
        locale: Some("fr".into()),
        unit: None,
    };
    resolver.resolve(&req).await?; // warms the cache
    let bar = counter(
        show,
        "warm-cache resolves",
        args.resolves,
        Unit::Items("resolves"),
    );
    let mut times = Vec::with_capacity(args.resolves);
    for _ in 0..args.resolves {
        let t = Instant::now();
        resolver.resolve(&req).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (p50, p99) = p50_p99(&mut times);

    let report = Report {
        store: store.location(),
        bundle_mib: args.files * args.file_mib,
        files: args.files,
        publish_secs: publish.as_secs_f64(),
        sha256sum_secs: sha256sum.map(|d| d.as_secs_f64()),
        publish_vs_sha256sum: sha256sum.map(|d| publish.as_secs_f64() / d.as_secs_f64().max(1e-9)),
        resolve_warm_p50_ms: p50,
        resolve_warm_p99_ms: p99,
    };
    crate::cli::emit_report(cli.json, &report, || render(&report));
    Ok(())
}

/// Aims of the bundles issue: publishing within 1.3× of `sha256sum` over the same files, and a
/// warm-cache resolve p50 under 2 ms.
fn render(r: &Report) -> String {
    let sha256sum = r
        .sha256sum_secs
        .map(|s| format!("sha256sum {s:.2} s"))
        .unwrap_or_else(|| "sha256sum not found".into());
    let ratio = Figure::new(
        "publish / sha256sum",
        r.publish_vs_sha256sum
            .map(|x| format!("{x:.2}×"))
            .unwrap_or_else(|| "-".into()),
    );
    let ratio = match r.publish_vs_sha256sum {
        Some(x) => ratio.aim("≤ 1.3×".into(), Some(x <= 1.3)),
        None => ratio.aim("≤ 1.3×".into(), None),
    };
    let figures = [
        Figure::new(
            format!("publish {} MiB in {} files", r.bundle_mib, r.files),
            format!(
                "{:.2} s ({:.0} MiB/s)",
                r.publish_secs,
                r.bundle_mib as f64 / r.publish_secs.max(1e-9)
            ),
        )
        .beside(sha256sum.clone()),
        ratio.beside(sha256sum),
        Figure::new(
            "resolve, warm cache, 10 artifacts p50",
            format!("{:.3} ms", r.resolve_warm_p50_ms),
        )
        .aim("< 2 ms".into(), Some(r.resolve_warm_p50_ms < 2.0)),
        Figure::new(
            "resolve, warm cache, 10 artifacts p99",
            format!("{:.3} ms", r.resolve_warm_p99_ms),
        ),
    ];
    format!("store {}\n\n{}", r.store, figures_table(&figures))
}
