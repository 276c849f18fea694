//! The real binary's human output: colour only where asked for or on a terminal, names rather
//! than ids, and hints that name the exact command to run.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::ospdeck_command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn ospdeck(home: &Path, args: &[&str]) -> Output {
    ospdeck_command(home, args).output().expect("run ospdeck")
}

fn ok(home: &Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let o = ospdeck(home, args);
    if !o.status.success() {
        return Err(format!("{args:?} failed: {}", String::from_utf8_lossy(&o.stderr)).into());
    }
    Ok(String::from_utf8(o.stdout)?)
}

/// One line on stderr, non-zero exit, no panic; answers the line.
fn one_line_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "succeeded: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut in_escape = false;
    for c in s.chars() {
        match c {
            '\x1b' => in_escape = true,
            c if in_escape => in_escape = !c.is_ascii_alphabetic(),
            c => out.push(c),
        }
    }
    out
}

/// A migrated store with project `acme`, workflow `nightly` and one queued run.
fn store_with_a_run(home: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let db = home.join("human.db").display().to_string();
    ok(home, &["--db", &db, "db", "migrate"])?;
    ok(home, &["--db", &db, "project", "create", "acme"])?;
    ok(
        home,
        &[
            "--db",
            &db,
            "workflow",
            "create",
            "--project",
            "acme",
            "nightly",
            "--type",
            "test",
            "--command",
            "true",
        ],
    )?;
    ok(
        home,
        &[
            "--db",
            &db,
            "run",
            "enqueue",
            "--project",
            "acme",
            "--workflow",
            "nightly",
        ],
    )?;
    Ok(db)
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_and_never_in_json() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    let db = store_with_a_run(h)?;

    let piped = ok(h, &["--db", &db, "run", "list"])?;
    assert!(
        !piped.contains('\x1b'),
        "piped output is coloured: {piped:?}"
    );
    assert!(piped.contains("queued"), "{piped}");

    let forced = ok(h, &["--db", &db, "--color", "always", "run", "list"])?;
    assert!(forced.contains("\x1b[33mqueued\x1b[0m"), "{forced:?}");
    // Colour does not move a column: the text is the piped text, escapes aside.
    assert_eq!(strip_escapes(&forced), piped);
    // A header's column starts where its cells do.
    let lines: Vec<&str> = piped.lines().collect();
    let at = lines[0].find("STATUS").ok_or("no STATUS header")?;
    assert_eq!(lines[1].get(at..at + 6), Some("queued"), "{piped}");

    let never = ok(h, &["--db", &db, "--color", "never", "run", "list"])?;
    assert_eq!(never, piped);
    let json = ok(
        h,
        &["--db", &db, "--color", "always", "--json", "run", "list"],
    )?;
    assert!(!json.contains('\x1b'), "{json:?}");

    let no_color = ospdeck_command(h, &["--db", &db, "--color", "auto", "run", "list"])
        .env("NO_COLOR", "1")
        .output()?;
    assert!(!String::from_utf8(no_color.stdout)?.contains('\x1b'));

    // On a terminal (script(1) gives the command one), auto colours unless NO_COLOR is set.
    // util-linux's script(1) is a test dependency (.ci/run installs it), never a silent skip.
    let script = which("script")?;
    let bin = env!("CARGO_BIN_EXE_ospdeck");
    let on_terminal = |no_color: Option<&str>| -> Result<String, Box<dyn std::error::Error>> {
        let mut command = Command::new(&script);
        command
            .args([
                "-qec",
                &format!("'{bin}' --db '{db}' run list"),
                "/dev/null",
            ])
            .env("HOME", h)
            .env_remove("OSPDECK_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let o = command.output()?;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Ok(String::from_utf8(o.stdout)?)
    };
    let shown = on_terminal(None)?;
    assert!(shown.contains("\x1b[33mqueued"), "{shown:?}");
    let shown = on_terminal(Some("1"))?;
    assert!(
        shown.contains("queued") && !shown.contains('\x1b'),
        "{shown:?}"
    );
    Ok(())
}

fn which(name: &str) -> Result<std::path::PathBuf, String> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found"))
}

#[test]
fn audit_names_the_project_by_key_in_one_id_column() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    let db = store_with_a_run(h)?;
    let out = ok(h, &["--db", &db, "audit"])?;
    let header: Vec<&str> = out
        .lines()
        .next()
        .ok_or("no header")?
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["ID", "AT", "ACTOR", "ACTION", "ENTITY", "PROJECT"]);
    let workflow_row = out
        .lines()
        .find(|l| l.contains("workflow"))
        .ok_or(format!("no workflow row: {out}"))?;
    assert!(workflow_row.ends_with("  acme"), "{out}");
    // The JSON keeps the id (the contract's audit event).
    let json: serde_json::Value = serde_json::from_str(&ok(h, &["--db", &db, "--json", "audit"])?)?;
    assert!(
        json.as_array()
            .ok_or("not an array")?
            .iter()
            .any(|e| e["project_id"].is_i64())
    );
    Ok(())
}

#[test]
fn a_store_named_with_db_is_migrated_with_the_command_the_hint_names() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    let file = h.join("unmigrated.db");
    std::fs::write(&file, b"")?;
    let db = file.display().to_string();
    let err = one_line_error(&ospdeck(h, &["--db", &db, "run", "list"]));
    let wanted = format!("`ospdeck --db {db} db migrate`");
    assert!(err.contains(&wanted), "{err}");
    let doctor = String::from_utf8(ospdeck(h, &["--db", &db, "doctor"]).stdout)?;
    assert!(
        doctor.contains(&format!("pending migrations: run {wanted}")),
        "{doctor}"
    );

    // From the environment, plain `ospdeck db migrate` reaches the same store, and says why.
    let err = one_line_error(
        &ospdeck_command(h, &["run", "list"])
            .env("OSPDECK_DATABASE_URL", &db)
            .output()?,
    );
    assert!(
        err.contains("run `ospdeck db migrate`") && err.contains("OSPDECK_DATABASE_URL"),
        "{err}"
    );

    // Following the hint works, and migrates that file, not the default store.
    ok(h, &["--db", &db, "db", "migrate"])?;
    ok(h, &["--db", &db, "run", "list"])?;
    assert!(
        !h.join(".local/share/ospdeck").exists(),
        "the default store was made"
    );

    // A path that needs quoting is quoted so the command pastes as written.
    let spaced = h.join("my stores").join("x.db");
    std::fs::create_dir_all(spaced.parent().ok_or("no parent")?)?;
    let spaced = spaced.display().to_string();
    let err = one_line_error(&ospdeck(h, &["--db", &spaced, "run", "list"]));
    assert!(
        err.contains(&format!("`ospdeck --db '{spaced}' db migrate`")),
        "{err}"
    );
    Ok(())
}

#[test]
fn monitor_on_a_fresh_machine_says_how_to_get_a_store_and_creates_nothing() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    let o = ospdeck(h, &["monitor"]);
    let err = one_line_error(&o);
    assert!(o.stdout.is_empty());
    assert!(
        err.contains("no store yet at")
            && err.contains("`ospdeck`")
            && err.contains("`ospdeck demo`")
            && err.contains("--db"),
        "{err}"
    );
    assert!(!h.join(".local/share").exists(), "a store was made");
    Ok(())
}
