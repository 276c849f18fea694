//! `ospdeck bench queue`: queue throughput through `ops`, beside the raw limit of the same SQL and
//! the minimal queue (one table, one index, no guarantees) measured in the same run, a peer
//! (graphile-worker) on the same PostgreSQL, a real worker end to end beside the raw spawn rate,
//! and insert-to-start latency.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{StreamExt, TryFutureExt, TryStreamExt};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Figure, bench_workflow, counter, figures_table, p50_p99, rate};
use crate::cli::output::Unit;
use crate::cli::{Cli, CliError, CliResult, open_store, resolve_config};
use crate::domain::run::{ClaimedRun, Completion, NewRun, RunStatus};
use crate::domain::workflow::WorkflowType;
use crate::ops::{BulkAction, BulkRequest, Ops, RunTarget, WorkflowRequest};
use crate::store::{QueueProbe, StoreKind, StoreOptions};
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
    /// Runs queued in a queue no worker serves while the largest worker count is measured again
    /// (0 skips the backlog measurement)
    #[arg(long, default_value_t = 50_000)]
    pub backlog: usize,
    /// Times each measurement is taken; the median is printed
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Do not measure the peer (graphile-worker, on PostgreSQL only)
    #[arg(long)]
    pub no_peer: bool,
    /// The peer's script (installs graphile-worker 0.17.3 from npm into a temp dir)
    #[arg(
        long,
        value_name = "PATH",
        default_value = "bench/peers/graphile-worker/run.sh"
    )]
    pub peer_script: PathBuf,
    /// Lines printed by the one chatty run of the log ingestion measurement (0 skips it)
    #[arg(long, default_value_t = 1_000_000)]
    pub log_lines: usize,
}

#[derive(Debug, Serialize)]
struct ClaimFigure {
    workers: u32,
    runs_per_sec: f64,
    raw_runs_per_sec: f64,
    minimal_runs_per_sec: f64,
    percent_of_raw: f64,
}

#[derive(Debug, Serialize)]
struct BacklogFigure {
    backlog: usize,
    workers: u32,
    runs_per_sec: f64,
    percent_of_unloaded: f64,
}

/// What the peer's script prints (one JSON object on stdout).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerFigures {
    peer: String,
    version: String,
    add_jobs_per_sec: f64,
    process_jobs_per_sec: f64,
    process_with_backlog_jobs_per_sec: Option<f64>,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    concurrency: u32,
    local_queue: u32,
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    runs: usize,
    batch: u32,
    repeat: usize,
    enqueue_runs_per_sec: f64,
    claim_complete: Vec<ClaimFigure>,
    backlog: Option<BacklogFigure>,
    worker_e2e_runs_per_sec: f64,
    spawn_per_sec: f64,
    worker_e2e_concurrency: u32,
    insert_to_start_p50_ms: f64,
    insert_to_start_p99_ms: f64,
    double_claims: usize,
    lost_runs: usize,
    peer: Option<PeerFigures>,
    /// Why the peer was not measured, when it was not.
    peer_missing: Option<String>,
    log_ingestion: Option<super::ingest::IngestFigure>,
}

const ENQUEUE_BATCH: usize = 1_000;
const ENQUEUE_CONNECTIONS: usize = 2;
const E2E_CONCURRENCY: u32 = 16;

