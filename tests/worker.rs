//! The worker as a real process: output streamed into logs, cancel and timeout honoured, a
//! worker killed with SIGKILL mid-run takes its command down with it and has its run finished by
//! another once the lease expires, and a run whose stored payload cannot be decoded fails alone.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, TestResult};
use ospdeck::domain::run::RunStatus;
use ospdeck::domain::workflow::WorkflowType;
use ospdeck::ops::EnqueueRequest;
use ospdeck::ops::WorkflowRequest;

fn spawn_worker(url: &str, home: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ospdeck"))
        .args(["--db", url, "worker"])
        .args(args)
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker")
}

async fn wait_for(
    h: &Harness,
    id: i64,
    what: impl Fn(RunStatus) -> bool,
    limit: Duration,
) -> Result<RunStatus, String> {
    let t = Instant::now();
    loop {
        let status = h.ops.run(id).await.map_err(|e| e.to_string())?.status;
        if what(status) {
            return Ok(status);
        }
        if t.elapsed() > limit {
            return Err(format!("run {id} stuck in {status}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a process is still running (a zombie waiting to be reaped is not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

conformance!(
    a_killed_worker_loses_its_run_to_another_after_the_lease,
    the_worker_streams_output_honours_cancel_and_timeouts,
    a_run_faster_than_the_store_loses_no_line,
    a_poison_payload_fails_its_run_alone,
);

mod cases {
    use super::*;

    pub async fn a_killed_worker_loses_its_run_to_another_after_the_lease(
        h: Harness,
    ) -> TestResult {
        let home = tempfile::tempdir()?;
        let marker = home.path().join("first-attempt-pid");
        h.ops.create_project("acme", None).await?;
        // The first attempt hangs (recording its pid so the test can clean it up); later ones finish.
        let command = format!(
            "if [ \"$OSPDECK_ATTEMPT\" = 1 ]; then echo $$ > {m}; exec sleep 60; fi; echo attempt $OSPDECK_ATTEMPT done",
            m = marker.display()
        );
        h.ops
            .create_workflow(&WorkflowRequest {
                timeout_secs: Some(120),
                ..WorkflowRequest::new("acme", "deploy", WorkflowType::Deploy, &command)
            })
            .await?;
        let id = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "deploy",
                ..Default::default()
            })
            .await?;

        let mut first = spawn_worker(&h.url, home.path(), &["--id", "doomed", "--lease", "2"]);
        let running = wait_for(&h, id, |s| s == RunStatus::Running, Duration::from_secs(20)).await;
        // The command has recorded its pid once it is past the supervisor.
        let t = Instant::now();
        while !marker.exists() && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first_pid = std::fs::read_to_string(&marker).unwrap_or_default();
        let first_pid = first_pid.trim();
        assert!(
            alive(first_pid),
            "the first attempt's command ({first_pid:?}) should be running"
        );
        let _ = first.kill(); // SIGKILL: no goodbye, no release
        first.wait()?;
        running?;
        // Its command goes with it: nothing it would still do can happen twice.
        let t = Instant::now();
        while alive(first_pid) && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let orphaned = alive(first_pid);
        if orphaned {
            let _ = Command::new("kill").arg(first_pid).status();
        }
        assert!(
            !orphaned,
            "the killed worker's command {first_pid} kept running"
        );
        assert_eq!(
            h.ops.run(id).await?.status,
            RunStatus::Running,
            "still held by the dead worker"
        );

        let mut second = spawn_worker(&h.url, home.path(), &["--id", "rescuer", "--lease", "2"]);
        let status = wait_for(&h, id, |s| s.is_terminal(), Duration::from_secs(30)).await;
        let _ = second.kill();
        let _ = second.wait();
        assert_eq!(status?, RunStatus::Succeeded);
        let run = h.ops.run(id).await?;
        assert_eq!(
            (run.attempt, run.worker_id.as_deref()),
            (2, Some("rescuer"))
        );
        let detail = h.ops.run_detail(id).await?;
        let requeued = detail.events.iter().any(|e| {
            e.from_status == Some(RunStatus::Running)
                && e.to_status == Some(RunStatus::Queued)
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("lease expired"))
        });
        assert!(requeued, "no lease-expiry event: {:?}", detail.events);
        let logs = h.ops.run_logs(id, 0, None, 100).await?;
        assert!(
            logs.iter().any(|l| l.message == "attempt 2 done"),
            "{logs:?}"
        );
        Ok(())
    }

    /// A command that prints faster than the store appends: its lines wait in the worker (then
    /// on the pipe), none is dropped, and each stream's lines are stored in the order printed.
    pub async fn a_run_faster_than_the_store_loses_no_line(h: Harness) -> TestResult {
        let home = tempfile::tempdir()?;
        h.ops.create_project("acme", None).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "flood",
                WorkflowType::Test,
                "seq 1 60000; seq 1 500 >&2",
            ))
            .await?;
        let id = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "flood",
                ..Default::default()
            })
            .await?;
        let mut worker = spawn_worker(
            &h.url,
            home.path(),
            &["--id", "w", "--concurrency", "1", "--drain"],
        );
        let status = wait_for(&h, id, |s| s.is_terminal(), Duration::from_secs(120)).await;
        let _ = worker.kill();
        let _ = worker.wait();
        assert_eq!(status?, RunStatus::Succeeded);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut after = 0;
        loop {
            let page = h.ops.run_logs(id, after, None, 5_000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for line in page {
                match line.metadata["stream"].as_str() {
                    Some("stdout") => stdout.push(line.message),
                    Some("stderr") => stderr.push(line.message),
                    _ => return Err(format!("a line from no stream: {line:?}").into()),
                }
            }
        }
        let expected = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert!(stdout == expected(60_000), "stdout: {} lines", stdout.len());
        assert!(stderr == expected(500), "stderr: {} lines", stderr.len());
        Ok(())
    }

    pub async fn the_worker_streams_output_honours_cancel_and_timeouts(h: Harness) -> TestResult {
        let home = tempfile::tempdir()?;
        h.ops.create_project("acme", None).await?;
        h.ops
            .create_workflow(&WorkflowRequest::new("acme", "chatty", WorkflowType::Build, "for i in 1 2 3; do echo line $i; done; echo warn >&2; printf 'caf\\351 \\000\\n'; echo \"$OSPDECK_PAYLOAD\"; exit 4"))
            .await?;
        h.ops
            .create_workflow(&WorkflowRequest {
                timeout_secs: Some(1),
                ..WorkflowRequest::new("acme", "slow", WorkflowType::Test, "sleep 30")
            })
            .await?;
        h.ops
            .create_workflow(&WorkflowRequest {
                queue: Some("long"),
                ..WorkflowRequest::new(
                    "acme",
                    "forever",
                    WorkflowType::Backup,
                    "echo started; sleep 60",
                )
            })
            .await?;
        let chatty = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "chatty",
                payload: Some("{\"k\":\"v\"}"),
                ..Default::default()
            })
            .await?;
        let slow = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "slow",
                ..Default::default()
            })
            .await?;
        let forever = h
            .ops
            .enqueue_run(&EnqueueRequest {
                project: "acme",
                workflow: "forever",
                ..Default::default()
            })
            .await?;

        let mut worker = spawn_worker(
            &h.url,
            home.path(),
            &["--id", "w", "--lease", "3", "--concurrency", "4"],
        );
        let outcome = async {
            assert_eq!(
                wait_for(&h, chatty, |s| s.is_terminal(), Duration::from_secs(20)).await?,
                RunStatus::Failed
            );
            let run = h.ops.run(chatty).await?;
            assert_eq!(run.exit_code, Some(4));
            let logs: Vec<String> = h
                .ops
                .run_logs(chatty, 0, None, 100)
                .await?
                .into_iter()
                .map(|l| l.message)
                .collect();
            // A byte that is not UTF-8 (and a NUL) is kept as U+FFFD and the lines after it still arrive.
            for expected in [
                "line 1",
                "line 2",
                "line 3",
                "warn",
                "caf\u{FFFD} \u{FFFD}",
                "{\"k\":\"v\"}",
            ] {
                assert!(
                    logs.iter().any(|l| l == expected),
                    "{expected} missing from {logs:?}"
                );
            }
            assert_eq!(
                wait_for(&h, slow, |s| s.is_terminal(), Duration::from_secs(20)).await?,
                RunStatus::Failed
            );
            assert!(
                h.ops
                    .run(slow)
                    .await?
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("timed out"))
            );

            wait_for(
                &h,
                forever,
                |s| s == RunStatus::Running,
                Duration::from_secs(20),
            )
            .await?;
            h.ops.cancel_run(forever).await?;
            // The heartbeat (every lease/3 = 1 s) carries the request to the worker, which kills the child.
            assert_eq!(
                wait_for(&h, forever, |s| s.is_terminal(), Duration::from_secs(20)).await?,
                RunStatus::Canceled
            );
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }
        .await;
        // SIGTERM: the worker stops claiming and exits with nothing held.
        let _ = Command::new("kill").arg(worker.id().to_string()).status();
        let exited = worker.wait()?;
        outcome?;
        assert!(exited.success(), "worker exit: {exited}");
        Ok(())
    }

    /// A payload nested past what serde_json decodes, put there by raw SQL around the database's
    /// own bound (as rows from before it, or another tool, could be): the run fails with the reason,
    /// the worker goes on, the rest of its claim batch succeeds, and listing and showing still work.
    pub async fn a_poison_payload_fails_its_run_alone(h: Harness) -> TestResult {
        h.ops.create_project("acme", None).await?;
        let wf = h
            .ops
            .create_workflow(&WorkflowRequest::new(
                "acme",
                "build",
                WorkflowType::Build,
                "echo ok",
            ))
            .await?;
        let mut ids = Vec::new();
        for priority in [3, 1] {
            ids.push(
                h.ops
                    .enqueue_run(&EnqueueRequest {
                        project: "acme",
                        workflow: "build",
                        priority: Some(priority),
                        ..Default::default()
                    })
                    .await?,
            );
        }
        let poison = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(poison.len(), 401);
        h.lift_json_depth_bound().await;
        h.raw(&format!(
            "INSERT INTO {runs} (project_id, workflow_id, queue, priority, payload{by}) \
             VALUES ({p}, {w}, 'default', 2, '{poison}'{actor})",
            runs = h.table("runs"),
            p = wf.project_id,
            w = wf.id,
            by = if h.kind() == ospdeck::store::StoreKind::Sqlite {
                ", changed_by"
            } else {
                ""
            },
            actor = if h.kind() == ospdeck::store::StoreKind::Sqlite {
                ", 'psql'"
            } else {
                ""
            },
        ))
        .await?;
        let listed = h.ops.list_runs(&Default::default()).await?;
        let bad = listed
            .iter()
            .find(|r| !ids.contains(&r.id))
            .ok_or("the poison run is not listed")?;
        let bad_id = bad.id;
        assert!(
            bad.payload_error
                .as_deref()
                .is_some_and(|e| e.contains("recursion limit")),
            "{:?}",
            bad.payload_error
        );
        assert!(
            h.ops
                .run_detail(bad_id)
                .await?
                .run
                .payload_text()
                .starts_with("(unreadable:")
        );

        // One worker, one claim batch of all three (the poison run in the middle by priority).
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let config = ospdeck::worker::WorkerConfig {
            drain: true,
            ..ospdeck::worker::WorkerConfig::in_process("w1".into(), vec![])
        };
        let stats = ospdeck::worker::run_worker(h.ops.clone(), config, stop_rx).await?;
        assert_eq!((stats.claimed, stats.succeeded, stats.failed), (3, 2, 1));
        for id in &ids {
            assert_eq!(h.ops.run(*id).await?.status, RunStatus::Succeeded);
        }
        let failed = h.ops.run(bad_id).await?;
        assert_eq!(failed.status, RunStatus::Failed);
        assert!(
            failed
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("not executed: stored JSON cannot be decoded")),
            "{:?}",
            failed.error
        );
        let failed_listed = h
            .ops
            .list_runs(&ospdeck::ops::RunQuery {
                status: Some(RunStatus::Failed),
                ..Default::default()
            })
            .await?;
        assert_eq!(
            failed_listed.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![bad_id]
        );
        Ok(())
    }
}
