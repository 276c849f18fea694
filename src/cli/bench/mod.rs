//! Benchmarks that print figures: `ospdeck bench queue`, `console`, `services`, `templates` and
//! `serve`.

mod console;
mod ingest;
mod logs;
mod queue;
mod serve;
mod services;
mod templates;

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::output::{self, Unit};
use crate::domain::workflow::{Workflow, WorkflowType};
use crate::ops::{Ops, OpsResult, WorkflowRequest};

pub use console::{ConsoleBenchArgs, console};
pub use queue::{QueueBenchArgs, queue};
pub use serve::{ServeBenchArgs, serve};
pub use services::{ServicesBenchArgs, services};
pub use templates::{TemplatesBenchArgs, templates};

/// A spinner on stderr while a phase of unknown length runs, or nothing when output is piped or
/// JSON.
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

/// A bar counting `total` items (or bytes) with their rate, on stderr only when `show`.
fn counter(show: bool, label: &str, total: usize, unit: Unit) -> ProgressBar {
    output::progress(show, label, total as u64, unit)
}

/// One figure a bench prints: what was measured, against which aim, beside which raw limit or
/// peer measured in the same run.
struct Figure {
    name: String,
    measured: String,
    /// The aim as written ("≤ 20 ms") and whether it was met (None: nothing was measured).
    aim: Option<(String, Option<bool>)>,
    beside: String,
}

impl Figure {
    fn new(name: impl Into<String>, measured: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            measured: measured.into(),
            aim: None,
            beside: String::new(),
        }
    }

    /// Aim: `value` at most `limit` (NaN, nothing measured, misses it).
    fn at_most(self, value: f64, limit: f64, unit: &str) -> Self {
        self.aim(format!("≤ {limit} {unit}"), Some(value <= limit))
    }

    /// Aim: `value` at least `limit`.
    fn at_least(self, value: f64, limit: f64, unit: &str) -> Self {
        self.aim(format!("≥ {limit} {unit}"), Some(value >= limit))
    }

    fn aim(mut self, text: String, met: Option<bool>) -> Self {
        self.aim = Some((text.trim_end().to_owned(), met));
        self
    }

    fn beside(mut self, text: impl Into<String>) -> Self {
        self.beside = text.into();
        self
    }
}

/// One aligned table: every figure against its aim, ✓ met, ✗ missed, `?` not measured.
fn figures_table(figures: &[Figure]) -> String {
    output::table(
        &["FIGURE", "MEASURED", "AIM", "✓/✗", "RAW LIMIT / PEER"],
        figures.iter().map(|f| {
            let (aim, mark) = match &f.aim {
                Some((text, Some(true))) => (text.clone(), "✓"),
                Some((text, Some(false))) => (text.clone(), "✗"),
                Some((text, None)) => (text.clone(), "?"),
                None => ("-".to_owned(), ""),
            };
            vec![
                f.name.clone(),
                f.measured.clone(),
                aim,
                mark.to_owned(),
                f.beside.clone(),
            ]
        }),
    )
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

/// A KiB field of a process's /proc status (`VmHWM:`, `VmRSS:`), None once the process has gone.
fn status_kib(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::{Figure, figures_table};

    #[test]
    fn each_figure_is_marked_against_its_aim_in_one_aligned_table() {
        let out = figures_table(&[
            Figure::new("refresh p99", "12.0 ms").at_most(12.0, 20.0, "ms"),
            Figure::new("frame render p99", "5.10 ms").at_most(5.1, 4.0, "ms"),
            Figure::new("enqueue", "60000 runs/s")
                .at_least(60_000.0, 50_000.0, "runs/s")
                .beside("raw 70000 runs/s"),
            Figure::new("peak RSS", "unknown").at_most(f64::NAN, 40.0, "MiB"),
            Figure::new("lost runs", "0"),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out}");
        assert!(
            lines[1].contains("≤ 20 ms") && lines[1].contains('✓'),
            "{out}"
        );
        assert!(
            lines[2].contains("≤ 4 ms") && lines[2].contains('✗'),
            "{out}"
        );
        assert!(lines[3].contains('✓') && lines[3].ends_with("raw 70000 runs/s"));
        assert!(lines[4].contains('✗'), "NaN is not an aim met: {out}");
        assert!(!lines[5].contains('✓') && !lines[5].contains('✗'));
        // Aligned: every mark sits in the same column.
        let column = |l: &str| l.chars().position(|c| c == '✓' || c == '✗');
        let marks: Vec<_> = lines[1..5].iter().filter_map(|l| column(l)).collect();
        assert!(marks.windows(2).all(|w| w[0] == w[1]), "{out}");
    }
}
