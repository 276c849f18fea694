//! `service …`, `manifest …`, `deploy`, `workers`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::output::{emit, opt, table, time};
use super::{Cli, CliError, CliResult, resolve_config};
use crate::config::read_file_config;
use crate::deploy::DeployerConfig;
use crate::domain::age::age;
use crate::domain::deployment::Liveness;
use crate::domain::manifest::{Bump, ChangeKind, MAX_MANIFEST_BYTES};
use crate::domain::service::WorkflowSpec;
use crate::domain::worker::WorkerPresence;
use crate::ops::{CreateService, ManifestProposal, Ops, Outcome, ServiceOverview};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service: its manifest 1.0.0, workflows, schema, registry entry and a queued deploy
    /// run, all in one transaction
    Create {
        /// The project it belongs to (its key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: String,
        /// Service name (default: from --from-file's manifest)
        #[arg(long)]
        name: Option<String>,
        /// Database schema of the service: [a-z][a-z0-9_]{1,62}
        #[arg(long)]
        schema: Option<String>,
        /// NAME:ACTIVITY,ACTIVITY… (repeatable)
        #[arg(long = "workflow", value_parser = parse_workflow_spec)]
        workflows: Vec<WorkflowSpec>,
        /// Take name, schema and workflows from a manifest file (`-` for stdin)
        #[arg(long, conflicts_with = "workflows")]
        from_file: Option<String>,
    },
    /// List services with manifest and worker status
    List,
    /// A service with its manifest status, worker status and recent runs
    Show {
        /// The service's schema
        #[arg(add = super::completions::services())]
        schema: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Show a manifest (the governing one unless --version)
    Show {
        /// The service's schema
        #[arg(add = super::completions::services())]
        service: String,
        /// This version instead of the governing one
        #[arg(long)]
        version: Option<String>,
    },
    /// Every version with its status
    History {
        /// The service's schema
        #[arg(add = super::completions::services())]
        service: String,
    },
    /// Field-level difference between two versions
    Diff {
        /// The service's schema
        #[arg(add = super::completions::services())]
        service: String,
        /// The older version
        from: String,
        /// The newer version
        to: String,
        /// Exit 1 when the versions differ and 0 when they are the same, as `git diff --exit-code`
        #[arg(long)]
        exit_code: bool,
    },
    /// Propose a new draft version from a file (`-` for stdin)
    Propose {
        /// The service's schema
        #[arg(add = super::completions::services())]
        service: String,
        /// The manifest JSON file (`-` for stdin)
        #[arg(long, value_hint = clap::ValueHint::FilePath)]
        file: String,
        /// Exact version (default: bump the highest existing one)
        #[arg(long, conflicts_with = "bump")]
        version: Option<String>,
        /// Bump the highest version by patch (the default), minor or major
        #[arg(long, value_parser = parse_bump)]
        bump: Option<Bump>,
    },
    /// Activate a draft; the previous version is superseded and the workflows follow
    Activate {
        /// The service's schema
        #[arg(add = super::completions::services())]
        service: String,
        /// The draft version to activate
        version: String,
    },
    /// Freeze the service: nothing can be activated until it is unlocked
    Lock {
        /// The service's schema
        #[arg(add = super::completions::services())]
        service: String,
    },
    /// Unfreeze the service: a new version can be activated again
    Unlock {
        /// The service's schema
        #[arg(add = super::completions::services())]
        service: String,
    },
}

fn parse_workflow_spec(s: &str) -> Result<WorkflowSpec, String> {
    s.parse().map_err(|e: crate::domain::InvalidInput| e.0)
}

fn parse_bump(s: &str) -> Result<Bump, String> {
    s.parse().map_err(|e: crate::domain::InvalidInput| e.0)
}

