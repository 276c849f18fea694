use std::process::ExitCode;

use clap::Parser;
use ospdeck::cli::{self, Cli};
use ospdeck::stdio::stderr_line;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_guard = init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            stderr_line(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(cli))
}

/// Logs go to a file in the state dir, never to the terminal the console draws on. Without a
/// writable state dir, logging is off rather than fatal.
fn init_logging() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let paths = ospdeck::config::Paths::platform().ok()?;
    std::fs::create_dir_all(&paths.log_dir).ok()?;
    let appender = tracing_appender::rolling::daily(&paths.log_dir, "ospdeck.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("OSPDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Some(guard)
}
