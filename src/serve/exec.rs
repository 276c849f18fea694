//! An exec request: one CLI command as the session's user, run as a child `ospdeck` whose stdin,
//! stdout, stderr and exit status are the channel's. The child is told the user
//! (`SESSION_USER_ENV`) and the store, and the CLI itself refuses what a session may not do
//! (another store, another user, the console, the server, the worker).

use std::path::Path;
use std::process::Stdio;

use russh::ChannelId;
use russh::server::Handle;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::root::SESSION_USER_ENV;

/// The SSH extended-data type of stderr.
const STDERR: u32 = 1;

pub struct ExecRequest<'a> {
    pub exe: &'a Path,
    pub url: &'a str,
    pub user: &'a str,
    pub command: &'a str,
}

/// Runs the command to its end and reports its exit status on the channel, then closes it.
/// Dropping the future (the client went away) kills the child.
pub async fn run(
    request: ExecRequest<'_>,
    handle: Handle,
    channel: ChannelId,
    mut stdin: mpsc::Receiver<Vec<u8>>,
) {
    let status = match shell_words::split(request.command) {
        Ok(words) if words.is_empty() => {
            say(&handle, channel, "ospdeck: no command given; try `help`").await;
            2
        }
        Ok(words) => match spawn(&request, &words) {
            Ok(mut child) => {
                // Input is fed on the side: an interactive client may never send EOF, and the
                // command's end, not its input's, ends the request.
                let to_child = child.stdin.take();
                let feeder = tokio::spawn(async move {
                    if let Some(mut to_child) = to_child {
                        while let Some(bytes) = stdin.recv().await {
                            if to_child.write_all(&bytes).await.is_err() {
                                break;
                            }
                        }
                    }
                });
                tokio::join!(
                    forward(child.stdout.take(), &handle, channel, None),
                    forward(child.stderr.take(), &handle, channel, Some(STDERR)),
                );
                let status = child.wait().await;
                feeder.abort();
                match status {
                    Ok(status) => exit_code(status),
                    Err(e) => {
                        say(&handle, channel, &format!("ospdeck: lost the command: {e}")).await;
                        1
                    }
                }
            }
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

fn spawn(request: &ExecRequest<'_>, words: &[String]) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(request.exe)
        .args(words)
        .env(SESSION_USER_ENV, request.user)
        // The server's store, whatever the environment or config file would name.
        .env("OSPDECK_DATABASE_URL", request.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
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

/// One line on the channel's stderr.
pub async fn say(handle: &Handle, channel: ChannelId, line: &str) {
    let _ = handle
        .extended_data(channel, STDERR, format!("{line}\r\n").into_bytes())
        .await;
}
