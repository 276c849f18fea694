//! The operator console. `panes` holds a module per pane (its state, keys and drawing), `app` the
//! frame around them (modes, messages, the clock, key dispatch), `view` draws that frame,
//! `keymap` names the keys; this module is the runtime: the terminal, the input thread, the clock,
//! and a loader task that does every database call so the render loop never waits on IO.

pub mod app;
pub mod command;
pub mod keymap;
mod loader;
mod mouse;
pub mod overlay;
pub mod panes;
pub mod quiet;
mod style;
pub mod term_input;
pub mod view;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use base64::Engine;
use chrono::Utc;
use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind, MouseEventKind,
};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::{mpsc, watch};

use crate::ops::Ops;
use app::{App, Data, Effect};
use keymap::Keymap;
pub(crate) use loader::{AbortOnDrop, feed_changes};
pub use loader::{LoaderSettings, console_worker_id, log_search, log_window};
use quiet::QuietBackend;
pub use quiet::ScreenSize;
use style::Theme;

/// Set while the console owns this process's terminal (`run_console`): only then can it hand the
/// terminal to `$PAGER` for a while. Consoles drawn elsewhere (tests, the bench) cannot.
static LOCAL_TERMINAL: AtomicBool = AtomicBool::new(false);

pub struct ConsoleOptions {
    pub read_only: bool,
    /// Why, when it is not the monitor asked for on this machine (an SSH session's user who may
    /// only read, say): shown when a writing key is pressed.
    pub read_only_reason: Option<String>,
    /// `[keys]` of config.toml: action name → keys.
    pub keys: BTreeMap<String, Vec<String>>,
    pub loader: LoaderSettings,
    /// Clicks and the wheel (`--no-mouse` or `mouse = false` turn them off, which gives the
    /// terminal's own selection back).
    pub mouse: bool,
    /// Where the `:` history is kept between sessions (read-only: read, never written).
    pub history_file: Option<PathBuf>,
}

/// Runs the console until the user quits or SIGTERM/SIGHUP arrives; the terminal is restored
/// on every way out, panics included (ratatui's hook).
pub async fn run_console(ops: Ops, options: ConsoleOptions) -> Result<(), String> {
    let mut app = new_app(&ops, &options)?;
    if std::env::var_os("TMUX").is_some() {
        // tmux drops an application's OSC 52 unless told otherwise (its default is `external`).
        app.copy_hint =
            Some("inside tmux it reaches the clipboard only with `set -g set-clipboard on`".into());
    }
    // try_init puts the terminal in raw mode on the alternate screen and restores it on panic;
    // the terminal it answers is replaced by one whose backend stays quiet on empty frames.
    if let Err(e) = ratatui::try_init() {
        restore_terminal();
        return Err(format!("cannot open the terminal: {e}"));
    }
    release_mouse_on_panic();
    if options.mouse {
        // Without it the console still works by keys; the terminal keeps its own selection.
        let _ = crossterm::execute!(std::io::stdout(), EnableMouseCapture);
    }
    let mut terminal =
        match Terminal::new(QuietBackend::new(CrosstermBackend::new(std::io::stdout()))) {
            Ok(t) => t,
            Err(e) => {
                restore_terminal();
                return Err(format!("cannot open the terminal: {e}"));
            }
        };
    LOCAL_TERMINAL.store(true, Ordering::SeqCst);
    let result = match stop_on_signals() {
        Ok(stop) => {
            let io = ConsoleIo {
                input: read_input(),
                stop,
                copy: Box::new(|text: &str| write_osc52(&mut std::io::stdout(), text)),
            };
            drive(&mut terminal, &mut app, ops, options.loader, io).await
        }
        Err(e) => Err(e),
    };
    LOCAL_TERMINAL.store(false, Ordering::SeqCst);
    restore_terminal();
    if !options.read_only
        && !app.command_line.history.is_empty()
        && let Some(path) = &options.history_file
    {
        save_history(path, &app.command_line.history_text());
    }
    result
}

