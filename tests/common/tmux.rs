//! The real binary in a real terminal: a tmux server of the test's own runs the console at 80×24.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::TestResult;

const BIN: &str = env!("CARGO_BIN_EXE_ospdeck");

/// One tmux server of our own (its own socket), killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(name: &str) -> Self {
        Self {
            socket: format!("ospdeck-test-{}-{name}", std::process::id()),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Result<Output, super::BoxError> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .map_err(|e| {
                format!(
                    "tmux is needed for the console end-to-end test (apt-get install tmux): {e}"
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "tmux {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(out)
    }

    /// Starts `ospdeck --db DB ARGS` at 80×24; when it exits, the shell reports its exit code and
    /// whether the terminal is back in canonical (cooked) mode, then waits to be read.
    pub fn start(&self, home: &Path, db: impl AsRef<std::ffi::OsStr>, args: &str) -> TestResult {
        self.start_under(home, db, args, "")
    }

    /// As `start`, with `wrapper` (a command that runs the rest of its line) before the binary.
    pub fn start_under(
        &self,
        home: &Path,
        db: impl AsRef<std::ffi::OsStr>,
        args: &str,
        wrapper: &str,
    ) -> TestResult {
        let script = format!(
            "{wrapper} \"$OSPDECK_BIN\" --db \"$OSPDECK_DB\" {args}; echo \"exit=$?\"; \
             stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon | sed 's/^/mode=/'; sleep 600"
        );
        let env = [
            format!("OSPDECK_BIN={BIN}"),
            format!("OSPDECK_DB={}", db.as_ref().to_string_lossy()),
            format!("HOME={}", home.display()),
        ];
        self.new_session(80, 24, &env, &script)
    }

    /// Runs `script` under `sh -c` in a window of `width`×`height` (an SSH client, say); when
    /// it exits the shell reports its exit code and waits to be read.
    pub fn start_shell(&self, width: u16, height: u16, script: &str) -> TestResult {
        let script = format!("{script}; echo \"exit=$?\"; sleep 600");
        self.new_session(width, height, &[], &script)
    }

    /// The session `main`: `script` under `sh -c`, with `env` (`NAME=value`), in a window of
    /// `width`×`height`.
    fn new_session(&self, width: u16, height: u16, env: &[String], script: &str) -> TestResult {
        let (width, height) = (width.to_string(), height.to_string());
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &width,
            "-y",
            &height,
        ];
        for var in env {
            args.extend(["-e", var.as_str()]);
        }
        args.extend(["sh", "-c", script]);
        self.cmd(&args)?;
        Ok(())
    }

    pub fn keys(&self, keys: &[&str]) -> TestResult {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.cmd(&args)?;
        Ok(())
    }

    /// Literal text (no key-name lookup), e.g. a filter.
    pub fn text(&self, text: &str) -> TestResult {
        self.cmd(&["send-keys", "-t", "main", "-l", text])?;
        Ok(())
    }

    pub fn screen(&self) -> Result<String, super::BoxError> {
        let out = self.cmd(&["capture-pane", "-p", "-t", "main"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn wait_for(&self, what: &str) -> Result<String, super::BoxError> {
        self.wait_until(
            |screen| screen.contains(what),
            what,
            Duration::from_secs(10),
        )
    }

    /// Waits until the screen satisfies `test`; `what` describes it for the error.
    pub fn wait_until(
        &self,
        test: impl Fn(&str) -> bool,
        what: &str,
        limit: Duration,
    ) -> Result<String, super::BoxError> {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen()?;
            if test(&screen) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                return Err(format!("`{what}` never appeared; the screen:\n{screen}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}
