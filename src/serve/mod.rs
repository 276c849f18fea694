//! `ospdeck serve`: the console over SSH. A public key names a user; that user's roles apply to
//! everything the session does. A PTY gets the console (the monitor for a user who may only
//! read), an exec request runs one CLI command, and nothing else is offered. On SQLite this
//! process is the only writer and `ops` checks every use case; on PostgreSQL each session
//! connects through the gateway identity path, so row-level security checks it again.

mod channel_out;
mod connection;
mod exec;
mod host_key;
mod limits;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::domain::permission::Identity;
use crate::domain::user_key::{SessionAction, SessionEvent};
use crate::ops::Ops;
use crate::store::{Store, StoreKind, StoreOptions};
use crate::tui::{ConsoleOptions, LoaderSettings};
use connection::Connection;
use limits::{AuthLimiter, PerKey, Slots, address_group};

/// How the server runs (`[serve]` in config.toml, and the flags of `ospdeck serve`).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub host_key: PathBuf,
    /// Concurrent sessions at most; one more is refused at authentication.
    pub max_sessions: usize,
    /// Concurrent sessions of one user at most.
    pub max_sessions_per_user: usize,
    /// A session whose client types nothing for this long is closed (None: never). Output does
    /// not count: a console redraws its clock on its own.
    pub idle_timeout: Option<Duration>,
    /// Time to authenticate after connecting.
    pub login_grace: Duration,
    /// Failed authentications per address per minute before the address is turned away.
    pub auth_failures_per_minute: usize,
}

/// What every session's console is opened with.
pub struct ConsoleTemplate {
    pub keys: BTreeMap<String, Vec<String>>,
    pub loader: LoaderSettings,
    pub mouse: bool,
}

/// What the server tells its operator once it listens.
pub struct Listening {
    pub address: SocketAddr,
    pub host_key: PathBuf,
    pub fingerprint: String,
    pub created_key: bool,
}

/// What the connections share.
struct Shared {
    /// The store as the server itself opened it: key lookups, the audit of sessions, and on
    /// SQLite every session's use cases.
    store: Arc<dyn Store>,
    ops: Ops,
    url: String,
    console: ConsoleTemplate,
    limiter: AuthLimiter,
    sessions: Slots,
    user_sessions: PerKey<String>,
    waiting: Slots,
    waiting_per_address: PerKey<IpAddr>,
    exe: PathBuf,
    /// Session events on their way to the audit trail, written by one task in order (a
    /// connection's end cannot wait for a write, and the last ones are written before exit).
    audit: mpsc::UnboundedSender<AuditItem>,
}

struct AuditItem {
    action: SessionAction,
    user: Option<String>,
    address: String,
    detail: serde_json::Value,
}

/// Tells a connection's consoles to leave, and why.
#[derive(Clone)]
pub(super) struct Leave {
    now: Arc<watch::Sender<bool>>,
    why: Arc<OnceLock<&'static str>>,
}

impl Default for Leave {
    fn default() -> Self {
        Self {
            now: Arc::new(watch::channel(false).0),
            why: Arc::new(OnceLock::new()),
        }
    }
}

impl Leave {
    fn now(&self, why: &'static str) {
        let _ = self.why.set(why);
        self.now.send_replace(true);
    }

    pub(super) fn signal(&self) -> watch::Receiver<bool> {
        self.now.subscribe()
    }

    pub(super) fn why(&self) -> Option<&'static str> {
        self.why.get().copied()
    }
}

/// When a connection's client last typed or resized, for the idle timeout.
#[derive(Clone)]
pub(super) struct Activity(Arc<AtomicU64>);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Default for Activity {
    fn default() -> Self {
        let activity = Self(Arc::new(AtomicU64::new(0)));
        activity.touch();
        activity
    }
}

impl Activity {
    pub(super) fn touch(&self) {
        let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.0.load(Ordering::Relaxed));
        epoch().elapsed().saturating_sub(last)
    }
}

impl Shared {
    /// One audit row of a session (by its user once known, else by the server itself), queued
    /// for the audit writer.
    fn record(
        &self,
        action: SessionAction,
        user: Option<&str>,
        address: &str,
        detail: serde_json::Value,
    ) {
        let _ = self.audit.send(AuditItem {
            action,
            user: user.map(str::to_owned),
            address: address.to_owned(),
            detail,
        });
    }

