//! Benchmarks that print figures: `ospdeck bench queue` and `ospdeck bench console`.

mod console;
mod logs;
mod queue;
mod services;
mod templates;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::domain::workflow::{Workflow, WorkflowType};
use crate::ops::{Ops, OpsResult, WorkflowRequest};

pub use console::{ConsoleBenchArgs, console};
pub use queue::{QueueBenchArgs, queue};
pub use services::{ServicesBenchArgs, services};
pub use templates::{TemplatesBenchArgs, templates};

/// A spinner on stderr while a phase runs, or nothing when output is piped or JSON.
fn spinner(show: bool, label: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(label.to_owned());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A project with a no-op workflow on a queue of its own (`<prefix>-<timestamp>`), so that a
/// bench never touches other runs.
async fn bench_workflow(ops: &Ops, prefix: &str, about: &str) -> OpsResult<Workflow> {
    let tag = format!("{prefix}-{}", chrono::Utc::now().format("%Y%m%d%H%M%S%3f"));
    ops.create_project(&tag, Some(about)).await?;
    ops.create_workflow(&WorkflowRequest {
        queue: Some(&tag),
        timeout_secs: Some(60),
        ..WorkflowRequest::new(&tag, "noop", WorkflowType::Test, "true")
    })
    .await
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The median and 99th percentile of samples (sorted in place); NaN when there are none.
fn p50_p99(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (pick(0.5), pick(0.99))
}