/// The console's state for `ops`' user: the keymap (read-only hides the keys that write) and the
/// `:` history kept from earlier sessions.
fn new_app(ops: &Ops, options: &ConsoleOptions) -> Result<App, String> {
    let keymap = Keymap::new(&options.keys, options.read_only)?;
    let user = if ops.identity().administrator {
        format!("{} (store admin)", ops.actor())
    } else {
        ops.actor().to_owned()
    };
    let mut app = App::new(ops.store_location(), user, keymap, options.read_only);
    if let Some(reason) = &options.read_only_reason {
        app.read_only_reason = reason.clone();
    }
    if let Some(text) = options
        .history_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        app.command_line.load_history(&text);
    }
    Ok(app)
}

/// A terminal that is not this process's own, such as an SSH session's: frames go out through
/// `out` (cloned for the OSC 52 copies), keys and resizes come in as events, `size` is what the
/// client last reported, and `stop` ends the console (the server is closing).
pub struct RemoteTerminal<W> {
    pub out: W,
    pub size: ScreenSize,
    pub input: mpsc::Receiver<Event>,
    pub stop: watch::Receiver<bool>,
}

/// Runs the console on a remote terminal until its user quits, the input ends (the client went
/// away) or `stop` turns true; the same loop as [`run_console`], with the terminal's modes set and
/// reset by escape sequences on the stream rather than on this process's tty.
pub async fn run_remote_console<W>(
    ops: Ops,
    options: ConsoleOptions,
    remote: RemoteTerminal<W>,
) -> Result<(), String>
where
    W: Write + Clone + Send + 'static,
{
    use crossterm::{cursor, terminal as term};
    let mut app = new_app(&ops, &options)?;
    let RemoteTerminal {
        mut out,
        size,
        input,
        stop,
    } = remote;
    let opened =
        crossterm::execute!(out, term::EnterAlternateScreen, cursor::Hide).and_then(|()| {
            if options.mouse {
                crossterm::execute!(out, EnableMouseCapture)
            } else {
                Ok(())
            }
        });
    opened.map_err(|e| format!("cannot open the terminal: {e}"))?;
    let mut terminal = Terminal::new(QuietBackend::sized(
        CrosstermBackend::new(out.clone()),
        size,
    ))
    .map_err(|e| format!("cannot open the terminal: {e}"))?;
    let mut copy_out = out.clone();
    let io = ConsoleIo {
        input,
        stop,
        copy: Box::new(move |text: &str| write_osc52(&mut copy_out, text)),
    };
    let result = drive(&mut terminal, &mut app, ops, options.loader, io).await;
    // The client may already be gone; there is nothing to restore then.
    let _ = crossterm::execute!(
        out,
        DisableMouseCapture,
        term::LeaveAlternateScreen,
        cursor::Show
    );
    result
}

/// Gives the terminal back: mouse capture off (ratatui's restore does not know about it), then
/// raw mode and the alternate screen. Disabling a capture never enabled is harmless.
fn restore_terminal() {
    let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
}

/// A panic releases the mouse before ratatui's hook (set by `try_init`) restores the rest and
/// prints the panic; otherwise the shell would be left receiving mouse escape codes.
fn release_mouse_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        previous(info);
    }));
}

/// Keeps the `:` history for the next session; a history that cannot be written is not worth
/// an error on the way out.
fn save_history(path: &std::path::Path, text: &str) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, text) {
        tracing::debug!("cannot keep the command history in {}: {e}", path.display());
    }
}

