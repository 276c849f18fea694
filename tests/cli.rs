//! The real binary: errors are one line on stderr with a non-zero exit, and nothing is written.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ospdeck::store;
use sqlx::Connection;

use common::{
    TestResult, close_sqlite_cleanly, dir_entries, is_root, open_sqlite_writer, ospdeck_command,
};

fn ospdeck(home: &Path, args: &[&str]) -> Output {
    ospdeck_command(home, args).output().expect("run ospdeck")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed command: non-zero exit, exactly one line on stderr starting with "error:", no panic.
fn assert_one_line_error(o: &Output, contains: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "succeeded: {}", stdout(o));
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(contains),
        "stderr: {err} (wanted {contains})"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn first_use_creates_and_migrates_the_embedded_store() -> TestResult {
    let home = tempfile::tempdir()?;
    let o = ospdeck(home.path(), &["doctor"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("embedded default") && out.contains("migrated    yes"),
        "{out}"
    );
    assert!(home.path().join(".local/share/ospdeck/ospdeck.db").exists());
    let o = ospdeck(home.path(), &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(report["source"], "embedded_default");
    assert_eq!(report["migrated"], true);
    Ok(())
}

#[test]
fn the_queue_works_through_the_cli_with_stable_json() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    assert!(ospdeck(h, &["project", "create", "acme"]).status.success());
    let o = ospdeck(
        h,
        &[
            "workflow",
            "create",
            "--project",
            "acme",
            "build",
            "--type",
            "build",
            "--command",
            "true",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ospdeck(h, &["run", "claim", "--worker", "w1", "--json"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "null");
    let o = ospdeck(
        h,
        &[
            "run",
            "enqueue",
            "--project",
            "acme",
            "--workflow",
            "build",
            "--payload",
            "{\"a\":1}",
        ],
    );
    let id = stdout(&o).trim().to_owned();
    assert_eq!(id, "1", "{}", stderr(&o));
    let o = ospdeck(h, &["run", "claim", "--worker", "w1", "--json"]);
    let run: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    for field in [
        "id",
        "project",
        "workflow",
        "status",
        "priority",
        "attempt",
        "max_attempts",
        "worker_id",
        "exit_code",
        "error",
        "created_at",
        "claimed_at",
        "started_at",
        "finished_at",
    ] {
        assert!(run.get(field).is_some(), "missing {field} in {run}");
    }
    assert_eq!(
        (run["status"].as_str(), run["worker_id"].as_str()),
        (Some("claimed"), Some("w1"))
    );
    assert!(
        ospdeck(h, &["run", "start", &id, "--worker", "w1"])
            .status
            .success()
    );
    let o = ospdeck(
        h,
        &[
            "run",
            "complete",
            &id,
            "--worker",
            "w1",
            "--exit-code",
            "2",
            "--error",
            "bad",
            "--json",
        ],
    );
    let run: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        (run["status"].as_str(), run["exit_code"].as_i64()),
        (Some("failed"), Some(2))
    );
    let o = ospdeck(h, &["run", "retry", &id]);
    assert_eq!(stdout(&o).trim(), "2");
    let o = ospdeck(h, &["run", "list", "--status", "queued", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["retry_of"], 1);
    let o = ospdeck(h, &["run", "cancel", "2"]);
    assert!(stdout(&o).contains("canceled"), "{}", stderr(&o));
    Ok(())
}

#[test]
fn bad_input_is_one_clear_line_and_writes_nothing() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    assert!(ospdeck(h, &["project", "create", "acme"]).status.success());
    assert!(
        ospdeck(
            h,
            &[
                "workflow",
                "create",
                "--project",
                "acme",
                "build",
                "--type",
                "build",
                "--command",
                "true"
            ]
        )
        .status
        .success()
    );
    let enqueue = |extra: &[&str]| {
        let mut args = vec!["run", "enqueue", "--project", "acme", "--workflow", "build"];
        args.extend_from_slice(extra);
        ospdeck(h, &args)
    };
    assert_one_line_error(&enqueue(&["--payload", "{oops"]), "not valid JSON");
    let big = h.join("big.json");
    std::fs::write(&big, format!("\"{}\"", "x".repeat(1024 * 1024 + 10)))?;
    assert_one_line_error(
        &enqueue(&["--payload", &format!("@{}", big.display())]),
        "too large",
    );
    assert_one_line_error(
        &enqueue(&["--payload", "@/no/such/file"]),
        "cannot read payload",
    );
    assert_one_line_error(&enqueue(&["--priority", "1001"]), "invalid priority");
    assert_one_line_error(
        &enqueue(&["--priority", "-99999999999999999"]),
        "invalid priority",
    );
    assert_one_line_error(&enqueue(&["--max-attempts", "0"]), "invalid max attempts");
    assert_one_line_error(
        &ospdeck(
            h,
            &["run", "enqueue", "--project", "nope", "--workflow", "build"],
        ),
        "unknown project",
    );
    assert_one_line_error(
        &ospdeck(
            h,
            &["run", "enqueue", "--project", "acme", "--workflow", "nope"],
        ),
        "unknown workflow",
    );
    for bad_id in ["abc", "0", "-4", "1e3"] {
        assert_one_line_error(&ospdeck(h, &["run", "show", bad_id]), "invalid run id");
    }
    assert_one_line_error(&ospdeck(h, &["run", "show", "77"]), "unknown run 77");
    assert_one_line_error(
        &ospdeck(
            h,
            &["project", "create", "Robert'); DROP TABLE projects;--"],
        ),
        "invalid project key",
    );
    assert_one_line_error(
        &ospdeck(h, &["project", "create", "acme"]),
        "already exists",
    );
    let o = ospdeck(h, &["run", "list", "--json"]);
    assert_eq!(stdout(&o).trim(), "[]", "something was queued");
    Ok(())
}

#[test]
fn unreachable_and_unmigrated_databases_are_clear_errors() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    let o = ospdeck(
        h,
        &[
            "--db",
            "postgres://nobody:secret@127.0.0.1:1/none",
            "project",
            "list",
        ],
    );
    assert_one_line_error(&o, "cannot reach the database");
    assert!(
        !stderr(&o).contains("secret"),
        "password leaked: {}",
        stderr(&o)
    );
    let file = h.join("explicit.db");
    let db = file.display().to_string();
    assert_one_line_error(
        &ospdeck(h, &["--db", &db, "project", "list"]),
        &format!("no database at {db} yet: run `ospdeck --db {db} db migrate`"),
    );
    assert_one_line_error(
        &ospdeck(h, &["--db", "mysql://x/y", "project", "list"]),
        "unsupported database URL",
    );
    let o = ospdeck(h, &["--db", &db, "db", "migrate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        ospdeck(h, &["--db", &db, "project", "list"])
            .status
            .success()
    );
    let o = ospdeck(
        h,
        &["--db", &format!("sqlite://{db}"), "db", "status", "--json"],
    );
    let status: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(status[0]["applied"], true);
    Ok(())
}

#[test]
fn service_commands_answer_bad_input_in_one_line() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    assert!(
        ospdeck(h, &["project", "create", "telecom"])
            .status
            .success()
    );
    let create = |schema: &str| {
        ospdeck(
            h,
            &[
                "service",
                "create",
                "--project",
                "telecom",
                "--name",
                "Billing",
                "--schema",
                schema,
            ],
        )
    };
    for hostile in [
        "x\"; DROP SCHEMA ops; --",
        "Billing",
        "pg_x",
        "public",
        "a b",
    ] {
        assert_one_line_error(&create(hostile), "invalid schema");
    }
    let manifest = h.join("m.json");
    std::fs::write(&manifest, r#"{"service_id":"billing","unknown":1}"#)?;
    assert_one_line_error(
        &ospdeck(
            h,
            &[
                "service",
                "create",
                "--project",
                "telecom",
                "--from-file",
                &manifest.display().to_string(),
            ],
        ),
        "invalid",
    );
    assert!(create("billing").status.success());
    assert_one_line_error(&create("billing"), "already exists");
    assert_one_line_error(
        &ospdeck(h, &["manifest", "activate", "billing", "9.9.9"]),
        "no manifest version 9.9.9",
    );
    assert_one_line_error(
        &ospdeck(
            h,
            &["manifest", "propose", "billing", "--file", "/no/such/file"],
        ),
        "cannot read manifest",
    );
    assert_one_line_error(
        &ospdeck(h, &["manifest", "show", "nothere"]),
        "unknown service",
    );
    let o = ospdeck(h, &["service", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o))?;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn read_only_refuses_writes_and_still_reads() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    assert!(ospdeck(h, &["project", "create", "acme"]).status.success());
    let o = ospdeck(h, &["--read-only", "project", "create", "other"]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    let o = ospdeck(h, &["--read-only", "project", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_str(&stdout(&o))?;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn roles_decide_and_a_refusal_is_one_line_that_writes_nothing() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    // The test runs as the owner of the database file: the store's administrator.
    let o = ospdeck(h, &["whoami", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let me: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(me["administrator"], true);
    assert_eq!(me["store"], "sqlite");

    assert!(
        ospdeck(h, &["--as", "olga", "project", "create", "acme"])
            .status
            .success()
    );
    let o = ospdeck(
        h,
        &[
            "--as",
            "olga",
            "member",
            "add",
            "--project",
            "acme",
            "vic",
            "viewer",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ospdeck(h, &["--as", "vic", "whoami", "--json"]);
    let vic: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(vic["user"], "vic");
    assert_eq!(vic["administrator"], false);
    assert_eq!(vic["roles"][0]["role"], "viewer");

    let create = [
        "--as",
        "vic",
        "workflow",
        "create",
        "--project",
        "acme",
        "build",
        "--type",
        "build",
        "--command",
        "true",
    ];
    let o = ospdeck(h, &create);
    assert_one_line_error(
        &o,
        "permission denied: creating workflow build needs developer or higher in project acme; \
         vic is a viewer there",
    );
    let o = ospdeck(h, &["workflow", "list", "--project", "acme", "--json"]);
    let workflows: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        workflows.as_array().map(Vec::len),
        Some(0),
        "nothing written"
    );
    // Reading is every member's; tools are the administrator's.
    assert!(ospdeck(h, &["--as", "vic", "run", "list"]).status.success());
    let o = ospdeck(
        h,
        &[
            "--as", "olga", "tool", "add", "odoo", "17.0", "--image", "odoo:17",
        ],
    );
    assert_one_line_error(&o, "is for the store's administrator");
    // The last owner stays.
    let o = ospdeck(
        h,
        &[
            "--as",
            "olga",
            "member",
            "remove",
            "--project",
            "acme",
            "olga",
        ],
    );
    assert_one_line_error(&o, "olga is the last owner of acme");
    Ok(())
}

/// A member connected as its own PostgreSQL login role uses the CLI like anyone else; `--as` is
/// refused there, since the database knows who is connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_member_signs_in_as_its_own_role() -> TestResult {
    use ospdeck::domain::permission::Role;
    let Some(h) = common::Harness::postgres("a_postgres_member_signs_in_as_its_own_role").await
    else {
        return Ok(());
    };
    let home = tempfile::tempdir()?;
    let viewer = format!("{}_viewer", h.unique_prefix());
    h.ops.create_project("acme", None).await?;
    h.ops.create_project("secret", None).await?;
    // The administrator's `member add` creates the login role.
    h.ops
        .set_member("acme", &viewer, Role::Viewer, false)
        .await?;
    let url = h.url_as(&viewer);
    let o = ospdeck(home.path(), &["--db", &url, "whoami", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let me: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(me["user"], viewer.as_str());
    assert_eq!(me["administrator"], false);
    assert_eq!(me["roles"][0]["project"], "acme");
    let o = ospdeck(
        home.path(),
        &[
            "--db",
            &url,
            "workflow",
            "create",
            "--project",
            "acme",
            "build",
            "--type",
            "build",
            "--command",
            "true",
        ],
    );
    assert_one_line_error(&o, "needs developer or higher in project acme");
    let o = ospdeck(home.path(), &["--db", &url, "--as", "root", "run", "list"]);
    assert_one_line_error(&o, "--as root: PostgreSQL knows who you are");
    let o = ospdeck(home.path(), &["--db", &url, "project", "list", "--json"]);
    let projects: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        projects.as_array().map(Vec::len),
        Some(1),
        "secret stays hidden"
    );
    Ok(())
}

// The CLI at its edges: a reader that goes away, a log file it cannot write, read-only media and
// a directory shared with other users.

/// A pipe whose reading end is already closed, as after `| head -1` has read its line and exited:
/// every write to it fails with EPIPE. Close-on-exec, so no other test's child keeps the reading
/// end open.
fn closed_pipe() -> std::io::Result<Stdio> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 stores on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new, open, and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Ok(Stdio::from(write))
}

/// Users the tests act as besides root: a store's owner and a reader.
const OWNER_UID: u32 = 1; // daemon
const READER_UID: u32 = 65534; // nobody

/// `command` as user `uid` when the tests run as root, to whom file permissions do not apply;
/// otherwise as the user the tests run as, to whom they already do.
fn as_user(mut command: Command, uid: u32) -> Command {
    use std::os::unix::process::CommandExt;
    if is_root() {
        command.uid(uid).gid(uid);
    }
    command
}

/// A temporary directory other users may enter and read (tempfile makes them private).
fn open_tempdir(mode: u32) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode))?;
    Ok(dir)
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    for args in [
        &["project", "create", "acme"][..],
        &[
            "workflow",
            "create",
            "--project",
            "acme",
            "chatty",
            "--type",
            "build",
            "--command",
            "seq 1 3000",
        ],
        &[
            "run",
            "enqueue",
            "--project",
            "acme",
            "--workflow",
            "chatty",
        ],
        &["worker", "--drain", "--concurrency", "1"],
    ] {
        let o = ospdeck(h, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let o = ospdeck(h, &["run", "logs", "1"]);
    assert!(stdout(&o).lines().count() >= 3000, "{}", stderr(&o));
    for args in [
        &["run", "logs", "1"][..],
        &["run", "logs", "1", "--json"],
        &["run", "logs", "1", "--follow"],
        &["template", "list"],
        &["project", "list", "--json"],
        &["run", "list"],
        &["doctor"],
        &["--help"],
    ] {
        let o = ospdeck_command(h, args).stdout(closed_pipe()?).output()?;
        assert_eq!(
            (o.status.code(), stderr(&o).as_str()),
            (Some(0), ""),
            "{args:?}"
        );
    }
    Ok(())
}

#[test]
fn a_closed_stderr_is_no_panic() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    let missing = h.join("missing.db").display().to_string();
    // An error with nowhere to report it still ends with status 1, not a panic's 101.
    let o = ospdeck_command(h, &["--db", &missing, "project", "list"])
        .stdout(closed_pipe()?)
        .stderr(closed_pipe()?)
        .output()?;
    assert_eq!(o.status.code(), Some(1));
    // The worker reports starting and stopping on stderr.
    let o = ospdeck_command(h, &["worker", "--drain"])
        .stderr(closed_pipe()?)
        .output()?;
    assert_eq!(o.status.code(), Some(0));
    Ok(())
}

/// Succeeded, with exactly one line on stderr: a warning about logging.
fn assert_log_warning(o: &Output, contains: &str) {
    let err = stderr(o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(
        err.starts_with("warning: not logging to a file: ") && err.contains(contains),
        "stderr: {err} (wanted {contains})"
    );
}

#[test]
fn a_log_that_cannot_be_written_is_one_warning_and_the_command_still_works() -> TestResult {
    // No log directory can be made under a state directory that is a regular file.
    let home = tempfile::tempdir()?;
    std::fs::create_dir(home.path().join(".local"))?;
    std::fs::write(home.path().join(".local/state"), "")?;
    let o = ospdeck(home.path(), &["project", "list"]);
    assert_log_warning(&o, "Not a directory");
    assert!(stdout(&o).starts_with("KEY"), "{}", stdout(&o));

    // A log directory left by someone else (a `sudo` run that kept HOME): readable, not writable.
    let home = open_tempdir(0o755)?;
    let logs = home.path().join(".local/state/ospdeck/logs");
    std::fs::create_dir_all(&logs)?;
    let stores = open_tempdir(0o755)?;
    let db = stores.path().join("s.db").display().to_string();
    assert!(
        ospdeck(home.path(), &["--db", &db, "db", "migrate"])
            .status
            .success()
    );
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o555))?;
    }
    let o = as_user(
        ospdeck_command(
            home.path(),
            &["--read-only", "--db", &db, "project", "list"],
        ),
        READER_UID,
    )
    .output()?;
    assert_log_warning(&o, "Permission denied");
    assert!(stdout(&o).starts_with("KEY"), "{}", stdout(&o));
    Ok(())
}

#[tokio::test]
async fn read_only_and_refused_commands_create_nothing() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    // No embedded store yet: doctor says so and leaves it so, like every other command.
    let o = ospdeck(h, &["--read-only", "doctor"]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("read-only mode creates none"),
        "{}",
        stdout(&o)
    );
    assert_one_line_error(
        &ospdeck(h, &["--read-only", "project", "list"]),
        "read-only mode creates none",
    );
    for command in [
        &["db", "migrate"][..],
        &["demo", "--seed-only"],
        &["worker"],
    ] {
        let args = [&["--read-only"][..], command].concat();
        assert_one_line_error(&ospdeck(h, &args), "--read-only writes nothing");
    }
    assert!(!h.join(".local/share").exists(), "a store was made");

    // A store named but not there is refused, not created, whatever the command.
    let stores = tempfile::tempdir()?;
    let missing = stores.path().join("x.db").display().to_string();
    for args in [
        &["--db", &missing, "project", "list"][..],
        &["--db", &missing, "db", "status"],
        &["--db", &missing, "db", "down"],
        &["--read-only", "--db", &missing, "run", "list"],
    ] {
        assert_one_line_error(&ospdeck(h, args), "no database at");
    }
    assert!(!ospdeck(h, &["--db", &missing, "doctor"]).status.success());
    assert_eq!(dir_entries(stores.path())?, Vec::<String>::new());

    // Existing files that are not ospdeck stores, one in each journal mode: refused, and left
    // byte for byte as they were, with no side files.
    for mode in ["DELETE", "WAL"] {
        let file = stores.path().join(format!("other-{mode}.db"));
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        sqlx::query(&format!("PRAGMA journal_mode = {mode}"))
            .execute(&mut conn)
            .await?;
        sqlx::query("CREATE TABLE notes (body TEXT)")
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let before = std::fs::read(&file)?;
        let path = file.display().to_string();
        for args in [
            &["--db", &path, "project", "list"][..],
            &["--read-only", "--db", &path, "project", "list"],
        ] {
            assert_one_line_error(&ospdeck(h, args), "pending migration");
        }
        assert!(!ospdeck(h, &["--db", &path, "doctor"]).status.success());
        assert!(
            ospdeck(h, &["--db", &path, "db", "status"])
                .status
                .success()
        );
        assert_eq!(std::fs::read(&file)?, before, "{mode} file changed");
        let names = dir_entries(stores.path())?;
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with(&format!("other-{mode}.db-"))),
            "side files: {names:?}"
        );
    }

    // A first use that fails part-way removes the store it began: here SQLite cannot make its
    // WAL, because a directory stands where the file goes.
    let home = tempfile::tempdir()?;
    let data = home.path().join(".local/share/ospdeck");
    std::fs::create_dir_all(data.join("ospdeck.db-wal"))?;
    let o = ospdeck(home.path(), &["project", "list"]);
    assert!(!o.status.success());
    assert_eq!(dir_entries(&data)?, ["ospdeck.db-wal"]);
    Ok(())
}

/// Runs `args` with `dir` on read-only media: as root, a read-only bind mount of `dir` in a mount
/// namespace of the command's own (it vanishes with the process); otherwise `dir` itself with its
/// write permission taken away, which binds a user who is not root just the same. `{dir}` in the
/// arguments names where the command sees `dir`.
fn on_read_only_media(home: &Path, dir: &Path, args: &[&str]) -> std::io::Result<Output> {
    use std::os::unix::fs::PermissionsExt;
    if is_root() {
        let mount_point = tempfile::tempdir()?;
        let seen = mount_point.path().display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &seen)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let inner = ospdeck_command(home, &args);
        let mut outer = Command::new("unshare");
        outer
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && shift 2 && exec "$@""#)
            .arg("sh")
            .arg(dir)
            .arg(mount_point.path())
            .arg(inner.get_program())
            .args(inner.get_args());
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => outer.env(key, value),
                None => outer.env_remove(key),
            };
        }
        outer.output()
    } else {
        let seen = dir.display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &seen)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))?;
        let out = ospdeck_command(home, &args).output();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        out
    }
}

