//! README.md cannot drift: every example in a ```sh block runs as written, in order, on a fresh
//! machine's store after `ospdeck demo --seed-only`, from a directory holding the checkout's
//! `assets` (where a reader who just ran the set-up command stands); every ```toml block is a
//! config.toml that ospdeck reads.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestResult;

/// One example: the command as a reader pastes it (continuation lines joined) and its line.
#[derive(Debug)]
struct Example {
    line: usize,
    command: String,
}

/// The examples of every ```LANG block, in order.
fn blocks(readme: &str, lang: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed.strip_prefix("```") == Some(lang) => {
                current = Some((i + 2, String::new()));
            }
            Some(_) if trimmed == "```" => out.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

fn examples(readme: &str) -> Vec<Example> {
    let mut out = Vec::new();
    for (first, text) in blocks(readme, "sh") {
        let mut pending: Option<Example> = None;
        for (offset, raw) in text.lines().enumerate() {
            let joined = match pending.take() {
                Some(mut e) => {
                    e.command.push(' ');
                    e.command.push_str(raw.trim());
                    e
                }
                None if raw.trim().is_empty() || raw.trim_start().starts_with('#') => continue,
                None => Example {
                    line: first + offset,
                    command: raw.trim().to_owned(),
                },
            };
            match joined.command.strip_suffix('\\') {
                Some(head) => {
                    pending = Some(Example {
                        line: joined.line,
                        command: head.trim_end().to_owned(),
                    })
                }
                None => out.push(joined),
            }
        }
    }
    out
}

/// A long-running example (a worker, a watch) says so in its comment; it is started, must still
/// be running after a moment, and must stop cleanly on Ctrl-C (SIGINT), as a reader stops it.
fn runs_until_stopped(command: &str) -> bool {
    command.contains("# runs until stopped")
}

struct Sandbox {
    _home: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
    path: String,
}

impl Sandbox {
    fn new() -> Result<Self, common::BoxError> {
        let home = tempfile::tempdir()?;
        let work = home.path().join("checkout");
        std::fs::create_dir(&work)?;
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::os::unix::fs::symlink(repo.join("assets"), work.join("assets"))?;
        let bin = Path::new(env!("CARGO_BIN_EXE_ospdeck"))
            .parent()
            .ok_or("binary has no directory")?
            .to_owned();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Ok(Sandbox {
            home: home.path().to_owned(),
            _home: home,
            work,
            path,
        })
    }

    fn bash(&self, command: &str) -> Command {
        let mut c = Command::new("bash");
        c.args(["-o", "pipefail", "-c", command])
            .current_dir(&self.work)
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env("NO_COLOR", "1")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("OSPDECK_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, command: &str) -> std::io::Result<Output> {
        self.bash(command).output()
    }

    fn spawn(&self, command: &str) -> std::io::Result<Child> {
        self.bash(&format!("exec {command}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
    }
}

fn describe(e: &Example, o: &Output) -> String {
    format!(
        "README.md:{} `{}` exited {:?}\nstdout: {}\nstderr: {}",
        e.line,
        e.command,
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stop(e: &Example, mut child: Child) -> TestResult {
    std::thread::sleep(Duration::from_secs(2));
    if let Some(status) = child.try_wait()? {
        return Err(format!(
            "README.md:{} `{}` ended on its own ({status}) instead of running until stopped",
            e.line, e.command
        )
        .into());
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                return Err(format!(
                    "README.md:{} `{}` stopped with {status} on SIGINT",
                    e.line, e.command
                )
                .into());
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("README.md:{} `{}` ignored SIGINT", e.line, e.command).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_readme_example_runs_in_order_after_the_demo() -> TestResult {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))?;
    let examples = examples(&readme);
    assert!(
        examples.len() >= 30,
        "found only {} examples in ```sh blocks",
        examples.len()
    );
    let sandbox = Sandbox::new()?;
    let seeded = sandbox.run("ospdeck demo --seed-only")?;
    assert!(seeded.status.success(), "demo: {seeded:?}");
    for e in &examples {
        assert!(
            !(e.command.starts_with("ospdeck ") && e.command.contains("| ospdeck")),
            "README.md:{} `{}`: a pipe between two ospdeck commands reads as alternatives; write one example per line",
            e.line,
            e.command
        );
        if runs_until_stopped(&e.command) {
            stop(e, sandbox.spawn(&e.command)?)?;
            continue;
        }
        let o = sandbox.run(&e.command)?;
        assert!(o.status.success(), "{}", describe(e, &o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{}", describe(e, &o));
    }
    Ok(())
}

#[test]
fn every_readme_config_block_is_a_config_ospdeck_reads() -> TestResult {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))?;
    let configs = blocks(&readme, "toml");
    assert!(configs.len() >= 3, "found {} ```toml blocks", configs.len());
    let dir = tempfile::tempdir()?;
    for (line, text) in configs {
        let file = dir.path().join("config.toml");
        std::fs::write(&file, &text)?;
        match ospdeck::config::read_file_config(&file) {
            Ok(Some(config)) => {
                if let Err(e) = config.deployer.check() {
                    panic!("README.md:{line}: {e}\n{text}");
                }
            }
            Ok(None) => panic!("README.md:{line}: not read"),
            Err(e) => panic!("README.md:{line}: {e}\n{text}"),
        }
    }
    Ok(())
}

#[test]
fn the_example_parser_joins_continuations_and_skips_comments() {
    let text = "x\n```sh\n# a comment\nospdeck a \\\n    --b c   # note\n\nospdeck d\n```\n";
    let found = examples(text);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].command, "ospdeck a --b c   # note");
    assert_eq!(found[0].line, 4);
    assert_eq!(found[1].command, "ospdeck d");
}
