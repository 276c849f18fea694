//! The console's mouse and its `:` history in a real terminal: tmux reports whether the pane
//! asked for mouse events, so the capture can be seen to end however the console does; a click
//! goes in as the SGR escape sequence a terminal sends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tmux::Tmux;
use common::{BoxError, TestResult};

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

/// Whether the program in the pane has mouse reporting on.
fn mouse_captured(tmux: &Tmux) -> Result<bool, BoxError> {
    let out = tmux.cmd(&["display-message", "-p", "-t", "main", "#{mouse_any_flag}"])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "1")
}

/// A left click at the screen cell (`x`, `y`), counted from 0, as an SGR mouse report.
fn click(tmux: &Tmux, x: usize, y: usize) -> TestResult {
    tmux.text(&format!("\x1b[<0;{};{}M", x + 1, y + 1))?;
    tmux.text(&format!("\x1b[<0;{};{}m", x + 1, y + 1))
}

fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_named(&path, name));
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_click_switches_tabs_and_the_capture_ends_on_every_way_out() -> TestResult {
    let (home, db) = demo_store()?;

    // Quit with q: the capture was on while the console ran, and is off after.
    let tmux = Tmux::new("mouse-q");
    tmux.start(home.path(), &db, "")?;
    let screen = tmux.wait_for(OVERVIEW)?;
    assert!(mouse_captured(&tmux)?, "the console asks for mouse events");
    let top = screen.lines().next().unwrap_or_default();
    let x = top
        .find("4 Runs")
        .map(|i| top[..i].chars().count() + 2)
        .ok_or("no Runs tab")?;
    click(&tmux, x, 0)?;
    tmux.wait_for("Runs (20)")?;
    tmux.keys(&["q"])?;
    tmux.wait_for("exit=0")?;
    assert!(!mouse_captured(&tmux)?, "q left the mouse captured");
    drop(tmux);

    // SIGTERM: the same.
    let tmux = Tmux::new("mouse-term");
    tmux.start(home.path(), &db, "")?;
    tmux.wait_for(OVERVIEW)?;
    let shell = tmux.cmd(&["list-panes", "-t", "main", "-F", "#{pane_pid}"])?;
    let shell = String::from_utf8_lossy(&shell.stdout).trim().to_owned();
    let killed = Command::new("pkill")
        .args(["-TERM", "-P", &shell, "-x", "ospdeck"])
        .status()?;
    assert!(killed.success(), "no ospdeck child of {shell} to signal");
    tmux.wait_for("exit=")?;
    assert!(!mouse_captured(&tmux)?, "SIGTERM left the mouse captured");
    drop(tmux);

    // --no-mouse: never asked for.
    let tmux = Tmux::new("mouse-off");
    tmux.start(home.path(), &db, "--no-mouse")?;
    tmux.wait_for(OVERVIEW)?;
    assert!(!mouse_captured(&tmux)?, "--no-mouse still captures");
    tmux.keys(&["q"])?;
    tmux.wait_for("exit=0")?;
    Ok(())
}

#[test]
fn the_command_history_is_kept_unless_read_only() -> TestResult {
    let (home, db) = demo_store()?;
    let run_command = |name: &str, args: &str| -> TestResult {
        let tmux = Tmux::new(name);
        tmux.start(home.path(), &db, args)?;
        tmux.wait_for(OVERVIEW)?;
        tmux.keys(&[":"])?;
        tmux.text("runs failed")?;
        tmux.keys(&["Enter"])?;
        tmux.wait_for("status=failed")?;
        tmux.keys(&["q"])?;
        tmux.wait_for("exit=0")?;
        Ok(())
    };
    run_command("hist-ro", "monitor")?;
    assert_eq!(
        files_named(home.path(), "command_history"),
        Vec::<PathBuf>::new(),
        "monitor wrote its history"
    );
    run_command("hist-rw", "")?;
    let kept = files_named(home.path(), "command_history");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read_to_string(&kept[0])?, "runs failed\n");
    // The next session recalls it with Up.
    let tmux = Tmux::new("hist-next");
    tmux.start(home.path(), &db, "")?;
    tmux.wait_for(OVERVIEW)?;
    tmux.keys(&[":", "Up"])?;
    tmux.wait_for(":runs failed")?;
    // Esc alone (Esc then q at once reads as alt-q), then q.
    tmux.keys(&["Escape"])?;
    tmux.wait_until(
        |screen| !screen.contains(":runs failed"),
        "the command line closed",
        std::time::Duration::from_secs(10),
    )?;
    tmux.keys(&["q"])?;
    tmux.wait_for("exit=0")?;
    Ok(())
}
