//! `ospdeck worker`: the command line's arguments and signals around the headless worker.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;

use super::{CliError, CliResult};
use crate::deploy::DeployerConfig;
use crate::domain::workflow::MAX_TIMEOUT_SECS;
use crate::ops::{Ops, OpsResult, check_worker_id};
use crate::stdio::stderr_line;
use crate::worker::{WorkerConfig, default_worker_id, run_worker};

/// The longest a workflow may run ([`MAX_TIMEOUT_SECS`]) is the longest worth waiting for on
/// shutdown; a bound also keeps the shutdown deadline (now + grace) representable.
const MAX_GRACE_SECS: u64 = MAX_TIMEOUT_SECS as u64;

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
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_GRACE_SECS))]
    pub grace: u64,
    /// Serve this service's task queue (<schema>-tasks) and heartbeat in its worker registry
    #[arg(long, value_name = "SCHEMA", add = super::completions::services())]
    pub service: Option<String>,
}

/// The worker a command line asks for: its arguments checked, its deployer from config.toml.
fn worker_config(
    args: &WorkerArgs,
    (deployer, manifest_dir): (DeployerConfig, PathBuf),
) -> OpsResult<WorkerConfig> {
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
    Ok(WorkerConfig {
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
        announce: true,
    })
}

pub async fn run_cli(
    ops: Ops,
    args: &WorkerArgs,
    deployer: (DeployerConfig, PathBuf),
) -> CliResult<ExitCode> {
    let config = worker_config(args, deployer)?;
    if let Some(schema) = &config.service {
        // Refuse an unknown service now rather than heartbeat into nothing.
        ops.service(schema).await.map_err(CliError::from)?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        let _ = stop_tx.send(true);
    });
    stderr_line(&format!(
        "worker {} serving {} with concurrency {} on {}",
        config.id,
        if config.queues.is_empty() {
            "all queues".to_owned()
        } else {
            config.queues.join(", ")
        },
        config.concurrency,
        ops.store_location()
    ));
    let stats = run_worker(ops, config, stop_rx)
        .await
        .map_err(CliError::from)?;
    stderr_line(&format!(
        "worker stopped: {} claimed, {} succeeded, {} failed, {} canceled, {} lost, {} released",
        stats.claimed, stats.succeeded, stats.failed, stats.canceled, stats.lost, stats.released
    ));
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
