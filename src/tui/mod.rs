//! The operator console. `app` holds state and rules for keys, `view` draws it, `keymap` names the
//! keys; this module is the runtime: the terminal, the input thread, and a loader task that does
//! every database call so the render loop never waits on IO.

pub mod app;
pub mod keymap;
pub mod view;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::Utc;
use crossterm::event::{Event, KeyEventKind};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::{mpsc, watch};

use crate::ops::{Ops, RunQuery};
use app::{App, Data, Effect, RunsQuery};
use keymap::Keymap;
use view::Theme;

pub struct ConsoleOptions {
    pub read_only: bool,
    /// `[keys]` of config.toml: action name → keys.
    pub keys: BTreeMap<String, Vec<String>>,
}

/// Runs the console until the user quits or SIGTERM/SIGHUP arrives; the terminal is restored
/// on every way out, panics included (ratatui's hook).
pub async fn run_console(ops: Ops, options: ConsoleOptions) -> Result<(), String> {
    let keymap = Keymap::new(&options.keys, options.read_only)?;
    let mut app = App::new(
        ops.store().location(),
        ops.actor().to_owned(),
        keymap,
        options.read_only,
    );
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            return Err(format!("cannot open the terminal: {e}"));
        }
    };
    let result = match stop_on_signals() {
        Ok(stop) => drive(&mut terminal, &mut app, ops, read_input(), stop).await,
        Err(e) => Err(e),
    };
    ratatui::restore();
    result
}

/// Keys and resizes from the terminal. crossterm's read blocks; a plain thread keeps it away from
/// the async runtime.
fn read_input() -> mpsc::UnboundedReceiver<Event> {
    let (input_tx, input_rx) = mpsc::unbounded_channel::<Event>();
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            if input_tx.send(event).is_err() {
                break;
            }
        }
    });
    input_rx
}

/// Turns true on SIGTERM or SIGHUP (a closed SSH session), so the loop ends and restores the
/// terminal. Ctrl-C arrives as a key in raw mode.
fn stop_on_signals() -> Result<watch::Receiver<bool>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = hangup.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// The render loop on any backend (the bench drives it on a byte-counting one): draws only when
/// input or data changed something, never waits on the database.
pub async fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    ops: Ops,
    mut input_rx: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let (data_tx, mut data_rx) = mpsc::unbounded_channel::<Data>();
    let (effect_tx, effect_rx) = mpsc::unbounded_channel::<Effect>();
    let loader = tokio::spawn(load(ops, effect_rx, data_tx));
    for effect in app.start() {
        let _ = effect_tx.send(effect);
    }

    let theme = Theme::from_env();
    let mut dirty = true;
    while !app.quit && !*stop.borrow() {
        if dirty {
            terminal
                .draw(|frame| view::render(frame, app, theme))
                .map_err(|e| format!("cannot draw: {e}"))?;
            dirty = false;
        }
        tokio::select! {
            event = input_rx.recv() => match event {
                Some(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                    for effect in app.on_key(key) {
                        match effect {
                            Effect::Copy(text) => copy_osc52(&text),
                            other => { let _ = effect_tx.send(other); }
                        }
                    }
                    dirty = true;
                }
                Some(Event::Resize(..)) => dirty = true,
                Some(_) => {}
                None => break,
            },
            Some(data) = data_rx.recv() => {
                app.on_data(data, Utc::now());
                // Fold whatever else already arrived into this one redraw.
                while let Ok(more) = data_rx.try_recv() {
                    app.on_data(more, Utc::now());
                }
                dirty = true;
            }
            _ = stop.changed() => break,
        }
    }
    loader.abort();
    Ok(())
}

/// Copies through the terminal (OSC 52), which works over SSH where no clipboard library would.
fn copy_osc52(text: &str) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = std::io::stdout();
    let _ = write!(out, "\x1b]52;c;{encoded}\x07");
    let _ = out.flush();
}

