//! `workflow …`, `run …` and `bench …`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::output::{self, emit, opt, table, time};
use super::{Cli, CliError, CliResult};
use crate::domain::run::{Run, RunStatus, parse_run_id};
use crate::domain::workflow::WorkflowType;
use crate::ops::{BulkAction, EnqueueRequest, Ops, RunQuery, WorkflowRequest};
use crate::stdio::{stderr_line, stdout_line};

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Create a workflow
    Create {
        /// The project it belongs to (its key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: String,
        /// Workflow name, unique in its project
        name: String,
        /// build, test, deploy, backup, upgrade or service
        #[arg(long = "type", value_parser = parse_workflow_type)]
        workflow_type: WorkflowType,
        /// Shell command (run with `sh -c`; OSPDECK_RUN_ID and OSPDECK_PAYLOAD are set)
        #[arg(long)]
        command: String,
        /// The task queue its runs wait in (default: `default`)
        #[arg(long)]
        queue: Option<String>,
        /// Seconds before the command is killed
        #[arg(long, allow_negative_numbers = true)]
        timeout: Option<i64>,
    },
    /// List workflows
    List {
        /// Only this project's workflows (its key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Queue a run; prints its id
    Enqueue {
        /// The workflow's project (its key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: String,
        /// The workflow to run
        #[arg(long, value_name = "NAME", add = super::completions::workflows())]
        workflow: String,
        /// -1000 to 1000; higher runs first
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i64>,
        /// JSON payload (up to 1 MiB); @FILE reads it from a file, @- from standard input
        #[arg(long)]
        payload: Option<String>,
        /// Attempts before the run fails for good (default: 3)
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        max_attempts: Option<i64>,
        /// Queue an upgrade even though it crosses a breaking advisory
        #[arg(long)]
        acknowledge: bool,
    },
    /// List runs, newest first (on a terminal a last line says when more exist)
    List {
        /// Only runs in this status
        #[arg(long, value_parser = parse_status)]
        status: Option<RunStatus>,
        /// Only runs of this project (key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: Option<String>,
        /// Only runs of this workflow (needs --project)
        #[arg(long, value_name = "NAME", add = super::completions::workflows())]
        workflow: Option<String>,
        /// Only runs whose project, workflow, queue, worker or error contains TEXT (or run id TEXT)
        #[arg(long)]
        text: Option<String>,
        /// Only runs matching FILTER, the console's `/` grammar: `status:failed,canceled
        /// workflow:nightly queue:demo worker:w1 error:disk try:>1 age:>10m` and free words
        #[arg(long = "where", value_name = "FILTER")]
        filter: Option<String>,
        /// How many runs to print (default 50; 0 prints every run, streamed)
        #[arg(long, allow_negative_numbers = true)]
        limit: Option<i64>,
        /// Print every matching run (the same as --limit 0)
        #[arg(long, conflicts_with = "limit")]
        all: bool,
        /// Only runs older than run ID: the last id of the previous page, to page on
        #[arg(long, value_name = "ID", allow_negative_numbers = true)]
        after: Option<i64>,
        /// After the list, print each run that appears or changes until interrupted (NDJSON with --json)
        #[arg(long)]
        watch: bool,
    },
    /// Show a run with its events and artifacts
    Show {
        /// Run id
        #[arg(allow_hyphen_values = true, add = super::completions::runs())]
        id: String,
    },
    /// Claim the next queued run (with --json: the run, or null when nothing is queued)
    Claim {
        /// The claiming worker's id (it must start and complete the run too)
        #[arg(long, value_name = "ID")]
        worker: String,
        /// Claim only from this queue (repeatable; default: every queue)
        #[arg(long)]
        queue: Vec<String>,
        /// Lease length in seconds (as bounded as the worker's: a lease past what the store's
        /// clock arithmetic can hold was stored as already expired)
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(2..=86_400))]
        lease: u64,
    },
    /// Mark a claimed run as running
    Start {
        /// Run id
        #[arg(allow_hyphen_values = true, add = super::completions::runs())]
        id: String,
        /// The worker that claimed it
        #[arg(long, value_name = "ID")]
        worker: String,
    },
    /// Finish a running run with its exit code
    Complete {
        /// Run id
        #[arg(allow_hyphen_values = true, add = super::completions::runs())]
        id: String,
        /// The worker that claimed it
        #[arg(long, value_name = "ID")]
        worker: String,
        /// The command's exit code: 0 succeeds the run, anything else fails it
        #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
        exit_code: i32,
        /// Why it failed, kept with the run
        #[arg(long, value_name = "MESSAGE")]
        error: Option<String>,
    },
    /// Cancel runs by id or --where (a running one is asked to stop; a canceled one stays so)
    Cancel(super::runs_bulk::BulkArgs),
    /// Queue a new run for each finished run, by id or --where (the new run's retry_of is it)
    Retry(super::runs_bulk::BulkArgs),
    /// Print a run's log lines
    Logs {
        /// Run id
        #[arg(allow_hyphen_values = true, add = super::completions::runs())]
        id: String,
        /// Keep printing new lines until the run finishes
        #[arg(long)]
        follow: bool,
        /// Full-text search (all words must match)
        #[arg(long)]
        search: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchArgs {
    /// Queue throughput: enqueue, claim+complete at several worker counts, raw SQL limit, worker end to end
    Queue(super::bench::QueueBenchArgs),
    /// The console against a large store: first frame, refresh and render times, memory, idle output
    Console(super::bench::ConsoleBenchArgs),
    /// Services created per second and manifest diff time on a 1 MB manifest
    Services(super::bench::ServicesBenchArgs),
    /// Publishing a 256 MiB bundle against sha256sum, and warm-cache resolve latency
    Templates(super::bench::TemplatesBenchArgs),
    /// The console over SSH: first frame, server memory and CPU per session, idle output
    Serve(super::bench::ServeBenchArgs),
}

fn parse_workflow_type(s: &str) -> Result<WorkflowType, String> {
    s.parse()
        .map_err(|e: crate::domain::InvalidInput| e.to_string())
}

fn parse_status(s: &str) -> Result<RunStatus, String> {
    s.parse()
        .map_err(|e: crate::domain::InvalidInput| e.to_string())
}

/// `@FILE` / `@-` read the payload from a file or stdin (a 1 MiB argument does not fit in argv);
/// reading stops just past the limit so a huge file is refused without being loaded.
fn read_payload(arg: &str) -> CliResult<String> {
    use std::io::Read;
    let Some(source) = arg.strip_prefix('@') else {
        return Ok(arg.to_owned());
    };
    super::session_reads(source)?;
    let limit = crate::domain::run::MAX_PAYLOAD_BYTES as u64 + 1;
    let mut text = String::new();
    let read = if source == "-" {
        std::io::stdin().take(limit).read_to_string(&mut text)
    } else {
        std::fs::File::open(source).and_then(|f| f.take(limit).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::failed(format!("cannot read payload from {source}: {e}")))?;
    Ok(text)
}

fn run_id(text: &str) -> CliResult<i64> {
    Ok(parse_run_id(text)?)
}

pub async fn workflow(ops: &Ops, json: bool, cmd: &WorkflowCommand) -> CliResult<ExitCode> {
    match cmd {
        WorkflowCommand::Create {
            project,
            name,
            workflow_type,
            command,
            queue,
            timeout,
        } => {
            let wf = ops
                .create_workflow(&WorkflowRequest {
                    queue: queue.as_deref(),
                    timeout_secs: *timeout,
                    ..WorkflowRequest::new(project, name, *workflow_type, command)
                })
                .await?;
            emit(json, &wf, || {
                format!(
                    "created workflow {} in {} (queue {})",
                    wf.name, wf.project, wf.queue
                )
            });
        }
        WorkflowCommand::List { project } => {
            let list = ops.list_workflows(project.as_deref()).await?;
            emit(json, &list, || {
                table(
                    &["PROJECT", "NAME", "TYPE", "QUEUE", "TIMEOUT", "COMMAND"],
                    list.iter().map(|w| {
                        vec![
                            w.project.clone(),
                            w.name.clone(),
                            w.workflow_type.to_string(),
                            w.queue.clone(),
                            format!("{}s", w.timeout_secs),
                            w.command.clone(),
                        ]
                    }),
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ages and durations as the console shows them ("3m ago", "took 12s"): a script wanting the
/// instants reads `--json`, and `run show` prints them whole.
pub(super) fn runs_table(runs: &[Run]) -> String {
    let now = chrono::Utc::now();
    table(
        &[
            "ID", "PROJECT", "WORKFLOW", "STATUS", "PRIO", "TRY", "WORKER", "EXIT", "CREATED",
            "TIME",
        ],
        runs.iter().map(|r| {
            vec![
                r.id.to_string(),
                r.project.clone(),
                r.workflow.clone(),
                r.status.to_string(),
                r.priority.to_string(),
                format!("{}/{}", r.attempt, r.max_attempts),
                opt(&r.worker_id),
                opt(&r.exit_code),
                output::ago(now, r.created_at),
                // The console's words: "wait 3m", "run 12s", "took 12s", "in 5m".
                crate::tui::panes::runs::timing_text(r, now),
            ]
        }),
    )
}

pub async fn run(ops: &Ops, json: bool, cmd: &RunCommand) -> CliResult<ExitCode> {
    match cmd {
        RunCommand::Enqueue {
            project,
            workflow,
            priority,
            payload,
            max_attempts,
            acknowledge,
        } => {
            let payload = payload.as_deref().map(read_payload).transpose()?;
            let req = EnqueueRequest {
                project,
                workflow,
                priority: *priority,
                payload: payload.as_deref(),
                max_attempts: *max_attempts,
                run_after: None,
                acknowledge: *acknowledge,
            };
            let (id, advisories) = ops.enqueue_run_with_advisories(&req).await?;
            if !json {
                for a in &advisories {
                    stderr_line(&format!("note: {} advisory {}", a.severity, a.describe()));
                }
            }
            #[derive(serde::Serialize)]
            struct Enqueued {
                #[serde(flatten)]
                run: Run,
                advisories: Vec<crate::domain::tool::Advisory>,
            }
            let answer = Enqueued {
                run: ops.run(id).await?,
                advisories,
            };
            emit(json, &answer, || id.to_string());
        }
        RunCommand::List {
            status,
            project,
            workflow,
            text,
            filter,
            limit,
            all,
            after,
            watch,
        } => {
            let view = super::runs_bulk::ListView {
                query: RunQuery {
                    status: *status,
                    project: project.as_deref(),
                    workflow: workflow.as_deref(),
                    text: text.as_deref(),
                    filter: filter.as_deref(),
                    ..RunQuery::default()
                },
                limit: *limit,
                all: *all,
                after: *after,
                watch: *watch,
            };
            return super::runs_bulk::list(ops, json, &view).await;
        }
        RunCommand::Show { id } => {
            let detail = ops.run_detail(run_id(id)?).await?;
            emit(json, &detail, || {
                let r = &detail.run;
                let mut out = format!(
                    "run {}  {}/{}  {}\nqueue {}  priority {}  attempt {}/{}  worker {}\npayload {}\ncreated {}  claimed {}  started {}  finished {}\nexit code {}  error {}{}",
                    r.id,
                    r.project,
                    r.workflow,
                    r.status,
                    r.queue,
                    r.priority,
                    r.attempt,
                    r.max_attempts,
                    opt(&r.worker_id),
                    r.payload_text(),
                    time(&r.created_at),
                    r.claimed_at
                        .as_ref()
                        .map(time)
                        .unwrap_or_else(|| "-".into()),
                    r.started_at
                        .as_ref()
                        .map(time)
                        .unwrap_or_else(|| "-".into()),
                    r.finished_at
                        .as_ref()
                        .map(time)
                        .unwrap_or_else(|| "-".into()),
                    opt(&r.exit_code),
                    opt(&r.error),
                    r.retry_of
                        .map(|o| format!("\nretry of run {o}"))
                        .unwrap_or_default(),
                );
                out.push_str("\n\nEVENTS\n");
                out.push_str(&table(
                    &["AT", "EVENT", "FROM", "TO", "ATTEMPT", "ACTOR", "MESSAGE"],
                    detail.events.iter().map(|e| {
                        vec![
                            time(&e.created_at),
                            e.event_type.clone(),
                            opt(&e.from_status),
                            opt(&e.to_status),
                            e.attempt.to_string(),
                            e.actor.clone(),
                            opt(&e.message),
                        ]
                    }),
                ));
                if !detail.artifacts.is_empty() {
                    out.push_str("\n\nARTIFACTS\n");
                    out.push_str(&table(
                        &["KEY", "SIZE", "SHA256", "URL"],
                        detail.artifacts.iter().map(|a| {
                            vec![
                                a.key.clone(),
                                opt(&a.size_bytes),
                                opt(&a.sha256),
                                opt(&a.url),
                            ]
                        }),
                    ));
                }
                out
            });
        }
        RunCommand::Claim {
            worker,
            queue,
            lease,
        } => {
            let claimed = ops
                .claim_next_run(worker, queue, Duration::from_secs(*lease))
                .await?;
            emit(json, &claimed, || match &claimed {
                Some(r) => r.id.to_string(),
                None => "nothing queued".into(),
            });
        }
        RunCommand::Start { id, worker } => {
            let r = ops.start_run(worker, run_id(id)?).await?;
            emit(json, &r, || format!("run {} is running", r.id));
        }
        RunCommand::Complete {
            id,
            worker,
            exit_code,
            error,
        } => {
            let r = ops
                .complete_run(worker, run_id(id)?, *exit_code, error.as_deref())
                .await?;
            emit(json, &r, || format!("run {} {}", r.id, r.status));
        }
        RunCommand::Cancel(args) => {
            return super::runs_bulk::bulk(ops, json, BulkAction::Cancel, args).await;
        }
        RunCommand::Retry(args) => {
            return super::runs_bulk::bulk(ops, json, BulkAction::Retry, args).await;
        }
        RunCommand::Logs { id, follow, search } => {
            return logs(ops, json, run_id(id)?, *follow, search.as_deref()).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(
    ops: &Ops,
    json: bool,
    id: i64,
    follow: bool,
    search: Option<&str>,
) -> CliResult<ExitCode> {
    ops.run(id).await?;
    let mut after = 0;
    loop {
        let batch = ops.run_logs(id, after, search, 1000).await?;
        for line in &batch {
            let text = if json {
                serde_json::to_string(line).map_err(|e| CliError::failed(e.to_string()))?
            } else {
                format!(
                    "{} {:<5} {}",
                    output::time(&line.created_at),
                    line.level.as_str(),
                    line.message
                )
            };
            if stdout_line(&text).is_err() {
                // Nobody reads any more (`| head`): following on would be work for no one.
                return Ok(ExitCode::SUCCESS);
            }
        }
        after = batch.last().map_or(after, |l| l.id);
        if batch.len() == 1000 {
            continue;
        }
        if !follow
            || ops.run(id).await?.status.is_terminal()
                && ops.run_logs(id, after, search, 1).await?.is_empty()
        {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn bench(cli: &Cli, args: &BenchArgs) -> CliResult<ExitCode> {
    match args {
        BenchArgs::Queue(a) => super::bench::queue(cli, a)
            .await
            .map(|()| ExitCode::SUCCESS),
        BenchArgs::Console(a) => super::bench::console(cli, a)
            .await
            .map(|()| ExitCode::SUCCESS),
        BenchArgs::Services(a) => super::bench::services(cli, a)
            .await
            .map(|()| ExitCode::SUCCESS),
        BenchArgs::Templates(a) => super::bench::templates(cli, a)
            .await
            .map(|()| ExitCode::SUCCESS),
        BenchArgs::Serve(a) => super::bench::serve(cli, a)
            .await
            .map(|()| ExitCode::SUCCESS),
    }
}
