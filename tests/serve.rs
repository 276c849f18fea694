//! `ospdeck serve` end to end: the real binary serving, the real OpenSSH client connecting (in
//! tmux where a terminal is needed), on both stores. On PostgreSQL the server connects as a
//! gateway role, so every session's role is enforced by the database too.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::{BoxError, Harness, TestResult, ospdeck_command};
use ospdeck::domain::permission::Role;
use ospdeck::domain::workflow::WorkflowType;
use ospdeck::ops::{EnqueueRequest, WorkflowRequest};
use ospdeck::store::StoreKind;

conformance!(
    an_ssh_session_is_its_keys_user_and_that_users_role_holds,
    the_server_survives_garbage_half_handshakes_and_a_burst_of_failed_logins,
);

/// `ssh` and `ssh-keygen` from the machine's packages, installed when missing.
fn openssh() -> TestResult {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| !o.stderr.is_empty() || o.status.success())
    };
    if have("ssh") && Command::new("ssh-keygen").arg("-?").output().is_ok() {
        return Ok(());
    }
    let installed = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null",
        ])
        .status()?;
    if !installed.success() || !have("ssh") {
        return Err("the SSH tests need OpenSSH's client (apt-get install openssh-client)".into());
    }
    Ok(())
}

/// A new ed25519 key pair at `dir/name`; answers the public key line.
fn keygen(dir: &Path, name: &str) -> Result<(PathBuf, String), BoxError> {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(path.with_extension("pub"))?;
    Ok((path, public.trim().to_owned()))
}

/// A running `ospdeck serve` and where it listens.
struct Server {
    child: Child,
    port: u16,
    home: PathBuf,
}

