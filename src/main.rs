use std::process::ExitCode;

use ospdeck::cli;
use ospdeck::stdio::stderr_line;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};

fn main() -> ExitCode {
    let cli = cli::parse_args();
    // Printed here, before any command runs, so the console's screen never shows it.
    let _log_guard = init_logging().unwrap_or_else(|warning| {
        stderr_line(&format!("warning: {warning}"));
        None
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            stderr_line(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(cli))
}

/// Logs go to a daily file in the state dir, never to the terminal the console draws on. A log
/// directory or file this user cannot write (say, left by a `sudo` run that kept HOME) is worth
/// one warning, not a failed command: the answer is `Err(warning)` and logging stays off. Without
/// a home directory there is nowhere to log, and the commands that need one say so themselves.
fn init_logging() -> Result<Option<WorkerGuard>, String> {
    let Ok(paths) = ospdeck::config::Paths::platform() else {
        return Ok(None);
    };
    let unwritable = |e: &dyn std::fmt::Display| {
        format!(
            "not logging to a file: cannot write to {}: {e}",
            paths.log_dir.display()
        )
    };
    std::fs::create_dir_all(&paths.log_dir).map_err(|e| unwritable(&e))?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("ospdeck.log")
        .build(&paths.log_dir)
        .map_err(|e| unwritable(&e))?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("OSPDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Ok(Some(guard))
}
