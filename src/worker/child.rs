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

/// A store call carries at most this many lines, or about this many bytes: a chatty command
/// costs one round trip (and one transaction) per few thousand lines.
const LOG_BATCH: usize = 5_000;
const LOG_BATCH_BYTES: usize = 1024 * 1024;
const LOG_FLUSH: Duration = Duration::from_millis(100);
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Lines held in memory while the store is away; beyond this the oldest are dropped (and the
/// drop is noted in the log), so a chatty command neither stalls on a full pipe nor eats memory
/// while the store cannot take its lines. While the store answers, a full buffer holds the pipe
/// instead: a store slower than the command slows the command, it does not lose its lines.
const LOG_BUFFER_LINES: usize = 20_000;
/// The same bound in message bytes, so long lines cannot make those 20 000 lines hundreds of MB.
const LOG_BUFFER_BYTES: usize = 8 * 1024 * 1024;
/// A reader sends its lines in chunks of at most this many lines (or bytes, a line longer than
/// that goes alone): one channel send per chunk, not per line, and the buffer knows how much
/// room one more chunk needs.
const CHUNK_LINES: usize = 1_024;
const CHUNK_BYTES: usize = 128 * 1024;
/// Chunks in flight between the readers and the writer: with the buffer, what bounds the
/// worker's memory per run while the store is slower than the command.
const CHUNKS_IN_FLIGHT: usize = 8;
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

    let (lines_tx, lines_rx) = mpsc::channel::<Vec<NewLogLine>>(CHUNKS_IN_FLIGHT);
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
    tx: mpsc::Sender<Vec<NewLogLine>>,
) {
    let metadata = std::sync::Arc::new(serde_json::json!({ "stream": source }));
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = Chunk::default();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) => {
                if !line.is_empty() {
                    chunk.push(log_line(level, &metadata, &line));
                }
                if !chunk.lines.is_empty() {
                    let _ = tx.send(chunk.take()).await;
                }
                return;
            }
            Ok(buf) => buf,
            Err(e) => {
                chunk.push(NewLogLine::new(
                    LogLevel::Warn,
                    &format!("{source} unreadable: {e}"),
                    serde_json::Value::Null,
                ));
                let _ = tx.send(chunk.take()).await;
                return;
            }
        };
        // Every whole line in what was read goes into the chunk; what is left waits in `line`.
        let mut used = 0;
        while used < buf.len() {
            let rest = &buf[used..];
            let room = MAX_LINE_BYTES - line.len();
            match rest.iter().take(room).position(|&b| b == b'\n') {
                Some(at) if line.is_empty() => {
                    chunk.push(log_line(level, &metadata, &rest[..at]));
                    used += at + 1;
                }
                Some(at) => {
                    line.extend_from_slice(&rest[..at]);
                    chunk.push(log_line(level, &metadata, &line));
                    line.clear();
                    used += at + 1;
                }
                None => {
                    let take = rest.len().min(room);
                    line.extend_from_slice(&rest[..take]);
                    used += take;
                    if line.len() >= MAX_LINE_BYTES {
                        chunk.push(log_line(level, &metadata, &line));
                        line.clear();
                    }
                }
            }
            if chunk.is_full() {
                break;
            }
        }
        reader.consume(used);
        if !chunk.lines.is_empty() && tx.send(chunk.take()).await.is_err() {
            return;
        }
    }
}

/// Lines read and not yet handed to the writer.
#[derive(Default)]
struct Chunk {
    lines: Vec<NewLogLine>,
    bytes: usize,
}

impl Chunk {
    fn push(&mut self, line: NewLogLine) {
        self.bytes += line.message.len();
        self.lines.push(line);
    }

    fn is_full(&self) -> bool {
        self.lines.len() >= CHUNK_LINES || self.bytes >= CHUNK_BYTES
    }

    fn take(&mut self) -> Vec<NewLogLine> {
        self.bytes = 0;
        std::mem::take(&mut self.lines)
    }
}

