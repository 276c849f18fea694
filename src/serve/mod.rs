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
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::domain::permission::Identity;
use crate::domain::user_key::{SessionAction, SessionEvent};
use crate::ops::Ops;
use crate::store::{Store, StoreKind, StoreOptions};
use crate::tui::{ConsoleOptions, LoaderSettings};
use connection::Connection;
use limits::{AuthLimiter, Slots};

/// How the server runs (`[serve]` in config.toml, and the flags of `ospdeck serve`).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub host_key: PathBuf,
    /// Concurrent sessions at most; one more is refused at authentication.
    pub max_sessions: usize,
    /// A session that sends nothing for this long is closed (None: never).
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
    waiting: Slots,
    stop: watch::Receiver<bool>,
    exe: PathBuf,
}

impl Shared {
    /// One audit row of a session: by its user once known, else by the server itself.
    async fn record(
        &self,
        action: SessionAction,
        user: Option<&str>,
        address: &str,
        detail: serde_json::Value,
    ) {
        let event = SessionEvent {
            action,
            address: address.to_owned(),
            detail,
        };
        let recorded = match user {
            Some(user) => {
                let identity = Identity {
                    user: user.to_owned(),
                    administrator: false,
                };
                Ops::new(self.store.clone(), identity)
                    .record_session_event(&event)
                    .await
            }
            None => self.ops.record_session_event(&event).await,
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot write a session event to the audit trail");
        }
    }

    /// `Ops` acting as `user`: on SQLite over the shared store, on PostgreSQL over connections
    /// of the session's own that carry the user as the JWT subject.
    async fn session_ops(&self, user: &str) -> Result<Ops, String> {
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
        crate::root::session_ops(store, user)
            .await
            .map_err(|e| e.to_string())
    }

    fn console_options(&self, read_only: bool) -> ConsoleOptions {
        ConsoleOptions {
            read_only,
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
    let feed = tokio::spawn(feed_changes(ops.clone(), changes_tx));
    let shared = Arc::new(Shared {
        store,
        ops,
        url,
        console,
        limiter: AuthLimiter::new(settings.auth_failures_per_minute, Duration::from_secs(60)),
        sessions: Slots::new(settings.max_sessions),
        // Connections still authenticating: enough for a crowd logging in at once, bounded so
        // that half-open handshakes cannot hold every socket.
        waiting: Slots::new(settings.max_sessions.max(16) * 2),
        stop: stop.clone(),
        exe: std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?,
    });
    let config = Arc::new(russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        keys: vec![host_key],
        inactivity_timeout: settings.idle_timeout,
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        nodelay: true,
        ..Default::default()
    });
    let result = accept(&listener, &shared, &config, &settings, stop).await;
    feed.abort();
    result
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
            crate::root::session_ops(probe, "ospdeck-serve-probe")
                .await
                .map_err(|e| e.to_string())?;
            Ops::connect_as(store, None)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// One change watcher for every session: each console's loader waits on this feed.
async fn feed_changes(ops: Ops, changes: watch::Sender<u64>) {
    let mut watcher = loop {
        match ops.change_watcher().await {
            Ok(w) => break w,
            Err(e) => {
                tracing::warn!(error = %e, "no change watcher yet; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    loop {
        match watcher.changed(Duration::from_secs(60)).await {
            Ok(true) => {
                changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "change watcher failed");
                tokio::time::sleep(Duration::from_secs(5)).await;
                changes.send_modify(|n| *n = n.wrapping_add(1));
            }
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
        let Some(waiting) = shared.waiting.take() else {
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
        let connection = Connection::new(shared.clone(), Some(peer), waiting);
        let authenticated = connection.authenticated.clone();
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
                    _ = closing.recv() => {
                        // The consoles have been told (their stop turned true); a moment to say
                        // goodbye, then the connection ends.
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
