//! `ospdeck bench queue`: queue throughput through `ops`, beside the raw limit of the same SQL
//! measured in the same run, plus a real worker end to end and insert-to-start latency.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{StreamExt, TryFutureExt, TryStreamExt};
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::sync::watch;

use super::{Figure, bench_workflow, counter, figures_table, p50_p99, rate};
use crate::cli::output::Unit;
use crate::cli::{Cli, CliError, CliResult, open_store, resolve_config};
use crate::domain::run::{ClaimedRun, Completion, Hold, NewRun, RunStatus};
use crate::ops::Ops;
use crate::store::{QueueProbe, StoreOptions};
use crate::worker::{WorkerConfig, run_worker};

#[derive(Debug, Clone, Args)]
pub struct QueueBenchArgs {
    /// Runs per measurement
    #[arg(long, default_value_t = 20_000)]
    pub runs: usize,
    /// Worker counts to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub workers: Vec<u32>,
    /// Runs claimed and completed per round trip
    #[arg(long, default_value_t = 128)]
    pub batch: u32,
    /// Runs for the end-to-end worker measurement (each spawns `sh -c true`)
    #[arg(long, default_value_t = 1_000)]
    pub e2e_runs: usize,
    /// Single inserts for the insert-to-start latency measurement
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
}

#[derive(Debug, Serialize)]
struct ClaimFigure {
    workers: u32,
    runs_per_sec: f64,
    raw_runs_per_sec: f64,
    percent_of_raw: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    runs: usize,
    batch: u32,
    enqueue_runs_per_sec: f64,
    claim_complete: Vec<ClaimFigure>,
    worker_e2e_runs_per_sec: f64,
    worker_e2e_concurrency: u32,
    insert_to_start_p50_ms: f64,
    insert_to_start_p99_ms: f64,
    double_claims: usize,
    lost_runs: usize,
}

const ENQUEUE_BATCH: usize = 1_000;
const ENQUEUE_CONNECTIONS: usize = 2;

