//! Every key of the console in one table: what it is bound to, where it works, what help says.
//! config.toml's `[keys]` rebinds actions by name (`cancel = "x"`, `quit = ["q", "ctrl-c"]`).

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies. Global bindings apply everywhere a context binding does not override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    Global,
    /// Queues, workers and the last hour.
    Overview,
    /// The run list.
    Runs,
    /// One run's detail (events, logs, artifacts).
    Detail,
    /// The service list.
    Services,
    /// One service's detail (drift, worker, queues, deployments).
    ServiceDetail,
    /// One service's manifest versions.
    Manifests,
    /// Template versions.
    Templates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Quit,
    Help,
    NextPane,
    PrevPane,
    Overview,
    Services,
    Manifests,
    Templates,
    Runs,
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Open,
    Back,
    Filter,
    Command,
    CycleStatus,
    Pause,
    Mark,
    CopyId,
    Cancel,
    Retry,
    Claim,
    Start,
    Complete,
    ShowEvents,
    ShowLogs,
    ShowArtifacts,
    Follow,
    ShowAttempts,
    ShowPayload,
    NextMatch,
    PrevMatch,
    Wrap,
    OpenPager,
    NewService,
    Deploy,
    Propose,
    Activate,
    Lock,
    Unlock,
    Diff,
    Promote,
    Deprecate,
    MakeDefault,
    LabelVersion,
    Sort,
    SortReverse,
    WorkflowRuns,
    GoService,
    RetryOf,
    RetriedBy,
    OpenManifests,
    EditExternal,
}

