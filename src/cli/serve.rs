//! `ospdeck serve`: flags and `[serve]` settings in, the server (src/serve) run until SIGTERM or
//! SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::sync::watch;

use super::{Cli, CliError, CliResult, resolve_config};
use crate::config::{ServeConfig, read_file_config};
use crate::serve::{ConsoleTemplate, Listening, ServeSettings};
use crate::stdio::{stderr_line, stdout_line};
use crate::store::StoreOptions;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:2222";
/// Sessions at most, whatever is asked (each holds a console and its connections).
const MOST_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:2222; 0.0.0.0:2222 exposes it)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Concurrent sessions at most (default 32)
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Close a session after this many seconds without input (default 3600, at most a day; 0: never)
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
}

#[derive(Serialize)]
struct Started {
    listen: String,
    host_key: String,
    fingerprint: String,
    created_key: bool,
}

fn settings(
    args: &ServeArgs,
    file: &ServeConfig,
    data_dir: &std::path::Path,
) -> CliResult<ServeSettings> {
    let listen = args
        .listen
        .as_deref()
        .or(file.listen.as_deref())
        .unwrap_or(DEFAULT_LISTEN);
    let listen: SocketAddr = listen.parse().map_err(|_| {
        CliError::usage(format!(
            "--listen {listen}: an address and port, like 127.0.0.1:2222 or [::1]:2222"
        ))
    })?;
    let max_sessions = args.max_sessions.or(file.max_sessions).unwrap_or(32);
    if !(1..=MOST_SESSIONS).contains(&max_sessions) {
        return Err(CliError::usage(format!(
            "--max-sessions must be 1 to {MOST_SESSIONS}"
        )));
    }
    // A day at most: a longer wait is no timeout, and an absurd one would overflow a deadline.
    let idle = args
        .idle_timeout
        .or(file.idle_timeout_secs)
        .unwrap_or(3600)
        .min(86_400);
    Ok(ServeSettings {
        listen,
        host_key: file
            .host_key
            .clone()
            .unwrap_or_else(|| data_dir.join("ssh_host_ed25519_key")),
        max_sessions,
        max_sessions_per_user: file
            .max_sessions_per_user
            .unwrap_or(8)
            .clamp(1, max_sessions),
        idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
        login_grace: Duration::from_secs(file.login_grace_secs.unwrap_or(30).clamp(1, 600)),
        auth_failures_per_minute: file
            .auth_failures_per_minute
            .unwrap_or(20)
            .clamp(1, 100_000),
    })
}

pub async fn serve(cli: &Cli, args: &ServeArgs) -> CliResult<ExitCode> {
    let resolved = resolve_config(cli)?;
    let file = read_file_config(&resolved.paths.config_file)
        .map_err(|e| CliError::validation(e.to_string()))?
        .unwrap_or_default();
    let settings = settings(args, &file.serve, &resolved.paths.data_dir)?;
    let store = super::open_store(
        &resolved,
        &StoreOptions {
            max_connections: 8,
            ..StoreOptions::default()
        },
        true,
    )
    .await?;
    let (deployer, manifest_dir) = super::services::deployer_settings(cli)?;
    let console = ConsoleTemplate {
        keys: file
            .keys
            .into_iter()
            .map(|(action, keys)| (action, keys.to_vec()))
            .collect(),
        loader: crate::tui::LoaderSettings {
            deployer,
            manifest_dir,
            changes: None,
        },
        mouse: file.mouse.unwrap_or(true),
    };
    let stop = stop_on_signals().map_err(CliError::failed)?;
    let json = cli.json;
    crate::serve::serve(
        settings,
        store,
        resolved.url.clone(),
        console,
        stop,
        |l: &Listening| {
            let started = Started {
                listen: l.address.to_string(),
                host_key: l.host_key.display().to_string(),
                fingerprint: l.fingerprint.clone(),
                created_key: l.created_key,
            };
            if json {
                let _ = stdout_line(&serde_json::to_string(&started).unwrap_or_default());
            } else {
                let made = if l.created_key { "made now, " } else { "" };
                let _ = stdout_line(&format!(
                    "ospdeck serve: listening on {} (ssh -p {} {})",
                    l.address,
                    l.address.port(),
                    l.address.ip()
                ));
                let _ = stdout_line(&format!(
                    "host key {} ({made}{})",
                    l.fingerprint,
                    l.host_key.display()
                ));
            }
        },
    )
    .await
    .map_err(CliError::failed)?;
    if !json {
        stderr_line("ospdeck serve: stopped");
    }
    Ok(ExitCode::SUCCESS)
}

/// Turns true on SIGTERM or SIGINT: the sessions are told and the server ends. The server never
/// touched its own terminal, so there is nothing of it to restore.
fn stop_on_signals() -> Result<watch::Receiver<bool>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}