    /// `Ops` acting as `user`: on SQLite over the shared store, on PostgreSQL over connections
    /// of the session's own that carry the user as the JWT subject.
    async fn ops_for(&self, user: &str) -> Result<Ops, String> {
        let store = match self.store.kind() {
            StoreKind::Sqlite => self.store.clone(),
            StoreKind::Postgres => crate::store::open(
                &self.url,
                &StoreOptions {
                    max_connections: 2,
                    gateway_subject: Some(user.to_owned()),
                    ..StoreOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?,
        };
        crate::root::session_user_ops(store, user)
            .await
            .map_err(|e| e.to_string())
    }

    fn console_options(&self, read_only: Option<&str>) -> ConsoleOptions {
        ConsoleOptions {
            read_only: read_only.is_some(),
            read_only_reason: read_only.map(str::to_owned),
            keys: self.console.keys.clone(),
            loader: self.console.loader.clone(),
            mouse: self.console.mouse,
            // One user's `:` history is not another's, and the server's is nobody's.
            history_file: None,
        }
    }
}

/// Serves until `stop` turns true: every session is told it is closing, then the listener and
/// the sessions end. `url` is the store's URL, for the commands sessions run.
pub async fn serve(
    settings: ServeSettings,
    store: Arc<dyn Store>,
    url: String,
    console: ConsoleTemplate,
    stop: watch::Receiver<bool>,
    listening: impl FnOnce(&Listening),
) -> Result<(), String> {
    let (host_key, created_key) = host_key::load_or_create(&settings.host_key)?;
    let fingerprint = host_key::fingerprint(&host_key);
    // The server's own identity: on PostgreSQL it must be a gateway role, which the probe shows.
    let ops = server_ops(store.clone(), &url).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    listening(&Listening {
        address,
        host_key: settings.host_key.clone(),
        fingerprint,
        created_key,
    });
    tracing::info!(%address, "ospdeck serve listening");

    let mut console = console;
    let (changes_tx, changes) = watch::channel(0u64);
    console.loader.changes = Some(changes);
    // One change watcher for every session: each console's loader waits on this feed.
    let feed = tokio::spawn(crate::tui::feed_changes(ops.clone(), changes_tx));
    let (audit, audit_rx) = mpsc::unbounded_channel();
    let (audit_done_tx, audit_done) = watch::channel(false);
    let writer = tokio::spawn(write_audit(
        store.clone(),
        ops.clone(),
        audit_rx,
        audit_done,
    ));
    let shared = Arc::new(Shared {
        store,
        ops,
        url,
        console,
        limiter: AuthLimiter::new(settings.auth_failures_per_minute, Duration::from_secs(60)),
        sessions: Slots::new(settings.max_sessions),
        user_sessions: PerKey::new(settings.max_sessions_per_user),
        // Connections still authenticating: enough for a crowd logging in at once, bounded so
        // that half-open handshakes cannot hold every socket, nor one address many of them.
        waiting: Slots::new(settings.max_sessions.max(16).saturating_mul(2)),
        waiting_per_address: PerKey::new(4),
        exe: std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?,
        audit,
    });
    let config = Arc::new(russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        keys: vec![host_key],
        // russh's own timer counts output as activity (a console's clock never lets it fire):
        // the idle timeout is kept below, from the client's input. Keepalives find dead peers.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(60)),
        keepalive_max: 3,
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        nodelay: true,
        ..Default::default()
    });
    let result = accept(&listener, &shared, &config, &settings, stop).await;
    feed.abort();
    // The sessions' last events (logouts) are written before the server exits.
    drop(shared);
    let _ = audit_done_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    result
}

/// Writes session events to the audit trail, one after another, until told to finish; then
/// writes what is still queued.
async fn write_audit(
    store: Arc<dyn Store>,
    server: Ops,
    mut items: mpsc::UnboundedReceiver<AuditItem>,
    mut done: watch::Receiver<bool>,
) {
    loop {
        let item = tokio::select! {
            item = items.recv() => match item {
                Some(item) => item,
                None => return,
            },
            _ = done.changed() => break,
        };
        write_one(&store, &server, item).await;
    }
    while let Ok(item) = items.try_recv() {
        write_one(&store, &server, item).await;
    }
}

async fn write_one(store: &Arc<dyn Store>, server: &Ops, item: AuditItem) {
    let event = SessionEvent {
        action: item.action,
        address: item.address,
        detail: item.detail,
    };
    let recorded = match item.user {
        Some(user) => {
            let identity = Identity {
                user,
                administrator: false,
            };
            Ops::new(store.clone(), identity)
                .record_session_event(&event)
                .await
        }
        None => server.record_session_event(&event).await,
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "cannot write a session event to the audit trail");
    }
}

