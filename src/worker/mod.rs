//! The headless worker: claims runs, runs their commands, keeps their leases, finishes them.

mod child;
mod guard;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use tokio::time::Instant;

use crate::deploy::DeployerConfig;
use crate::domain::run::{ClaimedRun, Completion, Hold, LogLevel, NewLogLine, RunStatus};
use crate::domain::worker::{PRESENCE_EVERY_SECS, WorkerPresence};
use crate::domain::workflow::Workflow;
use crate::ops::{Backoff, Ops, OpsError, OpsResult, StoreHealth};
use crate::store::RunWaker;

pub use child::{Control, run_child};
pub use guard::GroupGuard;

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
    /// Print store outages on stderr as well as in the log (a worker process of its own; not a
    /// worker inside the console, whose screen stderr would scribble on).
    pub announce: bool,
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
            announce: false,
        }
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

/// A run this worker holds, from its claim until the store has recorded how it ended. Every held
/// run keeps its lease renewed, whatever its stage, so an outage that delays a stage does not
/// hand the run to another worker.
struct Held {
    hold: Hold,
    stage: Stage,
}

enum Stage {
    /// Claimed and started in the store; its workflow is not known yet (the lookup waits for the
    /// store).
    Claimed(ClaimedRun),
    /// Its command (or the deployer) is running in a task of its own.
    Running {
        control: watch::Sender<Control>,
        task: JoinHandle<()>,
    },
    /// Ended; how it ended waits to be recorded (batched, and kept through an outage).
    Ended(Completion),
}

/// What an execution task reports back to the loop: how the run ended, or None when it was
/// given up (fenced, or abandoned on shutdown) and must not be completed.
struct Finished {
    run_id: i64,
    completion: Option<Completion>,
}

/// The loop's view of the store: when it may be asked again after a failure.
struct Pacing {
    health: StoreHealth,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// After an outage, rescuing waits until holders have had time to renew their leases, so a
    /// run whose lease ran out only because the store was away is not taken from its holder.
    rescue_not_before: Instant,
    /// The store is back after an outage: renew every lease at once rather than at the next tick.
    renew_due: bool,
    /// The loop's own last call failed (the shared health may already have been cleared by a task).
    failing: bool,
}