impl Server {
    /// Serves `url` from `home` (its host key and config live there) on a free port.
    fn start(home: &Path, url: &str, extra: &[&str]) -> Result<Self, BoxError> {
        let mut args = vec!["--db", url, "--json", "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = ospdeck_command(home, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let started: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            format!("serve printed {line:?} ({e}); stderr: {err}")
        })?;
        let port = started["listen"]
            .as_str()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("no port in {line}"))?;
        assert!(
            started["fingerprint"]
                .as_str()
                .is_some_and(|f| f.starts_with("SHA256:")),
            "{line}"
        );
        Ok(Self {
            child,
            port,
            home: home.to_owned(),
        })
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn rss_kib(&self) -> u64 {
        common::fleet::rss_kib(self.child.id()).unwrap_or(0)
    }

    /// `ssh` to the server with `key` (none: no key at all), with `options` before the command.
    fn ssh(&self, key: Option<&Path>, options: &[&str], command: &[&str]) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args(["-p", &self.port.to_string()])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .args(["-o", "IdentitiesOnly=yes"])
            .args(["-F", "/dev/null"])
            .env("HOME", &self.home)
            .env_remove("SSH_AUTH_SOCK");
        match key {
            Some(key) => {
                ssh.arg("-i").arg(key);
            }
            None => {
                ssh.args(["-o", "PubkeyAuthentication=no"]);
            }
        }
        // `--` ends ssh's own options: the command's (`--json`, `--as`) are the server's to see.
        ssh.args(options)
            .arg("ops@127.0.0.1")
            .arg("--")
            .args(command);
        ssh
    }

    /// One command over SSH, without a terminal; its output.
    fn exec(&self, key: &Path, command: &[&str]) -> Result<Output, BoxError> {
        Ok(self
            .ssh(Some(key), &["-o", "BatchMode=yes", "-T"], command)
            .stdin(Stdio::null())
            .output()?)
    }

    /// The shell line that opens a session with a terminal (for tmux).
    fn ssh_line(&self, key: &Path, command: &str) -> String {
        format!(
            "HOME={home} ssh -tt -p {port} -F /dev/null -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes \
             -o BatchMode=yes -i {key} ops@127.0.0.1 {command}",
            home = self.home.display(),
            port = self.port,
            key = key.display()
        )
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> Result<std::process::ExitStatus, BoxError> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err("ospdeck serve did not stop within 10 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL `ospdeck serve` uses: on PostgreSQL a gateway login role of this test's own (in
/// ospdeck_api and ospdeck_member, neither superuser nor owner), so row-level security holds.
async fn serving_url(h: &Harness) -> Result<(String, Option<String>), BoxError> {
    match h.kind() {
        StoreKind::Sqlite => Ok((h.url.clone(), None)),
        StoreKind::Postgres => {
            let role = format!("{}_gw", h.unique_prefix());
            h.raw(&format!(
                "CREATE ROLE {role} LOGIN; GRANT ospdeck_api, ospdeck_member TO {role};"
            ))
            .await?;
            Ok((h.url_as(&role), Some(role)))
        }
    }
}

async fn drop_role(h: &Harness, role: Option<String>) {
    if let Some(role) = role {
        let _ = h.raw(&format!("DROP ROLE IF EXISTS {role}")).await;
    }
}

/// Project `acme` with a `build` workflow; answers the request that queues a run of it.
async fn acme_build(h: &Harness) -> Result<EnqueueRequest<'static>, BoxError> {
    h.ops.create_project("acme", None).await?;
    h.ops
        .create_workflow(&WorkflowRequest {
            queue: Some("acme-q"),
            ..WorkflowRequest::new("acme", "build", WorkflowType::Build, "true")
        })
        .await?;
    Ok(EnqueueRequest {
        project: "acme",
        workflow: "build",
        priority: None,
        payload: None,
        max_attempts: None,
        run_after: None,
        acknowledge: false,
    })
}

async fn run_status(h: &Harness, id: i64) -> Result<String, BoxError> {
    Ok(h.ops.run(id).await?.status.to_string())
}

mod cases {
    use super::*;

    pub async fn an_ssh_session_is_its_keys_user_and_that_users_role_holds(
        h: Harness,
    ) -> TestResult {
        openssh()?;
        let home = tempfile::tempdir()?;
        let keys = tempfile::tempdir()?;
        let ops = &h.ops;
        let enqueue = acme_build(&h).await?;
        let first = ops.enqueue_run(&enqueue).await?;
        let jwt = h.kind() == StoreKind::Postgres;
        // Canceling a run is an admin's (cancel_any_run): the operator on call holds admin.
        ops.set_member("acme", "dev", Role::Admin, jwt).await?;
        ops.set_member("acme", "vic", Role::Viewer, jwt).await?;
        let (dev_key, dev_public) = keygen(keys.path(), "dev")?;
        let (vic_key, vic_public) = keygen(keys.path(), "vic")?;
        let (stranger_key, _) = keygen(keys.path(), "stranger")?;
        ops.add_user_key("dev", &dev_public).await?;
        ops.add_user_key("vic", &vic_public).await?;

        let (url, role) = serving_url(&h).await?;
        let mut server = Server::start(home.path(), &url, &[])?;

        // An exec request: the command's JSON on stdout and its exit status, as the key's user.
        let out = server.exec(&dev_key, &["whoami", "--json"])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let who: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(who["user"], "dev", "{who}");
        assert_eq!(who["administrator"], false, "{who}");
        // The developer queues a run of their own over SSH, which they may cancel.
        let out = server.exec(
            &dev_key,
            &[
                "--json",
                "run",
                "enqueue",
                "--project",
                "acme",
                "--workflow",
                "build",
            ],
        )?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let second = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<serde_json::Value>()?["id"]
            .as_i64()
            .ok_or("run enqueue --json printed no id")?;
        let out = server.exec(&dev_key, &["run", "list", "--status", "queued", "--json"])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs}");
        let out = server.exec(&dev_key, &["run", "show", "999999"])?;
        assert_eq!(
            out.status.code(),
            Some(3),
            "a missing run exits 3 over SSH as locally"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("999999"));
        // Another store or user cannot be named, and the viewer's write is refused.
        let out = server.exec(&dev_key, &["--as", "root", "whoami"])?;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--as"));
        let out = server.exec(&vic_key, &["run", "cancel", &first.to_string()])?;
        assert!(!out.status.success(), "a viewer cancelled a run over SSH");
        assert_eq!(run_status(&h, first).await?, "queued");

        // A command whose client leaves is stopped, with what it started.
        let mut following = server
            .ssh(
                Some(&dev_key),
                &["-o", "BatchMode=yes", "-T"],
                &["run", "logs", &first.to_string(), "--follow"],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let child_of_server = format!(
            "^{} run logs {first} --follow",
            env!("CARGO_BIN_EXE_ospdeck")
        );
        let running = |pattern: &str| {
            Command::new("pgrep")
                .args(["-f", pattern])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !running(&child_of_server) {
            assert!(
                Instant::now() < deadline,
                "the followed command never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        following.kill()?;
        let _ = following.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(&child_of_server) {
            assert!(
                Instant::now() < deadline,
                "the command went on after its client left"
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        // An unknown key and a password are refused.
        let out = server
            .ssh(
                Some(&stranger_key),
                &["-o", "BatchMode=yes", "-T"],
                &["whoami"],
            )
            .stdin(Stdio::null())
            .output()?;
        assert_eq!(out.status.code(), Some(255));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
        let askpass = keys.path().join("askpass");
        std::fs::write(&askpass, "#!/bin/sh\necho hunter2\n")?;
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let out = server
            .ssh(
                None,
                &[
                    "-o",
                    "PreferredAuthentications=password,keyboard-interactive",
                    "-o",
                    "NumberOfPasswordPrompts=1",
                    "-T",
                ],
                &["whoami"],
            )
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .output()?;
        assert_eq!(out.status.code(), Some(255));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // The developer's console: it opens at the client's size, cancels a run, follows a resize.
        let tmux = Tmux::new(&format!("serve-dev-{}", h.unique_prefix()));
        tmux.start_shell(80, 24, &server.ssh_line(&dev_key, ""))?;
        let screen = tmux.wait_for("│ dev")?;
        assert!(
            screen.lines().next().is_some_and(|l| l.ends_with("RW")),
            "{screen}"
        );
        tmux.keys(&["4"])?;
        tmux.wait_for("Runs (2)")?;
        tmux.keys(&["x"])?;
        tmux.wait_for(&format!("Cancel run {second}?"))?;
        tmux.keys(&["y"])?;
        tmux.wait_for(&format!("canceled {second}"))?;
        assert_eq!(run_status(&h, second).await?, "canceled");
        tmux.cmd(&["resize-window", "-t", "main", "-x", "120", "-y", "30"])?;
        let screen = tmux.wait_until(
            |s| {
                // The run list's frame spans the new width.
                s.lines().any(|l| {
                    l.starts_with("┌ Runs") && l.ends_with('┐') && l.chars().count() == 120
                })
            },
            "the console redrawn at 120 columns",
            Duration::from_secs(10),
        )?;
        assert!(screen.lines().count() >= 29, "{screen}");
        tmux.keys(&["q"])?;
        tmux.wait_for("exit=0")?;

        // The viewer gets the monitor: READ-ONLY, and the cancel key changes nothing.
        let tmux = Tmux::new(&format!("serve-vic-{}", h.unique_prefix()));
        tmux.start_shell(80, 24, &server.ssh_line(&vic_key, ""))?;
        tmux.wait_for("READ-ONLY")?;
        tmux.keys(&["4"])?;
        tmux.wait_for("Runs (2)")?;
        tmux.keys(&["x"])?;
        std::thread::sleep(Duration::from_millis(500));
        tmux.keys(&["y"])?;
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(run_status(&h, first).await?, "queued");
        // A client killed mid-session: the server goes on serving.
        let killed = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                &format!("^ssh -tt .*-i {}", vic_key.display()),
            ])
            .status()?;
        assert!(killed.success(), "no ssh client to kill");
        tmux.wait_for("exit=")?;
        assert!(server.alive());
        let out = server.exec(&vic_key, &["whoami", "--json"])?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // `ssh -t HOST monitor` asks for the monitor explicitly, even for a developer; SIGTERM
        // tells it the server is stopping, and the server exits cleanly.
        let tmux = Tmux::new(&format!("serve-mon-{}", h.unique_prefix()));
        tmux.start_shell(80, 24, &server.ssh_line(&dev_key, "monitor"))?;
        tmux.wait_for("READ-ONLY")?;
        let status = server.stop()?;
        assert!(status.success(), "{status}");
        tmux.wait_for("ospdeck serve is stopping")?;

        // Logins, logouts and refusals are in the audit trail.
        let trail = ops
            .audit_trail(None, Some("ssh_session"), Some(500))
            .await?;
        let count = |action: &str| trail.iter().filter(|a| a.action == action).count();
        assert!(count("ssh.login") >= 6, "{trail:?}");
        assert!(count("ssh.logout") >= 5, "{trail:?}");
        assert!(count("ssh.refused") >= 2, "{trail:?}");
        assert!(
            trail
                .iter()
                .any(|a| a.action == "ssh.login" && a.actor == "vic"),
            "{trail:?}"
        );
        drop_role(&h, role).await;
        Ok(())
    }

    pub async fn the_server_survives_garbage_half_handshakes_and_a_burst_of_failed_logins(
        h: Harness,
    ) -> TestResult {
        openssh()?;
        let home = tempfile::tempdir()?;
        let keys = tempfile::tempdir()?;
        h.ops.create_project("acme", None).await?;
        let jwt = h.kind() == StoreKind::Postgres;
        h.ops
            .set_member("acme", "dev", Role::Developer, jwt)
            .await?;
        let (dev_key, dev_public) = keygen(keys.path(), "dev")?;
        h.ops.add_user_key("dev", &dev_public).await?;
        let (url, role) = serving_url(&h).await?;
        let config = home.path().join(".config/ospdeck");
        std::fs::create_dir_all(&config)?;
        let serve_with = |limit: u32| -> Result<Server, BoxError> {
            std::fs::write(
                config.join("config.toml"),
                format!(
                    "[serve]\nlogin_grace_secs = 2\nidle_timeout_secs = 3\n\
                     auth_failures_per_minute = {limit}\n"
                ),
            )?;
            Server::start(home.path(), &url, &[])
        };

        // Garbage and half handshakes (with the rate limit out of the way): each connection is
        // closed, a half handshake once the login grace (2 s) is over, and the server holds.
        let mut server = serve_with(1000)?;
        let address = format!("127.0.0.1:{}", server.port);
        assert!(server.exec(&dev_key, &["whoami"])?.status.success());
        let rss_before = server.rss_kib();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..40 {
            let mut stream = TcpStream::connect(&address)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let garbage: Vec<u8> = (0..16 * 1024)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            // Half of them claim to speak SSH first.
            if round % 2 == 0 {
                let _ = stream.write_all(b"SSH-2.0-garbage\r\n");
            }
            let _ = stream.write_all(&garbage);
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
        let started = Instant::now();
        let mut halves = Vec::new();
        for _ in 0..10 {
            let mut stream = TcpStream::connect(&address)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n")?;
            halves.push(stream);
        }
        for mut stream in halves {
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
        let held = started.elapsed();
        assert!(
            held < Duration::from_secs(6),
            "half handshakes were held {held:?} (login grace 2 s)"
        );
        assert!(
            server.alive(),
            "garbage or a half handshake ended the server"
        );
        assert!(server.exec(&dev_key, &["whoami"])?.status.success());
        let rss_after_garbage = server.rss_kib();
        // A console nobody types in is closed after the idle timeout (3 s here), saying why,
        // although its clock keeps redrawing it.
        let tmux = Tmux::new(&format!("serve-idle-{}", h.unique_prefix()));
        tmux.start_shell(80, 24, &server.ssh_line(&dev_key, ""))?;
        tmux.wait_for("│ dev")?;
        let opened = Instant::now();
        tmux.wait_until(
            |s| s.contains("closed after no input"),
            "the idle console closed",
            Duration::from_secs(20),
        )?;
        assert!(
            opened.elapsed() >= Duration::from_secs(3),
            "closed before the idle timeout"
        );
        assert!(server.stop()?.success());

        // 200 rapid failed authentications from one address (passwords, which are never
        // accepted): after 20 the address is turned away before the handshake, even with a
        // good key, and the server holds.
        let mut server = serve_with(20)?;
        let askpass = keys.path().join("askpass");
        std::fs::write(&askpass, "#!/bin/sh\necho hunter2\n")?;
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let started = Instant::now();
        let (mut denied, mut turned_away) = (0, 0);
        let mut attempts = Vec::new();
        for i in 0..200 {
            attempts.push(
                server
                    .ssh(
                        None,
                        &[
                            "-o",
                            "PreferredAuthentications=password",
                            "-o",
                            "NumberOfPasswordPrompts=1",
                            "-o",
                            "ConnectTimeout=5",
                            "-T",
                        ],
                        &["whoami"],
                    )
                    .env("SSH_ASKPASS", &askpass)
                    .env("SSH_ASKPASS_REQUIRE", "force")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()?,
            );
            if attempts.len() == 10 || i == 199 {
                for attempt in attempts.drain(..) {
                    let out = attempt.wait_with_output()?;
                    assert_eq!(out.status.code(), Some(255));
                    if String::from_utf8_lossy(&out.stderr).contains("Permission denied") {
                        denied += 1;
                    } else {
                        turned_away += 1;
                    }
                }
            }
        }
        let burst = started.elapsed();
        assert!(server.alive(), "the burst ended the server");
        assert!(
            (20..=30).contains(&denied) && turned_away >= 170,
            "the rate limit did not hold: {denied} attempts reached authentication, \
             {turned_away} were turned away"
        );
        let out = server.exec(&dev_key, &["whoami"])?;
        assert!(
            !out.status.success(),
            "the rate limit did not hold: a login from the address went through after the burst"
        );
        let rss_after = server.rss_kib();
        assert!(
            rss_after_garbage < rss_before + 32 * 1024 && rss_after < rss_before + 32 * 1024,
            "server RSS grew from {rss_before} KiB to {rss_after_garbage} KiB (garbage) and \
             {rss_after} KiB (burst)"
        );
        println!(
            "200 failed logins in {burst:?}: {denied} reached authentication, {turned_away} \
             turned away; server RSS {rss_before} KiB, {rss_after_garbage} KiB after garbage, \
             {rss_after} KiB after the burst"
        );
        let status = server.stop()?;
        assert!(status.success(), "{status}");
        let trail = h
            .ops
            .audit_trail(None, Some("ssh_session"), Some(1000))
            .await?;
        let refused = trail.iter().filter(|a| a.action == "ssh.refused").count();
        assert!(
            (20..=80).contains(&refused),
            "refusals audited: {refused} (each failed connection once, none once turned away)"
        );
        drop_role(&h, role).await;
        Ok(())
    }
}

/// On PostgreSQL the database is the boundary: a session's connections carry its user as the JWT
/// subject of a gateway role, so even a write that skips ospdeck's own check (an `Ops` that
/// wrongly believes it is an administrator) is refused for a viewer, and passes for a developer.
/// SQLite has no such second check (there the server is the only writer and `ops` decides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_viewer_sessions_write_even_past_the_ops_check() -> TestResult {
    use ospdeck::domain::permission::Identity;
    use ospdeck::ops::Ops;
    use ospdeck::store::StoreOptions;
    let Some(h) = Harness::postgres("postgres_refuses_a_viewer_sessions_write").await else {
        return Ok(());
    };
    let enqueue = acme_build(&h).await?;
    h.ops
        .set_member("acme", "dev", Role::Developer, true)
        .await?;
    h.ops.set_member("acme", "vic", Role::Viewer, true).await?;
    let (url, role) = serving_url(&h).await?;
    // A subject with a space is one subject (the startup options are escaped).
    h.ops
        .set_member("acme", "Ada Lovelace", Role::Viewer, true)
        .await?;
    for (user, may) in [("vic", false), ("dev", true), ("Ada Lovelace", false)] {
        let store = ospdeck::store::open(
            &url,
            &StoreOptions {
                max_connections: 1,
                gateway_subject: Some(user.to_owned()),
                ..StoreOptions::default()
            },
        )
        .await?;
        // As the server opens a session: the database knows the user, and not as an admin.
        let session = ospdeck::root::session_user_ops(store.clone(), user).await?;
        assert_eq!(session.actor(), user);
        assert!(!session.identity().administrator);
        let honest = session.enqueue_run(&enqueue).await;
        assert_eq!(honest.is_ok(), may, "{user}: {honest:?}");
        // A bug in ops' own check, simulated: this Ops skips it.
        let forged = Ops::new(store, Identity::administrator(user));
        let before = h.count("runs").await;
        let bypassed = forged.enqueue_run(&enqueue).await;
        let after = h.count("runs").await;
        if may {
            assert!(bypassed.is_ok(), "{bypassed:?}");
            assert_eq!(after, before + 1);
        } else {
            let error = bypassed.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                error.contains("permission denied") || error.contains("row-level security"),
                "{error}"
            );
            assert_eq!(after, before, "a viewer's session inserted a run");
        }
    }
    // The server refuses to serve as a role that bypasses row-level security.
    let home = tempfile::tempdir()?;
    let refused = Server::start(home.path(), &h.url, &[]);
    let error = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("gateway role"), "{error}");
    drop_role(&h, role).await;
    Ok(())
}

/// Bad settings are one clear line and a usage exit, before anything listens or is written.
#[test]
fn bad_serve_settings_are_refused_in_one_line() -> TestResult {
    let home = tempfile::tempdir()?;
    let db = home.path().join("s.db");
    let db = db.to_string_lossy();
    for (args, says) in [
        (
            &["--db", &db, "serve", "--listen", "nowhere"][..],
            "--listen nowhere",
        ),
        (
            &["--db", &db, "serve", "--max-sessions", "0"][..],
            "--max-sessions",
        ),
        (
            &["--db", &db, "--read-only", "serve"][..],
            "--read-only writes nothing",
        ),
    ] {
        let out = ospdeck_command(home.path(), args).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(
        !home
            .path()
            .join(".local/share/ospdeck/ssh_host_ed25519_key")
            .exists(),
        "a refused start made a host key"
    );
    Ok(())
}
