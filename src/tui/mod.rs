//! The operator console. `panes` holds a module per pane (its state, keys and drawing), `app` the
//! frame around them (modes, messages, the clock, key dispatch), `view` draws that frame,
//! `keymap` names the keys; this module is the runtime: the terminal, the input thread, the clock,
//! and a loader task that does every database call so the render loop never waits on IO.

pub mod app;
pub mod keymap;
mod loader;
pub mod panes;
pub mod quiet;
mod style;
pub mod view;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use crossterm::event::{Event, KeyEventKind};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::{mpsc, watch};

use crate::ops::Ops;
use app::{App, Data, Effect};
use keymap::Keymap;
pub use loader::{LoaderSettings, console_worker_id, log_search, log_window};
use quiet::QuietBackend;
use style::Theme;

/// Set while the console owns this process's terminal (`run_console`): only then can it hand the
/// terminal to `$PAGER` for a while. Consoles drawn elsewhere (tests, the bench) cannot.
static LOCAL_TERMINAL: AtomicBool = AtomicBool::new(false);
/// Set while `$PAGER` has the terminal: the input thread stops reading keys meant for it.
static INPUT_PAUSED: AtomicBool = AtomicBool::new(false);

pub struct ConsoleOptions {
    pub read_only: bool,
    /// `[keys]` of config.toml: action name → keys.
    pub keys: BTreeMap<String, Vec<String>>,
    pub loader: LoaderSettings,
}

/// Runs the console until the user quits or SIGTERM/SIGHUP arrives; the terminal is restored
/// on every way out, panics included (ratatui's hook).
pub async fn run_console(ops: Ops, options: ConsoleOptions) -> Result<(), String> {
    let keymap = Keymap::new(&options.keys, options.read_only)?;
    let user = if ops.identity().administrator {
        format!("{} (store admin)", ops.actor())
    } else {
        ops.actor().to_owned()
    };
    let mut app = App::new(ops.store_location(), user, keymap, options.read_only);
    // try_init puts the terminal in raw mode on the alternate screen and restores it on panic;
    // the terminal it answers is replaced by one whose backend stays quiet on empty frames.
    if let Err(e) = ratatui::try_init() {
        ratatui::restore();
        return Err(format!("cannot open the terminal: {e}"));
    }
    let mut terminal =
        match Terminal::new(QuietBackend::new(CrosstermBackend::new(std::io::stdout()))) {
            Ok(t) => t,
            Err(e) => {
                ratatui::restore();
                return Err(format!("cannot open the terminal: {e}"));
            }
        };
    LOCAL_TERMINAL.store(true, Ordering::SeqCst);
    let result = match stop_on_signals() {
        Ok(stop) => {
            drive(
                &mut terminal,
                &mut app,
                ops,
                options.loader,
                read_input(),
                stop,
            )
            .await
        }
        Err(e) => Err(e),
    };
    LOCAL_TERMINAL.store(false, Ordering::SeqCst);
    ratatui::restore();
    result
}