pub async fn queue(cli: &Cli, args: &QueueBenchArgs) -> CliResult {
    if args.runs == 0 || args.workers.is_empty() || args.workers.contains(&0) || args.batch == 0 {
        return Err(CliError::usage(
            "--runs, --workers and --batch must be positive",
        ));
    }
    let resolved = resolve_config(cli)?;
    let max_workers = args.workers.iter().copied().max().unwrap_or(1);
    let options = StoreOptions {
        max_connections: max_workers + 4,
        ..Default::default()
    };
    let store = open_store(&resolved, &options, true).await?;
    let ops = Ops::connect_as(store.clone(), cli.as_user.as_deref()).await?;
    // The raw limit is measured on a handle of its own, beside the store the use cases get.
    let probe = crate::store::open_probe(&resolved.url, &options).await?;
    let show = !cli.json && std::io::stderr().is_terminal();

    let noop = bench_workflow(&ops, "bench", "queue benchmark").await?;
    let tag = noop.project.clone();
    let queues = vec![tag.clone()];
    let new_runs = |n: usize| -> Vec<NewRun> {
        (0..n)
            .map(|_| NewRun {
                max_attempts: 3,
                ..NewRun::with_payload(noop.project_id, noop.id, serde_json::json!({}))
            })
            .collect()
    };
    // Statements of ENQUEUE_BATCH rows on ENQUEUE_CONNECTIONS connections at once, as a producer
    // with a burst to queue would send them; each statement is its own transaction.
    let fill = |n: usize, label: &str| {
        let ops = ops.clone();
        let runs = new_runs(n);
        let bar = counter(show, label, n, Unit::Items("runs"));
        async move {
            futures_util::stream::iter(runs.chunks(ENQUEUE_BATCH).map(|chunk| {
                let len = chunk.len() as u64;
                ops.enqueue_runs(chunk).map_ok(move |_| len)
            }))
            .buffer_unordered(ENQUEUE_CONNECTIONS)
            .try_for_each(|len| {
                bar.inc(len);
                async { Ok(()) }
            })
            .await?;
            bar.finish_and_clear();
            Ok::<(), CliError>(())
        }
    };
    let refill = "queuing runs for the next measurement";

    let t = Instant::now();
    fill(args.runs, "batched enqueue").await?;
    let enqueue_rate = rate(args.runs, t.elapsed());

    let mut claim_complete = Vec::new();
    let mut double_claims = 0;
    let mut lost_runs = 0;
    for &workers in &args.workers {
        let bar = counter(
            show,
            &format!("claim+complete, {workers} worker(s)"),
            args.runs,
            Unit::Items("runs"),
        );
        let (rate_ops, claimed) =
            drain_through_ops(&ops, &queues, workers, args.batch, &bar).await?;
        bar.finish_and_clear();
        let unique: HashSet<i64> = claimed.iter().copied().collect();
        double_claims += claimed.len() - unique.len();
        lost_runs += args.runs - unique.len().min(args.runs);
        let rate_ops = rate(args.runs, rate_ops);
        fill(args.runs, refill).await?;
        let bar = counter(
            show,
            &format!("raw SQL limit, {workers} worker(s)"),
            args.runs,
            Unit::Items("runs"),
        );
        let raw = drain_raw(&probe, &tag, workers, args.batch, &bar).await?;
        let raw_rate = rate(args.runs, raw);
        bar.finish_and_clear();
        claim_complete.push(ClaimFigure {
            workers,
            runs_per_sec: rate_ops,
            raw_runs_per_sec: raw_rate,
            percent_of_raw: 100.0 * rate_ops / raw_rate.max(f64::MIN_POSITIVE),
        });
        if workers != *args.workers.last().unwrap_or(&workers) {
            fill(args.runs, refill).await?;
        }
    }

    fill(args.e2e_runs, refill).await?;
    let e2e_concurrency = 16;
    let config = WorkerConfig {
        concurrency: e2e_concurrency,
        drain: true,
        idle_poll: Duration::from_millis(200),
        ..WorkerConfig::in_process(format!("{tag}-e2e"), queues.clone())
    };
    let (_stop_tx, stop_rx) = watch::channel(false);
    let bar = counter(
        show,
        "worker end to end (sh -c true)",
        args.e2e_runs,
        Unit::Items("runs"),
    );
    let t = Instant::now();
    let stats = {
        let worker = run_worker(ops.clone(), config, stop_rx);
        tokio::pin!(worker);
        // The queue's counters say how far the worker got; read only when someone watches.
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                stats = &mut worker => break stats?,
                _ = tick.tick(), if show => {
                    if let Ok(board) = ops.queue_board().await
                        && let Some(q) = board.queues.iter().find(|q| q.queue == tag)
                    {
                        let left = (q.queued + q.claimed + q.running).max(0) as u64;
                        bar.set_position((args.e2e_runs as u64).saturating_sub(left));
                    }
                }
            }
        }
    };
    let e2e_rate = rate(stats.succeeded as usize, t.elapsed());
    bar.finish_and_clear();

    let bar = counter(
        show,
        "insert-to-start latency",
        args.latency_samples,
        Unit::Items("runs"),
    );
    let (p50, p99) = insert_to_start(&ops, &tag, &queues, args.latency_samples, &bar).await?;
    bar.finish_and_clear();

    let report = Report {
        store: store.location(),
        runs: args.runs,
        batch: args.batch,
        enqueue_runs_per_sec: enqueue_rate,
        claim_complete,
        worker_e2e_runs_per_sec: e2e_rate,
        worker_e2e_concurrency: e2e_concurrency,
        insert_to_start_p50_ms: p50,
        insert_to_start_p99_ms: p99,
        double_claims,
        lost_runs,
    };
    crate::cli::emit_report(cli.json, &report, || render(&report));
    Ok(())
}

