//! Takes a worker's commands down with it, however the worker dies (SIGKILL included).
//!
//! One small shell per worker holds the process group of every command the worker is running; the
//! worker tells it each group as the command starts (`+PGID`) and when it ends (`-PGID`) over a
//! pipe only the worker holds. When the worker dies the kernel closes that pipe, the guard reads
//! end-of-file and kills every group still listed. A guard per worker rather than a supervisor
//! shell per command lets a command start by `posix_spawn` (no `pre_exec` hook, so no copy of the
//! worker's page tables) as one process instead of two: the difference between spawning at a
//! quarter of the machine's rate and near all of it.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};
use tokio::sync::Mutex;

/// The guard's loop. `groups` is a space-separated list with a space on each side of every group,
/// so removing one is two parameter expansions (no process per message).
const GUARD: &str = r#"groups=' '
while read -r op pg; do
  case $op in
    +) groups="$groups$pg " ;;
    -) case $groups in *" $pg "*) groups="${groups%%" $pg "*} ${groups#*" $pg "}" ;; esac ;;
  esac
done
for pg in $groups; do kill -KILL -"$pg" 2>/dev/null; done"#;

pub struct GroupGuard {
    /// None once the guard has gone away (its groups are then no longer watched).
    stdin: Mutex<Option<ChildStdin>>,
}

impl GroupGuard {
    pub fn start() -> std::io::Result<Self> {
        let mut child = Command::new("sh")
            .args(["-c", GUARD, "ospdeck-guard"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a signal meant for the worker's group (Ctrl-C in a terminal) must not
            // end the guard before the worker has stopped its commands.
            .process_group(0)
            .kill_on_drop(false)
            .spawn()?;
        // The child itself is reaped by tokio once it exits after the pipe closes.
        let stdin = child.stdin.take();
        Ok(Self {
            stdin: Mutex::new(stdin),
        })
    }

    /// A command's process group started: kill it if the worker dies.
    pub async fn watch(&self, pgid: u32) {
        self.send(format!("+ {pgid}\n")).await;
    }

    /// The command's process group ended (or was stopped): forget it.
    pub async fn forget(&self, pgid: u32) {
        self.send(format!("- {pgid}\n")).await;
    }

    async fn send(&self, line: String) {
        let mut stdin = self.stdin.lock().await;
        if let Some(pipe) = stdin.as_mut()
            && let Err(e) = pipe.write_all(line.as_bytes()).await
        {
            tracing::warn!(error = %e, "the process-group guard went away; commands will not be stopped if this worker dies");
            *stdin = None;
        }
    }
}
