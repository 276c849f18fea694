//! The headless worker: claims runs, runs their commands, keeps their leases, finishes them.

mod child;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::cli::{CliError, CliResult};
use crate::deploy::DeployerConfig;
use crate::domain::run::{ClaimedRun, Completion, Hold, LogLevel, NewLogLine, RunStatus};
use crate::domain::workflow::Workflow;
use crate::ops::{Ops, OpsResult, check_worker_id};

pub use child::{Control, run_child};

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Worker id (default: HOST-PID)
    #[arg(long)]
    pub id: Option<String>,
    /// Queues to serve (repeatable; default: all)
    #[arg(long = "queue")]
    pub queues: Vec<String>,
    /// Runs executed at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Lease length in seconds; heartbeats renew it every third of that
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=86_400))]
    pub lease: u64,
    /// Exit once the queue is empty and nothing is running
    #[arg(long)]
    pub drain: bool,
    /// Seconds to let running commands finish on SIGTERM/SIGINT before releasing them
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
    /// Serve this service's task queue (<schema>-tasks) and heartbeat in its worker registry
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: String,
    pub queues: Vec<String>,
    pub concurrency: u32,
    pub lease: Duration,
    pub drain: bool,
    pub grace: Duration,
    /// Longest sleep between claims when nothing wakes the worker.
    pub idle_poll: Duration,
    /// How `deploy-service` runs deploy a service's worker, and where manifests are written.
    pub deployer: DeployerConfig,
    pub manifest_dir: PathBuf,
    /// A service worker heartbeats in that service's registry entry.
    pub service: Option<String>,
}

impl WorkerConfig {
    /// A worker inside another command (demo, bench, tests): four at a time, one-minute leases,
    /// no deployer, manifests under the temp dir. Callers override what they need.
    pub fn in_process(id: String, queues: Vec<String>) -> Self {
        Self {
            id,
            queues,
            concurrency: 4,
            lease: Duration::from_secs(60),
            drain: false,
            grace: Duration::from_secs(5),
            idle_poll: Duration::from_secs(5),
            deployer: DeployerConfig::default(),
            manifest_dir: std::env::temp_dir().join("ospdeck-manifests"),
            service: None,
        }
    }

    pub fn from_args(
        args: &WorkerArgs,
        (deployer, manifest_dir): (DeployerConfig, PathBuf),
    ) -> OpsResult<Self> {
        let id = args.id.clone().unwrap_or_else(default_worker_id);
        check_worker_id(&id)?;
        for queue in &args.queues {
            crate::domain::workflow::check_queue_name(queue)?;
        }
        let mut queues = args.queues.clone();
        if let Some(schema) = &args.service {
            crate::domain::service::check_schema_name(schema)?;
            let own = crate::domain::manifest::task_queue(schema);
            if !queues.contains(&own) {
                queues.push(own);
            }
        }
        Ok(Self {
            id,
            queues,
            concurrency: args.concurrency,
            lease: Duration::from_secs(args.lease),
            drain: args.drain,
            grace: Duration::from_secs(args.grace),
            idle_poll: Duration::from_secs(5),
            deployer,
            manifest_dir,
            service: args.service.clone(),
        })
    }
}