/// Fewest milliseconds between two refreshes caused by changes: a busy queue changes thousands of
/// times a second, and nobody reads faster than this.
const REFRESH_GAP: Duration = Duration::from_millis(250);
/// Without a change watcher (it failed), poll this often.
const FALLBACK_POLL: Duration = Duration::from_secs(5);
/// The sparkline has minute resolution; its query (every run finished in the last hour) runs at
/// most this often.
const ACTIVITY_EVERY: Duration = Duration::from_secs(10);
/// Lease of a run claimed by hand from the console; an operator who walks away loses it to the
/// rescuer after this.
const CONSOLE_LEASE: Duration = Duration::from_secs(600);
/// Log lines fetched per round trip while following.
const LOG_PAGE: i64 = 1_000;

/// The loader: carries out effects and reloads what is on screen when the store changes.
async fn load(
    ops: Ops,
    mut effects: mpsc::UnboundedReceiver<Effect>,
    tx: mpsc::UnboundedSender<Data>,
) {
    let (changed_tx, mut changed_rx) = mpsc::channel::<()>(1);
    let watcher_ops = ops.clone();
    let watcher_tx = tx.clone();
    let watcher = tokio::spawn(async move {
        let mut watcher = match watcher_ops.change_watcher().await {
            Ok(w) => Some(w),
            Err(e) => {
                let _ = watcher_tx.send(Data::Failed(format!(
                    "live updates unavailable ({e}); refreshing every {}s",
                    FALLBACK_POLL.as_secs()
                )));
                None
            }
        };
        loop {
            let changed = match watcher.as_mut() {
                Some(w) => match w.changed(Duration::from_secs(60)).await {
                    Ok(changed) => changed,
                    Err(e) => {
                        tracing::warn!(error = %e, "change watcher failed");
                        tokio::time::sleep(FALLBACK_POLL).await;
                        true
                    }
                },
                None => {
                    tokio::time::sleep(FALLBACK_POLL).await;
                    true
                }
            };
            if changed {
                // A full channel already holds a pending refresh: nothing is lost by dropping this.
                let _ = changed_tx.try_send(());
                tokio::time::sleep(REFRESH_GAP).await;
            }
        }
    });

    let worker = console_worker_id(ops.actor());
    let mut query = RunsQuery::default();
    let mut activity_at: Option<Instant> = None;
    let mut open: Option<(i64, i64)> = None; // (run id, last log line id seen)
    loop {
        tokio::select! {
            effect = effects.recv() => match effect {
                None => break,
                Some(Effect::LoadRuns(q)) => {
                    query = q;
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                }
                Some(Effect::OpenRun(id)) => {
                    open = Some((id, 0));
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::CloseRun) => open = None,
                Some(Effect::Cancel(ids)) => {
                    act_on(&ops, &ids, "canceled", &tx, |ops, id| async move {
                        ops.cancel_run(id).await.map(|outcome| match outcome {
                            crate::domain::run::CancelOutcome::Requested => format!("{id} (stop requested)"),
                            _ => id.to_string(),
                        })
                    })
                    .await;
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::Retry(ids)) => {
                    act_on(&ops, &ids, "retried", &tx, |ops, id| async move {
                        ops.retry_run(id).await.map(|new| format!("{id} as {new}"))
                    })
                    .await;
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                }
                Some(Effect::Claim(queue)) => {
                    let data = match ops.claim_runs(&worker, std::slice::from_ref(&queue), 1, CONSOLE_LEASE).await {
                        Ok(claimed) => match claimed.first() {
                            Some(run) => Data::Done(format!("claimed run {} as {worker}", run.id)),
                            None => Data::Done(format!("nothing queued in {queue}")),
                        },
                        Err(e) => Data::Failed(e.to_string()),
                    };
                    let _ = tx.send(data);
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                }
                Some(Effect::Start(id)) => {
                    let data = match ops.start_run(&worker, id).await {
                        Ok(_) => Data::Done(format!("started run {id}")),
                        Err(e) => Data::Failed(e.to_string()),
                    };
                    let _ = tx.send(data);
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::Complete(id, code)) => {
                    let error = (code != 0).then(|| format!("exit code {code} (completed from the console)"));
                    let data = match ops.complete_run(&worker, id, code, error.as_deref()).await {
                        Ok(run) => Data::Done(format!("run {id} {}", run.status)),
                        Err(e) => Data::Failed(e.to_string()),
                    };
                    let _ = tx.send(data);
                    refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                    refresh_open(&ops, &mut open, &tx).await;
                }
                Some(Effect::Copy(_)) => {}
            },
            Some(()) = changed_rx.recv() => {
                refresh_runs(&ops, &query, &mut activity_at, &tx).await;
                refresh_open(&ops, &mut open, &tx).await;
            }
        }
    }
    watcher.abort();
}

