//! A long soak, run on demand (it takes OSPDECK_SOAK_MINUTES, default 30, per store):
//!
//!     cargo test --test soak -- --ignored --nocapture
//!
//! Runs are fed continuously to 4 workers × 4 slots with 10-second leases while a random worker
//! is killed with SIGKILL (and replaced) every 10 to 40 seconds, and a monitor console runs in
//! tmux at 80×24. Afterwards every run succeeded; no run was completed twice (the database's
//! event log has at most one terminal transition per run); only runs that a kill interrupted
//! ran more than once; and the resident memory of the console and of worker 0 (never killed)
//! stayed within 10% of what it was after warming up. Figures are printed.

mod common;

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use common::fleet::{append_command, executions, rss_kib, run_counts, spawn_worker};
use common::tmux::Tmux;
use common::{Harness, TestResult};
use ospdeck::domain::run::{NewRun, RunOptions};
use ospdeck::domain::workflow::WorkflowType;
use ospdeck::ops::WorkflowRequest;

const WORKERS: usize = 4;
const LEASE_SECS: u32 = 10;
const RUNS_PER_SECOND: usize = 10;
/// Memory is compared from this point on (after caches, pools and buffers have filled).
const WARM_UP: Duration = Duration::from_secs(120);

fn minutes() -> u64 {
    std::env::var("OSPDECK_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30)
}

async fn soak(h: Harness, store: &str) -> TestResult {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;
    let out = dir.path().join("executed");
    h.ops.create_project("soak", None).await?;
    let command = append_command(&dir.path().join("lock"), &out, 0.5);
    let wf = h
        .ops
        .create_workflow(&WorkflowRequest {
            timeout_secs: Some(600),
            ..WorkflowRequest::new("soak", "append", WorkflowType::Test, &command)
        })
        .await?;

    let worker_log = |n: usize| dir.path().join(format!("worker-{n}.err"));
    let mut workers: Vec<(Child, Instant)> = (0..WORKERS)
        .map(|n| {
            spawn_worker(
                &h.url,
                &home,
                &format!("soak-{n}"),
                LEASE_SECS,
                &worker_log(n),
            )
            .map(|c| (c, Instant::now()))
        })
        .collect::<Result<_, _>>()?;
    let console = Tmux::new(&format!("soak-{store}"));
    console.start(&home, &h.url, "monitor")?;
    console.wait_until(
        |s| s.contains("READ-ONLY"),
        "the monitor",
        Duration::from_secs(30),
    )?;
    let console_pid: u32 = String::from_utf8_lossy(
        &console
            .cmd(&["list-panes", "-t", "main", "-F", "#{pane_pid}"])?
            .stdout,
    )
    .trim()
    .parse()?;
    // The pane runs `sh -c "ospdeck …; …"`: the console is the shell's child.
    let console_pid =
        std::fs::read_to_string(format!("/proc/{console_pid}/task/{console_pid}/children"))?
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or("cannot find the console process")?;

    let started = Instant::now();
    let until = started + Duration::from_secs(minutes() * 60);
    let mut next_kill = started + Duration::from_secs(fastrand::u64(10..=40));
    let mut kills = 0;
    let mut enqueued = 0usize;
    let mut samples: Vec<(Duration, u64, u64)> = Vec::new(); // (when, console KiB, worker 0 KiB)
    let mut next_sample = started;
    while Instant::now() < until {
        let batch: Vec<NewRun> = (0..RUNS_PER_SECOND)
            .map(|_| {
                NewRun::new(
                    wf.project_id,
                    wf.id,
                    &RunOptions {
                        max_attempts: Some(10),
                        ..Default::default()
                    },
                )
            })
            .collect::<Result<_, _>>()?;
        enqueued += h.ops.enqueue_runs(&batch).await?.len();
        if Instant::now() >= next_kill {
            // Worker 0 lives throughout, so that its memory can be followed.
            let victim = fastrand::usize(1..WORKERS);
            let _ = workers[victim].0.kill();
            let _ = workers[victim].0.wait();
            workers[victim] = (
                spawn_worker(
                    &h.url,
                    &home,
                    &format!("soak-{victim}"),
                    LEASE_SECS,
                    &worker_log(victim),
                )?,
                Instant::now(),
            );
            kills += 1;
            next_kill = Instant::now() + Duration::from_secs(fastrand::u64(10..=40));
        }
        if Instant::now() >= next_sample {
            samples.push((
                started.elapsed(),
                rss_kib(console_pid).unwrap_or(0),
                rss_kib(workers[0].0.id()).unwrap_or(0),
            ));
            next_sample = Instant::now() + Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Drain what is left, then look.
    let drain = Instant::now();
    loop {
        let counts = run_counts(&h.url).await.unwrap_or_default();
        let finished: i64 = ["succeeded", "failed", "canceled"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum();
        if finished as usize >= enqueued || drain.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let counts = run_counts(&h.url).await.ok_or("store unreadable")?;
    let terminal_events: Vec<(i64, i64)> = h
        .fetch_all(&format!(
            "SELECT run_id, count(*) FROM {} WHERE to_status IN ('succeeded', 'failed', 'canceled') \
             AND event_type = 'state_change' GROUP BY run_id HAVING count(*) > 1",
            h.table("run_events")
        ))
        .await;
    let retried: HashMap<i64, i32> = h
        .fetch_all::<(i64, i32)>(&format!(
            "SELECT id, attempt FROM {} WHERE attempt > 1",
            h.table("runs")
        ))
        .await
        .into_iter()
        .collect();
    let ran = executions(&out);
    let repeated_without_a_kill: Vec<i64> = ran
        .iter()
        .filter(|(id, n)| **n > 1 && !retried.contains_key(id))
        .map(|(id, _)| *id)
        .collect();
    let warm: Vec<&(Duration, u64, u64)> = samples.iter().filter(|s| s.0 >= WARM_UP).collect();
    let spread = |pick: fn(&(Duration, u64, u64)) -> u64| {
        let values: Vec<u64> = warm.iter().map(|s| pick(s)).filter(|v| *v > 0).collect();
        let first = values.first().copied().unwrap_or(0);
        let max = values.iter().copied().max().unwrap_or(0);
        let min = values.iter().copied().min().unwrap_or(0);
        (first, min, max)
    };
    let (c_first, c_min, c_max) = spread(|s| s.1);
    let (w_first, w_min, w_max) = spread(|s| s.2);
    println!(
        "soak on {store}: {} min, {enqueued} runs fed, {kills} workers killed; {} succeeded, {} failed; \
         {} completed twice; {} needed another attempt; {} ran more than once ({} of them without a kill in between); \
         console RSS {c_first} KiB after warm-up, {c_min}..{c_max} KiB; worker 0 RSS \
         {w_first} KiB after warm-up, {w_min}..{w_max} KiB",
        minutes(),
        counts.get("succeeded").copied().unwrap_or(0),
        counts.get("failed").copied().unwrap_or(0),
        terminal_events.len(),
        retried.len(),
        ran.values().filter(|n| **n > 1).count(),
        repeated_without_a_kill.len(),
    );
    // The memory of both processes every five minutes, to tell a bounded cache from a leak.
    let series: Vec<String> = samples
        .iter()
        .filter(|s| s.0.as_secs() % 300 < 30)
        .map(|s| format!("{}m {}/{}", s.0.as_secs() / 60, s.1, s.2))
        .collect();
    println!(
        "soak on {store}: RSS KiB console/worker 0 by minute: {}",
        series.join(", ")
    );
    for (child, _) in &mut workers {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(
        counts.get("succeeded").copied(),
        Some(enqueued as i64),
        "{counts:?}"
    );
    assert!(
        terminal_events.is_empty(),
        "completed twice: {terminal_events:?}"
    );
    assert!(
        repeated_without_a_kill.is_empty(),
        "{repeated_without_a_kill:?}"
    );
    assert_eq!(ran.len(), enqueued, "runs never executed");
    assert!(
        c_max as f64 <= c_first as f64 * 1.10,
        "console RSS grew: {c_first} → {c_max} KiB"
    );
    assert!(
        w_max as f64 <= w_first as f64 * 1.10,
        "worker RSS grew: {w_first} → {w_max} KiB"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 30-minute soak: cargo test --test soak -- --ignored --nocapture"]
async fn soak_sqlite() -> TestResult {
    soak(Harness::sqlite().await, "sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 30-minute soak: cargo test --test soak -- --ignored --nocapture"]
async fn soak_postgres() -> TestResult {
    match Harness::postgres("soak_postgres").await {
        Some(h) => soak(h, "postgres").await,
        None => Err("the soak needs PostgreSQL (OSPDECK_TEST_PG_URL)".into()),
    }
}
