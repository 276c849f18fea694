//! `ospdeck`, `ospdeck monitor` and `ospdeck demo`: open the console, optionally on a seeded,
//! moving demo workspace.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use super::{Cli, CliError, CliResult, resolve_config};
use crate::config::read_file_config;
use crate::ops::Ops;
use crate::root;
use crate::store::StoreOptions;
use crate::tui::{ConsoleOptions, run_console};
use crate::worker::{WorkerConfig, run_worker};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Seed the demo workspace and exit, without opening the console
    #[arg(long)]
    pub seed_only: bool,
}

async fn open_ops(cli: &Cli, read_only: bool) -> CliResult<(Ops, ConsoleOptions)> {
    let resolved = resolve_config(cli)?;
    let file = read_file_config(&resolved.paths.config_file)
        .map_err(|e| CliError::validation(e.to_string()))?
        .unwrap_or_default();
    let keys = file
        .keys
        .into_iter()
        .map(|(action, keys)| (action, keys.to_vec()))
        .collect();
    let mouse = !cli.no_mouse && file.mouse.unwrap_or(true);
    let ops = root::connect(&resolved, &store_options(read_only), cli.as_user.as_deref()).await?;
    let (deployer, manifest_dir) = super::services::deployer_settings(cli)?;
    Ok((
        ops,
        ConsoleOptions {
            read_only,
            read_only_reason: None,
            keys,
            loader: crate::tui::LoaderSettings {
                deployer,
                manifest_dir,
                changes: None,
            },
            mouse,
            history_file: Some(resolved.paths.command_history()),
        },
    ))
}

fn require_terminal() -> CliResult {
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(CliError::usage(
            "the console needs a terminal; in scripts use the commands (`ospdeck --help`)",
        ))
    }
}

/// How the console opens its store (the console bench opens it the same way). The loader queries
/// one at a time and the action task runs beside it (the change watcher holds a connection of its
/// own), so two pooled connections suffice. On SQLite each keeps a page cache that fills as the
/// store grows (up to 2 MiB by default): in a 30-minute soak that was most of the console's memory
/// growth, so the console's cache is small; the OS keeps the file's pages cached anyway.
pub(crate) fn store_options(read_only: bool) -> StoreOptions {
    StoreOptions {
        read_only,
        max_connections: 2,
        sqlite_cache_kib: Some(256),
        gateway_subject: None,
    }
}

pub async fn console(cli: &Cli, read_only: bool) -> CliResult<ExitCode> {
    // A read-only console opens nothing it could create, so a missing store is reported first:
    // on a fresh machine `monitor` says how to get one, in a script as well as on a terminal.
    // The read-write console checks the terminal first, so a script creates no store by mistake.
    if !read_only {
        require_terminal()?;
    }
    let (ops, options) = open_ops(cli, read_only).await?;
    require_terminal()?;
    run_console(ops, options).await.map_err(CliError::failed)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn demo(cli: &Cli, args: &DemoArgs) -> CliResult<ExitCode> {
    if !args.seed_only {
        require_terminal()?;
    }
    let (ops, options) = open_ops(cli, false).await?;
    let show = !cli.json && std::io::stderr().is_terminal();
    let bar = if show {
        let bar = ProgressBar::new(0).with_message("seeding the demo workspace");
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let (artifacts, _) = super::templates::artifact_settings(cli)?;
    let seeded = crate::ops::demo::seed_demo(&ops, artifacts, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    let summary = match &seeded {
        Some(s) => format!(
            "seeded project `{}`: {} workflows, {} services, {} runs in every state",
            crate::ops::demo::DEMO_PROJECT,
            s.workflows,
            s.services,
            s.runs
        ),
        None => format!(
            "project `{}` already exists; not seeding it again",
            crate::ops::demo::DEMO_PROJECT
        ),
    };
    if args.seed_only {
        super::emit_report(cli.json, &seeded, || summary.clone());
        return Ok(ExitCode::SUCCESS);
    }

    // Keep the queue moving while the console is open: a worker and a trickle of new runs.
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(run_worker(
        ops.clone(),
        WorkerConfig {
            concurrency: 2,
            lease: Duration::from_secs(30),
            grace: Duration::from_secs(2),
            idle_poll: Duration::from_secs(2),
            ..WorkerConfig::in_process(
                format!("demo-{}", std::process::id()),
                vec![
                    crate::ops::demo::DEMO_QUEUE.to_owned(),
                    crate::ops::DEPLOY_QUEUE.to_owned(),
                ],
            )
        },
        stop_rx.clone(),
    ));
    let feeder = tokio::spawn(crate::ops::demo::keep_feeding(ops.clone(), stop_rx));
    let result = run_console(ops, options).await;
    let _ = stop_tx.send(true);
    let _ = feeder.await;
    let _ = worker.await;
    result.map_err(CliError::failed)?;
    Ok(ExitCode::SUCCESS)
}