/// The worker id the console claims, starts and completes runs as: `console-<user>`.
pub fn console_worker_id(user: &str) -> String {
    let user: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(64)
        .collect();
    format!("console-{}", if user.is_empty() { "user" } else { &user })
}

async fn refresh_runs(
    ops: &Ops,
    query: &RunsQuery,
    activity_at: &mut Option<Instant>,
    tx: &mpsc::UnboundedSender<Data>,
) {
    let q = RunQuery {
        status: query.status,
        text: Some(query.text.as_str()),
        limit: Some(app::RUN_PAGE),
        ..Default::default()
    };
    let data = match ops.list_runs(&q).await {
        Ok(runs) => Data::Runs(runs),
        Err(e) => Data::Failed(format!("loading runs: {e}")),
    };
    let _ = tx.send(data);
    let data = if activity_at.is_none_or(|at| at.elapsed() >= ACTIVITY_EVERY) {
        *activity_at = Some(Instant::now());
        ops.queue_overview().await.map(Data::Overview)
    } else {
        ops.queue_counts().await.map(Data::Counts)
    };
    let data = data.unwrap_or_else(|e| Data::Failed(format!("loading counts: {e}")));
    let _ = tx.send(data);
}

async fn refresh_open(ops: &Ops, open: &mut Option<(i64, i64)>, tx: &mpsc::UnboundedSender<Data>) {
    let Some((id, after)) = open.as_mut() else {
        return;
    };
    match ops.run_detail(*id).await {
        Ok(detail) => {
            let _ = tx.send(Data::Detail(Box::new(detail)));
        }
        Err(e) => {
            let _ = tx.send(Data::Failed(e.to_string()));
            return;
        }
    }
    // Catch up on logs a page at a time; a few pages per refresh keeps one chatty run from
    // starving the rest, the next refresh continues where this one stopped.
    for _ in 0..5 {
        match ops.run_logs(*id, *after, None, LOG_PAGE).await {
            Ok(lines) => {
                let n = lines.len() as i64;
                if let Some(last) = lines.last() {
                    *after = last.id;
                }
                if !lines.is_empty() {
                    let _ = tx.send(Data::Logs(*id, lines));
                }
                if n < LOG_PAGE {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.send(Data::Failed(format!("loading logs: {e}")));
                break;
            }
        }
    }
}

/// Applies one action to each run, then reports what worked and the first thing that did not.
async fn act_on<F, Fut>(
    ops: &Ops,
    ids: &[i64],
    verb: &str,
    tx: &mpsc::UnboundedSender<Data>,
    action: F,
) where
    F: Fn(Ops, i64) -> Fut,
    Fut: std::future::Future<Output = crate::ops::OpsResult<String>>,
{
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for &id in ids {
        match action(ops.clone(), id).await {
            Ok(text) => done.push(text),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let data = match (done.is_empty(), failures.first()) {
        (_, None) => Data::Done(format!("{verb} {}", done.join(", "))),
        (true, Some(first)) => Data::Failed(first.clone()),
        (false, Some(first)) => Data::Failed(format!(
            "{verb} {}; {} failed, first: {first}",
            done.join(", "),
            failures.len()
        )),
    };
    let _ = tx.send(data);
}
