//! One run's child process: `sh -c COMMAND`, output streamed into run_logs, timeout and cancel.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::guard::GroupGuard;
use crate::domain::run::{ClaimedRun, Completion, LogLevel, NewLogLine};
use crate::domain::workflow::Workflow;
use crate::ops::{Backoff, Ops, StoreHealth};

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
/// Lines held in memory while the store is away; beyond this the oldest are dropped (and the
/// drop is noted in the log), so a chatty command neither stalls on a full pipe nor eats memory.
const LOG_BUFFER_LINES: usize = 20_000;
/// A line longer than this is stored in pieces: a command that never writes a newline must not
/// make the worker hold its whole output.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Runs the workflow's command; answers how it ended, or None when the run was abandoned.
pub async fn run_child(
    ops: &Ops,
    worker: &str,
    run: &ClaimedRun,
    workflow: &Workflow,
    health: &StoreHealth,
    guard: &GroupGuard,
    mut control: watch::Receiver<Control>,
) -> Option<Completion> {
    let hold = run.hold();
    let failed = |error: String| Completion {
        hold,
        exit_code: None,
        error: Some(error),
        canceled: false,
    };
    let mut command = Command::new("sh");
    command
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
        // Its own process group, so a timeout, a cancel or the worker's death (through the
        // guard) stops everything it started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Some(failed(format!("cannot start `sh -c`: {e}"))),
    };
    let pgid = child.id();
    if let Some(pgid) = pgid {
        guard.watch(pgid).await;
    }

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
    let logger = tokio::spawn(store_lines(
        ops.clone(),
        run.id,
        lines_rx,
        health.clone(),
        control.clone(),
    ));

    let timeout = Duration::from_secs(u64::try_from(workflow.timeout_secs).unwrap_or(1));
    let ending = tokio::select! {
        status = child.wait() => Ending::Exited(status.map_err(|e| e.to_string())),
        _ = tokio::time::sleep(timeout) => Ending::TimedOut,
        signal = wait_for_stop(&mut control) => signal,
    };
    if !matches!(ending, Ending::Exited(_)) {
        stop_group(pgid, &mut child).await;
    }
    if let Some(pgid) = pgid {
        guard.forget(pgid).await;
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
    let mut reader = BufReader::new(stream);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let (found_newline, used) = match reader.fill_buf().await {
            Ok([]) => {
                if !line.is_empty() {
                    let _ = tx.send(log_line(level, source, &line)).await;
                }
                return;
            }
            Ok(buf) => {
                let room = MAX_LINE_BYTES - line.len();
                match buf.iter().take(room).position(|&b| b == b'\n') {
                    Some(at) => {
                        line.extend_from_slice(&buf[..at]);
                        (true, at + 1)
                    }
                    None => {
                        let take = buf.len().min(room);
                        line.extend_from_slice(&buf[..take]);
                        (false, take)
                    }
                }
            }
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
        };
        reader.consume(used);
        if found_newline || line.len() >= MAX_LINE_BYTES {
            if tx.send(log_line(level, source, &line)).await.is_err() {
                return;
            }
            line.clear();
        }
    }
}

/// Output as the store can keep it: bytes that are not UTF-8 become U+FFFD rather than ending the
/// log, and NUL (which PostgreSQL text cannot hold) becomes U+FFFD too.
fn log_line(level: LogLevel, source: &str, bytes: &[u8]) -> NewLogLine {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}");
    NewLogLine::new(level, &text, serde_json::json!({ "stream": source }))
}