impl Pacing {
    fn ready(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// A store call worked.
    fn ok(&mut self, lease: Duration) {
        if self.failing {
            self.rescue_not_before = Instant::now() + lease / 2;
            self.renew_due = true;
            self.failing = false;
        }
        self.health.ok();
        self.backoff.reset();
        self.retry_at = None;
    }

    /// A store call failed: an outage schedules the next try; anything else is the caller's to
    /// act on (answered as the error).
    fn failed(&mut self, doing: &str, error: OpsError) -> OpsResult<()> {
        if self.health.failed(doing, &error) {
            self.failing = true;
            self.retry_at = Some(Instant::now() + self.backoff.next_delay());
            Ok(())
        } else {
            Err(error)
        }
    }
}

/// Claims and executes runs until `stop` turns true (or, with `drain`, the queue is empty). A store
/// outage is waited out; only an error that waiting cannot cure (say, a role without the right to
/// claim) ends the worker.
pub async fn run_worker(
    ops: Ops,
    config: WorkerConfig,
    mut stop: watch::Receiver<bool>,
) -> OpsResult<WorkerStats> {
    let mut stats = WorkerStats::default();
    let mut pacing = Pacing {
        health: StoreHealth::new(
            &config.id,
            config
                .announce
                .then(|| std::sync::Arc::new(crate::stdio::stderr_line) as crate::ops::Announce),
        ),
        backoff: Backoff::new(),
        retry_at: None,
        rescue_not_before: Instant::now(),
        renew_due: false,
        failing: false,
    };
    let mut waker = None;
    let guard = Arc::new(GroupGuard::start().map_err(|e| {
        OpsError::Refused(format!(
            "cannot start the shell that stops this worker's commands if it dies: {e}"
        ))
    })?);
    let runs_held = Arc::new(AtomicI32::new(0));
    let presence_task = tokio::spawn(keep_presence(
        ops.clone(),
        presence_of(&config),
        runs_held.clone(),
        pacing.health.clone(),
    ));
    let mut workflows: HashMap<i64, Workflow> = HashMap::new();
    let mut held: HashMap<i64, Held> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::channel::<Finished>(256);
    let mut heartbeat = tokio::time::interval(config.lease / 3);
    let mut rescue = tokio::time::interval((config.lease / 2).max(Duration::from_secs(1)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let outcome = loop {
        if *stop.borrow() {
            break Ok(());
        }
        let mut claimed_any = false;
        if pacing.renew_due && pacing.ready() {
            pacing.renew_due = false;
            keep_leases(&ops, &config, &mut pacing, &mut held, &mut stats).await;
        }
        // A run that has ended frees its slot at once: the slot's next run is claimed and started
        // first, and the ends are recorded after it (one store round trip less between two runs
        // of a slot). Claiming and recording at once, on two connections, measured no faster:
        // on SQLite the two writes wait for each other's lock.
        let busy = held
            .values()
            .filter(|h| !matches!(h.stage, Stage::Ended(_)))
            .count();
        let free = config.concurrency.saturating_sub(busy as u32);
        if free > 0 && pacing.ready() {
            // Claimed and started in one write: a free slot runs what it takes at once.
            match ops
                .claim_and_start_runs(&config.id, &config.queues, free, config.lease)
                .await
            {
                Ok(claimed) => {
                    pacing.ok(config.lease);
                    claimed_any = !claimed.is_empty();
                    stats.claimed += claimed.len() as u64;
                    for run in claimed {
                        held.insert(
                            run.id,
                            Held {
                                hold: run.hold(),
                                stage: Stage::Claimed(run),
                            },
                        );
                    }
                }
                Err(e) => {
                    if let Err(e) = pacing.failed("claiming runs", e) {
                        break Err(e);
                    }
                }
            }
        }
        if pacing.ready() {
            if let Err(e) = start_claimed(
                &ops,
                &config,
                &mut pacing,
                &mut workflows,
                &mut held,
                &done_tx,
                &guard,
            )
            .await
            {
                break Err(e);
            }
        }
        if pacing.ready() {
            if let Err(e) =
                deliver_completions(&ops, &config, &mut pacing, &mut held, &mut stats).await
            {
                break Err(e);
            }
        }
        if claimed_any {
            // Slots may still be free and the queue not empty: claim again before waiting.
            continue;
        }
        if config.drain && held.is_empty() && pacing.ready() {
            // Runs whose leases ran out count as queued work: rescue them before calling it empty.
            match ops.rescue_expired().await {
                Ok(rescued) => {
                    pacing.ok(config.lease);
                    stats.rescued += rescued.requeued + rescued.failed + rescued.canceled;
                    if rescued.requeued == 0 {
                        break Ok(());
                    }
                    continue;
                }
                Err(e) => {
                    if let Err(e) = pacing.failed("rescuing expired leases", e) {
                        break Err(e);
                    }
                }
            }
        }
        if waker.is_none() && pacing.ready() {
            match ops.run_waker().await {
                Ok(w) => waker = Some(w),
                Err(e) => {
                    if let Err(e) = pacing.failed("listening for new runs", e) {
                        break Err(e);
                    }
                }
            }
        }
        let full = held.len() as u32 >= config.concurrency;
        let listen = !full && pacing.ready();
        let retry_at = pacing.retry_at;
        let may_rescue = Instant::now() >= pacing.rescue_not_before;
        tokio::select! {
            _ = stop.changed() => {}
            Some(done) = done_rx.recv() => record(&mut stats, &mut held, done),
            _ = heartbeat.tick() => keep_leases(&ops, &config, &mut pacing, &mut held, &mut stats).await,
            _ = rescue.tick(), if may_rescue && pacing.ready() => match ops.rescue_expired().await {
                Ok(r) => {
                    pacing.ok(config.lease);
                    stats.rescued += r.requeued + r.failed + r.canceled;
                }
                Err(e) => {
                    if let Err(e) = pacing.failed("rescuing expired leases", e) {
                        tracing::warn!(error = %e, "rescue of expired leases failed");
                    }
                }
            },
            _ = sleep_until_some(retry_at) => {}
            woke = wait_for_runs(&mut waker, &config), if listen => {
                if let Err(e) = woke {
                    // The listener broke (the server went away): make a new one when it answers.
                    waker = None;
                    let _ = pacing.failed("listening for new runs", e);
                }
            }
        }
        while let Ok(done) = done_rx.try_recv() {
            record(&mut stats, &mut held, done);
        }
        runs_held.store(
            i32::try_from(held.len()).unwrap_or(i32::MAX),
            Ordering::Relaxed,
        );
    };

    shut_down(
        &ops,
        &config,
        &mut pacing,
        &mut stats,
        &mut held,
        &mut done_rx,
    )
    .await;
    presence_task.abort();
    // A clean stop leaves no row behind; a killed worker's row turns stale, then missing.
    match tokio::time::timeout(Duration::from_secs(2), ops.deregister_worker(&config.id)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not remove this worker's presence"),
        Err(_) => tracing::warn!("removing this worker's presence timed out"),
    }
    outcome.map(|()| stats)
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn wait_for_runs(
    waker: &mut Option<Box<dyn RunWaker>>,
    config: &WorkerConfig,
) -> OpsResult<()> {
    match waker {
        Some(w) => Ok(w.wait(&config.queues, config.idle_poll).await?),
        // No listener yet (the store was away): poll instead.
        None => {
            tokio::time::sleep(config.idle_poll.min(Duration::from_secs(1))).await;
            Ok(())
        }
    }
}

fn presence_of(config: &WorkerConfig) -> WorkerPresence {
    let now = chrono::Utc::now();
    WorkerPresence {
        worker_id: config.id.clone(),
        host: whoami::fallible::hostname()
            .unwrap_or_else(|_| "host".into())
            .chars()
            .take(255)
            .collect(),
        pid: i64::from(std::process::id()),
        queues: config.queues.clone(),
        concurrency: i32::try_from(config.concurrency).unwrap_or(i32::MAX),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        service: config.service.clone(),
        runs_held: 0,
        started_at: now,
        heartbeat_at: now,
    }
}

/// The worker's presence (and, for a service worker, its service's registry heartbeat): at once,
/// then every few seconds, with the number of runs it holds. Failures are recorded in the
/// worker's store health (one line per outage), never fatal.
async fn keep_presence(
    ops: Ops,
    mut presence: WorkerPresence,
    runs_held: Arc<AtomicI32>,
    health: StoreHealth,
) {
    let every = Duration::from_secs(PRESENCE_EVERY_SECS as u64);
    let mut tick = tokio::time::interval(every);
    let mut registered = false;
    loop {
        tick.tick().await;
        let held = runs_held.load(Ordering::Relaxed);
        let beat = if registered {
            ops.beat_worker(&presence.worker_id, held).await
        } else {
            presence.runs_held = held;
            presence.heartbeat_at = chrono::Utc::now();
            ops.register_worker(&presence).await.map(|()| true)
        };
        match beat {
            // No row: it expired or was removed; register again on the next beat.
            Ok(found) => registered = found,
            Err(e) => {
                if !health.failed("worker presence", &e) {
                    tracing::warn!(error = %e, "worker presence refused");
                }
                continue;
            }
        }
        if let Some(schema) = &presence.service {
            match ops
                .service_worker_heartbeat(schema, &presence.worker_id)
                .await
            {
                Ok(_) => health.ok(),
                Err(e) => {
                    if !health.failed("service heartbeat", &e) {
                        tracing::warn!(error = %e, service = %schema, "service heartbeat refused");
                    }
                }
            }
        } else {
            health.ok();
        }
    }
}

/// Looks up the workflows of claimed runs (cached) and starts an execution task for each. A run
/// whose workflow no longer exists ends failed; a lookup that meets an outage is tried again later.
async fn start_claimed(
    ops: &Ops,
    config: &WorkerConfig,
    pacing: &mut Pacing,
    cache: &mut HashMap<i64, Workflow>,
    held: &mut HashMap<i64, Held>,
    done: &mpsc::Sender<Finished>,
    guard: &Arc<GroupGuard>,
) -> OpsResult<()> {
    let waiting: Vec<i64> = held
        .iter()
        .filter(|(_, h)| matches!(h.stage, Stage::Claimed(_)))
        .map(|(id, _)| *id)
        .collect();
    for id in waiting {
        let Some(Held {
            stage: Stage::Claimed(run),
            hold,
        }) = held.get(&id)
        else {
            continue;
        };
        let hold = *hold;
        if !cache.contains_key(&run.workflow_id) {
            match ops.workflow_by_id(run.workflow_id).await {
                Ok(Some(wf)) => {
                    pacing.ok(config.lease);
                    cache.insert(wf.id, wf);
                }
                Ok(None) => {
                    pacing.ok(config.lease);
                }
                Err(e) => return pacing.failed("looking up a workflow", e),
            }
        }
        let Some(Held {
            stage: Stage::Claimed(run),
            ..
        }) = held.remove(&id)
        else {
            continue;
        };
        let stage = match cache.get(&run.workflow_id) {
            Some(workflow) => {
                let (control, control_rx) = watch::channel(Control::Run);
                let crew = Crew {
                    ops: ops.clone(),
                    config: config.clone(),
                    health: pacing.health.clone(),
                    guard: guard.clone(),
                    done: done.clone(),
                };
                let task = tokio::spawn(execute(crew, run, workflow.clone(), control_rx));
                Stage::Running { control, task }
            }
            None => Stage::Ended(Completion {
                hold,
                exit_code: None,
                error: Some(format!(
                    "not executed: workflow {} no longer exists",
                    run.workflow_id
                )),
                canceled: false,
            }),
        };
        held.insert(id, Held { hold, stage });
    }
    Ok(())
}

fn record(stats: &mut WorkerStats, held: &mut HashMap<i64, Held>, done: Finished) {
    match done.completion {
        Some(completion) => {
            if let Some(h) = held.get_mut(&done.run_id) {
                h.stage = Stage::Ended(completion);
            }
        }
        None => {
            held.remove(&done.run_id);
            stats.lost += 1;
        }
    }
}

fn count_outcome(stats: &mut WorkerStats, outcome: RunStatus) {
    match outcome {
        RunStatus::Succeeded => stats.succeeded += 1,
        RunStatus::Canceled => stats.canceled += 1,
        _ => stats.failed += 1,
    }
}

/// Records every ended run in one call. Through an outage the completions stay in their slots
/// (leases still renewed) and are delivered when the store answers; fencing still applies then.
async fn deliver_completions(
    ops: &Ops,
    config: &WorkerConfig,
    pacing: &mut Pacing,
    held: &mut HashMap<i64, Held>,
    stats: &mut WorkerStats,
) -> OpsResult<()> {
    let ended: Vec<Completion> = held
        .values()
        .filter_map(|h| match &h.stage {
            Stage::Ended(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    if ended.is_empty() {
        return Ok(());
    }
    match ops.complete_runs(&config.id, &ended).await {
        Ok(finished) => {
            pacing.ok(config.lease);
            for completion in ended {
                let id = completion.hold.run_id;
                held.remove(&id);
                if finished.contains(&id) {
                    count_outcome(stats, completion.outcome());
                } else {
                    tracing::warn!(
                        run_id = id,
                        "run was taken away before it finished (fenced)"
                    );
                    stats.lost += 1;
                }
            }
            Ok(())
        }
        Err(e) => {
            let refused = e.to_string();
            pacing.failed("recording finished runs", e).or_else(|e| {
                // Refused, not unreachable: these completions can never be recorded; their leases
                // will run out and the runs go back to the queue.
                tracing::error!(error = %refused, runs = ended.len(), "completions refused; dropping them");
                for completion in &ended {
                    held.remove(&completion.hold.run_id);
                    stats.lost += 1;
                }
                match e {
                    OpsError::Forbidden(_) | OpsError::Store(crate::store::StoreError::Forbidden(_)) => {
                        Err(e)
                    }
                    _ => Ok(()),
                }
            })
        }
    }
}

/// Renews every held run's lease; tells a running child to stop when a cancel was asked, or when
/// the run is no longer ours.
async fn keep_leases(
    ops: &Ops,
    config: &WorkerConfig,
    pacing: &mut Pacing,
    held: &mut HashMap<i64, Held>,
    stats: &mut WorkerStats,
) {
    if held.is_empty() {
        return;
    }
    let holds: Vec<Hold> = held.values().map(|h| h.hold).collect();
    let acks = match ops.heartbeat(&config.id, &holds, config.lease).await {
        Ok(acks) => {
            pacing.ok(config.lease);
            acks
        }
        Err(e) => {
            if let Err(e) = pacing.failed("renewing leases", e) {
                tracing::warn!(error = %e, "heartbeat refused");
            }
            return;
        }
    };
    let mut lost = Vec::new();
    for (id, h) in held.iter() {
        match (acks.iter().find(|a| a.run_id == *id), &h.stage) {
            (Some(ack), Stage::Running { control, .. }) if ack.cancel_requested => {
                let _ = control.send(Control::Cancel);
            }
            (Some(_), _) => {}
            (None, Stage::Running { control, .. }) => {
                tracing::warn!(run_id = id, "lease lost; stopping the command");
                let _ = control.send(Control::Abandon);
            }
            (None, _) => lost.push(*id),
        }
    }
    for id in lost {
        tracing::warn!(run_id = id, "lease lost before the run's end was recorded");
        held.remove(&id);
        stats.lost += 1;
    }
}

async fn shut_down(
    ops: &Ops,
    config: &WorkerConfig,
    pacing: &mut Pacing,
    stats: &mut WorkerStats,
    held: &mut HashMap<i64, Held>,
    done_rx: &mut mpsc::Receiver<Finished>,
) {
    let deadline = Instant::now() + config.grace;
    let mut heartbeat = tokio::time::interval(config.lease / 3);
    let running = |held: &HashMap<i64, Held>| {
        held.values()
            .any(|h| matches!(h.stage, Stage::Running { .. }))
    };
    // Let running commands finish within the grace period, recording ends as they come.
    while running(held) && Instant::now() < deadline {
        tokio::select! {
            Some(done) = done_rx.recv() => record(stats, held, done),
            _ = heartbeat.tick() => keep_leases(ops, config, pacing, held, stats).await,
            _ = tokio::time::sleep_until(deadline) => {}
        }
        if pacing.ready() {
            let _ = deliver_completions(ops, config, pacing, held, stats).await;
        }
    }

    // Out of grace: stop the children. Their runs, and those never started, go back to the queue.
    let mut give_back: Vec<Hold> = Vec::new();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let ids: Vec<i64> = held.keys().copied().collect();
    for id in ids {
        if matches!(held.get(&id).map(|h| &h.stage), Some(Stage::Ended(_))) {
            continue;
        }
        if let Some(h) = held.remove(&id) {
            give_back.push(h.hold);
            if let Stage::Running { control, task } = h.stage {
                let _ = control.send(Control::Abandon);
                tasks.push(task);
            }
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    while let Ok(done) = done_rx.try_recv() {
        // A command that ended on its own just before it was told to stop is recorded, not released.
        if let Some(completion) = done.completion {
            give_back.retain(|h| h.run_id != done.run_id);
            held.insert(
                done.run_id,
                Held {
                    hold: completion.hold,
                    stage: Stage::Ended(completion),
                },
            );
        }
    }

    // Record what ended, giving the store a few seconds if it is away.
    let patience = Instant::now() + SHUTDOWN_PATIENCE;
    while !held.is_empty() {
        if pacing.ready() {
            let _ = deliver_completions(ops, config, pacing, held, stats).await;
        }
        if held.is_empty() || Instant::now() >= patience {
            break;
        }
        sleep_until_some(pacing.retry_at.map(|t| t.min(patience))).await;
    }
    if !held.is_empty() {
        tracing::error!(
            runs = held.len(),
            "store unreachable at shutdown; these runs run again once their leases expire"
        );
        stats.lost += held.len() as u64;
    }
    if give_back.is_empty() {
        return;
    }
    match ops.release_runs(&config.id, &give_back).await {
        Ok(released) => stats.released += released.len() as u64,
        Err(e) => tracing::error!(error = %e, "could not release runs; their leases will expire"),
    }
}

/// How long a stopping worker keeps trying to record runs that ended, once its grace is over.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// What an execution task shares with the worker's loop: the store, the worker's settings and
/// health, the guard of its commands' process groups, and the channel each run's end goes back on.
struct Crew {
    ops: Ops,
    config: WorkerConfig,
    health: StoreHealth,
    guard: Arc<GroupGuard>,
    done: mpsc::Sender<Finished>,
}

async fn execute(
    crew: Crew,
    run: ClaimedRun,
    workflow: Workflow,
    control: watch::Receiver<Control>,
) {
    let Crew {
        ops,
        config,
        health,
        guard,
        done,
    } = crew;
    let worker = config.id.clone();
    let hold = run.hold();
    let completion = if let Some(reason) = &run.payload_error {
        // Executing it would mean guessing at its input: it fails alone, the batch goes on.
        Some(Completion {
            hold,
            exit_code: None,
            error: Some(format!("not executed: {reason}")),
            canceled: false,
        })
    } else if workflow.command == crate::ops::DEPLOY_COMMAND {
        Some(deploy_run(&ops, &config, &run).await)
    } else {
        run_child(&ops, &worker, &run, &workflow, &health, &guard, control).await
    };
    let _ = done
        .send(Finished {
            run_id: run.id,
            completion,
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