pub async fn queue(cli: &Cli, args: &QueueBenchArgs) -> CliResult {
    if args.runs == 0
        || args.workers.is_empty()
        || args.workers.contains(&0)
        || args.batch == 0
        || args.repeat == 0
    {
        return Err(CliError::usage(
            "--runs, --workers, --batch and --repeat must be positive",
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
    // The raw limits are measured on a handle of their own, beside the store the use cases get.
    let probe = crate::store::open_probe(&resolved.url, &options).await?;
    let show = !cli.json && std::io::stderr().is_terminal();

    let noop = bench_workflow(&ops, "bench", "queue benchmark").await?;
    let tag = noop.project.clone();
    let queues = vec![tag.clone()];
    let runs_of = |workflow_id: i64, n: usize| -> Vec<NewRun> {
        (0..n)
            .map(|_| NewRun {
                max_attempts: 3,
                ..NewRun::with_payload(noop.project_id, workflow_id, serde_json::json!({}))
            })
            .collect()
    };
    // Statements of ENQUEUE_BATCH rows on ENQUEUE_CONNECTIONS connections at once, as a producer
    // with a burst to queue would send them; each statement is its own transaction. Every fill
    // is timed: the enqueue figure is the median of them all.
    let enqueue_rates = std::cell::RefCell::new(Vec::new());
    let fill = async |workflow_id: i64, n: usize, label: &str| -> CliResult<()> {
        let runs = runs_of(workflow_id, n);
        let bar = counter(show, label, n, Unit::Items("runs"));
        let t = Instant::now();
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
        enqueue_rates.borrow_mut().push(rate(n, t.elapsed()));
        bar.finish_and_clear();
        Ok(())
    };
    let refill = "batched enqueue (queuing runs for the next measurement)";

    let mut claim_complete = Vec::new();
    let mut tally = ClaimTally::default();
    let runs_bar = |label: String| counter(show, &label, args.runs, Unit::Items("runs"));
    for &workers in &args.workers {
        let (mut through_ops, mut raw, mut minimal) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=args.repeat {
            let of = round_label(round, args.repeat);
            fill(noop.id, args.runs, refill).await?;
            probe.settle().await?;
            let bar = runs_bar(format!("claim+start+complete, {workers} worker(s){of}"));
            let (elapsed, claimed) =
                drain_through_ops(&ops, &queues, workers, args.batch, &bar).await?;
            bar.finish_and_clear();
            tally.add(&claimed, args.runs);
            through_ops.push(rate(args.runs, elapsed));

            fill(noop.id, args.runs, refill).await?;
            probe.settle().await?;
            let bar = runs_bar(format!("raw SQL limit, {workers} worker(s){of}"));
            raw.push(rate(
                args.runs,
                drain_raw(&probe, &tag, workers, args.batch, &bar, Drain::OwnSql).await?,
            ));
            bar.finish_and_clear();

            probe.minimal_fill(args.runs).await?;
            probe.settle().await?;
            let bar = runs_bar(format!("minimal queue, {workers} worker(s){of}"));
            minimal.push(rate(
                args.runs,
                drain_raw(&probe, &tag, workers, args.batch, &bar, Drain::Minimal).await?,
            ));
            bar.finish_and_clear();
        }
        let (runs_per_sec, raw_runs_per_sec) = (median(&through_ops), median(&raw));
        claim_complete.push(ClaimFigure {
            workers,
            runs_per_sec,
            raw_runs_per_sec,
            minimal_runs_per_sec: median(&minimal),
            percent_of_raw: 100.0 * runs_per_sec / raw_runs_per_sec.max(f64::MIN_POSITIVE),
        });
    }
    probe.minimal_drop().await?;

    let backlog = if args.backlog > 0 {
        let unloaded = claim_complete
            .iter()
            .find(|c| c.workers == max_workers)
            .map_or(f64::NAN, |c| c.runs_per_sec);
        let idle = ops
            .create_workflow(&WorkflowRequest {
                queue: Some(&format!("{tag}-unserved")),
                timeout_secs: Some(60),
                ..WorkflowRequest::new(&tag, "unserved", WorkflowType::Test, "true")
            })
            .await?;
        fill(idle.id, args.backlog, "queuing the backlog nobody serves").await?;
        let mut rates = Vec::new();
        for round in 1..=args.repeat {
            fill(noop.id, args.runs, refill).await?;
            probe.settle().await?;
            let bar = runs_bar(format!(
                "claim+start+complete, {max_workers} worker(s), behind a backlog{}",
                round_label(round, args.repeat)
            ));
            let (elapsed, claimed) =
                drain_through_ops(&ops, &queues, max_workers, args.batch, &bar).await?;
            bar.finish_and_clear();
            tally.add(&claimed, args.runs);
            rates.push(rate(args.runs, elapsed));
        }
        cancel_queue(&ops, &format!("{tag}-unserved"), show).await?;
        let runs_per_sec = median(&rates);
        Some(BacklogFigure {
            backlog: args.backlog,
            workers: max_workers,
            runs_per_sec,
            percent_of_unloaded: 100.0 * runs_per_sec / unloaded,
        })
    } else {
        None
    };
    // The median of every fill so far (the backlog's included; the small end-to-end fills not).
    let enqueue_runs_per_sec = median(&enqueue_rates.borrow());

    let (mut e2e, mut spawn) = (Vec::new(), Vec::new());
    for round in 1..=args.repeat {
        let of = round_label(round, args.repeat);
        fill(noop.id, args.e2e_runs, refill).await?;
        probe.settle().await?;
        e2e.push(worker_end_to_end(&ops, &tag, &queues, args.e2e_runs, show, &of).await?);
        spawn.push(spawn_rate(args.e2e_runs, show, &of).await?);
    }

    probe.settle().await?;
    let bar = counter(
        show,
        "insert-to-start latency",
        args.latency_samples * args.repeat,
        Unit::Items("runs"),
    );
    let (p50, p99) = insert_to_start(
        &ops,
        &tag,
        &queues,
        args.latency_samples * args.repeat,
        &bar,
    )
    .await?;
    bar.finish_and_clear();

    let log_ingestion = match args.log_lines {
        0 => None,
        n => {
            let bar = super::spinner(show, &format!("log ingestion ({n} lines, one run)"));
            let figure =
                super::ingest::log_ingestion(&ops, &resolved.url, cli.as_user.as_deref(), n)
                    .await?;
            bar.finish_and_clear();
            Some(figure)
        }
    };

    let (peer, peer_missing) = if store.kind() != StoreKind::Postgres {
        (
            None,
            Some("graphile-worker runs on PostgreSQL only".to_owned()),
        )
    } else if args.no_peer {
        (None, Some("--no-peer".to_owned()))
    } else {
        match measure_peer(&resolved.url, args, show).await {
            Ok(peer) => (Some(peer), None),
            Err(why) => (None, Some(why)),
        }
    };

    let report = Report {
        store: store.location(),
        runs: args.runs,
        batch: args.batch,
        repeat: args.repeat,
        enqueue_runs_per_sec,
        claim_complete,
        backlog,
        worker_e2e_runs_per_sec: median(&e2e),
        spawn_per_sec: median(&spawn),
        worker_e2e_concurrency: E2E_CONCURRENCY,
        insert_to_start_p50_ms: p50,
        insert_to_start_p99_ms: p99,
        double_claims: tally.double_claims,
        lost_runs: tally.lost_runs,
        peer,
        peer_missing,
        log_ingestion,
    };
    crate::cli::emit_report(cli.json, &report, || render(&report));
    Ok(())
}

/// What every drain through `ops` claimed, against what it should have: each run once.
#[derive(Default)]
struct ClaimTally {
    double_claims: usize,
    lost_runs: usize,
}

impl ClaimTally {
    fn add(&mut self, claimed: &[i64], runs: usize) {
        let unique: HashSet<i64> = claimed.iter().copied().collect();
        self.double_claims += claimed.len() - unique.len();
        self.lost_runs += runs - unique.len().min(runs);
    }
}

fn round_label(round: usize, of: usize) -> String {
    if of > 1 {
        format!(" ({round} of {of})")
    } else {
        String::new()
    }
}

/// The median of the rounds' figures (NaN when there are none).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    p50_p99(&mut sorted).0
}

/// Cancels what is left queued in `queue` (the backlog), through the same bulk use case as
/// `ospdeck run cancel --where`.
async fn cancel_queue(ops: &Ops, queue: &str, show: bool) -> CliResult {
    let bar = super::spinner(show, "canceling the backlog");
    let filter = format!("queue:{queue} status:queued");
    ops.bulk_runs(
        &BulkRequest {
            action: BulkAction::Cancel,
            target: RunTarget::Where(&filter),
            dry_run: false,
            fresh: false,
        },
        &mut |_| true,
    )
    .await?;
    bar.finish_and_clear();
    Ok(())
}

/// A real worker (in this process, `E2E_CONCURRENCY` slots) drains `runs` runs of `sh -c true`.
async fn worker_end_to_end(
    ops: &Ops,
    tag: &str,
    queues: &[String],
    runs: usize,
    show: bool,
    of: &str,
) -> CliResult<f64> {
    let config = WorkerConfig {
        concurrency: E2E_CONCURRENCY,
        drain: true,
        idle_poll: Duration::from_millis(200),
        ..WorkerConfig::in_process(format!("{tag}-e2e"), queues.to_vec())
    };
    let (_stop_tx, stop_rx) = watch::channel(false);
    let bar = counter(
        show,
        &format!("worker end to end (sh -c true){of}"),
        runs,
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
                        bar.set_position((runs as u64).saturating_sub(left));
                    }
                }
            }
        }
    };
    bar.finish_and_clear();
    Ok(rate(stats.succeeded as usize, t.elapsed()))
}

