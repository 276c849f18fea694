//! `run list` paging, streaming and watching, and `run cancel` / `run retry` by ids and by
//! filter, through the real binary on a SQLite store.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ospdeck::domain::permission::Identity;
use ospdeck::domain::run::{NewRun, RunOptions};
use ospdeck::domain::workflow::WorkflowType;
use ospdeck::ops::{Ops, WorkflowRequest};
use ospdeck::store::{self, StoreOptions};
use serde_json::Value;

use common::TestResult;

/// A temp home with a store holding project acme, workflow build and `runs` queued runs.
struct Fixture {
    home: tempfile::TempDir,
    db: PathBuf,
}

impl Fixture {
    async fn new(runs: usize) -> Result<Self, common::BoxError> {
        let home = tempfile::tempdir()?;
        let db = home.path().join("runs.db");
        let store = store::open(
            &format!("sqlite://{}", db.display()),
            &StoreOptions::default(),
        )
        .await?;
        store.migrate().await?;
        let ops = Ops::new(store, Identity::administrator("tester"));
        ops.create_project("acme", None).await?;
        let wf = ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "build",
                WorkflowType::Build,
                "true",
            ))
            .await?;
        let new: Vec<NewRun> = (0..runs)
            .map(|_| NewRun::new(wf.project_id, wf.id, &RunOptions::default()))
            .collect::<Result<_, _>>()?;
        ops.enqueue_runs(&new).await?;
        Ok(Self { home, db })
    }

    fn command(&self, args: &[&str]) -> Command {
        let db = [std::ffi::OsStr::new("--db"), self.db.as_os_str()];
        let mut command = common::ospdeck_command(self.home.path(), &db);
        command.args(args).stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ospdeck")
    }

    fn json(&self, args: &[&str]) -> Result<Value, common::BoxError> {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        Ok(serde_json::from_slice(&o.stdout)?)
    }

    fn statuses(&self) -> Result<Vec<(i64, String)>, common::BoxError> {
        let list = self.json(&["run", "list", "--all", "--json"])?;
        Ok(list
            .as_array()
            .ok_or("not an array")?
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap_or(-1),
                    r["status"].as_str().unwrap_or("?").to_owned(),
                )
            })
            .collect())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn outcomes(answer: &Value) -> Vec<(i64, String)> {
    answer
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["id"].as_i64().unwrap_or(-1),
                        r["outcome"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn several_ids_are_canceled_and_a_second_cancel_succeeds_as_already_canceled() -> TestResult {
    let f = Fixture::new(4).await?;
    let answer = f.json(&["run", "cancel", "1", "2", "3", "--json"])?;
    assert_eq!(
        outcomes(&answer),
        vec![
            (3, "canceled".to_owned()),
            (2, "canceled".to_owned()),
            (1, "canceled".to_owned())
        ]
    );
    // Each answer is the run object as `run show` has it, after the change.
    assert_eq!(answer[0]["status"], "canceled");
    assert!(answer[0]["reason"].is_null() && answer[0].get("workflow").is_some());
    let again = f.json(&["run", "cancel", "2", "--json"])?;
    assert_eq!(
        (again["id"].as_i64(), again["outcome"].as_str()),
        (Some(2), Some("already_canceled"))
    );
    let o = f.run(&["run", "cancel", "2"]);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout).trim(), "run 2 was already canceled");
    // Unknown: not found (3), and nothing else is canceled with it.
    let o = f.run(&["run", "cancel", "4", "99"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(f.statuses()?[0], (4, "queued".to_owned()));
    // Retry answers the new run itself.
    let new = f.json(&["run", "retry", "1", "--json"])?;
    assert_eq!(
        (
            new["id"].as_i64(),
            new["retry_of"].as_i64(),
            new["status"].as_str()
        ),
        (Some(5), Some(1), Some("queued"))
    );
    // A run not finished cannot be retried: a conflict (5).
    assert_eq!(f.run(&["run", "retry", "4"]).status.code(), Some(5));
    Ok(())
}

#[tokio::test]
async fn where_dry_run_reports_and_changes_nothing() -> TestResult {
    let f = Fixture::new(30).await?;
    assert!(f.run(&["run", "cancel", "7"]).status.success());
    let before = f.statuses()?;
    let answer = f.json(&[
        "run",
        "cancel",
        "--where",
        "status:queued,canceled",
        "--dry-run",
        "--json",
    ])?;
    let got = outcomes(&answer);
    assert_eq!(got.len(), 30);
    assert!(
        got.iter()
            .all(|(id, o)| (*id == 7 && o == "already_canceled") || o == "would_cancel"),
        "{got:?}"
    );
    assert_eq!(f.statuses()?, before);
    Ok(())
}

#[tokio::test]
async fn where_without_a_terminal_needs_yes_and_with_yes_cancels() -> TestResult {
    let f = Fixture::new(25).await?;
    let o = f.run(&["run", "cancel", "--where", "status:queued"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("--yes") && err.contains("--dry-run"), "{err}");
    assert!(f.statuses()?.iter().all(|(_, s)| s == "queued"));

    let o = f.run(&["run", "cancel", "--where", "status:queued", "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("25 runs matched"),
        "{}",
        text(&o.stdout)
    );
    assert!(f.statuses()?.iter().all(|(_, s)| s == "canceled"));
    let audit = f.json(&["audit", "--json"])?;
    let rows: Vec<&Value> = audit
        .as_array()
        .ok_or("audit")?
        .iter()
        .filter(|r| r["action"] == "cancel")
        .collect();
    assert_eq!(rows.len(), 1, "one batch, one audit row");
    assert_eq!(rows[0]["before"]["filter"], "status:queued");

    let answer = f.json(&[
        "run",
        "retry",
        "--where",
        "status:canceled",
        "--yes",
        "--json",
    ])?;
    assert_eq!(answer.as_array().map(Vec::len), Some(25));
    assert!(
        answer
            .as_array()
            .ok_or("array")?
            .iter()
            .all(|r| r["outcome"] == "retried"
                && r["status"] == "queued"
                && r["retry_of"].is_i64())
    );
    Ok(())
}

#[tokio::test]
async fn after_pages_through_every_run_once_and_json_is_one_array() -> TestResult {
    let f = Fixture::new(120).await?;
    let mut seen: Vec<i64> = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let mut args = vec!["run", "list", "--limit", "25", "--json"];
        let cursor = after.map(|a| a.to_string());
        if let Some(c) = cursor.as_deref() {
            args.extend(["--after", c]);
        }
        let page = f.json(&args)?;
        let ids: Vec<i64> = page
            .as_array()
            .ok_or("array")?
            .iter()
            .filter_map(|r| r["id"].as_i64())
            .collect();
        if ids.is_empty() {
            break;
        }
        assert!(ids.len() <= 25);
        after = ids.last().copied();
        seen.extend(ids);
    }
    let expected: Vec<i64> = (1..=120).rev().collect();
    assert_eq!(seen, expected, "gaps or repeats");
    for args in [
        &["run", "list", "--limit", "0", "--json"][..],
        &["run", "list", "--all", "--json"][..],
    ] {
        let all = f.json(args)?;
        assert_eq!(all.as_array().map(Vec::len), Some(120), "{args:?}");
    }
    let none = f.json(&["run", "list", "--status", "failed", "--json"])?;
    assert_eq!(none, serde_json::json!([]));
    assert_eq!(
        f.run(&["run", "list", "--limit", "-1"]).status.code(),
        Some(6)
    );
    Ok(())
}

/// The binary on a pseudo-terminal (util-linux `script`), for what it prints only there.
fn on_terminal(f: &Fixture, args: &str) -> Option<String> {
    let command = format!(
        "{} --db {} {args}",
        env!("CARGO_BIN_EXE_ospdeck"),
        f.db.display()
    );
    let o = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", f.home.path())
        .env_remove("OSPDECK_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some(text(&o.stdout))
}

#[tokio::test]
async fn a_human_list_on_a_terminal_says_more_exist() -> TestResult {
    let f = Fixture::new(60).await?;
    let Some(out) = on_terminal(&f, "run list") else {
        println!("SKIPPED: no `script` to give the binary a terminal");
        return Ok(());
    };
    assert!(
        out.contains("50 of 60 runs; --limit N or --after 11 for more"),
        "{out}"
    );
    let out = on_terminal(&f, "run list --where status:queued --limit 5").ok_or("script")?;
    assert!(
        out.contains("5 runs shown and more exist; --limit N or --after 56 for more"),
        "{out}"
    );
    // Piped, the output is the table alone.
    let piped = text(&f.run(&["run", "list"]).stdout);
    assert_eq!(piped.lines().count(), 51);
    assert!(!piped.contains("more"));
    Ok(())
}

#[tokio::test]
async fn watch_streams_ndjson_for_a_change_made_while_it_runs() -> TestResult {
    let f = Fixture::new(3).await?;
    let mut child = f
        .command(&["run", "list", "--watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |deadline: Instant| -> Option<Value> {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = rx.recv_timeout(left).ok()?;
        Some(serde_json::from_str(&line).expect("each line is one JSON object"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(next(deadline).ok_or("the current list")?["id"].as_i64());
    }
    assert_eq!(first, vec![Some(3), Some(2), Some(1)]);
    assert!(f.run(&["run", "cancel", "2"]).status.success());
    let change = next(deadline).ok_or("no line for the change")?;
    assert_eq!(
        (change["id"].as_i64(), change["status"].as_str()),
        (Some(2), Some("canceled"))
    );
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// Seeds OSPDECK_SEED_RUNS (default 1 000 000) queued runs of workflow 1 into the SQLite store
/// at OSPDECK_SEED_DB in one recursive INSERT, every run trigger firing (events, counters): how
/// the `run list --all --json` figure in the README was measured. Run by hand:
/// `OSPDECK_SEED_DB=/tmp/m.db cargo test --test cli_runs seed -- --ignored`.
#[tokio::test]
#[ignore = "seeds a store for a measurement; run by hand"]
async fn seed_runs_for_a_measurement() -> TestResult {
    use sqlx::Connection;
    let Ok(db) = std::env::var("OSPDECK_SEED_DB") else {
        return Err("set OSPDECK_SEED_DB to a migrated SQLite store with workflow 1".into());
    };
    let n: i64 = std::env::var("OSPDECK_SEED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db}")).await?;
    let started = Instant::now();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO runs (project_id, workflow_id, queue, priority, payload, changed_by)
         SELECT w.project_id, w.id, w.task_queue, i % 7, json_object('branch', 'main', 'n', i), 'seed'
         FROM n CROSS JOIN workflows w WHERE w.id = 1",
    )
    .bind(n)
    .execute(&mut conn)
    .await?;
    println!("seeded {n} runs in {:?}", started.elapsed());
    Ok(())
}
