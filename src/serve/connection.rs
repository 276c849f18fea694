//! One SSH connection: who it is (the key names the user), and its session channels, each a
//! console on a PTY or one command. Everything a connection started ends when it is dropped,
//! however the client left.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossterm::event::Event;
use russh::keys::ssh_key::{HashAlg, PublicKey};
use russh::server::{Auth, Handle, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::sync::mpsc;

use super::channel_out::{ChannelOut, say};
use super::exec::{self, StdinFeed};
use super::limits::{KeySlot, Slot};
use super::{Activity, Leave, Shared};
use crate::domain::user_key::SessionAction;
use crate::ops::Ops;
use crate::tui::term_input::InputParser;
use crate::tui::{AbortOnDrop, RemoteTerminal, ScreenSize, run_remote_console};

/// Channels one connection may hold open at once (OpenSSH's multiplexing opens several).
const MOST_CHANNELS: usize = 4;
/// Keys and resizes waiting for a console, at most: a client typing faster than the console
/// draws loses the excess rather than growing the queue.
const MOST_PENDING_EVENTS: usize = 1024;
/// The largest screen a client may ask for (cells are held twice per console).
const MOST_COLUMNS: u32 = 500;
const MOST_ROWS: u32 = 200;

pub struct Connection {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    /// Held until the connection authenticates: bounds the connections still handshaking, in
    /// all and per address.
    waiting: Option<(Slot, KeySlot<std::net::IpAddr>)>,
    /// Set once authenticated; the login grace timer reads it.
    pub(super) authenticated: Arc<AtomicBool>,
    user: Option<String>,
    /// The session's place among the concurrent sessions, in all and of its user.
    session: Option<(Slot, KeySlot<String>)>,
    /// The session user's `Ops`, made on the first console.
    ops: Option<Ops>,
    /// When the client last typed or resized: the idle timeout counts from it.
    pub(super) activity: Activity,
    /// When the connection's consoles must leave (idle, the server stops).
    leave: Leave,
    channels: HashMap<ChannelId, ChannelState>,
    /// A refusal of this connection is in the audit trail already.
    refused: bool,
    /// Refused for want of room (the session limits), not for who it is: not a failure.
    turned_away_for_room: bool,
    /// The signed-in key's fingerprint.
    fingerprint: String,
    since: Instant,
}

#[derive(Default)]
struct ChannelState {
    /// The client's terminal, when it asked for one: its size as it last reported it.
    pty: Option<ScreenSize>,
    /// Keys and resizes for the console running on this channel.
    events: Option<mpsc::Sender<Event>>,
    parser: InputParser,
    /// Input for the command running on this channel.
    stdin: Option<StdinFeed>,
    /// The console or command; aborted when the channel or the connection goes.
    task: Option<AbortOnDrop>,
}

impl Connection {
    pub(super) fn new(
        shared: Arc<Shared>,
        peer: Option<SocketAddr>,
        waiting: (Slot, KeySlot<std::net::IpAddr>),
        leave: Leave,
    ) -> Self {
        Self {
            leave,
            activity: Activity::default(),
            shared,
            peer,
            waiting: Some(waiting),
            authenticated: Arc::new(AtomicBool::new(false)),
            user: None,
            session: None,
            ops: None,
            channels: HashMap::new(),
            refused: false,
            turned_away_for_room: false,
            fingerprint: String::new(),
            since: Instant::now(),
        }
    }

    fn address(&self) -> String {
        self.peer
            .map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    }

    /// A refused authentication: logged, and written to the audit trail once per connection (a
    /// client trying key after key is one refusal, not many). The connection counts against its
    /// address when it ends without signing in (see `Drop`).
    async fn refuse(&mut self, why: &str) -> Auth {
        let address = self.address();
        tracing::info!(address, why, "ssh authentication refused");
        if !self.refused {
            self.refused = true;
            let detail = serde_json::json!({ "reason": why });
            self.shared
                .record(SessionAction::Refused, None, &address, detail);
        }
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    /// The user `key` names, if any.
    async fn user_for(&self, key: &PublicKey) -> Result<Option<String>, String> {
        self.shared
            .ops
            .user_for_key(&fingerprint(key))
            .await
            .map_err(|e| e.to_string())
    }

    fn blocked(&self) -> bool {
        self.peer
            .is_some_and(|p| self.shared.limiter.blocked(p.ip(), Instant::now()))
    }

    /// The session user's `Ops`, opened on first use.
    async fn user_ops(&mut self) -> Result<Ops, String> {
        if let Some(ops) = &self.ops {
            return Ok(ops.clone());
        }
        let user = self.user.clone().ok_or("not signed in")?;
        let ops = self.shared.ops_for(&user).await?;
        self.ops = Some(ops.clone());
        Ok(ops)
    }

    /// Opens the console on `channel`: read-only when asked (`monitor`) or when the user may
    /// only read everywhere.
    async fn start_console(
        &mut self,
        channel: ChannelId,
        monitor: bool,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(size) = self.channels.get(&channel).and_then(|c| c.pty.clone()) else {
            session.channel_failure(channel)?;
            let handle = session.handle();
            let line = if monitor {
                "ospdeck: the monitor needs a terminal: ssh -t HOST monitor"
            } else {
                "ospdeck: no shell here: `ssh HOST` (with a terminal) opens the console, \
                 `ssh HOST COMMAND…` runs one command"
            };
            tokio::spawn(async move {
                say(&handle, channel, line).await;
                let _ = handle.exit_status_request(channel, 2).await;
                let _ = handle.close(channel).await;
            });
            return Ok(());
        };
        let ops = match self.user_ops().await {
            Ok(ops) => ops,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a session's store");
                session.channel_failure(channel)?;
                let handle = session.handle();
                tokio::spawn(async move {
                    say(&handle, channel, &format!("ospdeck: {e}")).await;
                    let _ = handle.exit_status_request(channel, 1).await;
                    let _ = handle.close(channel).await;
                });
                return Ok(());
            }
        };
        let read_only = if monitor {
            Some("the monitor, asked for with `ssh HOST monitor`")
        } else if only_reads(&ops).await {
            Some("you are a viewer in every project")
        } else {
            None
        };
        session.channel_success(channel)?;
        let (events, input) = mpsc::channel(MOST_PENDING_EVENTS);
        let handle = session.handle();
        let (out, sent) = ChannelOut::open(handle.clone(), channel);
        let options = self.shared.console_options(read_only);
        let leave = self.leave.clone();
        let remote = RemoteTerminal {
            out,
            size,
            input,
            stop: leave.signal(),
        };
        let task = tokio::spawn(async move {
            let result = run_remote_console(ops, options, remote).await;
            // The console's writers are gone with it: what they wrote is on its way.
            let _ = sent.await;
            let status = match (result, leave.why()) {
                (Ok(()), Some(why)) => {
                    say(&handle, channel, &format!("ospdeck: {why}; goodbye.")).await;
                    0
                }
                (Ok(()), None) => 0,
                (Err(e), _) => {
                    say(&handle, channel, &format!("ospdeck: {e}")).await;
                    1
                }
            };
            let _ = handle.exit_status_request(channel, status).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        if let Some(state) = self.channels.get_mut(&channel) {
            state.events = Some(events);
            state.task = Some(AbortOnDrop(task));
        }
        Ok(())
    }

    fn start_command(&mut self, channel: ChannelId, command: String, handle: Handle) {
        // Only a signed-in session gets here; without a user there is nobody to run it as.
        let Some(user) = self.user.clone() else {
            return;
        };
        let (stdin, stdin_rx) = StdinFeed::new();
        let shared = self.shared.clone();
        tracing::info!(user, command, "ssh exec");
        let task = tokio::spawn(async move {
            let request = exec::ExecRequest {
                exe: &shared.exe,
                url: &shared.url,
                user: &user,
                command: &command,
            };
            exec::run(request, handle, channel, stdin_rx).await;
        });
        if let Some(state) = self.channels.get_mut(&channel) {
            state.stdin = Some(stdin);
            state.task = Some(AbortOnDrop(task));
        }
    }
}

/// Whether the user may only read (`WhoAmI::reads_only`); unknown is read-only, since the store
/// decides again on every write anyway.
async fn only_reads(ops: &Ops) -> bool {
    match ops.whoami().await {
        Ok(who) => who.reads_only(),
        Err(_) => true,
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(user) = self.user.take() else {
            // One failed authentication, whatever the client tried (a key nobody registered, a
            // password, garbage, nothing at all): counted against its address.
            let Some(peer) = self.peer else {
                return;
            };
            if self.turned_away_for_room {
                return;
            }
            let turned_away = self.shared.limiter.fail(peer.ip(), Instant::now());
            if turned_away {
                tracing::warn!(%peer, "too many failed authentications: address turned away");
            }
            if !self.refused || turned_away {
                let reason = if self.refused {
                    "too many failed authentications: address turned away for a minute"
                } else {
                    "ended without signing in"
                };
                let detail = serde_json::json!({ "reason": reason });
                self.shared
                    .record(SessionAction::Refused, None, &peer.to_string(), detail);
            }
            return;
        };
        let address = self.address();
        let seconds = self.since.elapsed().as_secs();
        tracing::info!(user, address, seconds, "ssh logout");
        let detail = serde_json::json!({ "seconds": seconds });
        self.shared
            .record(SessionAction::Logout, Some(&user), &address, detail);
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(self
            .refuse("password offered; only public keys are accepted")
            .await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        _user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        Ok(self
            .refuse("keyboard-interactive offered; only public keys are accepted")
            .await)
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        if self.blocked() {
            return Ok(self
                .refuse("address turned away after too many failures")
                .await);
        }
        match self.user_for(key).await {
            Ok(Some(_)) => Ok(Auth::Accept),
            Ok(None) => Ok(self
                .refuse(&format!("unknown key {}", fingerprint(key)))
                .await),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look a key up");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_publickey(&mut self, _user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        // Asked again after the signature: the key may have been removed in between.
        let user = match self.user_for(key).await {
            Ok(Some(user)) => user,
            Ok(None) => return Ok(self.refuse("unknown key").await),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look a key up");
                return Ok(Auth::reject());
            }
        };
        let room = self.shared.sessions.take().and_then(|all| {
            let mine = self.shared.user_sessions.take(&user)?;
            Some((all, mine))
        });
        let Some(slot) = room else {
            let address = self.address();
            let detail = format!(
                "session limit reached ({} in all, {} per user)",
                self.shared.sessions.limit(),
                self.shared.user_sessions.limit()
            );
            tracing::warn!(user, address, "{detail}");
            self.turned_away_for_room = true;
            self.shared.record(
                SessionAction::Refused,
                Some(&user),
                &address,
                serde_json::json!({ "reason": detail }),
            );
            return Ok(Auth::reject());
        };
        self.session = Some(slot);
        self.waiting = None;
        self.fingerprint = fingerprint(key);
        self.since = Instant::now();
        self.user = Some(user);
        self.authenticated.store(true, Ordering::SeqCst);
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        let address = self.address();
        if let Some(user) = &self.user {
            tracing::info!(user, address, "ssh login");
            let detail = serde_json::json!({ "key": self.fingerprint });
            self.shared
                .record(SessionAction::Login, Some(user), &address, detail);
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= MOST_CHANNELS {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        self.channels.insert(channel.id(), ChannelState::default());
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(state) => {
                state.pty = Some(ScreenSize::new(columns(col_width), rows(row_height)));
                session.channel_success(channel)?;
            }
            None => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.activity.touch();
        if let Some(state) = self.channels.get_mut(&channel) {
            let (width, height) = (columns(col_width), rows(row_height));
            if let Some(size) = &state.pty {
                size.set(width, height);
            }
            // A resize dropped on a full queue is not lost: the console reads the size at
            // every frame.
            if let Some(events) = &state.events {
                let _ = events.try_send(Event::Resize(width, height));
            }
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start_console(channel, false, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let busy = self
            .channels
            .get(&channel)
            .is_none_or(|state| state.task.is_some());
        let Ok(command) = std::str::from_utf8(data) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if busy {
            session.channel_failure(channel)?;
            return Ok(());
        }
        match command.trim() {
            "monitor" => self.start_console(channel, true, session).await,
            "" | "console" => self.start_console(channel, false, session).await,
            command => {
                session.channel_success(channel)?;
                self.start_command(channel, command.to_owned(), session.handle());
                Ok(())
            }
        }
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.activity.touch();
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        // Nothing here waits: while a callback waits, the connection moves no data at all.
        if let Some(events) = &state.events {
            for event in state.parser.feed(data) {
                let _ = events.try_send(event);
            }
        } else if let Some(stdin) = &state.stdin
            && !stdin.push(data)
        {
            // Too much unread (or the command is gone): its input ends here.
            state.stdin = None;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.stdin = None;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(name, "ssh subsystem refused");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A client's environment reaches nothing here (LANG, TERM and the like included).
        session.channel_failure(channel)?;
        Ok(())
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A terminal's width as the console takes it: at most `MOST_COLUMNS`; 0, which a client sends
/// when it has no terminal of its own to measure (`ssh -tt` from a script), is 80.
fn columns(cells: u32) -> u16 {
    match cells {
        0 => 80,
        n => u16::try_from(n.min(MOST_COLUMNS)).unwrap_or(80),
    }
}

/// The same for the height: 0 is 24.
fn rows(cells: u32) -> u16 {
    match cells {
        0 => 24,
        n => u16::try_from(n.min(MOST_ROWS)).unwrap_or(24),
    }
}

#[cfg(test)]
mod tests {
    use super::{columns, rows};

    #[test]
    fn a_size_the_client_could_not_measure_is_80_by_24_and_a_huge_one_is_capped() {
        assert_eq!((columns(0), rows(0)), (80, 24));
        assert_eq!((columns(120), rows(40)), (120, 40));
        assert_eq!((columns(u32::MAX), rows(u32::MAX)), (500, 200));
    }
}