/// Keys and resizes from the terminal. crossterm's read blocks; a plain thread keeps it away from
/// the async runtime.
fn read_input() -> mpsc::UnboundedReceiver<Event> {
    let (input_tx, input_rx) = mpsc::unbounded_channel::<Event>();
    std::thread::spawn(move || {
        loop {
            // While `$PAGER` runs, the keys are its own: not read here at all.
            if INPUT_PAUSED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match crossterm::event::poll(Duration::from_millis(100)) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(_) => break,
            }
            let Ok(event) = crossterm::event::read() else {
                break;
            };
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

/// The render loop on any backend (the bench drives it on a byte-counting one): draws when input
/// or data changed something, or when the clock changes a value on screen (an age, a heartbeat
/// state), and never waits on the database.
pub async fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    ops: Ops,
    settings: LoaderSettings,
    mut input_rx: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let (data_tx, mut data_rx) = mpsc::unbounded_channel::<Data>();
    let (effect_tx, effect_rx) = mpsc::unbounded_channel::<Effect>();
    let loader = tokio::spawn(loader::load(ops, settings, effect_rx, data_tx));
    for effect in app.start() {
        let _ = effect_tx.send(effect);
    }

    let theme = Theme::from_env();
    if let Ok(size) = terminal.size() {
        app.set_screen(size.width, size.height);
    }
    let mut dirty = true;
    while !app.quit && !*stop.borrow() {
        if dirty {
            app.set_clock(Utc::now());
            terminal
                .draw(|frame| view::render(frame, app, theme))
                .map_err(|e| format!("cannot draw: {e}"))?;
            dirty = false;
        }
        // Sleep until the clock alone changes something on screen; None sleeps until input.
        let tick = app
            .next_visible_change()
            .map(|at| (at - Utc::now()).to_std().unwrap_or_default());
        tokio::select! {
            event = input_rx.recv() => match event {
                Some(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                    for effect in app.on_key(key) {
                        match effect {
                            Effect::Copy(text) => copy_osc52(&text),
                            Effect::OpenPager(id) if !LOCAL_TERMINAL.load(Ordering::SeqCst) => {
                                app.on_data(Data::Failed(format!(
                                    "no terminal of its own to page in: `ospdeck run logs {id}` prints the log"
                                )), Utc::now());
                            }
                            other => { let _ = effect_tx.send(other); }
                        }
                    }
                    dirty = true;
                }
                Some(Event::Resize(width, height)) => {
                    app.set_screen(width, height);
                    dirty = true;
                }
                Some(_) => {}
                None => break,
            },
            Some(data) = data_rx.recv() => {
                let data = match data {
                    Data::PagerFile { run_id, path, lines } => {
                        let said = page_file(terminal, &path);
                        let _ = std::fs::remove_file(&path);
                        match said {
                            Ok(()) => Data::Done(format!("paged {lines} lines of run {run_id}")),
                            Err(e) => Data::Failed(e),
                        }
                    }
                    other => other,
                };
                let mut effects = app.on_data(data, Utc::now());
                // Fold whatever else already arrived into this one redraw.
                while let Ok(more) = data_rx.try_recv() {
                    effects.extend(app.on_data(more, Utc::now()));
                }
                for effect in effects {
                    let _ = effect_tx.send(effect);
                }
                tracing::trace!("redraw: data");
                dirty = true;
            }
            _ = loader::sleep_for(tick) => {
                tracing::trace!("redraw: the clock changed a value on screen");
                dirty = true;
            }
            _ = stop.changed() => break,
        }
    }
    loader.abort();
    Ok(())
}

/// Hands the terminal to `$PAGER` (default `less -R`) on `path`, then takes it back: out of raw
/// mode and the alternate screen while it runs, the input thread paused so the pager gets every
/// key, and the whole screen redrawn after.
fn page_file<B: Backend>(terminal: &mut Terminal<B>, path: &std::path::Path) -> Result<(), String> {
    INPUT_PAUSED.store(true, Ordering::SeqCst);
    // The input thread notices within one poll.
    std::thread::sleep(Duration::from_millis(150));
    ratatui::restore();
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less -R".to_owned());
    // The pager is a shell word list as users write it (`less -R`, `most`); the file is an
    // argument of its own, never part of the text the shell parses.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{pager} \"$1\""))
        .arg("sh")
        .arg(path)
        .status();
    let back = crossterm::terminal::enable_raw_mode().and_then(|()| {
        crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)
    });
    INPUT_PAUSED.store(false, Ordering::SeqCst);
    back.map_err(|e| format!("cannot take the terminal back: {e}"))?;
    terminal
        .hide_cursor()
        .and_then(|()| terminal.clear())
        .map_err(|e| format!("cannot redraw: {e}"))?;
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{pager} ended with {s}")),
        Err(e) => Err(format!("cannot run {pager}: {e}")),
    }
}

/// Copies through the terminal (OSC 52), which works over SSH where no clipboard library would.
fn copy_osc52(text: &str) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = std::io::stdout();
    let _ = write!(out, "\x1b]52;c;{encoded}\x07");
    let _ = out.flush();
}
