//! The headless worker: claims runs, runs their commands, keeps their leases, finishes them.

mod child;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::cli::{CliError, CliResult};
use crate::domain::run::{ClaimedRun, Completion, Hold, RunStatus};
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
}

impl WorkerConfig {
    pub fn from_args(args: &WorkerArgs) -> OpsResult<Self> {
        let id = args.id.clone().unwrap_or_else(default_worker_id);
        check_worker_id(&id)?;
        for queue in &args.queues {
            crate::domain::workflow::check_queue_name(queue)?;
        }
        Ok(Self {
            id,
            queues: args.queues.clone(),
            concurrency: args.concurrency,
            lease: Duration::from_secs(args.lease),
            drain: args.drain,
            grace: Duration::from_secs(args.grace),
            idle_poll: Duration::from_secs(5),
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

pub async fn run_cli(ops: Ops, args: &WorkerArgs) -> CliResult<ExitCode> {
    let config = WorkerConfig::from_args(args)?;
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
                    config.id.clone(),
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
    Ok(stats)
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
    worker: String,
    run: ClaimedRun,
    workflow: Workflow,
    control: watch::Receiver<Control>,
    done: mpsc::Sender<Finished>,
) {
    let hold = run.hold();
    let outcome = match ops.start_runs(&worker, &[hold]).await {
        Ok(started) if started.contains(&run.id) => {
            match run_child(&ops, &worker, &run, &workflow, control).await {
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