impl Action {
    /// Config name, help text, and whether the action writes to the store (never bound read-only).
    const TABLE: &'static [(Action, &'static str, &'static str, bool)] = &[
        (Action::Quit, "quit", "quit", false),
        (Action::Help, "help", "this help", false),
        (Action::NextPane, "next_pane", "next pane", false),
        (Action::PrevPane, "prev_pane", "previous pane", false),
        (Action::Overview, "overview", "Overview pane", false),
        (Action::Services, "services", "Services pane", false),
        (Action::Manifests, "manifests", "Manifests pane", false),
        (Action::Templates, "templates", "Templates pane", false),
        (Action::Runs, "runs", "Runs pane", false),
        (Action::Up, "up", "move up", false),
        (Action::Down, "down", "move down", false),
        (Action::Top, "top", "first row", false),
        (Action::Bottom, "bottom", "last row", false),
        (Action::PageUp, "page_up", "page up", false),
        (Action::PageDown, "page_down", "page down", false),
        (Action::Open, "open", "open detail", false),
        (Action::Back, "back", "back / close", false),
        (
            Action::Filter,
            "filter",
            "filter as you type / search logs",
            false,
        ),
        (
            Action::Command,
            "command",
            "command line (:runs failed)",
            false,
        ),
        (
            Action::CycleStatus,
            "cycle_status",
            "filter by next status",
            false,
        ),
        (Action::Pause, "pause", "pause/resume the list", false),
        (Action::Mark, "mark", "mark / unmark run", false),
        (Action::CopyId, "copy_id", "copy a field (OSC 52)", false),
        (Action::Cancel, "cancel", "cancel marked/selected", true),
        (Action::Retry, "retry", "retry marked/selected", true),
        (Action::Claim, "claim", "claim next in this queue", true),
        (Action::Start, "start", "start (console's claim)", true),
        (
            Action::Complete,
            "complete",
            "complete (asks exit code)",
            true,
        ),
        (Action::ShowEvents, "events", "show events", false),
        (Action::ShowLogs, "logs", "show logs", false),
        (Action::ShowArtifacts, "artifacts", "show artifacts", false),
        (Action::Follow, "follow", "follow logs on/off", false),
        (Action::ShowAttempts, "attempts", "show attempts", false),
        (
            Action::ShowPayload,
            "payload",
            "payload and error in full",
            false,
        ),
        (Action::NextMatch, "next_match", "next log match", false),
        (Action::PrevMatch, "prev_match", "previous log match", false),
        (Action::Wrap, "wrap", "wrap long log lines", false),
        (Action::OpenPager, "pager", "whole log in $PAGER", false),
        (
            Action::NewService,
            "new_service",
            "create a service (form)",
            true,
        ),
        (
            Action::Deploy,
            "deploy",
            "deploy the service's worker",
            true,
        ),
        (
            Action::Propose,
            "propose",
            "propose a version (editor)",
            true,
        ),
        (
            Action::Activate,
            "activate",
            "activate the selected draft",
            true,
        ),
        (Action::Lock, "lock", "lock the service", true),
        (Action::Unlock, "unlock", "unlock the service", true),
        (Action::Diff, "diff", "diff with the governing one", false),
        (
            Action::Promote,
            "promote",
            "promote a draft to stable",
            true,
        ),
        (
            Action::Deprecate,
            "deprecate",
            "deprecate a stable version",
            true,
        ),
        (
            Action::MakeDefault,
            "make_default",
            "make default (rollback)",
            true,
        ),
        (Action::Sort, "sort", "sort by the next column", false),
        (
            Action::WorkflowRuns,
            "workflow_runs",
            "runs of its workflow",
            false,
        ),
        (Action::GoService, "go_service", "its service", false),
        (Action::RetryOf, "retry_of", "the run it retries", false),
        (
            Action::RetriedBy,
            "retried_by",
            "the run that retries it",
            false,
        ),
        (
            Action::SortReverse,
            "sort_reverse",
            "reverse the order",
            false,
        ),
        (
            Action::LabelVersion,
            "label",
            "label it (name [percent])",
            true,
        ),
        (
            Action::OpenManifests,
            "open_manifests",
            "the service's manifests",
            false,
        ),
        (
            Action::EditExternal,
            "edit_external",
            "edit in $EDITOR",
            true,
        ),
    ];

    fn entry(self) -> (&'static str, &'static str, bool) {
        Self::TABLE
            .iter()
            .find(|(a, ..)| *a == self)
            .map(|(_, name, help, writes)| (*name, *help, *writes))
            .unwrap_or(("?", "?", true))
    }

    pub fn name(self) -> &'static str {
        self.entry().0
    }

    pub fn help(self) -> &'static str {
        self.entry().1
    }

    pub fn writes(self) -> bool {
        self.entry().2
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Self::TABLE
            .iter()
            .find(|(_, n, ..)| *n == name)
            .map(|(a, ..)| *a)
    }

    /// The contexts an action belongs to (rebinding keeps them).
    fn contexts(self) -> &'static [Context] {
        use Action::*;
        match self {
            Mark | CycleStatus | Pause => &[Context::Runs],
            CopyId => &[
                Context::Runs,
                Context::Detail,
                Context::Services,
                Context::ServiceDetail,
                Context::Manifests,
                Context::Templates,
            ],
            Sort | SortReverse => &[
                Context::Runs,
                Context::Overview,
                Context::Services,
                Context::Manifests,
                Context::Templates,
            ],
            Cancel | Retry | Claim | Start | Complete => &[Context::Runs, Context::Detail],
            ShowEvents | ShowLogs => &[Context::Runs, Context::Detail],
            ShowArtifacts | Follow | ShowAttempts | ShowPayload | NextMatch | PrevMatch | Wrap
            | OpenPager => &[Context::Detail],
            WorkflowRuns | GoService | RetryOf | RetriedBy => &[Context::Runs, Context::Detail],
            NewService => &[Context::Services],
            Deploy | OpenManifests => &[Context::Services, Context::ServiceDetail],
            Propose | Activate | Lock | Unlock | Diff | EditExternal => &[Context::Manifests],
            Promote | Deprecate | MakeDefault | LabelVersion => &[Context::Templates],
            _ => &[Context::Global],
        }
    }
}

/// A key with its modifiers, written like `j`, `G`, `enter`, `ctrl-c`, `shift-tab`, `pgdn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    code: KeyCodeOrd,
    ctrl: bool,
    alt: bool,
}

/// KeyCode without the variants a keymap never names, so that keys can be ordered for help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum KeyCodeOrd {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Backspace,
    Delete,
    F(u8),
}