#[tokio::test]
async fn a_store_on_read_only_media_is_read_and_left_untouched() -> TestResult {
    let home = tempfile::tempdir()?;
    let h = home.path();
    let media = tempfile::tempdir()?;
    let db = media.path().join("s.db");
    migrated_with_one_project(h, &db);
    for words in [
        "workflow create --project acme build --type build --command true",
        "run enqueue --project acme --workflow build",
    ] {
        ospdeck_ok(h, &db, words);
    }
    // With a writer at work (its -wal and -shm beside the file), then with the file alone.
    for clean in [false, true] {
        let writer = if clean {
            close_sqlite_cleanly(&db).await?;
            None
        } else {
            Some(open_sqlite_writer(&db).await?)
        };
        let before = dir_entries(media.path())?;
        assert_eq!(before.len(), if clean { 1 } else { 3 }, "{before:?}");
        let o = on_read_only_media(
            h,
            media.path(),
            &["--read-only", "--db", "{dir}/s.db", "run", "list", "--json"],
        )?;
        assert!(o.status.success(), "clean: {clean}: {}", stderr(&o));
        let runs: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
        assert_eq!(dir_entries(media.path())?, before);
        if let Some(writer) = writer {
            writer.close().await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_reader_in_a_shared_directory_never_locks_the_owner_out() -> TestResult {
    // Homes of their own, for their logs.
    let (owner_home, reader_home) = (open_tempdir(0o777)?, open_tempdir(0o777)?);
    let shared = open_tempdir(0o1777)?;
    let db = shared.path().join("s.db").display().to_string();
    let owner = |args: &[&str]| {
        let args = [&["--db", &db][..], args].concat();
        as_user(ospdeck_command(owner_home.path(), &args), OWNER_UID).output()
    };
    let reader = || {
        let args = ["--read-only", "--db", &db, "project", "list"];
        as_user(ospdeck_command(reader_home.path(), &args), READER_UID).output()
    };
    for args in [&["db", "migrate"][..], &["project", "create", "acme"]] {
        let o = owner(args)?;
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    // While the store is in use (its -wal and -shm there, the owner's: SQLite gives root's
    // files the database's owner), then with nobody using it (the file alone).
    for (clean, next) in [(false, "beta"), (true, "gamma")] {
        let in_use = if clean {
            close_sqlite_cleanly(Path::new(&db)).await?;
            None
        } else {
            Some(open_sqlite_writer(Path::new(&db)).await?)
        };
        let before = dir_entries(shared.path())?;
        assert_eq!(before.len(), if clean { 1 } else { 3 }, "{before:?}");
        let o = reader()?;
        assert!(o.status.success(), "clean: {clean}: {}", stderr(&o));
        assert!(stdout(&o).contains("acme"), "{}", stdout(&o));
        assert_eq!(dir_entries(shared.path())?, before, "the reader left files");
        let o = owner(&["project", "create", next])?;
        assert!(
            o.status.success(),
            "the owner is locked out: {}",
            stderr(&o)
        );
        if let Some(conn) = in_use {
            conn.close().await?;
        }
    }
    Ok(())
}

/// A store opened read-only beside a writer's `-wal` and `-shm` holds them in place: when the last
/// writer then closes cleanly they stay, so no later connection of the reader has to make its own.
#[tokio::test]
async fn a_read_only_store_keeps_the_writer_files_it_reads_through() -> TestResult {
    let (home, dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let db = dir.path().join("s.db");
    let url = migrated_with_one_project(home.path(), &db);
    let writer = open_sqlite_writer(&db).await?;
    let writer_files = ["s.db", "s.db-shm", "s.db-wal"];
    assert_eq!(dir_entries(dir.path())?, writer_files);
    let reader = store::open(&url, &READ_ONLY).await?;
    writer.close().await?;
    assert_eq!(dir_entries(dir.path())?, writer_files);
    assert_eq!(reader.list_projects().await?.len(), 1);
    Ok(())
}

const READ_ONLY: store::StoreOptions = store::StoreOptions {
    read_only: true,
    max_connections: 2,
    sqlite_cache_kib: None,
    gateway_subject: None,
};

/// `ospdeck --db DB WORDS…`, which must succeed.
fn ospdeck_ok(home: &Path, db: &Path, words: &str) {
    let db = db.display().to_string();
    let args: Vec<&str> = ["--db", &db].into_iter().chain(words.split(' ')).collect();
    let o = ospdeck(home, &args);
    assert!(o.status.success(), "{words}: {}", stderr(&o));
}

/// A store at `db`, migrated, with project `acme`, made by the CLI; answers its URL.
fn migrated_with_one_project(home: &Path, db: &Path) -> String {
    ospdeck_ok(home, db, "db migrate");
    ospdeck_ok(home, db, "project create acme");
    db.display().to_string()
}

/// What the read-only console stands on, a store opened while no writer is at work: its change
/// watcher reports a writer that came and went between two looks (only the file changed) and a
/// writer at work (its `-shm` is there), and the store's reads show what each wrote.
#[tokio::test]
async fn a_read_only_store_sees_writers_that_come_and_go() -> TestResult {
    let (home, dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let db = dir.path().join("s.db");
    let url = migrated_with_one_project(home.path(), &db);
    close_sqlite_cleanly(&db).await?;
    let reader = store::open(&url, &READ_ONLY).await?;
    assert_eq!(reader.list_projects().await?.len(), 1);
    let mut watcher = reader.change_watcher().await?;
    assert!(!watcher.changed(Duration::from_millis(300)).await?);
    let insert = |key: &'static str| {
        sqlx::query("INSERT INTO projects (workspace_key, slug, name) VALUES (?1, ?1, ?1)")
            .bind(key)
    };

    let mut writer = open_sqlite_writer(&db).await?;
    insert("beta").execute(&mut writer).await?;
    writer.close().await?;
    assert_eq!(dir_entries(dir.path())?, ["s.db"]);
    assert!(watcher.changed(Duration::from_secs(10)).await?);
    assert_eq!(reader.list_projects().await?.len(), 2);
    assert_eq!(dir_entries(dir.path())?, ["s.db"], "the reader made files");

    let mut writer = open_sqlite_writer(&db).await?;
    assert!(watcher.changed(Duration::from_secs(10)).await?);
    insert("gamma").execute(&mut writer).await?;
    assert!(watcher.changed(Duration::from_secs(10)).await?);
    assert_eq!(reader.list_projects().await?.len(), 3);
    writer.close().await?;
    Ok(())
}

/// `user key …`: add, list (table and JSON), import with a bad line reported, remove; a user who
/// is not the store's administrator is refused, and nothing is written.
#[test]
fn user_keys_are_the_administrators_through_the_cli() -> TestResult {
    const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL2MQjD10hI0GxMX2VVmCTPLBcKPR5vBSjCkCjiqieIT alice@laptop";
    const ALICE_FP: &str = "SHA256:kRCaadOjxOBXYtjHo3n4GXgFqUOY6rsBMJqOWWiVF0s";
    const BOB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILCXkRXfVpWjkWlIRRBnjeJGgTD+gKeb97z4yrMxeo54 bob laptop two";
    const BOB_FP: &str = "SHA256:JQbBDYzcKpVCWBFZcp9GZQfrrFoeTigGLsHUckvo0xI";
    let home = tempfile::tempdir()?;
    let h = home.path();
    // The test runs as the owner of the database file: the store's administrator.
    let o = ospdeck(h, &["user", "key", "add", "alice", ALICE]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("key {ALICE_FP} (ssh-ed25519) names alice")
    );
    let o = ospdeck(h, &["user", "key", "add", "alice", ALICE, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(again["outcome"], "already_added");
    let o = ospdeck(h, &["user", "key", "add", "bob", ALICE]);
    assert_one_line_error(&o, "already names user alice");
    assert_eq!(o.status.code(), Some(5));
    let o = ospdeck(
        h,
        &["user", "key", "add", "bob", "ssh-rsa AAAAB3NzaC1yc2E x"],
    );
    assert_one_line_error(&o, "key type ssh-rsa is not accepted");
    assert_eq!(o.status.code(), Some(6));

    // Import from stdin: one key added, one already there, a bad line reported by number.
    let file = format!("# bob\n{BOB}\nnot a key at all\n{ALICE}\n");
    let mut child = ospdeck_command(h, &["user", "key", "import", "bob", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(file.as_bytes())?;
    }
    let o = child.wait_with_output()?;
    assert_one_line_error(&o, "2 key line(s) of - skipped (line 3, 4)");
    assert_eq!(o.status.code(), Some(6));
    let report = stdout(&o);
    assert!(
        report.contains(&format!("line 2: added {BOB_FP} (ssh-ed25519)")),
        "{report}"
    );
    assert!(
        report.contains("line 3: skipped: not an OpenSSH public key"),
        "{report}"
    );
    assert!(report.contains("line 4: skipped: key SHA256:"), "{report}");
    assert!(
        report.ends_with("bob: 1 added, 0 already there, 2 skipped\n"),
        "{report}"
    );
    // From a file, under --json: the same report as one object.
    let path = h.join("bob.keys");
    std::fs::write(&path, format!("{BOB}\n"))?;
    let path = path.to_str().ok_or("temp path is not UTF-8")?;
    let o = ospdeck(h, &["user", "key", "import", "bob", path, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(report["already"][0]["fingerprint"], BOB_FP);
    assert_eq!(report["already"][0]["line"], 1);
    assert_eq!(report["skipped"], serde_json::json!([]));

    let o = ospdeck(h, &["user", "key", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["FINGERPRINT", "USER", "TYPE", "COMMENT", "ADDED"],
        "{table}"
    );
    assert!(
        lines[1].starts_with(ALICE_FP) && lines[1].contains("alice@laptop"),
        "{table}"
    );
    assert!(
        lines[2].starts_with(BOB_FP) && lines[2].contains("bob laptop two"),
        "{table}"
    );
    let o = ospdeck(h, &["user", "key", "list", "bob", "--json"]);
    let keys: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(keys.as_array().map(Vec::len), Some(1));
    assert_eq!(keys[0]["user"], "bob");
    assert_eq!(keys[0]["algorithm"], "ssh-ed25519");

    // Someone else: refused in one line, nothing written.
    for args in [
        &["--as", "mallory", "user", "key", "add", "mallory", BOB][..],
        &["--as", "mallory", "user", "key", "list"][..],
        &["--as", "mallory", "user", "key", "remove", BOB_FP][..],
    ] {
        let o = ospdeck(h, args);
        assert_one_line_error(&o, "is for the store's administrator");
        assert_eq!(o.status.code(), Some(4), "{args:?}");
    }

    let o = ospdeck(h, &["user", "key", "remove", BOB_FP, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let removed: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(removed["user"], "bob");
    let o = ospdeck(h, &["user", "key", "remove", BOB_FP]);
    assert_one_line_error(&o, &format!("no key {BOB_FP}"));
    assert_eq!(o.status.code(), Some(3));
    let o = ospdeck(h, &["user", "key", "remove", "nonsense"]);
    assert_one_line_error(&o, "invalid fingerprint");
    let o = ospdeck(h, &["user", "key", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(
        keys.as_array().map(Vec::len),
        Some(1),
        "only alice's is left"
    );
    let o = ospdeck(h, &["audit", "--entity", "user_key", "--json"]);
    let audit: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let actions: Vec<&str> = audit
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(actions, ["remove_key", "add_key", "add_key"]);
    Ok(())
}
