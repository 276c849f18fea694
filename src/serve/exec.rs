//! An exec request: one CLI command as the session's user, run as a child `ospdeck` whose stdin,
//! stdout, stderr and exit status are the channel's. The child is told the user
//! (`SESSION_USER_ENV`) and the store, and the CLI itself refuses what a session may not do
//! (another store, another user, the console, the server, the worker).

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use russh::ChannelId;
use russh::server::Handle;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::channel_out::say;
use crate::root::SESSION_USER_ENV;

/// The SSH extended-data type of stderr.
const STDERR: u32 = 1;
/// Input a command has not read yet, at most; past it the command's stdin is closed (the
/// largest input a command takes, a payload or a manifest, is far smaller).
const MOST_UNREAD_INPUT: usize = 16 << 20;
/// How long a command that must stop (the client left, the server stops) has after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct ExecRequest<'a> {
    pub exe: &'a Path,
    pub url: &'a str,
    pub user: &'a str,
    pub command: &'a str,
}

/// The client's input for a command, queued without waiting (the SSH connection's callbacks
/// must never wait on a command that does not read), up to a bound.
#[derive(Clone)]
pub struct StdinFeed {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    unread: Arc<AtomicUsize>,
}

impl StdinFeed {
    pub fn new() -> (Self, StdinQueue) {
        let (queue, rx) = mpsc::unbounded_channel();
        let unread = Arc::new(AtomicUsize::new(0));
        (
            Self {
                queue,
                unread: unread.clone(),
            },
            StdinQueue { rx, unread },
        )
    }

    /// Queues `bytes`; false when the command has left too much unread (or is gone), and the
    /// feed should be dropped, which closes the command's stdin.
    pub fn push(&self, bytes: &[u8]) -> bool {
        if self.unread.load(Ordering::SeqCst) + bytes.len() > MOST_UNREAD_INPUT {
            return false;
        }
        self.unread.fetch_add(bytes.len(), Ordering::SeqCst);
        self.queue.send(bytes.to_vec()).is_ok()
    }
}

pub struct StdinQueue {
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    unread: Arc<AtomicUsize>,
}

/// A command's process group, stopped when dropped before the command ended: SIGTERM to the
/// whole group (what the command started goes too), SIGKILL after a grace.
struct Group(Option<libc::pid_t>);

impl Group {
    fn ended(&mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let Some(pgid) = self.0 else {
            return;
        };
        // SAFETY: kill has no memory-safety preconditions; the group is the command's own.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        std::thread::spawn(move || {
            std::thread::sleep(STOP_GRACE);
            // SAFETY: as above; a group that is already gone answers ESRCH.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        });
    }
}

/// Runs the command to its end and reports its exit status on the channel, then closes it.
/// Dropping the future (the client went away, the server stops) stops the command's group.
pub async fn run(request: ExecRequest<'_>, handle: Handle, channel: ChannelId, stdin: StdinQueue) {
    let status = match shell_words::split(request.command) {
        Ok(words) if words.is_empty() => {
            say(&handle, channel, "ospdeck: no command given; try `help`").await;
            2
        }
        Ok(words) => match spawn(&request, &words) {
            Ok(child) => run_child(child, &handle, channel, stdin).await,
            Err(e) => {
                say(
                    &handle,
                    channel,
                    &format!("ospdeck: cannot run the command: {e}"),
                )
                .await;
                1
            }
        },
        Err(e) => {
            say(
                &handle,
                channel,
                &format!("ospdeck: cannot split the command: {e}"),
            )
            .await;
            2
        }
    };
    let _ = handle.exit_status_request(channel, status).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

async fn run_child(
    mut child: tokio::process::Child,
    handle: &Handle,
    channel: ChannelId,
    stdin: StdinQueue,
) -> u32 {
    let mut group = Group(child.id().and_then(|id| libc::pid_t::try_from(id).ok()));
    // Input is fed on the side: an interactive client may never send EOF, and the command's
    // end, not its input's, ends the request.
    let to_child = child.stdin.take();
    let feeder = tokio::spawn(async move {
        let StdinQueue { mut rx, unread } = stdin;
        let Some(mut to_child) = to_child else {
            return;
        };
        while let Some(bytes) = rx.recv().await {
            let written = to_child.write_all(&bytes).await;
            unread.fetch_sub(bytes.len(), Ordering::SeqCst);
            if written.is_err() {
                break;
            }
        }
    });
    tokio::join!(
        forward(child.stdout.take(), handle, channel, None),
        forward(child.stderr.take(), handle, channel, Some(STDERR)),
    );
    let status = child.wait().await;
    group.ended();
    feeder.abort();
    match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            say(handle, channel, &format!("ospdeck: lost the command: {e}")).await;
            1
        }
    }
}

fn spawn(request: &ExecRequest<'_>, words: &[String]) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(request.exe)
        .args(words)
        .env(SESSION_USER_ENV, request.user)
        // The server's store, whatever the environment or config file would name.
        .env("OSPDECK_DATABASE_URL", request.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so that stopping it stops what it started (a deployer's shell).
        .process_group(0)
        .spawn()
}

/// The status a shell would report: the exit code, or 128 + the signal that ended the command.
fn exit_code(status: std::process::ExitStatus) -> u32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u32::try_from(code).unwrap_or(1),
        (None, Some(signal)) => 128 + u32::try_from(signal).unwrap_or(0),
        (None, None) => 1,
    }
}

/// Copies a child's output to the channel (stdout, or stderr as extended data) until it ends.
async fn forward(
    from: Option<impl AsyncRead + Unpin>,
    handle: &Handle,
    channel: ChannelId,
    extended: Option<u32>,
) {
    let Some(mut from) = from else {
        return;
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let bytes = buf[..n].to_vec();
        let sent = match extended {
            Some(ext) => handle.extended_data(channel, ext, bytes).await,
            None => handle.data(channel, bytes).await,
        };
        if sent.is_err() {
            return;
        }
    }
}
