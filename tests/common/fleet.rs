//! Worker processes against a store, as the fault and soak tests drive them.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use sqlx::Connection;

/// Starts `ospdeck worker` with `id` (4 slots) on `url`; its stderr goes to `log`.
pub fn spawn_worker(
    url: &str,
    home: &Path,
    id: &str,
    lease_secs: u32,
    log: &Path,
) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(env!("CARGO_BIN_EXE_ospdeck"))
        .args(["--db", url, "worker", "--id", id])
        .args(["--concurrency", "4", "--grace", "10"])
        .args(["--lease", &lease_secs.to_string()])
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}

/// Runs per status, read on a connection of its own; None while the store is away.
pub async fn run_counts(url: &str) -> Option<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
        sqlx::query_as("SELECT status, count(*) FROM ops.runs GROUP BY status")
            .fetch_all(&mut conn)
            .await
            .ok()?
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.ok()?;
        sqlx::query_as("SELECT status, count(*) FROM runs GROUP BY status")
            .fetch_all(&mut conn)
            .await
            .ok()?
    };
    Some(rows.into_iter().collect())
}

/// How often each run id was written to `file`, one id per line.
pub fn executions(file: &Path) -> HashMap<i64, usize> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut seen = HashMap::new();
    for id in text.lines().filter_map(|l| l.trim().parse::<i64>().ok()) {
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// A workflow command that appends the run id to `file` under `lock`, then takes `secs`.
pub fn append_command(lock: &Path, file: &Path, secs: f32) -> String {
    format!(
        "flock {} sh -c 'echo $OSPDECK_RUN_ID >> {}'; sleep {secs}",
        lock.display(),
        file.display()
    )
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
