//! Log ingestion in `ospdeck bench queue`: one run whose command prints `lines` short lines as
//! fast as it can (`seq 1 N`), executed by a real `ospdeck worker` process, so that the figure
//! includes the pipe, the worker's reading and batching, and the store's append.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{CliError, CliResult};
use crate::domain::workflow::WorkflowType;
use crate::ops::{EnqueueRequest, Ops, WorkflowRequest};

/// How often the worker's peak RSS (VmHWM) is read: the kernel keeps the peak itself, so a
/// poll only misses growth in the last interval before the worker exits.
const RSS_POLL: Duration = Duration::from_millis(20);
/// Lines read back per page when checking that every line is there, in order.
const CHECK_PAGE: i64 = 10_000;

#[derive(Debug, Serialize)]
pub(super) struct IngestFigure {
    pub lines: usize,
    /// Lines stored / (run finished − run started), both stamped by the store: the command's
    /// output from its first line to the last line stored, without the worker's start-up and
    /// claim (those are the end-to-end figure's).
    pub lines_per_sec: f64,
    /// Lines found in the store for the run.
    pub stored: i64,
    /// Lines found in order (line k says k) from the first.
    pub in_order: i64,
    /// From spawning the worker process to its exit.
    pub worker_wall_secs: f64,
    /// The worker's VmHWM, in MB of 10^6 bytes (NaN when /proc could not be read).
    pub worker_peak_rss_mb: f64,
}

/// Enqueues one run of `seq 1 <lines>` on a queue of its own and drains it with
/// `ospdeck worker --drain --concurrency 1` against `db_url`.
pub(super) async fn log_ingestion(
    ops: &Ops,
    db_url: &str,
    as_user: Option<&str>,
    lines: usize,
) -> CliResult<IngestFigure> {
    let tag = format!(
        "bench-ingest-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f")
    );
    ops.create_project(&tag, Some("log ingestion benchmark"))
        .await?;
    let command = format!("seq 1 {lines}");
    ops.create_workflow(&WorkflowRequest {
        queue: Some(&tag),
        timeout_secs: Some(600),
        ..WorkflowRequest::new(&tag, "chatty", WorkflowType::Test, &command)
    })
    .await?;
    let run_id = ops
        .enqueue_run(&EnqueueRequest {
            project: &tag,
            workflow: "chatty",
            ..Default::default()
        })
        .await?;

    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed(format!("cannot find ospdeck's own executable: {e}")))?;
    let mut worker = tokio::process::Command::new(exe);
    worker
        .arg("--db")
        .arg(db_url)
        .args(["worker", "--queue", &tag, "--concurrency", "1", "--drain"])
        .args(["--id", &format!("{tag}-w")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(user) = as_user {
        worker.arg("--as").arg(user);
    }
    let t = Instant::now();
    let mut child = worker
        .spawn()
        .map_err(|e| CliError::failed(format!("cannot start `ospdeck worker`: {e}")))?;
    let status_path = child.id().map(|pid| format!("/proc/{pid}/status"));
    let mut peak_kib: Option<u64> = None;
    let deadline = t + Duration::from_secs(900);
    let status = loop {
        if let Some(path) = &status_path
            && let Some(kib) = super::status_kib(path, "VmHWM:")
        {
            peak_kib = Some(peak_kib.map_or(kib, |p| p.max(kib)));
        }
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::time::sleep(RSS_POLL) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(CliError::failed(format!(
                "the worker did not finish run {run_id} within 15 minutes"
            )));
        }
    };
    let wall = t.elapsed();
    let status =
        status.map_err(|e| CliError::failed(format!("waiting for the worker failed: {e}")))?;
    if !status.success() {
        return Err(CliError::failed(format!(
            "the worker exited with {status} before finishing run {run_id}"
        )));
    }

    let run = ops.run(run_id).await?;
    let (Some(started), Some(finished)) = (run.started_at, run.finished_at) else {
        return Err(CliError::failed(format!(
            "run {run_id} is {} after the worker drained its queue",
            run.status
        )));
    };
    let stored = ops.count_run_logs(run_id, None).await?;
    let in_order = lines_in_order(ops, run_id).await?;
    let secs = (finished - started).num_microseconds().unwrap_or(0) as f64 / 1e6;
    Ok(IngestFigure {
        lines,
        lines_per_sec: stored as f64 / secs.max(1e-6),
        stored,
        in_order,
        worker_wall_secs: wall.as_secs_f64(),
        worker_peak_rss_mb: peak_kib.map_or(f64::NAN, |k| k as f64 * 1024.0 / 1e6),
    })
}

/// How many lines, from the first, read back as 1, 2, 3, …: `seq`'s output stored whole and in
/// order gives the count of lines.
async fn lines_in_order(ops: &Ops, run_id: i64) -> CliResult<i64> {
    let mut after = 0;
    let mut expected: i64 = 1;
    loop {
        let page = ops.run_logs(run_id, after, None, CHECK_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(expected - 1);
        };
        after = last.id;
        for line in &page {
            if line.message.parse::<i64>().ok() != Some(expected) {
                return Ok(expected - 1);
            }
            expected += 1;
        }
    }
}
