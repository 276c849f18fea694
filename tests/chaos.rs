//! Workers under faults, as real processes: 4 workers × 4 slots drain 2 000 runs whose command
//! appends the run id to a file under flock, while the store goes away. Afterwards every run
//! succeeded, no run was lost, none was executed twice, and every worker is still running.
//!
//! - PostgreSQL: a private cluster of the test's own (its own port and data directory, never the
//!   shared server), restarted twice and stopped for 30 s; a console (monitor, in tmux at 80×24)
//!   says the store is unreachable while it is, and is live again afterwards without a key.
//! - SQLite: another connection holds the write lock for 60 s.
//! - SQLite on a full disk (a small tmpfs filled up, then freed; needs root to mount).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fleet::{append_command, executions, run_counts, spawn_worker};
use common::tmux::Tmux;
use common::{BoxError, TestResult, is_root};
use ospdeck::domain::permission::Identity;
use ospdeck::domain::run::{NewRun, RunOptions};
use ospdeck::domain::workflow::WorkflowType;
use ospdeck::ops::Ops;
use ospdeck::ops::WorkflowRequest;
use ospdeck::store::{self, Store, StoreOptions};
use sqlx::Connection;

const RUNS: usize = 2000;
const WORKERS: usize = 4;

/// The runs, the workers, and the file their commands write.
struct Workload {
    dir: tempfile::TempDir,
    url: String,
    store: Arc<dyn Store>,
    workers: Vec<Child>,
}