/// Whether the input thread reads the terminal: while $EDITOR runs, its keys are its own.
static INPUT: AtomicU8 = AtomicU8::new(INPUT_READING);
const INPUT_READING: u8 = 0;
const INPUT_PAUSE_ASKED: u8 = 1;
const INPUT_PAUSED: u8 = 2;
/// Keys waiting for the render loop, at most (the thread waits while it is full).
const INPUT_QUEUE: usize = 1024;
/// How long the input thread waits for a key before it looks at `INPUT` again.
const INPUT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Keys and resizes from the terminal. crossterm's read blocks; a plain thread keeps it away from
/// the async runtime. It polls rather than blocks in `read`, so that it can stand aside for an
/// external editor (`INPUT`).
fn read_input() -> mpsc::Receiver<Event> {
    let (input_tx, input_rx) = mpsc::channel::<Event>(INPUT_QUEUE);
    std::thread::spawn(move || {
        loop {
            match INPUT.load(Ordering::SeqCst) {
                INPUT_PAUSE_ASKED => {
                    INPUT.store(INPUT_PAUSED, Ordering::SeqCst);
                    continue;
                }
                INPUT_PAUSED => {
                    std::thread::sleep(INPUT_POLL / 2);
                    continue;
                }
                _ => {}
            }
            match crossterm::event::poll(INPUT_POLL) {
                Ok(false) => {}
                Ok(true) => match crossterm::event::read() {
                    Ok(event) => {
                        if input_tx.blocking_send(event).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                Err(_) => break,
            }
        }
    });
    input_rx
}

/// Stops the input thread reading (it answers within one poll); false if it did not answer,
/// as when no input thread runs (the bench).
fn pause_input() -> bool {
    INPUT.store(INPUT_PAUSE_ASKED, Ordering::SeqCst);
    for _ in 0..40 {
        if INPUT.load(Ordering::SeqCst) == INPUT_PAUSED {
            return true;
        }
        std::thread::sleep(INPUT_POLL / 4);
    }
    false
}

fn resume_input() {
    INPUT.store(INPUT_READING, Ordering::SeqCst);
}

/// Edits `text` in $EDITOR (else `vi`) on the real terminal: the console leaves the alternate
/// screen and raw mode, the editor runs in the foreground, and the console comes back and
/// redraws everything. Answers the file's text when the editor exits successfully.
fn edit_externally<B: Backend>(terminal: &mut Terminal<B>, text: &str) -> Result<String, String> {
    use crossterm::{execute, terminal as term};
    if !pause_input() {
        resume_input();
        return Err("no terminal to run an editor on".into());
    }
    let mut out = std::io::stdout();
    let _ = term::disable_raw_mode();
    let _ = execute!(out, term::LeaveAlternateScreen, crossterm::cursor::Show);
    let editor = std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_owned());
    let result = run_editor(&editor, text);
    let _ = execute!(out, term::EnterAlternateScreen);
    let _ = term::enable_raw_mode();
    resume_input();
    // What the editor drew is not what ratatui believes is on screen: draw all of it again.
    let _ = terminal.clear();
    result
}

/// Runs `editor` (a program and its arguments, as `EDITOR="code --wait"`) on a private temporary
/// file holding `text`; answers what the file holds when it exits successfully.
fn run_editor(editor: &str, text: &str) -> Result<String, String> {
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    let mut file = tempfile::Builder::new()
        .prefix("ospdeck-manifest-")
        .suffix(".json")
        .tempfile()
        .map_err(|e| format!("cannot make a temporary file: {e}"))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| format!("cannot write the temporary file: {e}"))?;
    let status = std::process::Command::new(program)
        .args(words)
        .arg(file.path())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !status.success() {
        return Err(format!("{program} exited with {status}; nothing proposed"));
    }
    std::fs::read_to_string(file.path()).map_err(|e| format!("cannot read the edited file: {e}"))
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

/// What a console talks to besides its screen: the keys and resizes coming in, the signal to stop,
/// and where a copy goes (OSC 52 on the terminal's own stream).
pub struct ConsoleIo {
    pub input: mpsc::Receiver<Event>,
    pub stop: watch::Receiver<bool>,
    pub copy: Box<dyn FnMut(&str) + Send>,
}

impl ConsoleIo {
    /// For a console drawn nowhere a clipboard could be reached (tests, the bench).
    pub fn without_clipboard(input: mpsc::Receiver<Event>, stop: watch::Receiver<bool>) -> Self {
        Self {
            input,
            stop,
            copy: Box::new(|_| {}),
        }
    }
}

/// The render loop on any backend (the bench drives it on a byte-counting one): draws when input
/// or data changed something, or when the clock changes a value on screen (an age, a heartbeat
/// state), and never waits on the database.
pub async fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    ops: Ops,
    settings: LoaderSettings,
    io: ConsoleIo,
) -> Result<(), String> {
    let ConsoleIo {
        input: mut input_rx,
        mut stop,
        mut copy,
    } = io;
    let (data_tx, mut data_rx) = mpsc::unbounded_channel::<Data>();
    let (effect_tx, effect_rx) = mpsc::unbounded_channel::<Effect>();
    // Ends with the loop however it ends (a dropped remote console too).
    let _loader = AbortOnDrop(tokio::spawn(loader::load(
        ops, settings, effect_rx, data_tx,
    )));
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
            // A resize whose event was dropped (a remote client's full queue) still shows.
            if let Ok(size) = terminal.size()
                && app.screen != (size.width, size.height)
            {
                app.set_screen(size.width, size.height);
            }
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
                    let effects = app.on_key(key);
                    carry_out(app, terminal, effects, &effect_tx, &mut copy);
                    dirty = true;
                }
                // Moves arrive for every cell the pointer crosses: only clicks and the wheel
                // redraw.
                Some(Event::Mouse(mouse)) if !matches!(
                    mouse.kind,
                    MouseEventKind::Moved | MouseEventKind::Drag(_) | MouseEventKind::Up(_)
                ) => {
                    let effects = app.on_mouse(mouse);
                    carry_out(app, terminal, effects, &effect_tx, &mut copy);
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
    Ok(())
}