/// Output as the store can keep it: bytes that are not UTF-8 become U+FFFD rather than ending the
/// log, and NUL (which PostgreSQL text cannot hold) becomes U+FFFD too.
fn log_line(
    level: LogLevel,
    metadata: &std::sync::Arc<serde_json::Value>,
    bytes: &[u8],
) -> NewLogLine {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    let text = if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        text
    };
    NewLogLine::with_shared(level, &text, metadata.clone())
}

/// Appends lines in batches, so a chatty command costs one round trip per batch, not per line.
/// While the store answers, a full buffer stops the reading (the command then waits on its pipe)
/// so no line is lost to a store that is only slower than the command. While the store is away
/// the lines wait in a bounded buffer and are delivered when it answers; they are given up only
/// when the buffer overflows, when the run is abandoned and the store is still away, or when the
/// store refuses them outright.
async fn store_lines(
    ops: Ops,
    run_id: i64,
    mut rx: mpsc::Receiver<Vec<NewLogLine>>,
    health: StoreHealth,
    control: watch::Receiver<Control>,
) {
    let mut buffer = LineBuffer::default();
    let mut backoff = Backoff::new();
    let mut retry_at: Option<Instant> = None;
    let mut closed = false;
    loop {
        let waiting = retry_at.is_some_and(|t| Instant::now() < t);
        // Away, the store gets no say: the oldest lines make room (the buffer's bound).
        let room = |b: &LineBuffer| waiting || b.has_room_for_chunk();
        if !closed && room(&buffer) {
            tokio::select! {
                chunk = rx.recv() => match chunk {
                    Some(chunk) => buffer.extend(chunk),
                    None => closed = true,
                },
                _ = tokio::time::sleep(LOG_FLUSH), if !buffer.is_empty() => {}
            }
            while room(&buffer) {
                match rx.try_recv() {
                    Ok(chunk) => buffer.extend(chunk),
                    Err(_) => break,
                }
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
        let full = buffer.len() >= LOG_BATCH || !room(&buffer);
        if waiting || !(closed || full || rx.is_empty()) {
            continue;
        }
        let batch = buffer.batch();
        let n = batch.len();
        match ops.append_logs(run_id, batch).await {
            Ok(()) => {
                health.ok();
                backoff.reset();
                retry_at = None;
                buffer.delivered(n);
            }
            Err(e) if health.failed("storing log lines", &e) => {
                retry_at = Some(Instant::now() + backoff.next_delay());
            }
            Err(e) => {
                tracing::warn!(run_id, error = %e, lines = n, "log lines refused; dropping them");
                buffer.delivered(n);
            }
        }
    }
}

/// Lines waiting for the store, oldest first, bounded (in lines and in bytes) by dropping the
/// oldest; a note of how many were dropped goes out ahead of the rest.
#[derive(Default)]
struct LineBuffer {
    lines: VecDeque<NewLogLine>,
    bytes: usize,
    dropped: u64,
    /// The drop note while it is being sent (a batch of its own).
    note: Vec<NewLogLine>,
}

impl LineBuffer {
    fn push(&mut self, line: NewLogLine) {
        self.bytes += line.message.len();
        self.lines.push_back(line);
        while self.lines.len() > LOG_BUFFER_LINES
            || (self.bytes > LOG_BUFFER_BYTES && self.lines.len() > 1)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.message.len();
                self.dropped += 1;
            }
        }
    }

    fn extend(&mut self, lines: Vec<NewLogLine>) {
        for line in lines {
            self.push(line);
        }
    }

    /// Whether one more chunk from a reader fits without dropping a line.
    fn has_room_for_chunk(&self) -> bool {
        self.lines.len() + CHUNK_LINES <= LOG_BUFFER_LINES
            && self.bytes + CHUNK_BYTES + MAX_LINE_BYTES <= LOG_BUFFER_BYTES
    }

    fn len(&self) -> usize {
        self.lines.len() + usize::from(self.dropped > 0)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lines to send next: the drop note alone, if any; else the oldest lines, at most
    /// LOG_BATCH of them and about LOG_BATCH_BYTES.
    fn batch(&mut self) -> &[NewLogLine] {
        if self.dropped > 0 {
            self.note = vec![NewLogLine::new(
                LogLevel::Warn,
                &format!(
                    "{} earlier lines were dropped while the store was unreachable",
                    self.dropped
                ),
                serde_json::Value::Null,
            )];
            return &self.note;
        }
        let lines = self.lines.make_contiguous();
        let mut bytes = 0;
        let n = lines
            .iter()
            .take(LOG_BATCH)
            .take_while(|l| {
                bytes += l.message.len();
                bytes <= LOG_BATCH_BYTES
            })
            .count()
            .max(1);
        &lines[..n.min(lines.len())]
    }

    /// The first `n` lines of the last batch are stored.
    fn delivered(&mut self, mut n: usize) {
        if self.dropped > 0 && n > 0 {
            self.dropped = 0;
            self.note.clear();
            n -= 1;
        }
        for old in self.lines.drain(..n.min(self.lines.len())) {
            self.bytes -= old.message.len();
        }
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
        assert!(!b.has_room_for_chunk());
        let batch = b.batch();
        assert_eq!(batch.len(), 1);
        assert_eq!(
            batch[0].message,
            "3 earlier lines were dropped while the store was unreachable"
        );
        b.delivered(1);
        let batch = b.batch();
        assert_eq!(batch.len(), LOG_BATCH);
        assert_eq!(batch[0].message, "line 3");
        b.delivered(1);
        assert_eq!(b.batch()[0].message, "line 4");
        assert_eq!(b.len(), LOG_BUFFER_LINES - 1);
    }

    #[test]
    fn the_buffer_is_bounded_in_bytes_and_batches_by_bytes_too() {
        let mut b = LineBuffer::default();
        let long = "x".repeat(crate::domain::run::MAX_LOG_LINE_BYTES);
        for _ in 0..LOG_BUFFER_BYTES / crate::domain::run::MAX_LOG_LINE_BYTES + 5 {
            b.push(NewLogLine::new(
                LogLevel::Info,
                &long,
                serde_json::Value::Null,
            ));
        }
        assert!(b.bytes <= LOG_BUFFER_BYTES);
        assert!(b.dropped > 0);
        b.delivered(1);
        let batch = b.batch();
        let bytes: usize = batch.iter().map(|l| l.message.len()).sum();
        assert!(!batch.is_empty() && bytes <= LOG_BATCH_BYTES, "{bytes}");
    }

    #[test]
    fn a_reader_sends_every_line_in_order_in_bounded_chunks() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let mut input = Vec::new();
        for n in 0..5_000 {
            input.extend_from_slice(format!("line {n}\r\n").as_bytes());
        }
        input.extend_from_slice(&vec![b'y'; MAX_LINE_BYTES + 10]);
        input.extend_from_slice(b"\nlast without newline");
        let (tx, mut rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let lines = rt.block_on(async move {
            let reader = tokio::spawn(forward_lines(
                std::io::Cursor::new(input),
                LogLevel::Info,
                "stdout",
                tx,
            ));
            let mut lines = Vec::new();
            while let Some(chunk) = rx.recv().await {
                assert!(chunk.len() <= CHUNK_LINES);
                lines.extend(chunk);
            }
            let _ = reader.await;
            lines
        });
        assert_eq!(lines.len(), 5_003);
        for (n, l) in lines.iter().take(5_000).enumerate() {
            assert_eq!(l.message, format!("line {n}"));
            assert_eq!(*l.metadata, serde_json::json!({ "stream": "stdout" }));
        }
        assert_eq!(lines[5_001].message, "y".repeat(10));
        assert_eq!(lines[5_002].message, "last without newline");
    }

    #[test]
    fn output_that_is_not_utf8_is_kept_lossily() {
        let l = log_line(LogLevel::Info, &Default::default(), b"caf\xe9 \x00 ok\r");
        assert_eq!(l.message, "caf\u{FFFD} \u{FFFD} ok");
    }
}
