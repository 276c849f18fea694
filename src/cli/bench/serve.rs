//! `ospdeck bench serve`: the console over SSH. A real server (this binary, `serve`, in a child
//! process on a store of its own) and real SSH clients (russh's, in this process): time from
//! connecting to the first frame beside a bare handshake, the server's memory per session, its CPU
//! while every console idles, the bytes an idle console sends, and the same while runs change.

use std::io::IsTerminal;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use russh::client;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Figure, bench_workflow, figures_table, p50_p99, spinner};
use crate::cli::{Cli, CliError, CliResult};
use crate::ops::{EnqueueRequest, Ops};
use crate::stdio::stdout_line;
use crate::store::StoreOptions;

#[derive(Debug, Clone, Args)]
pub struct ServeBenchArgs {
    /// Sessions that open the console and then idle
    #[arg(long, default_value_t = 50)]
    pub idle: usize,
    /// Sessions that watch the Runs pane while a run changes state every 100 ms
    #[arg(long, default_value_t = 10)]
    pub active: usize,
    /// Seconds to measure the idle sessions
    #[arg(long, default_value_t = 60)]
    pub idle_secs: u64,
    /// Seconds to measure with the active sessions and the changing run
    #[arg(long, default_value_t = 20)]
    pub active_secs: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    sessions: usize,
    /// Connect → authenticated → session channel open, no console (the raw limit of a session).
    handshake_p50_ms: f64,
    /// Connect → the console's first frame on the client (the handshake included).
    first_frame_p50_ms: f64,
    first_frame_p99_ms: f64,
    server_rss_base_mb: f64,
    server_cpu_base_percent: f64,
    server_rss_idle_mb: f64,
    server_rss_active_mb: f64,
    rss_per_session_mb: f64,
    idle_cpu_percent: f64,
    idle_bytes_per_session_minute: f64,
    active_cpu_percent: f64,
    active_bytes_per_session_second: f64,
    run_changes: u64,
    /// After every client left.
    server_rss_after_mb: f64,
    server_cpu_after_percent: f64,
    server_alive_after: bool,
}

/// A client that trusts the server it started itself.
struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// One client session: its connection, and the bytes its console has sent so far.
struct Session {
    handle: client::Handle<Trusting>,
    input: russh::ChannelWriteHalf<client::Msg>,
    received: Arc<AtomicU64>,
    _reader: tokio::task::JoinHandle<()>,
}

fn failed(what: &str) -> impl Fn(&dyn std::fmt::Display) -> CliError + '_ {
    move |e| CliError::failed(format!("{what}: {e}"))
}