impl Key {
    pub fn from_event(event: &KeyEvent) -> Option<Key> {
        let code = match event.code {
            // Shift is folded into the character itself ('G'), so shift is not a separate flag.
            KeyCode::Char(c) => KeyCodeOrd::Char(c),
            KeyCode::Enter => KeyCodeOrd::Enter,
            KeyCode::Esc => KeyCodeOrd::Esc,
            KeyCode::Tab => KeyCodeOrd::Tab,
            KeyCode::BackTab => KeyCodeOrd::BackTab,
            KeyCode::Up => KeyCodeOrd::Up,
            KeyCode::Down => KeyCodeOrd::Down,
            KeyCode::Left => KeyCodeOrd::Left,
            KeyCode::Right => KeyCodeOrd::Right,
            KeyCode::Home => KeyCodeOrd::Home,
            KeyCode::End => KeyCodeOrd::End,
            KeyCode::PageUp => KeyCodeOrd::PageUp,
            KeyCode::PageDown => KeyCodeOrd::PageDown,
            KeyCode::Backspace => KeyCodeOrd::Backspace,
            KeyCode::Delete => KeyCodeOrd::Delete,
            KeyCode::F(n) => KeyCodeOrd::F(n),
            _ => return None,
        };
        Some(Key {
            code,
            ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
            alt: event.modifiers.contains(KeyModifiers::ALT),
        })
    }

    pub fn parse(text: &str) -> Result<Key, String> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCodeOrd::Enter,
            "esc" => KeyCodeOrd::Esc,
            "tab" => KeyCodeOrd::Tab,
            "shift-tab" | "backtab" => KeyCodeOrd::BackTab,
            "up" => KeyCodeOrd::Up,
            "down" => KeyCodeOrd::Down,
            "left" => KeyCodeOrd::Left,
            "right" => KeyCodeOrd::Right,
            "home" => KeyCodeOrd::Home,
            "end" => KeyCodeOrd::End,
            "pgup" => KeyCodeOrd::PageUp,
            "pgdn" => KeyCodeOrd::PageDown,
            "backspace" => KeyCodeOrd::Backspace,
            "delete" => KeyCodeOrd::Delete,
            "space" => KeyCodeOrd::Char(' '),
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCodeOrd::F(f[1..].parse().unwrap_or(1))
            }
            c if c.chars().count() == 1 => KeyCodeOrd::Char(c.chars().next().unwrap_or(' ')),
            _ => return Err(format!("unknown key `{text}`")),
        };
        Ok(Key { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCodeOrd::Char(' ') => f.write_str("space"),
            KeyCodeOrd::Char(c) => write!(f, "{c}"),
            KeyCodeOrd::Enter => f.write_str("enter"),
            KeyCodeOrd::Esc => f.write_str("esc"),
            KeyCodeOrd::Tab => f.write_str("tab"),
            KeyCodeOrd::BackTab => f.write_str("shift-tab"),
            KeyCodeOrd::Up => f.write_str("↑"),
            KeyCodeOrd::Down => f.write_str("↓"),
            KeyCodeOrd::Left => f.write_str("←"),
            KeyCodeOrd::Right => f.write_str("→"),
            KeyCodeOrd::Home => f.write_str("home"),
            KeyCodeOrd::End => f.write_str("end"),
            KeyCodeOrd::PageUp => f.write_str("pgup"),
            KeyCodeOrd::PageDown => f.write_str("pgdn"),
            KeyCodeOrd::Backspace => f.write_str("backspace"),
            KeyCodeOrd::Delete => f.write_str("delete"),
            KeyCodeOrd::F(n) => write!(f, "f{n}"),
        }
    }
}