/// A file or stdin (`-`), refusing more than `limit` bytes instead of reading them all.
pub fn read_source(source: &str, limit: usize, what: &str) -> CliResult<String> {
    super::session_reads(source)?;
    let mut text = String::new();
    let cap = limit as u64 + 1;
    let read = if source == "-" {
        std::io::stdin().take(cap).read_to_string(&mut text)
    } else {
        std::fs::File::open(source).and_then(|f| f.take(cap).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::failed(format!("cannot read {what} from {source}: {e}")))?;
    if text.len() > limit {
        return Err(CliError::validation(format!(
            "{what} in {source} is over the {limit}-byte limit"
        )));
    }
    Ok(text)
}

pub async fn service(ops: &Ops, json: bool, cmd: &ServiceCommand) -> CliResult<ExitCode> {
    match cmd {
        ServiceCommand::Create {
            project,
            name,
            schema,
            workflows,
            from_file,
        } => {
            let manifest = from_file
                .as_deref()
                .map(|f| read_source(f, MAX_MANIFEST_BYTES, "manifest"))
                .transpose()?;
            let created = ops
                .create_service(&CreateService {
                    project,
                    name: name.as_deref(),
                    schema: schema.as_deref(),
                    workflows: workflows.clone(),
                    manifest: manifest.as_deref(),
                })
                .await?;
            #[derive(serde::Serialize)]
            struct Created {
                #[serde(flatten)]
                overview: ServiceOverview,
                deploy_run_id: i64,
            }
            let answer = Created {
                overview: ops.service_overview(&created.service.schema).await?,
                deploy_run_id: created.deploy_run_id,
            };
            emit(json, &answer, || {
                format!(
                    "created service {} ({}) with manifest {} active; deploy run {} queued",
                    created.service.schema,
                    created.service.name,
                    created.manifest.version,
                    created.deploy_run_id
                )
            });
        }
        ServiceCommand::List => {
            let services = ops.list_services().await?;
            emit(json, &services, || {
                table(
                    &[
                        "SCHEMA",
                        "NAME",
                        "PROJECT",
                        "MANIFEST",
                        "STATUS",
                        "WORKER",
                        "HEARTBEAT",
                    ],
                    services.iter().map(|s| {
                        vec![
                            s.service.schema.clone(),
                            s.service.name.clone(),
                            s.service.project.clone(),
                            opt(&s.manifest.as_ref().map(|m| m.version.clone())),
                            opt(&s.manifest.as_ref().map(|m| m.status)),
                            opt(&s.deployment.as_ref().map(|d| d.status)),
                            format!("{:?}", s.worker).to_lowercase(),
                        ]
                    }),
                )
            });
        }
        ServiceCommand::Show { schema } => {
            let detail = ops.service_detail(schema).await?;
            emit(json, &detail, || {
                let o = &detail.overview;
                let mut out = format!(
                    "service {} ({}) in project {}, created {} by {}\nmanifest {} {}\nworker {} ({}), attempts {}, last heartbeat {}",
                    o.service.schema,
                    o.service.name,
                    o.service.project,
                    time(&o.service.created_at),
                    o.service.created_by,
                    opt(&o.manifest.as_ref().map(|m| m.version.clone())),
                    opt(&o.manifest.as_ref().map(|m| m.status)),
                    opt(&o.deployment.as_ref().map(|d| d.status)),
                    format!("{:?}", o.worker).to_lowercase(),
                    opt(&o.deployment.as_ref().map(|d| d.attempts)),
                    opt(&o
                        .deployment
                        .as_ref()
                        .and_then(|d| d.last_heartbeat)
                        .map(|t| time(&t))),
                );
                if !detail.recent_runs.is_empty() {
                    out.push_str("\n\nrecent runs:\n");
                    out.push_str(&table(
                        &["ID", "WORKFLOW", "STATUS", "CREATED"],
                        detail.recent_runs.iter().map(|r| {
                            vec![
                                r.id.to_string(),
                                r.workflow.clone(),
                                r.status.to_string(),
                                time(&r.created_at),
                            ]
                        }),
                    ));
                }
                out
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn manifest(ops: &Ops, json: bool, cmd: &ManifestCommand) -> CliResult<ExitCode> {
    match cmd {
        ManifestCommand::Show { service, version } => {
            let m = ops.manifest(service, version.as_deref()).await?;
            emit(json, &m, || {
                format!(
                    "{} {} ({}), locked fields: {}\n{}",
                    service,
                    m.version,
                    m.status,
                    m.locked_fields.join(", "),
                    serde_json::to_string_pretty(&m.content).unwrap_or_default()
                )
            });
        }
        ManifestCommand::History { service } => {
            let history = ops.manifest_history(service).await?;
            emit(json, &history, || {
                table(
                    &["VERSION", "STATUS", "LOCKED FIELDS", "BY", "CREATED"],
                    history.iter().map(|m| {
                        vec![
                            m.version.clone(),
                            m.status.to_string(),
                            m.locked_fields.join(","),
                            m.created_by.clone(),
                            time(&m.created_at),
                        ]
                    }),
                )
            });
        }
        ManifestCommand::Diff {
            service,
            from,
            to,
            exit_code,
        } => {
            let changes = ops.manifest_diff(service, from, to).await?;
            emit(json, &changes, || {
                if changes.is_empty() {
                    return format!("{from} and {to} have the same content");
                }
                changes
                    .iter()
                    .map(|c| {
                        let show = |v: &Option<serde_json::Value>| {
                            v.as_ref().map(|v| v.to_string()).unwrap_or_default()
                        };
                        match c.kind {
                            ChangeKind::Added => format!("+ {} = {}", c.path, show(&c.after)),
                            ChangeKind::Removed => format!("- {} = {}", c.path, show(&c.before)),
                            ChangeKind::Changed => {
                                format!("~ {}: {} → {}", c.path, show(&c.before), show(&c.after))
                            }
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            return Ok(diff_status(*exit_code, changes.is_empty()));
        }
        ManifestCommand::Propose {
            service,
            file,
            version,
            bump,
        } => {
            let text = read_source(file, MAX_MANIFEST_BYTES, "manifest")?;
            let m = ops
                .propose_manifest(&ManifestProposal {
                    version: version.as_deref(),
                    bump: *bump,
                    ..ManifestProposal::new(service, &text)
                })
                .await?;
            emit(json, &m, || {
                format!("proposed {service} {} (draft)", m.version)
            });
        }
        ManifestCommand::Activate { service, version } => {
            let m = ops.activate_manifest_applied(service, version).await?;
            emit(json, &m, || {
                let already = already(m.outcome);
                format!("{service} {} is {already}active", m.value.version)
            });
        }
        ManifestCommand::Lock { service } => {
            let m = ops.lock_manifest_applied(service).await?;
            emit(json, &m, || {
                let already = already(m.outcome);
                format!("{service} {} is {already}locked", m.value.version)
            });
        }
        ManifestCommand::Unlock { service } => {
            let m = ops.unlock_manifest_applied(service).await?;
            emit(json, &m, || {
                if m.outcome.is_already() {
                    format!("{service} {} is already unlocked", m.value.version)
                } else {
                    format!("{service} {} is active again", m.value.version)
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "already " for an outcome that changed nothing, for human answers ("… is already active").
pub fn already(outcome: Outcome) -> &'static str {
    if outcome.is_already() { "already " } else { "" }
}

/// A diff's exit status: with `--exit-code`, 1 when the two differ (as `git diff --exit-code`).
pub fn diff_status(exit_code: bool, same: bool) -> ExitCode {
    if exit_code && !same {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The deployer of config.toml and where manifests are written for it.
pub fn deployer_settings(cli: &Cli) -> CliResult<(DeployerConfig, PathBuf)> {
    let resolved = resolve_config(cli)?;
    let config = read_file_config(&resolved.paths.config_file)
        .map_err(|e| CliError::validation(e.to_string()))?
        .map(|c| c.deployer)
        .unwrap_or_default();
    config.check().map_err(CliError::validation)?;
    let dir = config
        .manifest_dir
        .clone()
        .unwrap_or_else(|| resolved.paths.data_dir.join("manifests"));
    Ok((config, dir))
}

pub async fn deploy(cli: &Cli, ops: &Ops, schema: &str) -> CliResult<ExitCode> {
    let (config, dir) = deployer_settings(cli)?;
    let report = ops.deploy_service(schema, &config, &dir).await?;
    emit(cli.json, &report, || {
        let mut out = String::new();
        for s in &report.steps {
            out.push_str(&format!(
                "attempt {} {}: exit {}\n",
                s.attempt,
                s.step.as_str(),
                opt(&s.exit_code)
            ));
        }
        out.push_str(&format!("{schema}: {}", report.summary));
        out
    });
    Ok(if report.deployed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `workers`: every worker process (general and service) that beat within the hour, then the
/// service workers' deployments.
pub async fn workers(ops: &Ops, json: bool) -> CliResult<ExitCode> {
    /// A worker process as `--json` shows it: its presence and how alive it is by the clock. The
    /// service workers' deployments are part of the service (`service list --json`).
    #[derive(serde::Serialize)]
    struct Process<'a> {
        #[serde(flatten)]
        presence: &'a WorkerPresence,
        liveness: Liveness,
    }
    let now = chrono::Utc::now();
    let presence = ops.worker_presence().await?;
    let services = if json {
        Vec::new()
    } else {
        ops.workers().await?
    };
    let answer: Vec<Process> = presence
        .iter()
        .map(|p| Process {
            presence: p,
            liveness: p.liveness(now),
        })
        .collect();
    emit(json, &answer, || {
        let processes = if presence.is_empty() {
            "no worker has beaten within the last hour (start one with `ospdeck worker`)".to_owned()
        } else {
            table(
                &[
                    "WORKER",
                    "HOST",
                    "PID",
                    "QUEUES",
                    "SLOTS",
                    "HELD",
                    "HEARTBEAT",
                    "UP",
                    "VERSION",
                ],
                presence.iter().map(|w| {
                    // What a worker that stopped beating holds now, nobody knows.
                    let alive = w.liveness(now) == Liveness::Alive;
                    vec![
                        w.worker_id.clone(),
                        w.host.clone(),
                        w.pid.to_string(),
                        if w.queues.is_empty() {
                            "*".to_owned()
                        } else {
                            w.queues.join(",")
                        },
                        w.concurrency.to_string(),
                        if alive {
                            w.runs_held.to_string()
                        } else {
                            "?".to_owned()
                        },
                        format!("{} {}", w.liveness(now).as_str(), age(now, w.heartbeat_at)),
                        if alive {
                            age(now, w.started_at)
                        } else {
                            "-".to_owned()
                        },
                        w.version.clone(),
                    ]
                }),
            )
        };
        if services.is_empty() {
            return processes;
        }
        let deployments = table(
            &[
                "SERVICE",
                "STATUS",
                "WORKER",
                "ATTEMPTS",
                "HEARTBEAT",
                "LAST SEEN",
                "VERSION",
            ],
            services.iter().map(|w| {
                let d = &w.deployment;
                vec![
                    d.service_schema.clone(),
                    d.status.to_string(),
                    opt(&d.worker_id),
                    d.attempts.to_string(),
                    w.liveness.as_str().to_owned(),
                    opt(&d.last_heartbeat.map(|t| time(&t))),
                    opt(&d.worker_version),
                ]
            }),
        );
        format!("{processes}\n\nservice workers:\n{deployments}")
    });
    Ok(ExitCode::SUCCESS)
}