/// The raw rate of `sh -c true` on this machine, `E2E_CONCURRENCY` at a time: the ceiling of
/// any worker that runs each run as a shell command.
async fn spawn_rate(runs: usize, show: bool, of: &str) -> CliResult<f64> {
    let bar = counter(
        show,
        &format!("raw spawn rate (sh -c true){of}"),
        runs,
        Unit::Items("spawns"),
    );
    let t = Instant::now();
    futures_util::stream::iter((0..runs).map(|_| async {
        tokio::process::Command::new("sh")
            .args(["-c", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
    }))
    .buffer_unordered(E2E_CONCURRENCY as usize)
    .try_for_each(|_| {
        bar.inc(1);
        async { Ok(()) }
    })
    .await
    .map_err(|e| CliError::failed(format!("cannot run `sh -c true`: {e}")))?;
    bar.finish_and_clear();
    Ok(rate(runs, t.elapsed()))
}

/// Runs the peer's script `--repeat` times on the same server; answers the median of each figure,
/// or why the peer could not be measured.
async fn measure_peer(url: &str, args: &QueueBenchArgs, show: bool) -> Result<PeerFigures, String> {
    if !args.peer_script.is_file() {
        return Err(format!(
            "{} not found (run the bench from the checkout, or pass --peer-script)",
            args.peer_script.display()
        ));
    }
    let mut rounds: Vec<PeerFigures> = Vec::new();
    for round in 1..=args.repeat {
        let bar = super::spinner(
            show,
            &format!(
                "graphile-worker 0.17.3 on the same server{}",
                round_label(round, args.repeat)
            ),
        );
        let out = tokio::process::Command::new(&args.peer_script)
            .args(["--db", url])
            .args(["--jobs", &args.runs.to_string()])
            .args(["--latency-samples", &args.latency_samples.to_string()])
            .args(["--backlog", &args.backlog.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", args.peer_script.display()))?;
        bar.finish_and_clear();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            return Err(why
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("the peer's script failed")
                .trim()
                .to_owned());
        }
        rounds.push(
            serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("the peer's script printed no figures I can read: {e}"))?,
        );
    }
    let pick = |f: fn(&PeerFigures) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let backlog: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.process_with_backlog_jobs_per_sec)
        .collect();
    let first = rounds.first().cloned().ok_or("the peer measured nothing")?;
    Ok(PeerFigures {
        add_jobs_per_sec: pick(|r| r.add_jobs_per_sec),
        process_jobs_per_sec: pick(|r| r.process_jobs_per_sec),
        process_with_backlog_jobs_per_sec: (!backlog.is_empty()).then(|| median(&backlog)),
        latency_p50_ms: pick(|r| r.latency_p50_ms),
        latency_p99_ms: pick(|r| r.latency_p99_ms),
        ..first
    })
}

/// Aims: claim+start+complete ≥ 70% of the raw limit of the same SQL; on PostgreSQL beside
/// graphile-worker in the same run: ≥ 1.5× its processing rate, insert-to-start p50 no slower,
/// enqueue no slower than its `add_jobs`; a backlog elsewhere costs ≤ 10%; the worker end to end
/// ≥ 70% of the raw spawn rate; not one run claimed twice or lost.
fn render(r: &Report) -> String {
    let peer = r.peer.as_ref();
    let ratio = |ours: f64, theirs: f64| ours / theirs.max(f64::MIN_POSITIVE);
    let enqueue = Figure::new(
        format!("batched enqueue ({ENQUEUE_BATCH}/statement, {ENQUEUE_CONNECTIONS} conns)"),
        format!("{:.0} runs/s", r.enqueue_runs_per_sec),
    );
    let mut figures = vec![match peer {
        Some(p) => enqueue
            .aim(
                "≥ graphile add_jobs".into(),
                Some(r.enqueue_runs_per_sec >= p.add_jobs_per_sec),
            )
            .beside(format!(
                "graphile-worker add_jobs {:.0} jobs/s ({:.2}×)",
                p.add_jobs_per_sec,
                ratio(r.enqueue_runs_per_sec, p.add_jobs_per_sec)
            )),
        None => enqueue.at_least(r.enqueue_runs_per_sec, 50_000.0, "runs/s"),
    }];
    for c in &r.claim_complete {
        figures.push(
            Figure::new(
                format!("claim+start+complete, {:>2} worker(s)", c.workers),
                format!("{:.0} runs/s", c.runs_per_sec),
            )
            .aim("≥ 70% of raw".to_owned(), Some(c.percent_of_raw >= 70.0))
            .beside(format!(
                "raw SQL limit {:.0} runs/s ({:.1}% of raw); minimal queue {:.0} runs/s",
                c.raw_runs_per_sec, c.percent_of_raw, c.minimal_runs_per_sec
            )),
        );
    }
    if let (Some(p), Some(c)) = (peer, r.claim_complete.last()) {
        let times = ratio(c.runs_per_sec, p.process_jobs_per_sec);
        figures.push(
            Figure::new(
                format!("  the same, {:>2} workers, vs graphile-worker", c.workers),
                format!("{times:.2}×"),
            )
            .aim("≥ 1.5×".into(), Some(times >= 1.5))
            .beside(format!(
                "graphile-worker {} perf config {:.0} jobs/s (concurrency {}, local queue {})",
                p.version, p.process_jobs_per_sec, p.concurrency, p.local_queue
            )),
        );
    }
    if let Some(b) = &r.backlog {
        let mut beside = format!("{:.1}% of the rate without it", b.percent_of_unloaded);
        if let Some(theirs) = peer.and_then(|p| {
            p.process_with_backlog_jobs_per_sec
                .map(|with| (with, 100.0 * with / p.process_jobs_per_sec))
        }) {
            beside.push_str(&format!(
                "; graphile-worker {:.0} jobs/s ({:.1}% of its own)",
                theirs.0, theirs.1
            ));
        }
        figures.push(
            Figure::new(
                format!(
                    "  the same behind {} runs nobody serves",
                    crate::domain::number::grouped(b.backlog as i64)
                ),
                format!("{:.0} runs/s", b.runs_per_sec),
            )
            .aim(
                "≥ 90% of unloaded".into(),
                Some(b.percent_of_unloaded >= 90.0),
            )
            .beside(beside),
        );
    }
    let e2e_percent = 100.0 * r.worker_e2e_runs_per_sec / r.spawn_per_sec.max(f64::MIN_POSITIVE);
    figures.push(
        Figure::new(
            format!(
                "worker end to end (sh -c true, {})",
                r.worker_e2e_concurrency
            ),
            format!("{:.0} runs/s", r.worker_e2e_runs_per_sec),
        )
        .aim("≥ 70% of spawn".into(), Some(e2e_percent >= 70.0))
        .beside(format!(
            "raw spawn of sh -c true, {} at a time: {:.0}/s ({e2e_percent:.1}%)",
            r.worker_e2e_concurrency, r.spawn_per_sec
        )),
    );
    let p50 = Figure::new(
        "insert-to-start latency p50 (idle worker)",
        format!("{:.2} ms", r.insert_to_start_p50_ms),
    );
    figures.push(match peer {
        Some(p) => p50
            .aim(
                "≤ graphile p50".into(),
                Some(r.insert_to_start_p50_ms <= p.latency_p50_ms),
            )
            .beside(format!(
                "graphile-worker add_job→start p50 {:.2} ms",
                p.latency_p50_ms
            )),
        None => p50,
    });
    let p99 = Figure::new(
        "insert-to-start latency p99 (idle worker)",
        format!("{:.2} ms", r.insert_to_start_p99_ms),
    );
    figures.push(match peer {
        Some(p) => p99.beside(format!("graphile-worker p99 {:.2} ms", p.latency_p99_ms)),
        None => p99,
    });
    figures.extend([
        Figure::new("double claims", r.double_claims.to_string())
            .aim("none".into(), Some(r.double_claims == 0)),
        Figure::new("lost runs", r.lost_runs.to_string())
            .aim("none".into(), Some(r.lost_runs == 0)),
    ]);
    if let Some(l) = &r.log_ingestion {
        figures.extend([
            Figure::new(
                format!("log ingestion, one chatty run (seq 1 {})", l.lines),
                format!("{:.0} lines/s", l.lines_per_sec),
            )
            .at_least(l.lines_per_sec, 200_000.0, "lines/s")
            .beside(format!(
                "{} stored, {} in order; worker wall {:.1} s",
                l.stored, l.in_order, l.worker_wall_secs
            )),
            Figure::new(
                "worker peak RSS during it",
                format!("{:.1} MB", l.worker_peak_rss_mb),
            )
            .at_most(l.worker_peak_rss_mb, 50.0, "MB"),
        ]);
    }
    let peer_line = match (&r.peer, &r.peer_missing) {
        (Some(p), _) => format!(
            "peer {} {} measured on the same server\n",
            p.peer, p.version
        ),
        (None, Some(why)) => format!("peer not measured: {why}\n"),
        (None, None) => String::new(),
    };
    format!(
        "store {}\nruns per measurement {}, claim/complete batch {}, median of {} round(s)\n{peer_line}\n{}",
        r.store,
        r.runs,
        r.batch,
        r.repeat,
        figures_table(&figures)
    )
}

/// `workers` tasks claim-and-start, then complete, through `ops` (the worker's fast path) until
/// the queue is empty; answers the elapsed time and every id claimed (to count double claims).
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
                    .claim_and_start_runs(&worker, &queues, batch, Duration::from_secs(60))
                    .await?;
                if claimed.is_empty() {
                    return Ok::<_, crate::ops::OpsError>(claimed_ids);
                }
                let done: Vec<Completion> = claimed
                    .iter()
                    .map(|run| Completion {
                        hold: ClaimedRun::hold(run),
                        exit_code: Some(0),
                        error: None,
                        canceled: false,
                    })
                    .collect();
                ops.complete_runs(&worker, &done).await?;
                bar.inc(done.len() as u64);
                claimed_ids.extend(done.iter().map(|c| c.hold.run_id));
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

/// Which queue a raw drain empties.
#[derive(Debug, Clone, Copy)]
enum Drain {
    /// ospdeck's own SQL, with no domain decoding and no use-case checks.
    OwnSql,
    /// The minimal queue: one table, one index, no events, no triggers.
    Minimal,
}

async fn drain_raw(
    probe: &Arc<dyn QueueProbe>,
    queue: &str,
    workers: u32,
    batch: u32,
    bar: &ProgressBar,
    drain: Drain,
) -> CliResult<Duration> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let probe = probe.clone();
        let queue = queue.to_owned();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("raw-w{w}");
            loop {
                let done = match drain {
                    Drain::OwnSql => {
                        probe
                            .raw_claim_complete_cycle(&worker, &queue, batch)
                            .await?
                    }
                    Drain::Minimal => probe.minimal_cycle(&worker, batch).await?,
                };
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