const DEFAULTS: &[(&str, Action)] = &[
    ("q", Action::Quit),
    ("ctrl-c", Action::Quit),
    ("?", Action::Help),
    ("tab", Action::NextPane),
    ("shift-tab", Action::PrevPane),
    ("0", Action::Overview),
    ("1", Action::Services),
    ("2", Action::Manifests),
    ("3", Action::Templates),
    ("4", Action::Runs),
    ("k", Action::Up),
    ("up", Action::Up),
    ("j", Action::Down),
    ("down", Action::Down),
    ("g", Action::Top),
    ("home", Action::Top),
    ("G", Action::Bottom),
    ("end", Action::Bottom),
    ("pgup", Action::PageUp),
    ("pgdn", Action::PageDown),
    ("enter", Action::Open),
    ("esc", Action::Back),
    ("/", Action::Filter),
    (":", Action::Command),
    ("s", Action::CycleStatus),
    ("space", Action::Mark),
    ("p", Action::Pause),
    ("y", Action::CopyId),
    ("x", Action::Cancel),
    ("R", Action::Retry),
    ("c", Action::Claim),
    ("S", Action::Start),
    ("C", Action::Complete),
    ("e", Action::ShowEvents),
    ("l", Action::ShowLogs),
    ("a", Action::ShowArtifacts),
    ("f", Action::Follow),
    ("h", Action::ShowAttempts),
    ("i", Action::ShowPayload),
    ("n", Action::NextMatch),
    ("N", Action::PrevMatch),
    ("w", Action::Wrap),
    ("o", Action::OpenPager),
    ("n", Action::NewService),
    ("d", Action::Deploy),
    ("p", Action::Propose),
    ("A", Action::Activate),
    ("L", Action::Lock),
    ("U", Action::Unlock),
    ("D", Action::Diff),
    ("P", Action::Promote),
    ("X", Action::Deprecate),
    ("*", Action::MakeDefault),
    ("t", Action::LabelVersion),
    ("o", Action::Sort),
    ("W", Action::WorkflowRuns),
    ("v", Action::GoService),
    ("[", Action::RetryOf),
    ("]", Action::RetriedBy),
    ("O", Action::SortReverse),
    ("m", Action::OpenManifests),
    ("E", Action::EditExternal),
];

#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: BTreeMap<(Context, Key), Action>,
    /// Read-only: the writing actions' keys, unbound, so that such a key can say why it does
    /// nothing.
    hidden: BTreeMap<(Context, Key), Action>,
}

impl Keymap {
    /// The default keys with `overrides` (action name → keys) applied; read-only drops every
    /// action that writes, so no key can even ask for one.
    pub fn new(overrides: &BTreeMap<String, Vec<String>>, read_only: bool) -> Result<Self, String> {
        let mut by_action: BTreeMap<Action, Vec<Key>> = BTreeMap::new();
        for (key, action) in DEFAULTS {
            by_action.entry(*action).or_default().push(Key::parse(key)?);
        }
        for (name, keys) in overrides {
            let action = Action::from_name(name)
                .ok_or_else(|| format!("unknown action `{name}` in [keys]"))?;
            let parsed = keys
                .iter()
                .map(|k| Key::parse(k))
                .collect::<Result<Vec<_>, _>>()?;
            // A key taken by the new binding is released from whatever had it.
            for other in by_action.values_mut() {
                other.retain(|k| !parsed.contains(k));
            }
            by_action.insert(action, parsed);
        }
        let mut bindings = BTreeMap::new();
        let mut hidden = BTreeMap::new();
        for (action, keys) in by_action {
            let map = if read_only && action.writes() {
                &mut hidden
            } else {
                &mut bindings
            };
            for context in action.contexts() {
                for key in &keys {
                    map.insert((*context, *key), action);
                }
            }
        }
        Ok(Self { bindings, hidden })
    }

    /// The action of a key in `context`, falling back to the global bindings.
    pub fn action(&self, context: Context, key: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(key)?;
        self.bindings
            .get(&(context, key))
            .or_else(|| self.bindings.get(&(Context::Global, key)))
            .copied()
    }

    /// Help lines for `context`: its own keys first, then the global ones; keys of one action
    /// joined (`j/↓`).
    pub fn help(&self, context: Context) -> Vec<(String, &'static str)> {
        self.help_actions(context)
            .into_iter()
            .map(|(keys, action)| (keys, action.help()))
            .collect()
    }

    /// `help` with the actions themselves (whether one writes, say).
    pub fn help_actions(&self, context: Context) -> Vec<(String, Action)> {
        grouped(&self.bindings, context)
    }

    /// Read-only: the keys `context` would have for writing actions, which are not bound.
    pub fn hidden_help(&self, context: Context) -> Vec<(String, Action)> {
        grouped(&self.hidden, context)
    }

    /// Read-only: the writing action a key would be bound to in `context`, were it writable.
    pub fn hidden_action(&self, context: Context, key: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(key)?;
        self.hidden
            .get(&(context, key))
            .or_else(|| self.hidden.get(&(Context::Global, key)))
            .copied()
    }