/// Appends lines in batches, so a chatty command costs one round trip per batch, not per line.
/// While the store is away the lines wait in a bounded buffer and are delivered when it answers;
/// they are given up only when the run is abandoned and the store is still away, or when the
/// store refuses them outright.
async fn store_lines(
    ops: Ops,
    run_id: i64,
    mut rx: mpsc::Receiver<NewLogLine>,
    health: StoreHealth,
    control: watch::Receiver<Control>,
) {
    let mut buffer = LineBuffer::default();
    let mut backoff = Backoff::new();
    let mut retry_at: Option<Instant> = None;
    let mut closed = false;
    loop {
        let waiting = retry_at.is_some_and(|t| Instant::now() < t);
        if !closed {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(line) => buffer.push(line),
                    None => closed = true,
                },
                _ = tokio::time::sleep(LOG_FLUSH), if !buffer.is_empty() => {}
            }
            while let Ok(line) = rx.try_recv() {
                buffer.push(line);
            }
        } else if waiting {
            if *control.borrow() == Control::Abandon {
                tracing::warn!(
                    run_id,
                    lines = buffer.len(),
                    "store away; giving up the log lines of an abandoned run"
                );
                return;
            }
            tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)).await;
        }
        if buffer.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        let full = buffer.len() >= LOG_BATCH;
        if waiting || !(closed || full || rx.is_empty()) {
            continue;
        }
        let batch = buffer.batch(LOG_BATCH);
        match ops.append_logs(run_id, &batch).await {
            Ok(()) => {
                health.ok();
                backoff.reset();
                retry_at = None;
                buffer.delivered(batch.len());
            }
            Err(e) if health.failed("storing log lines", &e) => {
                retry_at = Some(Instant::now() + backoff.next_delay());
            }
            Err(e) => {
                tracing::warn!(run_id, error = %e, lines = batch.len(), "log lines refused; dropping them");
                buffer.delivered(batch.len());
            }
        }
    }
}

/// Lines waiting for the store, oldest first, bounded by dropping the oldest; a note of how many
/// were dropped goes out ahead of the rest.
#[derive(Default)]
struct LineBuffer {
    lines: VecDeque<NewLogLine>,
    dropped: u64,
}

impl LineBuffer {
    fn push(&mut self, line: NewLogLine) {
        if self.lines.len() >= LOG_BUFFER_LINES {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    fn len(&self) -> usize {
        self.lines.len() + usize::from(self.dropped > 0)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `max` lines to send next (the drop note first, if any).
    fn batch(&self, max: usize) -> Vec<NewLogLine> {
        let note = (self.dropped > 0).then(|| {
            NewLogLine::new(
                LogLevel::Warn,
                &format!(
                    "{} earlier lines were dropped while the store was unreachable",
                    self.dropped
                ),
                serde_json::Value::Null,
            )
        });
        note.into_iter()
            .chain(self.lines.iter().cloned())
            .take(max)
            .collect()
    }

    /// The first `n` lines of the last batch are stored.
    fn delivered(&mut self, mut n: usize) {
        if self.dropped > 0 && n > 0 {
            self.dropped = 0;
            n -= 1;
        }
        self.lines.drain(..n.min(self.lines.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> NewLogLine {
        NewLogLine::new(
            LogLevel::Info,
            &format!("line {n}"),
            serde_json::Value::Null,
        )
    }

    #[test]
    fn the_buffer_drops_the_oldest_and_says_how_many() {
        let mut b = LineBuffer::default();
        for n in 0..LOG_BUFFER_LINES + 3 {
            b.push(line(n));
        }
        assert_eq!(b.len(), LOG_BUFFER_LINES + 1);
        let batch = b.batch(2);
        assert_eq!(
            batch[0].message,
            "3 earlier lines were dropped while the store was unreachable"
        );
        assert_eq!(batch[1].message, "line 3");
        b.delivered(2);
        assert_eq!(b.batch(1)[0].message, "line 4");
        assert_eq!(b.len(), LOG_BUFFER_LINES - 1);
    }

    #[test]
    fn output_that_is_not_utf8_is_kept_lossily() {
        let l = log_line(LogLevel::Info, "stdout", b"caf\xe9 \x00 ok\r");
        assert_eq!(l.message, "caf\u{FFFD} \u{FFFD} ok");
    }
}