/// Hands the app's effects to the loader, but copies at once: the terminal is right here.
fn carry_out<B: Backend>(
    app: &mut App,
    terminal: &mut Terminal<B>,
    effects: Vec<Effect>,
    effect_tx: &mpsc::UnboundedSender<Effect>,
    copy: &mut Box<dyn FnMut(&str) + Send>,
) {
    let local = LOCAL_TERMINAL.load(Ordering::SeqCst);
    for effect in effects {
        match effect {
            Effect::Copy(text) => copy(&text),
            Effect::OpenPager(id) if !local => {
                let say = format!(
                    "no terminal of its own to page in: `ospdeck run logs {id}` prints the log"
                );
                app.on_data(Data::Failed(say), Utc::now());
            }
            // $EDITOR takes the terminal: the console steps aside until it returns. A console on
            // a terminal elsewhere (SSH) has no editor to hand it to; its own editor remains.
            Effect::EditExternally { schema, text, bump } => {
                let text = if local {
                    edit_externally(terminal, &text)
                } else {
                    Err("no external editor over this connection: edit here (Enter)".to_owned())
                };
                let more = app.on_data(Data::Edited { schema, text, bump }, Utc::now());
                carry_out(app, terminal, more, effect_tx, copy);
            }
            other => {
                let _ = effect_tx.send(other);
            }
        }
    }
}

/// Hands the terminal to `$PAGER` (default `less -R`) on `path`, then takes it back: out of raw
/// mode and the alternate screen while it runs, the input thread paused so the pager gets every
/// key, and the whole screen redrawn after.
fn page_file<B: Backend>(terminal: &mut Terminal<B>, path: &std::path::Path) -> Result<(), String> {
    if !pause_input() {
        resume_input();
        return Err("no terminal to page in".into());
    }
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
    resume_input();
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
fn write_osc52(out: &mut impl Write, text: &str) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let _ = write!(out, "\x1b]52;c;{encoded}\x07");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_edits_a_temporary_copy_and_its_failure_is_said() {
        // A scripted editor: its arguments, then the file.
        assert_eq!(
            run_editor("sed -i s/draft/edited/", "{\"name\": \"draft\"}"),
            Ok("{\"name\": \"edited\"}".to_owned())
        );
        assert!(
            run_editor("false", "x").is_err_and(|e| e.contains("false exited")),
            "a failing editor proposes nothing"
        );
        assert!(run_editor("/nonexistent/editor", "x").is_err_and(|e| e.contains("cannot run")));
    }
}
