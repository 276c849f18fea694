//! `ospdeck bench services`: services created per second (each one transaction with its manifest,
//! workflows, schema, registry row, audit event and deploy run) and `manifest diff` on 1 MB.

use std::io::IsTerminal;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::{Figure, counter, figures_table, p50_p99, rate, spinner};
use crate::cli::output::Unit;
use crate::cli::{Cli, CliResult, open_store, resolve_config};
use crate::domain::manifest::{self, MAX_MANIFEST_BYTES};
use crate::ops::{CreateService, ManifestProposal, Ops};
use crate::store::StoreOptions;

#[derive(Debug, Clone, Args)]
pub struct ServicesBenchArgs {
    /// Services to create
    #[arg(long, default_value_t = 300)]
    pub services: usize,
    /// Diffs of the two 1 MB manifests to time
    #[arg(long, default_value_t = 20)]
    pub diffs: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    services: usize,
    services_per_sec: f64,
    manifest_bytes: usize,
    changes_found: usize,
    diff_with_load_p50_ms: f64,
    diff_with_load_p99_ms: f64,
    diff_only_p50_ms: f64,
}

pub async fn services(cli: &Cli, args: &ServicesBenchArgs) -> CliResult {
    let resolved = resolve_config(cli)?;
    let store = open_store(&resolved, &StoreOptions::default(), true).await?;
    let ops = Ops::connect_as(store.clone(), cli.as_user.as_deref()).await?;
    let show = !cli.json && std::io::stderr().is_terminal();
    let stamp = chrono::Utc::now().format("%m%d%H%M%S%3f").to_string();
    let project = format!("bench-services-{stamp}");
    ops.create_project(&project, Some("services benchmark"))
        .await?;
    let workflows: Vec<_> = [
        "processBilling:calculateCharges,sendInvoice",
        "handlePayment:pay",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();

    let bar = counter(
        show,
        "creating services",
        args.services,
        Unit::Items("services"),
    );
    let t = Instant::now();
    for i in 0..args.services {
        let schema = format!("b{stamp}_{i}");
        ops.create_service(&CreateService {
            project: &project,
            name: Some("Bench service"),
            schema: Some(&schema),
            workflows: workflows.clone(),
            manifest: None,
        })
        .await?;
        bar.inc(1);
    }
    let services_per_sec = rate(args.services, t.elapsed());
    bar.finish_and_clear();

    // Two versions of about 1 MB that differ in a few hundred fields.
    let bar = spinner(show, "two 1 MB manifests");
    let schema = format!("b{stamp}_diff");
    ops.create_service(&CreateService {
        project: &project,
        name: Some("Big manifest"),
        schema: Some(&schema),
        workflows: workflows.clone(),
        manifest: None,
    })
    .await?;
    let base = ops.manifest(&schema, None).await?.content;
    let big = |salt: usize| {
        let mut v = base.clone();
        let mut entries = serde_json::Map::new();
        let mut i = 0;
        loop {
            let value = if i % 97 == 0 {
                format!("value {i} v{salt}")
            } else {
                format!("value {i}")
            };
            entries.insert(format!("key_{i:06}"), json!({ "n": i, "text": value }));
            i += 1;
            if i % 1000 == 0
                && serde_json::to_vec(&entries).map(|b| b.len()).unwrap_or(0)
                    > MAX_MANIFEST_BYTES - 40_000
            {
                break;
            }
        }
        v["metadata"] = serde_json::Value::Object(entries);
        v.to_string()
    };
    let (a, b) = (big(1), big(2));
    let manifest_bytes = b.len();
    let va = ops
        .propose_manifest(&ManifestProposal {
            version: Some("2.0.0"),
            ..ManifestProposal::new(&schema, &a)
        })
        .await?;
    let vb = ops
        .propose_manifest(&ManifestProposal {
            version: Some("2.0.1"),
            ..ManifestProposal::new(&schema, &b)
        })
        .await?;
    bar.finish_and_clear();
    let bar = counter(
        show,
        "1 MB manifest diffs",
        args.diffs * 2,
        Unit::Items("diffs"),
    );
    let mut with_load = Vec::with_capacity(args.diffs);
    let mut changes_found = 0;
    for _ in 0..args.diffs {
        let t = Instant::now();
        changes_found = ops
            .manifest_diff(&schema, &va.version, &vb.version)
            .await?
            .len();
        with_load.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    let mut only = Vec::with_capacity(args.diffs);
    for _ in 0..args.diffs {
        let t = Instant::now();
        let _ = manifest::diff(&va.content, &vb.content);
        only.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (p50, p99) = p50_p99(&mut with_load);
    let (only_p50, _) = p50_p99(&mut only);
    let report = Report {
        store: store.location(),
        services: args.services,
        services_per_sec,
        manifest_bytes,
        changes_found,
        diff_with_load_p50_ms: p50,
        diff_with_load_p99_ms: p99,
        diff_only_p50_ms: only_p50,
    };
    crate::cli::emit_report(cli.json, &report, || render(&report));
    Ok(())
}

/// The services issue set no aims for these; they are printed for the closing notes to compare.
fn render(r: &Report) -> String {
    let diff = format!(
        "manifest diff, {} bytes, {} changes",
        r.manifest_bytes, r.changes_found
    );
    let figures = [
        Figure::new(
            format!(
                "services created (one transaction each) over {}",
                r.services
            ),
            format!("{:.1} services/s", r.services_per_sec),
        ),
        Figure::new(
            format!("{diff} p50 (both versions loaded)"),
            format!("{:.1} ms", r.diff_with_load_p50_ms),
        ),
        Figure::new(
            format!("{diff} p99 (both versions loaded)"),
            format!("{:.1} ms", r.diff_with_load_p99_ms),
        ),
        Figure::new(
            "manifest diff, comparison only p50",
            format!("{:.1} ms", r.diff_only_p50_ms),
        ),
    ];
    format!("store {}\n\n{}", r.store, figures_table(&figures))
}