    /// The first key bound to `action` anywhere, for hints like "x cancel".
    pub fn key_for(&self, action: Action) -> Option<Key> {
        self.bindings
            .iter()
            .find(|(_, a)| **a == action)
            .map(|((_, k), _)| *k)
    }
}

/// The bindings of `context` and then the global ones, keys of one action joined (`j/↓`).
fn grouped(bindings: &BTreeMap<(Context, Key), Action>, context: Context) -> Vec<(String, Action)> {
    let mut lines = Vec::new();
    let contexts: &[Context] = if context == Context::Global {
        &[Context::Global]
    } else {
        &[context, Context::Global]
    };
    for ctx in contexts {
        let mut by_action: BTreeMap<Action, Vec<Key>> = BTreeMap::new();
        for ((c, key), action) in bindings {
            if c == ctx {
                by_action.entry(*action).or_default().push(*key);
            }
        }
        for (action, keys) in by_action {
            let keys: Vec<String> = keys.iter().map(Key::to_string).collect();
            lines.push((keys.join("/"), action));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(c: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(c, m)
    }

    #[test]
    fn defaults_resolve_by_context_then_global() -> Result<(), String> {
        let km = Keymap::new(&BTreeMap::new(), false)?;
        let x = press(KeyCode::Char('x'), KeyModifiers::NONE);
        assert_eq!(km.action(Context::Runs, &x), Some(Action::Cancel));
        assert_eq!(
            km.action(
                Context::Detail,
                &press(KeyCode::Char('q'), KeyModifiers::NONE)
            ),
            Some(Action::Quit)
        );
        assert_eq!(
            km.action(
                Context::Runs,
                &press(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Action::Quit)
        );
        assert_eq!(
            km.action(
                Context::Runs,
                &press(KeyCode::Char('a'), KeyModifiers::NONE)
            ),
            None
        );
        Ok(())
    }

    #[test]
    fn read_only_binds_no_writing_action() -> Result<(), String> {
        let km = Keymap::new(&BTreeMap::new(), true)?;
        for ((_, _), action) in &km.bindings {
            assert!(!action.writes(), "{action:?} bound in read-only mode");
        }
        let x = press(KeyCode::Char('x'), KeyModifiers::NONE);
        assert_eq!(km.action(Context::Runs, &x), None);
        assert_eq!(km.hidden_action(Context::Runs, &x), Some(Action::Cancel));
        assert!(
            km.hidden_help(Context::Runs)
                .iter()
                .any(|(k, a)| k == "x" && *a == Action::Cancel)
        );
        Ok(())
    }

    #[test]
    fn overrides_rebind_and_release_keys() -> Result<(), String> {
        let mut o = BTreeMap::new();
        o.insert("cancel".to_owned(), vec!["d".to_owned()]);
        o.insert("retry".to_owned(), vec!["x".to_owned()]);
        let km = Keymap::new(&o, false)?;
        let key = |c| press(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(km.action(Context::Runs, &key('d')), Some(Action::Cancel));
        assert_eq!(km.action(Context::Runs, &key('x')), Some(Action::Retry));
        assert_eq!(km.action(Context::Runs, &key('R')), None);
        assert!(
            km.help(Context::Runs)
                .iter()
                .any(|(k, h)| k == "d" && h.contains("cancel"))
        );
        Ok(())
    }

    #[test]
    fn bad_config_is_named() {
        let mut o = BTreeMap::new();
        o.insert("explode".to_owned(), vec!["x".to_owned()]);
        assert_eq!(
            Keymap::new(&o, false).err().as_deref(),
            Some("unknown action `explode` in [keys]")
        );
        let mut o = BTreeMap::new();
        o.insert("quit".to_owned(), vec!["ctrl-nope".to_owned()]);
        assert!(
            Keymap::new(&o, false)
                .err()
                .is_some_and(|e| e.contains("ctrl-nope"))
        );
    }

    #[test]
    fn keys_round_trip_through_text() -> Result<(), String> {
        for text in [
            "j",
            "G",
            "ctrl-c",
            "shift-tab",
            "enter",
            "pgdn",
            "space",
            "f5",
        ] {
            let key = Key::parse(text)?;
            let shown = key.to_string();
            assert_eq!(Key::parse(&shown).map(|k| k == key), Ok(true), "{text}");
        }
        Ok(())
    }
}