pub async fn serve(cli: &Cli, args: &ServeBenchArgs) -> CliResult {
    let show = !cli.json && std::io::stderr().is_terminal();
    let dir = tempfile::tempdir().map_err(|e| failed("cannot make a directory")(&e))?;
    let db = dir.path().join("bench.db");
    let url = format!("sqlite://{}", db.display());
    let store = crate::store::open(
        &url,
        &StoreOptions {
            max_connections: 2,
            ..StoreOptions::default()
        },
    )
    .await
    .map_err(|e| failed("cannot open the bench store")(&e))?;
    store
        .migrate()
        .await
        .map_err(|e| failed("cannot migrate")(&e))?;
    let ops = Ops::connect_as(store, None).await?;
    let workflow = bench_workflow(&ops, "bench-serve", "ospdeck bench serve").await?;
    ops.set_member(
        &workflow.project,
        "operator",
        crate::domain::permission::Role::Developer,
        false,
    )
    .await?;
    let key = new_key()?;
    let line = key
        .public_key()
        .to_openssh()
        .map_err(|e| failed("cannot write the key")(&e))?;
    ops.add_user_key("operator", &line).await?;
    let key = Arc::new(key);

    let bar = spinner(show, "starting ospdeck serve");
    // One user holds every session here: room for all of them, in all and per user.
    let sessions_at_most = args.idle + args.active + 8;
    let config = dir.path().join(".config/ospdeck");
    std::fs::create_dir_all(&config)
        .and_then(|()| {
            std::fs::write(
                config.join("config.toml"),
                format!(
                    "[serve]\nmax_sessions = {sessions_at_most}\n\
                     max_sessions_per_user = {sessions_at_most}\n"
                ),
            )
        })
        .map_err(|e| failed("cannot write the server's config")(&e))?;
    let mut server = tokio::process::Command::new(
        std::env::current_exe().map_err(|e| failed("cannot find this program")(&e))?,
    )
    .args(["--db", &url, "--json", "serve", "--listen", "127.0.0.1:0"])
    // Its host key, logs and config in the bench's directory, not the operator's.
    .env("HOME", dir.path())
    .env_remove("XDG_CONFIG_HOME")
    .env_remove("XDG_DATA_HOME")
    .env_remove("XDG_STATE_HOME")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .map_err(|e| failed("cannot start ospdeck serve")(&e))?;
    let pid = server
        .id()
        .ok_or_else(|| CliError::failed("ospdeck serve ended at once"))?;
    let mut first = String::new();
    if let Some(out) = server.stdout.take() {
        BufReader::new(out)
            .read_line(&mut first)
            .await
            .map_err(|e| failed("cannot read what ospdeck serve printed")(&e))?;
    }
    let started: serde_json::Value = serde_json::from_str(&first)
        .map_err(|e| failed(&format!("ospdeck serve printed {first:?}"))(&e))?;
    let address = started["listen"]
        .as_str()
        .ok_or_else(|| CliError::failed(format!("ospdeck serve printed {first:?}")))?
        .to_owned();
    bar.finish_and_clear();
    let base_rss = rss_mb(pid);
    // What the server spends with nobody connected (its change feed), for the figures after.
    let (cpu_before, t) = (cpu_secs(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base_cpu = (cpu_secs(pid) - cpu_before) / t.elapsed().as_secs_f64() * 100.0;

    // The raw limit: what a session costs before any console, five times.
    let mut handshakes = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (handle, _) = connect(&address, &key).await?;
        handshakes.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "")
            .await;
    }
    let (handshake_p50, _) = p50_p99(&mut handshakes);

    let bar = super::counter(
        show,
        "opening idle consoles",
        args.idle,
        crate::cli::output::Unit::Items("sessions"),
    );
    let mut first_frames = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..args.idle {
        let t = Instant::now();
        idle.push(open_console(&address, &key).await?);
        first_frames.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (first_p50, first_p99) = p50_p99(&mut first_frames);

    // Settle (first refreshes, presence), then measure a quiet store.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bar = spinner(
        show,
        &format!("{} consoles idle for {}s", args.idle, args.idle_secs),
    );
    let idle_rss = rss_mb(pid);
    let (cpu_before, bytes_before) = (cpu_secs(pid), received(&idle));
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_wall = t.elapsed().as_secs_f64();
    let idle_cpu = (cpu_secs(pid) - cpu_before) / idle_wall * 100.0;
    let idle_bytes = (received(&idle) - bytes_before) as f64;
    bar.finish_and_clear();

    let bar = spinner(
        show,
        &format!(
            "{} more consoles on Runs, a run changing every 100 ms, {}s",
            args.active, args.active_secs
        ),
    );
    let mut active = Vec::new();
    for _ in 0..args.active {
        let session = open_console(&address, &key).await?;
        // The Runs pane, where a changing run shows.
        session
            .input
            .data_bytes(b"4".to_vec())
            .await
            .map_err(|e| failed("cannot type")(&e))?;
        active.push(session);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, bytes_before) = (cpu_secs(pid), received(&active));
    let t = Instant::now();
    let mut changes = 0u64;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let mut queued: Option<i64> = None;
    while t.elapsed() < Duration::from_secs(args.active_secs) {
        ticks.tick().await;
        // One run's state changes every tick: queued, then canceled, then a new one queued.
        queued = match queued.take() {
            Some(id) => {
                ops.cancel_run(id).await?;
                None
            }
            None => Some(
                ops.enqueue_run(&EnqueueRequest {
                    project: &workflow.project,
                    workflow: &workflow.name,
                    priority: None,
                    payload: None,
                    max_attempts: None,
                    run_after: None,
                    acknowledge: false,
                })
                .await?,
            ),
        };
        changes += 1;
    }
    let active_wall = t.elapsed().as_secs_f64();
    let active_cpu = (cpu_secs(pid) - cpu_before) / active_wall * 100.0;
    let active_bytes = (received(&active) - bytes_before) as f64;
    let active_rss = rss_mb(pid);
    bar.finish_and_clear();

    let sessions = idle.len() + active.len();
    for session in idle.iter().chain(active.iter()) {
        let _ = session
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "")
            .await;
    }
    drop(idle);
    drop(active);
    // Nothing of a session may stay behind it: no CPU spent once the logouts are written (3 s
    // for 60 audit rows and the connections' ends), memory near what the sessions left.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu_before, t) = (cpu_secs(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left_cpu = (cpu_secs(pid) - cpu_before) / t.elapsed().as_secs_f64() * 100.0;
    let left_rss = rss_mb(pid);
    let alive = matches!(server.try_wait(), Ok(None));
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), server.wait()).await;

    let report = Report {
        sessions,
        handshake_p50_ms: handshake_p50,
        first_frame_p50_ms: first_p50,
        first_frame_p99_ms: first_p99,
        server_rss_base_mb: base_rss,
        server_cpu_base_percent: base_cpu,
        server_rss_idle_mb: idle_rss,
        server_rss_active_mb: active_rss,
        rss_per_session_mb: (active_rss - base_rss) / sessions.max(1) as f64,
        idle_cpu_percent: idle_cpu,
        idle_bytes_per_session_minute: idle_bytes / args.idle.max(1) as f64 / idle_wall * 60.0,
        active_cpu_percent: active_cpu,
        active_bytes_per_session_second: active_bytes / args.active.max(1) as f64 / active_wall,
        run_changes: changes,
        server_rss_after_mb: left_rss,
        server_cpu_after_percent: left_cpu,
        server_alive_after: alive,
    };
    if cli.json {
        let _ = stdout_line(&serde_json::to_string_pretty(&report).unwrap_or_default());
        return Ok(());
    }
    let figures = [
        Figure::new(
            "first frame p50 (connect → console)",
            format!("{:.1} ms", report.first_frame_p50_ms),
        )
        .at_most(report.first_frame_p50_ms, 300.0, "ms")
        .beside(format!("handshake alone {:.1} ms", report.handshake_p50_ms)),
        Figure::new(
            "first frame p99",
            format!("{:.1} ms", report.first_frame_p99_ms),
        )
        .at_most(report.first_frame_p99_ms, 300.0, "ms"),
        Figure::new(
            format!("server RSS per session ({sessions})"),
            format!("{:.2} MB", report.rss_per_session_mb),
        )
        .at_most(report.rss_per_session_mb, 3.0, "MB")
        .beside(format!(
            "server {:.1} MB with none, {:.1} MB with {} idle, {:.1} MB with all",
            base_rss, idle_rss, args.idle, active_rss
        )),
        Figure::new(
            format!("server CPU, {} idle consoles", args.idle),
            format!("{idle_cpu:.2}% of a core"),
        )
        .at_most(idle_cpu, 1.0, "%"),
        Figure::new(
            "bytes per idle console per minute",
            format!("{:.0} B", report.idle_bytes_per_session_minute),
        )
        .beside(format!(
            "an active console: {:.0} B/s",
            report.active_bytes_per_session_second
        )),
        Figure::new(
            format!(
                "server CPU, +{} active consoles, {changes} run changes",
                args.active
            ),
            format!("{active_cpu:.2}% of a core"),
        ),
        Figure::new(
            "after every client left: server RSS, CPU",
            format!("{left_rss:.1} MB, {left_cpu:.2}% of a core"),
        )
        .beside(format!(
            "alive: {alive}; before the first session {base_rss:.1} MB, {base_cpu:.2}% of a core"
        )),
    ];
    let _ = stdout_line(&figures_table(&figures));
    Ok(())
}