impl Workload {
    /// Migrates the store at `url`, queues the runs and starts the workers.
    async fn start(url: String, dir: tempfile::TempDir) -> Result<Self, BoxError> {
        let store = store::open(
            &url,
            &StoreOptions {
                read_only: false,
                max_connections: 4,
                ..Default::default()
            },
        )
        .await?;
        store.migrate().await?;
        let ops = Ops::new(store.clone(), Identity::administrator("chaos"));
        ops.create_project("chaos", None).await?;
        let command = append_command(&dir.path().join("lock"), &dir.path().join("executed"), 0.2);
        let wf = ops
            .create_workflow(&WorkflowRequest {
                timeout_secs: Some(600),
                ..WorkflowRequest::new("chaos", "append", WorkflowType::Test, &command)
            })
            .await?;
        let runs: Vec<NewRun> = (0..RUNS)
            .map(|_| NewRun::new(wf.project_id, wf.id, &RunOptions::default()))
            .collect::<Result<_, _>>()?;
        for batch in runs.chunks(500) {
            ops.enqueue_runs(batch).await?;
        }
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home)?;
        let workers = (0..WORKERS)
            .map(|n| {
                let log = dir.path().join(format!("worker-{n}.err"));
                spawn_worker(&url, &home, &format!("chaos-{n}"), 60, &log)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            dir,
            url,
            store,
            workers,
        })
    }

    async fn counts(&self) -> Option<HashMap<String, i64>> {
        run_counts(&self.url).await
    }

    async fn succeeded(&self) -> i64 {
        self.counts()
            .await
            .and_then(|c| c.get("succeeded").copied())
            .unwrap_or(0)
    }

    /// Waits until at least `n` runs succeeded.
    async fn until_succeeded(&self, n: i64, limit: Duration) -> TestResult {
        let t = Instant::now();
        while self.succeeded().await < n {
            if t.elapsed() > limit {
                return Err(format!(
                    "only {} of {n} runs succeeded after {limit:?}; {}",
                    self.succeeded().await,
                    self.stderr()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    fn stderr(&self) -> String {
        (0..WORKERS)
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("worker-{n}.err")))
                    .unwrap_or_default();
                format!("worker {n}: {}", text.trim())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn executions(&self) -> HashMap<i64, usize> {
        executions(&self.dir.path().join("executed"))
    }

    /// Every run succeeded exactly once, and every worker outlived the fault; then the workers
    /// are stopped with SIGTERM and must exit cleanly.
    async fn finish(mut self, fault: &str) -> TestResult {
        self.until_succeeded(RUNS as i64, Duration::from_secs(300))
            .await?;
        let counts = self.counts().await.ok_or("store unreadable at the end")?;
        let executions = self.executions();
        let twice: Vec<(&i64, &usize)> = executions.iter().filter(|(_, n)| **n > 1).collect();
        let still_running: Vec<usize> = self
            .workers
            .iter_mut()
            .enumerate()
            .filter_map(|(n, w)| matches!(w.try_wait(), Ok(None)).then_some(n))
            .collect();
        println!(
            "{fault}: {} runs succeeded of {RUNS}, {} executed, {} executed twice, workers running {}/{WORKERS}\n{}",
            counts.get("succeeded").copied().unwrap_or(0),
            executions.len(),
            twice.len(),
            still_running.len(),
            self.stderr()
        );
        assert_eq!(
            counts.get("succeeded").copied(),
            Some(RUNS as i64),
            "{counts:?}"
        );
        assert_eq!(executions.len(), RUNS, "runs lost (never executed)");
        assert!(twice.is_empty(), "runs executed twice: {twice:?}");
        assert_eq!(
            still_running.len(),
            WORKERS,
            "a worker exited during the fault"
        );
        for worker in &mut self.workers {
            let _ = Command::new("kill").arg(worker.id().to_string()).status();
        }
        for worker in &mut self.workers {
            let status = worker.wait()?;
            assert!(status.success(), "worker exit after SIGTERM: {status}");
        }
        let _ = &self.store;
        Ok(())
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

/// A PostgreSQL cluster of the test's own: initdb into a temp dir, its own port and socket dir.
/// Stopped (immediately) when dropped. Runs its tools as the `postgres` OS user when the test
/// runs as root, since PostgreSQL refuses to run as root.
struct PrivateCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateCluster {
    fn create() -> Result<Self, BoxError> {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        bins.sort();
        let bin = bins
            .pop()
            .ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
        let dir = tempfile::Builder::new()
            .prefix("ospdeck-chaos-pg")
            .tempdir()?;
        if is_root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            if !owned.success() {
                return Err("cannot hand the cluster directory to the postgres user".into());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Self { bin, dir, port };
        cluster.tool(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )?;
        cluster.start()?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn tool(&self, name: &str, args: &[&str]) -> TestResult {
        let program = self.bin.join(name);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command.args(args).output()?;
        if !out.status.success() {
            return Err(format!(
                "{name} {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }

    fn pg_ctl(&self, action: &str, mode: Option<&str>) -> TestResult {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        let mut args = vec!["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options];
        if let Some(mode) = mode {
            args.extend(["-m", mode]);
        }
        args.push(action);
        self.tool("pg_ctl", &args)
    }

    fn start(&self) -> TestResult {
        self.pg_ctl("start", None)
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop", Some("immediate"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_twice_and_stopped_for_30s() -> TestResult {
    let cluster = PrivateCluster::create()?;
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres")).await?;
    sqlx::query("CREATE DATABASE chaos")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let dir = tempfile::tempdir()?;
    let work = Workload::start(cluster.url("chaos"), dir).await?;

    work.until_succeeded(200, Duration::from_secs(120)).await?;
    cluster.pg_ctl("restart", Some("fast"))?;
    work.until_succeeded(500, Duration::from_secs(120)).await?;
    // As after a crash: no shutdown checkpoint, connections cut at once.
    cluster.pg_ctl("restart", Some("immediate"))?;
    let console = Tmux::new("chaos");
    console.start(&work.dir.path().join("home"), &work.url, "monitor")?;
    console.wait_until(
        |s| s.contains("READ-ONLY"),
        "the monitor",
        Duration::from_secs(20),
    )?;
    work.until_succeeded(800, Duration::from_secs(120)).await?;
    cluster.pg_ctl("stop", Some("fast"))?;
    let stopped = Instant::now();
    let banner = console.wait_until(
        |s| s.contains("store unreachable since"),
        "the outage banner",
        Duration::from_secs(25),
    )?;
    println!("console {:?} into the outage:\n{banner}", stopped.elapsed());
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
    cluster.start()?;
    let restarted = Instant::now();
    let live = console.wait_until(
        |s| !s.contains("store unreachable"),
        "the console back to live",
        Duration::from_secs(30),
    )?;
    println!(
        "console live again {:?} after the restart:\n{live}",
        restarted.elapsed()
    );
    work.finish("PostgreSQL restarted twice, stopped 30 s")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_locked_for_60s() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("chaos.db").display());
    let work = Workload::start(url.clone(), dir).await?;
    work.until_succeeded(300, Duration::from_secs(120)).await?;

    let mut locker = sqlx::SqliteConnection::connect(&url).await?;
    sqlx::query("PRAGMA busy_timeout = 30000")
        .execute(&mut locker)
        .await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut locker).await?;
    let during = work.succeeded().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        work.succeeded().await,
        during,
        "nothing can finish while the write lock is held"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await?;
    locker.close().await?;
    work.finish("SQLite write-locked 60 s").await
}

/// A tmpfs mounted for the test; unmounted (lazily, in case a file is still open) when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Result<Self, BoxError> {
        let dir = tempfile::Builder::new()
            .prefix("ospdeck-chaos-disk")
            .tempdir()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()?;
        if !status.success() {
            return Err(format!("mounting a {megabytes} MB tmpfs failed").into());
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full; answers its path.
    fn fill(&self) -> Result<PathBuf, BoxError> {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let _ = file.sync_all();
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_that_is_then_freed() -> TestResult {
    if !is_root() {
        println!(
            "SKIPPED sqlite_on_a_full_disk_that_is_then_freed: mounting a small tmpfs needs root"
        );
        return Ok(());
    }
    let disk = SmallDisk::mount(32)?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", disk.path().join("chaos.db").display());
    let work = Workload::start(url, dir).await?;
    work.until_succeeded(300, Duration::from_secs(120)).await?;

    let filler = disk.fill()?;
    let during = work.succeeded().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let stalled = work.succeeded().await;
    std::fs::remove_file(&filler)?;
    println!("full disk: {during} succeeded when it filled, {stalled} after 20 s full");
    work.finish("SQLite on a full disk, then freed").await
}