/// Aims of the queue's issues: batched enqueue ≥ 50 000 runs/s, claim+complete ≥ 70% of the raw
/// limit of the same SQL, and not one run claimed twice or lost.
fn render(r: &Report) -> String {
    let mut figures = vec![
        Figure::new(
            format!("batched enqueue ({ENQUEUE_BATCH}/statement, {ENQUEUE_CONNECTIONS} conns)"),
            format!("{:.0} runs/s", r.enqueue_runs_per_sec),
        )
        .at_least(r.enqueue_runs_per_sec, 50_000.0, "runs/s"),
    ];
    for c in &r.claim_complete {
        figures.push(
            Figure::new(
                format!("claim+start+complete, {:>2} worker(s)", c.workers),
                format!("{:.0} runs/s", c.runs_per_sec),
            )
            .aim("≥ 70% of raw".to_owned(), Some(c.percent_of_raw >= 70.0))
            .beside(format!(
                "raw SQL limit {:.0} runs/s ({:.1}% of raw)",
                c.raw_runs_per_sec, c.percent_of_raw
            )),
        );
    }
    figures.extend([
        Figure::new(
            format!(
                "worker end to end (sh -c true, {})",
                r.worker_e2e_concurrency
            ),
            format!("{:.0} runs/s", r.worker_e2e_runs_per_sec),
        ),
        Figure::new(
            "insert-to-start latency p50 (idle worker)",
            format!("{:.2} ms", r.insert_to_start_p50_ms),
        ),
        Figure::new(
            "insert-to-start latency p99 (idle worker)",
            format!("{:.2} ms", r.insert_to_start_p99_ms),
        ),
        Figure::new("double claims", r.double_claims.to_string())
            .aim("none".into(), Some(r.double_claims == 0)),
        Figure::new("lost runs", r.lost_runs.to_string())
            .aim("none".into(), Some(r.lost_runs == 0)),
    ]);
    format!(
        "store {}\nruns per measurement {}, claim/complete batch {}\n\n{}",
        r.store,
        r.runs,
        r.batch,
        figures_table(&figures)
    )
}

/// `workers` tasks claim, start and complete through `ops` until the queue is empty; answers the
/// elapsed time and every id claimed (to count double claims).
async fn drain_through_ops(
    ops: &Ops,
    queues: &[String],
    workers: u32,
    batch: u32,
    bar: &ProgressBar,
) -> CliResult<(Duration, Vec<i64>)> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let ops = ops.clone();
        let queues = queues.to_vec();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("bench-w{w}");
            let mut claimed_ids = Vec::new();
            loop {
                let claimed = ops
                    .claim_runs(&worker, &queues, batch, Duration::from_secs(60))
                    .await?;
                if claimed.is_empty() {
                    return Ok::<_, crate::ops::OpsError>(claimed_ids);
                }
                let holds: Vec<Hold> = claimed.iter().map(ClaimedRun::hold).collect();
                ops.start_runs(&worker, &holds).await?;
                let done: Vec<Completion> = holds
                    .iter()
                    .map(|&hold| Completion {
                        hold,
                        exit_code: Some(0),
                        error: None,
                        canceled: false,
                    })
                    .collect();
                ops.complete_runs(&worker, &done).await?;
                bar.inc(holds.len() as u64);
                claimed_ids.extend(holds.iter().map(|h| h.run_id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let ids = task
            .await
            .map_err(|e| CliError::failed(format!("bench task failed: {e}")))??;
        all.extend(ids);
    }
    Ok((t.elapsed(), all))
}

async fn drain_raw(
    store: &Arc<dyn QueueProbe>,
    queue: &str,
    workers: u32,
    batch: u32,
    bar: &ProgressBar,
) -> CliResult<Duration> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        let queue = queue.to_owned();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("raw-w{w}");
            loop {
                let done = store
                    .raw_claim_complete_cycle(&worker, &queue, batch)
                    .await?;
                if done == 0 {
                    return Ok::<(), crate::store::StoreError>(());
                }
                bar.inc(done as u64);
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| CliError::failed(format!("bench task failed: {e}")))??;
    }
    Ok(t.elapsed())
}

/// One idle worker; runs inserted one at a time; the store's own clock gives created → started.
async fn insert_to_start(
    ops: &Ops,
    project: &str,
    queues: &[String],
    samples: usize,
    bar: &ProgressBar,
) -> CliResult<(f64, f64)> {
    let config = WorkerConfig::in_process(format!("{project}-latency"), queues.to_vec());
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(run_worker(ops.clone(), config, stop_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = ops
            .enqueue_run(&crate::ops::EnqueueRequest {
                project,
                workflow: "noop",
                ..Default::default()
            })
            .await?;
        ids.push(id);
        bar.inc(1);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies = Vec::with_capacity(samples);
    for id in ids {
        loop {
            let run = ops.run(id).await?;
            if run.status == RunStatus::Succeeded || run.status.is_terminal() {
                if let Some(started) = run.started_at {
                    latencies.push(
                        (started - run.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0,
                    );
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(CliError::failed(format!(
                    "run {id} did not finish within 60 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;
    Ok(p50_p99(&mut latencies))
}