async fn server_ops(store: Arc<dyn Store>, url: &str) -> Result<Ops, String> {
    match store.kind() {
        StoreKind::Sqlite => Ops::connect_as(store, None)
            .await
            .map_err(|e| e.to_string()),
        StoreKind::Postgres => {
            // A session-like connection proves that the role trusts a JWT subject and that
            // row-level security applies to it; the server itself then acts as the bare role.
            let probe = crate::store::open(
                url,
                &StoreOptions {
                    max_connections: 1,
                    gateway_subject: Some("ospdeck-serve-probe".to_owned()),
                    ..StoreOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            crate::root::session_user_ops(probe, "ospdeck-serve-probe")
                .await
                .map_err(|e| e.to_string())?;
            Ops::connect_as(store, None)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn accept(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    config: &Arc<russh::server::Config>,
    settings: &ServeSettings,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let (closing_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        if shared.limiter.blocked(peer.ip(), Instant::now()) {
            tracing::debug!(%peer, "turned away: too many failed authentications");
            continue;
        }
        let waiting = shared.waiting.take().and_then(|all| {
            let here = shared.waiting_per_address.take(&address_group(peer.ip()))?;
            Some((all, here))
        });
        let Some(waiting) = waiting else {
            tracing::warn!(%peer, "turned away: too many connections still authenticating");
            continue;
        };
        let _ = socket.set_nodelay(true);
        // A second handle on the socket, to cut a connection that will not end by itself (a
        // half handshake past the login grace, a client that ignores the disconnect).
        let (socket, cutter) = match cuttable(socket) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot take the connection");
                continue;
            }
        };
        // Tells the connection's consoles to leave (and why), so that they restore the client's
        // terminal before the connection ends.
        let leave = Leave::default();
        let connection = Connection::new(shared.clone(), Some(peer), waiting, leave.clone());
        let authenticated = connection.authenticated.clone();
        let activity = connection.activity.clone();
        let idle_timeout = settings.idle_timeout;
        let config = config.clone();
        let grace = settings.login_grace;
        let mut closing = closing_tx.subscribe();
        sessions.spawn(async move {
            let started = Instant::now();
            // The client's first bytes must come within the grace too.
            let running = match tokio::time::timeout(
                grace,
                russh::server::run_stream(config, socket, connection),
            )
            .await
            {
                Ok(Ok(running)) => running,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "ssh handshake failed");
                    cut(&cutter);
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "ssh handshake too slow");
                    cut(&cutter);
                    return;
                }
            };
            let handle = running.handle();
            let deadline = tokio::time::sleep(grace.saturating_sub(started.elapsed()));
            tokio::pin!(running);
            tokio::pin!(deadline);
            let mut timed = false;
            let mut idle_check = tokio::time::interval(Duration::from_secs(5));
            let reason = loop {
                tokio::select! {
                    ended = &mut running => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, error = %e, "ssh session ended with an error");
                        }
                        return;
                    }
                    () = &mut deadline, if !timed => {
                        timed = true;
                        if !authenticated.load(Ordering::SeqCst) {
                            tracing::info!(%peer, "ssh login grace time passed");
                            break "authenticate sooner";
                        }
                    }
                    _ = idle_check.tick(), if idle_timeout.is_some() => {
                        if let Some(limit) = idle_timeout
                            && activity.idle_for() > limit
                        {
                            tracing::info!(%peer, "ssh session idle for {}s", limit.as_secs());
                            leave.now("closed after no input for a while");
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            break "idle for too long";
                        }
                    }
                    _ = closing.recv() => {
                        // The consoles are told; a moment to say goodbye, then the connection ends.
                        leave.now("ospdeck serve is stopping");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        break "ospdeck serve is stopping";
                    }
                }
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                handle.disconnect(
                    russh::Disconnect::ByApplication,
                    reason.into(),
                    String::new(),
                ),
            )
            .await;
            if tokio::time::timeout(Duration::from_secs(1), &mut running)
                .await
                .is_err()
            {
                cut(&cutter);
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
            }
        });
    }
    tracing::info!("ospdeck serve stopping");
    let _ = closing_tx.send(());
    // Every session ends within a moment of being told; none is waited for longer.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.abort_all();
    Ok(())
}

/// The socket for the session, and a second handle on it that can cut it from outside.
fn cuttable(
    socket: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let socket = socket.into_std()?;
    let cutter = socket.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(socket)?, cutter))
}

/// Ends a connection whatever its state: the session reads end of file and its writes fail.
fn cut(cutter: &std::net::TcpStream) {
    let _ = cutter.shutdown(std::net::Shutdown::Both);
}
