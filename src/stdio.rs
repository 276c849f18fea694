//! The two writers everything prints through: the CLI, the worker (with its outage lines) and the
//! benches. Unlike `println!` and `eprintln!` they never panic. SIGPIPE stays ignored (Rust's
//! default): the worker and the console hold sockets and child pipes whose EPIPE must stay an
//! error to handle, not a signal that kills the process.

use std::io::{self, Write};
use std::sync::Mutex;

/// What became of stdout. A reader that went away (`ospdeck run logs 7 | head -1`) is how pipes
/// end, not an error: from then on nothing more is printed and the command ends quietly with its
/// own exit status, as ripgrep does. Any other write error (a full disk under `> file`) means the
/// output is incomplete, so the command must fail; [`stdout_failure`] reports it at the end.
enum StdoutState {
    Open,
    Closed,
    Failed(String),
}

static STDOUT: Mutex<StdoutState> = Mutex::new(StdoutState::Open);

/// Stdout is gone or broken; nothing more will be written to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdoutGone;

/// Writes `text` and a newline to stdout. Unlike `println!` it never panics: after a broken pipe
/// or a write error this and every later call print nothing and answer `Err(StdoutGone)`, so
/// loops (`run logs --follow`) can stop.
pub fn stdout_line(text: &str) -> Result<(), StdoutGone> {
    let mut line = Vec::with_capacity(text.len() + 1);
    line.extend_from_slice(text.as_bytes());
    line.push(b'\n');
    write_stdout(&line)
}

/// Writes `bytes` to stdout and flushes, recording a closed pipe or a failure (see
/// [`stdout_line`]).
fn write_stdout(bytes: &[u8]) -> Result<(), StdoutGone> {
    // A poisoned lock only means another thread panicked mid-print; the state is still valid.
    let mut state = STDOUT.lock().unwrap_or_else(|e| e.into_inner());
    if !matches!(*state, StdoutState::Open) {
        return Err(StdoutGone);
    }
    let mut out = io::stdout().lock();
    let written = out.write_all(bytes).and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) => {
            *state = if e.kind() == io::ErrorKind::BrokenPipe {
                StdoutState::Closed
            } else {
                StdoutState::Failed(e.to_string())
            };
            Err(StdoutGone)
        }
    }
}

/// Stdout for long outputs (a million-run list): text collects in a buffer that is written out
/// whenever it passes 64 KiB and at [`StdoutBuffer::flush`], not once per line. Closed pipes
/// and failures are recorded as [`stdout_line`] records them; once stdout is gone every call
/// answers `Err(StdoutGone)`, so a producer can stop. Dropping it flushes what is left.
pub struct StdoutBuffer {
    buf: Vec<u8>,
}

const STDOUT_CHUNK: usize = 64 * 1024;

impl Default for StdoutBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl StdoutBuffer {
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(STDOUT_CHUNK + 4096),
        }
    }

    /// Appends what `write` puts into the buffer (serde_json::to_writer, say), then writes
    /// the buffer out if it is full. An error of `write` itself is the caller's.
    pub fn push<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Result<(), StdoutGone>, E> {
        write(&mut self.buf)?;
        Ok(if self.buf.len() >= STDOUT_CHUNK {
            self.flush()
        } else {
            Ok(())
        })
    }

    /// Appends `text` (no newline added).
    pub fn text(&mut self, text: &str) -> Result<(), StdoutGone> {
        match self.push(|b| {
            b.extend_from_slice(text.as_bytes());
            Ok::<(), std::convert::Infallible>(())
        }) {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// Appends `text` and a newline.
    pub fn line(&mut self, text: &str) -> Result<(), StdoutGone> {
        self.text(text)?;
        self.text("\n")
    }

    /// Writes out what the buffer holds.
    pub fn flush(&mut self) -> Result<(), StdoutGone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = write_stdout(&self.buf);
        self.buf.clear();
        written
    }
}

impl Drop for StdoutBuffer {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The error of a failed stdout write other than a closed pipe, if there was one.
pub fn stdout_failure() -> Option<String> {
    match &*STDOUT.lock().unwrap_or_else(|e| e.into_inner()) {
        StdoutState::Failed(message) => Some(message.clone()),
        StdoutState::Open | StdoutState::Closed => None,
    }
}

/// Writes `text` and a newline to stderr. Errors are dropped: stderr is where failures would be
/// reported, so a closed or broken stderr leaves nowhere to say so, and it must not panic.
pub fn stderr_line(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err
        .write_all(text.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}