pub fn default_worker_id() -> String {
    let host: String = whoami::fallible::hostname()
        .unwrap_or_else(|_| "host".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    format!(
        "{}-{}",
        if host.is_empty() { "host" } else { &host },
        std::process::id()
    )
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    pub claimed: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub canceled: u64,
    /// Finished by the child but no longer ours to complete (lease lost).
    pub lost: u64,
    pub released: u64,
    pub rescued: u64,
}

pub async fn run_cli(
    ops: Ops,
    args: &WorkerArgs,
    deployer: (DeployerConfig, PathBuf),
) -> CliResult<ExitCode> {
    let config = WorkerConfig::from_args(args, deployer)?;
    if let Some(schema) = &config.service {
        // Refuse an unknown service now rather than heartbeat into nothing.
        ops.service(schema).await.map_err(CliError::from)?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        let _ = stop_tx.send(true);
    });
    eprintln!(
        "worker {} serving {} with concurrency {} on {}",
        config.id,
        if config.queues.is_empty() {
            "all queues".to_owned()
        } else {
            config.queues.join(", ")
        },
        config.concurrency,
        ops.store().location()
    );
    let stats = run_worker(ops, config, stop_rx)
        .await
        .map_err(CliError::from)?;
    eprintln!(
        "worker stopped: {} claimed, {} succeeded, {} failed, {} canceled, {} lost, {} released",
        stats.claimed, stats.succeeded, stats.failed, stats.canceled, stats.lost, stats.released
    );
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

struct InFlight {
    hold: Hold,
    control: watch::Sender<Control>,
    task: JoinHandle<()>,
}

/// What an execution task reports back to the loop.
struct Finished {
    run_id: i64,
    outcome: Option<RunStatus>,
}

/// Claims and executes runs until `stop` turns true (or, with `drain`, the queue is empty).
pub async fn run_worker(
    ops: Ops,
    config: WorkerConfig,
    mut stop: watch::Receiver<bool>,
) -> OpsResult<WorkerStats> {
    let mut stats = WorkerStats::default();
    let mut waker = ops.store().run_waker().await?;
    let heartbeat_task = match config.service.clone() {
        Some(schema) => {
            // The first beat before any claim: a service worker is known the moment it starts.
            if let Err(e) = ops.service_worker_heartbeat(&schema, &config.id).await {
                tracing::warn!(error = %e, service = %schema, "service heartbeat failed");
            }
            Some(tokio::spawn(service_heartbeats(
                ops.clone(),
                schema,
                config.id.clone(),
            )))
        }
        None => None,
    };
    let mut workflows: HashMap<i64, Workflow> = HashMap::new();
    let mut in_flight: HashMap<i64, InFlight> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::channel::<Finished>(256);
    let mut heartbeat = tokio::time::interval(config.lease / 3);
    let mut rescue = tokio::time::interval((config.lease / 2).max(Duration::from_secs(1)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    while !*stop.borrow() {
        let free = config.concurrency.saturating_sub(in_flight.len() as u32);
        let mut claimed_any = false;
        if free > 0 {
            let claimed = ops
                .claim_runs(&config.id, &config.queues, free, config.lease)
                .await?;
            claimed_any = !claimed.is_empty();
            stats.claimed += claimed.len() as u64;
            for (run, workflow) in with_workflows(&ops, &mut workflows, claimed).await? {
                let (control, control_rx) = watch::channel(Control::Run);
                let hold = run.hold();
                let task = tokio::spawn(execute(
                    ops.clone(),
                    config.clone(),
                    run,
                    workflow,
                    control_rx,
                    done_tx.clone(),
                ));
                in_flight.insert(
                    hold.run_id,
                    InFlight {
                        hold,
                        control,
                        task,
                    },
                );
            }
        }
        if config.drain && !claimed_any && in_flight.is_empty() {
            // Runs whose leases ran out count as queued work: rescue them before calling it empty.
            let rescued = ops.rescue_expired().await?;
            stats.rescued += rescued.requeued + rescued.failed + rescued.canceled;
            if rescued.requeued == 0 {
                break;
            }
            continue;
        }
        let full = in_flight.len() as u32 >= config.concurrency;
        tokio::select! {
            _ = stop.changed() => {}
            Some(done) = done_rx.recv() => record(&mut stats, &mut in_flight, done),
            _ = heartbeat.tick() => keep_leases(&ops, &config, &mut in_flight).await,
            _ = rescue.tick() => match ops.rescue_expired().await {
                Ok(r) => stats.rescued += r.requeued + r.failed + r.canceled,
                Err(e) => tracing::warn!(error = %e, "rescue of expired leases failed"),
            },
            woke = waker.wait(&config.queues, config.idle_poll), if !full && !claimed_any => {
                if let Err(e) = woke {
                    tracing::warn!(error = %e, "waiting for runs failed; polling instead");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        while let Ok(done) = done_rx.try_recv() {
            record(&mut stats, &mut in_flight, done);
        }
    }

    shut_down(&ops, &config, &mut stats, &mut in_flight, &mut done_rx).await;
    if let Some(task) = heartbeat_task {
        task.abort();
    }
    Ok(stats)
}

/// A service worker's heartbeat in the registry: at once, then every few seconds.
async fn service_heartbeats(ops: Ops, schema: String, worker_id: String) {
    let every = Duration::from_secs(crate::domain::deployment::HEARTBEAT_EVERY_SECS as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        if let Err(e) = ops.service_worker_heartbeat(&schema, &worker_id).await {
            tracing::warn!(error = %e, service = %schema, "service heartbeat failed");
        }
    }
}

/// Looks up each claimed run's workflow (cached); starts the runs that are still ours.
async fn with_workflows(
    ops: &Ops,
    cache: &mut HashMap<i64, Workflow>,
    claimed: Vec<ClaimedRun>,
) -> OpsResult<Vec<(ClaimedRun, Workflow)>> {
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    for run in &claimed {
        if !cache.contains_key(&run.workflow_id)
            && let Some(wf) = ops.store().workflow(run.workflow_id).await?
        {
            cache.insert(wf.id, wf);
        }
    }
    Ok(claimed
        .into_iter()
        .filter_map(|run| cache.get(&run.workflow_id).cloned().map(|wf| (run, wf)))
        .collect())
}

fn record(stats: &mut WorkerStats, in_flight: &mut HashMap<i64, InFlight>, done: Finished) {
    in_flight.remove(&done.run_id);
    match done.outcome {
        Some(RunStatus::Succeeded) => stats.succeeded += 1,
        Some(RunStatus::Canceled) => stats.canceled += 1,
        Some(_) => stats.failed += 1,
        None => stats.lost += 1,
    }
}

/// Renews leases; tells children to stop when a cancel was asked, or when the run is no longer ours.
async fn keep_leases(ops: &Ops, config: &WorkerConfig, in_flight: &mut HashMap<i64, InFlight>) {
    if in_flight.is_empty() {
        return;
    }
    let holds: Vec<Hold> = in_flight.values().map(|f| f.hold).collect();
    match ops.heartbeat(&config.id, &holds, config.lease).await {
        Ok(acks) => {
            for flight in in_flight.values() {
                match acks.iter().find(|a| a.run_id == flight.hold.run_id) {
                    Some(ack) if ack.cancel_requested => {
                        let _ = flight.control.send(Control::Cancel);
                    }
                    Some(_) => {}
                    None => {
                        tracing::warn!(
                            run_id = flight.hold.run_id,
                            "lease lost; stopping the command"
                        );
                        let _ = flight.control.send(Control::Abandon);
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
    }
}

async fn shut_down(
    ops: &Ops,
    config: &WorkerConfig,
    stats: &mut WorkerStats,
    in_flight: &mut HashMap<i64, InFlight>,
    done_rx: &mut mpsc::Receiver<Finished>,
) {
    let deadline = tokio::time::Instant::now() + config.grace;
    let mut heartbeat = tokio::time::interval(config.lease / 3);
    while !in_flight.is_empty() {
        tokio::select! {
            Some(done) = done_rx.recv() => record(stats, in_flight, done),
            _ = heartbeat.tick() => keep_leases(ops, config, in_flight).await,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    if in_flight.is_empty() {
        return;
    }
    // Out of grace: stop the children and give their runs back to the queue.
    let holds: Vec<Hold> = in_flight.values().map(|f| f.hold).collect();
    for flight in in_flight.values() {
        let _ = flight.control.send(Control::Abandon);
    }
    for (_, flight) in in_flight.drain() {
        let _ = flight.task.await;
    }
    match ops.release_runs(&config.id, &holds).await {
        Ok(released) => stats.released += released.len() as u64,
        Err(e) => tracing::error!(error = %e, "could not release runs; their leases will expire"),
    }
}

async fn execute(
    ops: Ops,
    config: WorkerConfig,
    run: ClaimedRun,
    workflow: Workflow,
    control: watch::Receiver<Control>,
    done: mpsc::Sender<Finished>,
) {
    let worker = config.id.clone();
    let hold = run.hold();
    let outcome = match ops.start_runs(&worker, &[hold]).await {
        Ok(started) if started.contains(&run.id) => {
            let completion = if workflow.command == crate::ops::DEPLOY_COMMAND {
                Some(deploy_run(&ops, &config, &run).await)
            } else {
                run_child(&ops, &worker, &run, &workflow, control).await
            };
            match completion {
                Some(completion) => finish(&ops, &worker, completion).await,
                None => None,
            }
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(run_id = run.id, error = %e, "could not start run");
            None
        }
    };
    let _ = done
        .send(Finished {
            run_id: run.id,
            outcome,
        })
        .await;
}

/// The built-in `deploy-service` workflow: the configured deployer, its steps logged on the run.
async fn deploy_run(ops: &Ops, config: &WorkerConfig, run: &ClaimedRun) -> Completion {
    let hold = run.hold();
    let schema = run
        .payload
        .get("service")
        .and_then(|s| s.as_str())
        .unwrap_or("");
    let failed = |error: String| Completion {
        hold,
        exit_code: Some(1),
        error: Some(error),
        canceled: false,
    };
    let report = match ops
        .deploy_service(schema, &config.deployer, &config.manifest_dir)
        .await
    {
        Ok(report) => report,
        Err(e) => return failed(format!("deploy of {schema:?} failed: {e}")),
    };
    let mut lines: Vec<NewLogLine> = Vec::new();
    for step in &report.steps {
        let level = if step.exit_code == Some(0) {
            LogLevel::Info
        } else {
            LogLevel::Error
        };
        lines.push(NewLogLine::new(
            level,
            &format!(
                "attempt {} {}: exit {}",
                step.attempt,
                step.step.as_str(),
                step.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none".into())
            ),
            serde_json::json!({}),
        ));
        for line in step.output.lines().take(200) {
            lines.push(NewLogLine::new(
                level,
                line,
                serde_json::json!({ "step": step.step.as_str() }),
            ));
        }
    }
    lines.push(NewLogLine::new(
        LogLevel::Info,
        &report.summary,
        serde_json::json!({}),
    ));
    if let Err(e) = ops.append_logs(run.id, &lines).await {
        tracing::warn!(run_id = run.id, error = %e, "could not store deploy log lines");
    }
    if report.deployed() {
        Completion {
            hold,
            exit_code: Some(0),
            error: None,
            canceled: false,
        }
    } else {
        failed(report.summary)
    }
}

/// Completes a run; retries briefly when the store is unreachable, since the result matters.
async fn finish(ops: &Ops, worker: &str, completion: Completion) -> Option<RunStatus> {
    let outcome = completion.outcome();
    for attempt in 0..5u32 {
        match ops
            .complete_runs(worker, std::slice::from_ref(&completion))
            .await
        {
            Ok(ids) if ids.contains(&completion.hold.run_id) => return Some(outcome),
            Ok(_) => {
                tracing::warn!(
                    run_id = completion.hold.run_id,
                    "run was taken away before it finished (fenced)"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(run_id = completion.hold.run_id, error = %e, "completing run failed");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    None
}
