//! The real binary in a real terminal: tmux runs the console at 80×24, keys go in with send-keys,
//! the screen comes back with capture-pane, and the store is checked with the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::tmux::Tmux;

use common::{BoxError, TestResult, close_sqlite_cleanly, dir_entries, is_root};

const BIN: &str = env!("CARGO_BIN_EXE_ospdeck");
/// On screen whenever the Overview is.
const OVERVIEW: &str = "Last hour, per minute";

fn ospdeck(home: &Path, db: &Path, args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_STATE_HOME")
        .output()
}

fn run_status(home: &Path, db: &Path, id: &str) -> Result<String, BoxError> {
    let out = ospdeck(home, db, &["run", "show", id, "--json"])?;
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(value["status"].as_str().unwrap_or("?").to_owned())
}

fn demo_store() -> Result<(tempfile::TempDir, PathBuf), BoxError> {
    let home = tempfile::tempdir()?;
    let db = home.path().join("demo.db");
    for args in [&["db", "migrate"][..], &["demo", "--seed-only"][..]] {
        let out = ospdeck(home.path(), &db, args)?;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((home, db))
}

#[test]
fn console_switches_filters_shows_logs_cancels_and_restores_the_terminal() -> TestResult {
    let (home, db) = demo_store()?;
    let tmux = Tmux::new("rw");
    tmux.start(home.path(), &db, "")?;
    // The console opens on the Overview.
    tmux.wait_for(OVERVIEW)?;
    tmux.keys(&["4"])?;
    tmux.wait_for("Runs (20)")?;

    tmux.keys(&["2"])?;
    tmux.wait_for("Choose a service in Services")?;
    tmux.keys(&["3"])?;
    tmux.wait_for("Template versions (3)")?;
    tmux.keys(&["4"])?;
    tmux.wait_for("Runs (20)")?;

    // Filter to the deploy runs (the demo's and its services' deploy-service runs); the oldest
    // of them (run 3) succeeded with logs.
    tmux.keys(&["/"])?;
    tmux.text("deploy")?;
    tmux.keys(&["Enter"])?;
    let screen = tmux.wait_for("Runs (7) /deploy")?;
    assert!(!screen.contains("demo/build"), "{screen}");
    tmux.keys(&["G", "Enter"])?;
    tmux.wait_for("run 3  demo/deploy  succeeded")?;
    tmux.keys(&["l"])?;
    tmux.wait_for("starting deploy")?;
    tmux.keys(&["Escape"])?;
    tmux.wait_for("Runs (7) /deploy")?;
    tmux.keys(&["Escape"])?;
    tmux.wait_for("Runs (20)")?;

    // Cancel the newest queued run (the last service's deploy run) after confirming.
    tmux.keys(&[":"])?;
    tmux.text("runs queued")?;
    tmux.keys(&["Enter"])?;
    tmux.wait_for("status=queued")?;
    assert_eq!(run_status(home.path(), &db, "19")?, "queued");
    tmux.keys(&["x"])?;
    tmux.wait_for("Cancel run 19?")?;
    tmux.keys(&["y"])?;
    tmux.wait_for("canceled 19")?;
    assert_eq!(run_status(home.path(), &db, "19")?, "canceled");

    // Claim the next queued run of that queue by hand, start it, complete it with exit code 0.
    tmux.keys(&["c"])?;
    tmux.wait_for("Claim the next queued run")?;
    tmux.keys(&["y"])?;
    tmux.wait_for("claimed run 17 as console-")?;
    assert_eq!(run_status(home.path(), &db, "17")?, "claimed");
    tmux.keys(&[":"])?;
    tmux.text("run 17")?;
    tmux.keys(&["Enter"])?;
    tmux.wait_for("run 17  demo/deploy-service  claimed")?;
    tmux.keys(&["S"])?;
    tmux.wait_for("Start run 17")?;
    tmux.keys(&["y"])?;
    tmux.wait_for("started run 17")?;
    tmux.keys(&["C"])?;
    tmux.wait_for("with exit code: 0")?;
    tmux.keys(&["Enter"])?;
    tmux.wait_for("run 17 succeeded")?;
    assert_eq!(run_status(home.path(), &db, "17")?, "succeeded");

    // Services: pick one, see its manifest, activate its draft after confirming.
    tmux.keys(&["1"])?;
    tmux.wait_for("Services (3)")?;
    tmux.keys(&["G", "Enter"])?;
    tmux.wait_for("Services › telecom_billing")?;
    tmux.keys(&["m"])?;
    tmux.wait_for("1.1.0        draft")?;
    tmux.keys(&["j", "A"])?;
    tmux.wait_for("Activate telecom_billing 1.1.0?")?;
    tmux.keys(&["y"])?;
    tmux.wait_for("telecom_billing 1.1.0 is active")?;
    let out = ospdeck(
        home.path(),
        &db,
        &["manifest", "history", "telecom_billing", "--json"],
    )?;
    let history: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(history[1]["status"], "active", "{history}");
    assert_eq!(history[0]["status"], "superseded", "{history}");

    // q goes back a level at a time (the service's detail the manifests were opened from, the
    // list), then out.
    tmux.keys(&["q"])?;
    tmux.wait_for("Services › telecom_billing")?;
    tmux.keys(&["q"])?;
    tmux.wait_for("Services (3)")?;
    tmux.keys(&["q"])?;
    let screen = tmux.wait_for("exit=0")?;
    let screen = if screen.contains("mode=") {
        screen
    } else {
        tmux.wait_for("mode=")?
    };
    assert!(
        screen.contains("mode=icanon"),
        "terminal left raw:\n{screen}"
    );
    assert!(
        !screen.contains("Runs ("),
        "alternate screen not left:\n{screen}"
    );
    Ok(())
}

/// The triage story of an incident: filter the failed runs of one workflow as you type, open
/// one, read its payload and error, search its long log for the one line that matters, jump to
/// its service and back, retry it, and find the retry in the store.
#[test]
fn triage_filters_opens_searches_jumps_and_retries() -> TestResult {
    let (home, db) = demo_store()?;
    let tmux = Tmux::new("triage");
    tmux.start(home.path(), &db, "")?;
    tmux.wait_for(OVERVIEW)?;
    tmux.keys(&["4"])?;
    tmux.wait_for("Runs (20)")?;
    tmux.keys(&["/"])?;
    tmux.text("status:failed workflow:proc")?;
    // Filtered as typed: no Enter needed to see the list narrow.
    let screen = tmux.wait_for("Runs (1) /status:failed workflow:proc")?;
    assert!(
        screen.contains("demo/telecom_billing.processBilling"),
        "{screen}"
    );
    tmux.keys(&["Enter"])?;
    tmux.keys(&["Enter"])?;
    let screen = tmux.wait_for("run 20  demo/telecom_billing.processBilling  failed")?;
    // The payload to reproduce it, and the error, both on screen.
    assert!(
        screen.contains(r#"payload {"cycle":"2026-11","requested_by":"demo","zone":7}"#),
        "{screen}"
    );
    assert!(
        screen.contains("error 1 account could not be charged (exit code 3)"),
        "{screen}"
    );
    // The log ends 365 lines after the line that matters; the store's search finds it.
    tmux.keys(&["l"])?;
    tmux.wait_for("lines 390-402 of 402")?;
    tmux.keys(&["/"])?;
    tmux.text("zone 7")?;
    tmux.keys(&["Enter"])?;
    tmux.wait_for("match 1 of 1")?;
    // The lines around the match come after the search's answer.
    let screen = tmux.wait_for("rate table missing for zone 7")?;
    assert!(screen.contains(" 38 "), "{screen}");
    // To its service, and back to the run where it was.
    tmux.keys(&["v"])?;
    tmux.wait_for("run 20 › service telecom_billing")?;
    tmux.wait_for("manifest  1.0.0 active")?;
    tmux.keys(&["Escape"])?;
    tmux.wait_for("rate table missing for zone 7")?;
    tmux.keys(&["R"])?;
    tmux.wait_for("Retry run 20?")?;
    tmux.keys(&["y"])?;
    tmux.wait_for("retried 20 as 21")?;
    let out = ospdeck(
        home.path(),
        &db,
        &[
            "run",
            "list",
            "--where",
            "status:queued workflow:processBilling",
            "--json",
        ],
    )?;
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(runs[0]["id"], 21, "{runs}");
    assert_eq!(runs[0]["retry_of"], 20, "{runs}");
    // q goes back as Esc does, a level at a time: the search, the run, then out.
    tmux.keys(&["q"])?;
    tmux.wait_for("search cleared")?;
    tmux.keys(&["q"])?;
    tmux.wait_for("Runs (1) /status:failed")?;
    tmux.keys(&["q"])?;
    tmux.wait_for("exit=0")?;
    Ok(())
}

#[test]
fn monitor_mode_changes_nothing() -> TestResult {
    let (home, db) = demo_store()?;
    let tmux = Tmux::new("ro");
    tmux.start(home.path(), &db, "monitor")?;
    tmux.wait_for("READ-ONLY")?;
    tmux.keys(&[":"])?;
    tmux.text("runs queued")?;
    tmux.keys(&["Enter"])?;
    tmux.wait_for("status=queued")?;
    tmux.keys(&["x", "y", "R", "y"])?;
    // Give a (wrong) action every chance to land before looking.
    std::thread::sleep(Duration::from_millis(500));
    let screen = tmux.screen()?;
    assert!(!screen.contains("confirm"), "{screen}");
    for id in ["13", "14", "15", "16", "17", "18", "19"] {
        assert_eq!(run_status(home.path(), &db, id)?, "queued", "run {id}");
    }
    // The last `y` opened the copy chooser (copying is not a write): Esc closes it.
    tmux.keys(&["Escape"])?;
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys(&["q"])?;
    tmux.wait_for("exit=0")?;
    Ok(())
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() -> TestResult {
    let (home, db) = demo_store()?;
    for signal in ["TERM", "HUP"] {
        let tmux = Tmux::new(&format!("sig{signal}"));
        tmux.start(home.path(), &db, "")?;
        tmux.wait_for(OVERVIEW)?;
        let shell = tmux.cmd(&["list-panes", "-t", "main", "-F", "#{pane_pid}"])?;
        let shell = String::from_utf8_lossy(&shell.stdout).trim().to_owned();
        let killed = Command::new("pkill")
            .args([&format!("-{signal}"), "-P", &shell, "-x", "ospdeck"])
            .status()?;
        assert!(killed.success(), "no ospdeck child of {shell} to signal");
        tmux.wait_for("exit=")?;
        let screen = tmux.wait_for("mode=")?;
        assert!(
            screen.contains("mode=icanon"),
            "SIG{signal} left the terminal raw:\n{screen}"
        );
        assert!(!screen.contains(OVERVIEW), "{screen}");
    }
    Ok(())
}

#[test]
fn monitor_reads_a_store_on_read_only_media() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let (home, db) = demo_store()?;
    // The file alone, as a writer that closed cleanly leaves it: a read-only open that wants a
    // -wal and -shm cannot make them there.
    tokio::runtime::Runtime::new()?.block_on(close_sqlite_cleanly(&db))?;
    let media = tempfile::tempdir()?;
    std::fs::copy(&db, media.path().join("demo.db"))?;
    let before = dir_entries(media.path())?;
    let mount_point = tempfile::tempdir()?;
    let tmux = Tmux::new("media");
    // As root, a read-only bind mount in a mount namespace of the monitor's own; otherwise the
    // directory without its write permission, which binds a user who is not root just the same.
    if is_root() {
        let wrapper = format!(
            "unshare --mount --propagation private sh -c \
             'mount --bind \"$1\" \"$2\" && mount -o remount,bind,ro \"$2\" && shift 2 && exec \"$@\"' \
             sh {} {}",
            media.path().display(),
            mount_point.path().display()
        );
        let seen = mount_point.path().join("demo.db");
        tmux.start_under(home.path(), seen, "monitor", &wrapper)?;
    } else {
        std::fs::set_permissions(media.path(), std::fs::Permissions::from_mode(0o555))?;
        tmux.start(home.path(), media.path().join("demo.db"), "monitor")?;
    }
    let shown = tmux.wait_for(OVERVIEW);
    tmux.keys(&["q"])?;
    let exited = tmux.wait_for("exit=");
    std::fs::set_permissions(media.path(), std::fs::Permissions::from_mode(0o755))?;
    shown?;
    assert!(exited?.contains("exit=0"));
    assert_eq!(dir_entries(media.path())?, before);
    Ok(())
}

#[test]
fn monitor_follows_a_writer_that_appears_after_it_opened() -> TestResult {
    let (home, db) = demo_store()?;
    // The demo's writer has gone and left no -wal or -shm: the monitor opens the file alone.
    tokio::runtime::Runtime::new()?.block_on(close_sqlite_cleanly(&db))?;
    let before = dir_entries(home.path())?;
    assert!(
        !before.iter().any(|n| n.starts_with("demo.db-")),
        "{before:?}"
    );
    let tmux = Tmux::new("follow");
    tmux.start(home.path(), &db, "monitor")?;
    tmux.wait_for(OVERVIEW)?;
    tmux.keys(&["4"])?;
    tmux.wait_for("Runs (20)")?;
    assert_eq!(dir_entries(home.path())?, before, "the monitor made files");
    let out = ospdeck(
        home.path(),
        &db,
        &["run", "enqueue", "--project", "demo", "--workflow", "build"],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux.wait_for("Runs (21)")?;
    tmux.keys(&["q"])?;
    tmux.wait_for("exit=0")?;
    Ok(())
}

/// The line of the Overview's queue table for `queue`.
fn queue_line<'a>(screen: &'a str, queue: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.trim_start_matches('│').starts_with(&format!("{queue} ")))
}

#[test]
fn the_overview_shows_a_stalled_queue_drain_and_its_worker_go_stale() -> TestResult {
    let (home, db) = demo_store()?;
    let tmux = Tmux::new("overview");
    tmux.start(home.path(), &db, "monitor")?;
    // Work waits in `demo` and no worker serves it.
    let screen = tmux.wait_until(
        |s| queue_line(s, "demo").is_some_and(|l| l.contains("stalled")),
        "demo stalled",
        Duration::from_secs(10),
    )?;
    assert!(screen.contains("Workers (0 alive of 0)"), "{screen}");

    let mut worker = Command::new(BIN)
        .args(["--db"])
        .arg(&db)
        .args([
            "worker",
            "--queue",
            "demo",
            "--id",
            "e2e-worker",
            "--concurrency",
            "8",
        ])
        .env("HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let drained = tmux.wait_until(
        |s| {
            s.contains("e2e-worker")
                && s.contains("alive")
                && queue_line(s, "demo").is_some_and(|l| {
                    !l.contains("stalled") && l.split_whitespace().nth(2) == Some("0")
                })
        },
        "demo drained by an alive e2e-worker",
        Duration::from_secs(40),
    );
    // Killed, not stopped: no goodbye, only heartbeats that stop coming.
    let killed = worker.kill();
    let _ = worker.wait();
    drained?;
    killed?;
    let stale = tmux.wait_until(
        |s| {
            s.lines()
                .any(|l| l.contains("e2e-worker") && l.contains("stale"))
        },
        "e2e-worker stale",
        Duration::from_secs(ospdeck::domain::deployment::STALE_AFTER_SECS as u64 + 10),
    )?;
    assert!(stale.contains("workers 0"), "{stale}");
    tmux.keys(&["q"])?;
    tmux.wait_for("exit=0")?;
    Ok(())
}

#[test]
fn e_suspends_the_console_for_the_editor_and_proposes_what_it_wrote() -> TestResult {
    let (home, db) = demo_store()?;
    let tmux = Tmux::new("editor");
    // A scripted $EDITOR: it edits the file and exits, as an operator would after `:wq`.
    tmux.start_under(
        home.path(),
        &db,
        "",
        "env EDITOR='sed -i s/Telecom.Billing/TelecomInvoicing/'",
    )?;
    tmux.wait_for(OVERVIEW)?;
    tmux.keys(&[":"])?;
    tmux.text("manifests telecom_billing")?;
    tmux.keys(&["Enter"])?;
    tmux.wait_for("\"Telecom Billing\"")?;
    tmux.keys(&["E"])?;
    tmux.wait_for("Propose telecom_billing 1.1.1")?;
    tmux.keys(&["y"])?;
    let screen = tmux.wait_for("proposed telecom_billing 1.1.1 (draft)")?;
    // Back on the alternate screen, drawn whole: the tabs and the pane are there.
    assert!(screen.contains("0 Overview"), "{screen}");
    let out = ospdeck(
        home.path(),
        &db,
        &[
            "manifest",
            "show",
            "telecom_billing",
            "--version",
            "1.1.1",
            "--json",
        ],
    )?;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(shown["status"], "draft", "{shown}");
    assert_eq!(
        shown["content"]["service_name"], "TelecomInvoicing",
        "{shown}"
    );
    tmux.keys(&["q"])?;
    let screen = tmux.wait_for("mode=")?;
    assert!(
        screen.contains("mode=icanon"),
        "terminal left raw:\n{screen}"
    );
    Ok(())
}
