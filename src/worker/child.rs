//! One run's child process: `sh -c COMMAND`, output streamed into run_logs, timeout and cancel.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::domain::run::{ClaimedRun, Completion, LogLevel, NewLogLine};
use crate::domain::workflow::Workflow;
use crate::ops::Ops;

/// What the worker loop tells a running child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Run,
    /// A cancel was requested: stop and finish the run as canceled.
    Cancel,
    /// The run is no longer ours (lease lost, or shutting down): stop and do not finish it.
    Abandon,
}

const LOG_BATCH: usize = 256;
const LOG_FLUSH: Duration = Duration::from_millis(100);
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Runs the workflow's command; answers how it ended, or None when the run was abandoned.
pub async fn run_child(
    ops: &Ops,
    worker: &str,
    run: &ClaimedRun,
    workflow: &Workflow,
    mut control: watch::Receiver<Control>,
) -> Option<Completion> {
    let hold = run.hold();
    let failed = |error: String| Completion {
        hold,
        exit_code: None,
        error: Some(error),
        canceled: false,
    };
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(&workflow.command)
        .env("OSPDECK_RUN_ID", run.id.to_string())
        .env("OSPDECK_ATTEMPT", run.attempt.to_string())
        .env("OSPDECK_PAYLOAD", run.payload.to_string())
        .env("OSPDECK_WORKER_ID", worker)
        .env("OSPDECK_QUEUE", &run.queue)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout or cancel stops everything it started.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Some(failed(format!("cannot start `sh -c`: {e}"))),
    };

    let (lines_tx, lines_rx) = mpsc::channel::<NewLogLine>(1024);
    let readers = [
        child.stdout.take().map(|out| {
            tokio::spawn(forward_lines(
                out,
                LogLevel::Info,
                "stdout",
                lines_tx.clone(),
            ))
        }),
        child.stderr.take().map(|err| {
            tokio::spawn(forward_lines(
                err,
                LogLevel::Error,
                "stderr",
                lines_tx.clone(),
            ))
        }),
    ];
    drop(lines_tx);
    let logger = tokio::spawn(store_lines(ops.clone(), run.id, lines_rx));

    let timeout = Duration::from_secs(u64::try_from(workflow.timeout_secs).unwrap_or(1));
    let pgid = child.id();
    let ending = tokio::select! {
        status = child.wait() => Ending::Exited(status.map_err(|e| e.to_string())),
        _ = tokio::time::sleep(timeout) => Ending::TimedOut,
        signal = wait_for_stop(&mut control) => signal,
    };
    if !matches!(ending, Ending::Exited(_)) {
        stop_group(pgid, &mut child).await;
    }
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    let _ = logger.await;

    match ending {
        Ending::Exited(Ok(status)) => {
            let code = status.code();
            let error = match code {
                Some(0) => None,
                Some(c) => Some(format!("exit code {c}")),
                None => Some(format!("killed by {status}")),
            };
            Some(Completion {
                hold,
                exit_code: code,
                error,
                canceled: false,
            })
        }
        Ending::Exited(Err(e)) => Some(failed(format!("waiting for the command failed: {e}"))),
        Ending::TimedOut => Some(failed(format!(
            "timed out after {}s",
            workflow.timeout_secs
        ))),
        Ending::Canceled => Some(Completion {
            hold,
            exit_code: None,
            error: Some("canceled on request".into()),
            canceled: true,
        }),
        Ending::Abandoned => None,
    }
}

enum Ending {
    Exited(Result<std::process::ExitStatus, String>),
    TimedOut,
    Canceled,
    Abandoned,
}

async fn wait_for_stop(control: &mut watch::Receiver<Control>) -> Ending {
    loop {
        match *control.borrow_and_update() {
            Control::Cancel => return Ending::Canceled,
            Control::Abandon => return Ending::Abandoned,
            Control::Run => {}
        }
        if control.changed().await.is_err() {
            // The loop went away without a word: treat like losing the run.
            return Ending::Abandoned;
        }
    }
}

/// SIGTERM to the whole group, then SIGKILL if it has not gone within the grace period.
async fn stop_group(pgid: Option<u32>, child: &mut tokio::process::Child) {
    let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    signal_group(pgid, libc::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
    // The group is the child's own (process_group(0)), so no unrelated process is touched.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

async fn forward_lines(
    stream: impl AsyncRead + Unpin,
    level: LogLevel,
    source: &'static str,
    tx: mpsc::Sender<NewLogLine>,
) {
    let mut lines = BufReader::new(stream).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let meta = serde_json::json!({ "stream": source });
                if tx.send(NewLogLine::new(level, &line, meta)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            // Not UTF-8 or a read error: note it and stop reading this stream.
            Err(e) => {
                let _ = tx
                    .send(NewLogLine::new(
                        LogLevel::Warn,
                        &format!("{source} unreadable: {e}"),
                        serde_json::Value::Null,
                    ))
                    .await;
                return;
            }
        }
    }
}

/// Appends lines in batches, so a chatty command costs one round trip per batch, not per line.
async fn store_lines(ops: Ops, run_id: i64, mut rx: mpsc::Receiver<NewLogLine>) {
    let mut batch: Vec<NewLogLine> = Vec::with_capacity(LOG_BATCH);
    loop {
        let closed = tokio::select! {
            line = rx.recv() => match line {
                Some(line) => { batch.push(line); false }
                None => true,
            },
            _ = tokio::time::sleep(LOG_FLUSH), if !batch.is_empty() => false,
        };
        while batch.len() < LOG_BATCH {
            match rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        if !batch.is_empty() && (closed || batch.len() >= LOG_BATCH || rx.is_empty()) {
            if let Err(e) = ops.append_logs(run_id, &batch).await {
                tracing::warn!(run_id, error = %e, lines = batch.len(), "could not store log lines");
            }
            batch.clear();
        }
        if closed {
            return;
        }
    }
}