fn new_key() -> CliResult<PrivateKey> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut r| r.read_exact(&mut seed))
        .map_err(|e| failed("cannot make a key")(&e))?;
    Ok(PrivateKey::from(Ed25519Keypair::from_seed(&seed)))
}

/// Connects and authenticates with `key`, and opens a session channel.
async fn connect(
    address: &str,
    key: &Arc<PrivateKey>,
) -> CliResult<(client::Handle<Trusting>, russh::Channel<client::Msg>)> {
    let config = Arc::new(client::Config {
        nodelay: true,
        ..Default::default()
    });
    let mut handle = client::connect(config, address, Trusting)
        .await
        .map_err(|e| failed("cannot connect")(&e))?;
    let auth = handle
        .authenticate_publickey("operator", PrivateKeyWithHashAlg::new(key.clone(), None))
        .await
        .map_err(|e| failed("cannot authenticate")(&e))?;
    if !auth.success() {
        return Err(CliError::failed("the server refused the bench's key"));
    }
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| failed("cannot open a session")(&e))?;
    Ok((handle, channel))
}

/// A console at 80×24: answers once its first frame (the status bar) has arrived, and counts the
/// bytes it sends from then on.
async fn open_console(address: &str, key: &Arc<PrivateKey>) -> CliResult<Session> {
    let (handle, channel) = connect(address, key).await?;
    channel
        .request_pty(false, "xterm-256color", 80, 24, 0, 0, &[])
        .await
        .map_err(|e| failed("cannot ask for a terminal")(&e))?;
    channel
        .request_shell(false)
        .await
        .map_err(|e| failed("cannot open the console")(&e))?;
    let (mut read, input) = channel.split();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !contains(&seen, b"? help") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, read.wait()).await {
            Ok(Some(russh::ChannelMsg::Data { data })) => seen.extend_from_slice(&data),
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(CliError::failed(
                    "the console closed before its first frame",
                ));
            }
            Err(_) => return Err(CliError::failed("no first frame within 20 s")),
        }
    }
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let reader = tokio::spawn(async move {
        while let Some(msg) = read.wait().await {
            if let russh::ChannelMsg::Data { data } = msg {
                counted.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
    });
    Ok(Session {
        handle,
        input,
        received,
        _reader: reader,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn received(sessions: &[Session]) -> u64 {
    sessions
        .iter()
        .map(|s| s.received.load(Ordering::Relaxed))
        .sum()
}

/// The process's resident memory now, in MB of 10^6 bytes (NaN when /proc cannot tell).
fn rss_mb(pid: u32) -> f64 {
    super::status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
        .map_or(f64::NAN, |kib| kib as f64 * 1024.0 / 1e6)
}

/// User and system CPU seconds the process has used (NaN when /proc cannot tell).
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) if per_second > 0.0 => (user + system) / per_second,
        _ => f64::NAN,
    }
}
