//! The console's state and how keys and data change it. No IO here: a key yields `Effect`s that the
//! runtime carries out in the background, and their answers come back as `Data`. That split is
//! what lets the tests drive the console key by key without a terminal or a database.

use std::collections::VecDeque;

use chrono::{DateTime, DurationRound, FixedOffset, TimeDelta, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;

use super::command::CommandLine;
use super::keymap::{Action, Context, Keymap};
use super::overlay::{AuditView, Scroll};
use super::panes::manifests::ManifestsPane;
use super::panes::overview::OverviewPane;
use super::panes::runs::RunsPane;
pub use super::panes::runs::{
    DetailState, DetailTab, LOG_WINDOW, Landing, LogRequest, LogWindow, RUN_PAGE, RunsQuery,
    TYPED_SCAN,
};
use super::panes::services::ServicesPane;
use super::panes::templates::TemplatesPane;
use super::panes::{Ctx, Goto, KeyCtx, Reply};
use super::style::Theme;
use crate::domain::audit::AuditRow;
use crate::domain::deployment::liveness_changes_at;
use crate::domain::manifest::{Bump, FieldChange, Manifest, ManifestHead};
use crate::domain::run::{LogMatches, Run, RunLog};
use crate::domain::template::StoredArtifact;
use crate::domain::worker::WorkerPresence;
use crate::ops::{
    QueueBoard, QueueOverview, RunDetail, ServiceDetail, ServiceOverview, VersionRow,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Overview,
    Services,
    Manifests,
    Templates,
    Runs,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Overview,
        Pane::Services,
        Pane::Manifests,
        Pane::Templates,
        Pane::Runs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Overview => "Overview",
            Pane::Services => "Services",
            Pane::Manifests => "Manifests",
            Pane::Templates => "Templates",
            Pane::Runs => "Runs",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    fn step(self, by: usize) -> Pane {
        Pane::ALL[(self.index() + by) % Pane::ALL.len()]
    }
}

/// A question before an action that destroys or freezes something, holding the very effect that
/// `y` carries out (one confirm path for every action, as gitui's `ConfirmAction` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub effect: Effect,
    pub question: String,
}

impl Confirm {
    pub fn new(effect: Effect) -> Self {
        let question = match &effect {
            Effect::Cancel(ids) => runs_question("Cancel", ids),
            Effect::Retry(ids) => runs_question("Retry", ids),
            Effect::Deploy(s) => format!("Deploy the worker of {s} now?"),
            Effect::Activate { schema, version } => {
                format!("Activate {schema} {version}? The current version is superseded.")
            }
            Effect::Lock(s) => format!("Lock {s}? Nothing can be activated until it is unlocked."),
            Effect::Unlock(s) => format!("Unlock {s}?"),
            Effect::Promote { template, version } => {
                format!("Promote {template} {version} to stable? Its files freeze.")
            }
            Effect::Deprecate { template, version } => {
                format!("Deprecate {template} {version}? Only exact pins will resolve it.")
            }
            Effect::MakeDefault { template, version } => {
                format!("Make {template} {version} the default?")
            }
            Effect::Claim(queue) => format!(
                "Claim the next queued run of {queue} as this console? It is held 10 minutes \
                 for S start and C complete, then goes back to the queue."
            ),
            Effect::Start(id) => format!("Start run {id} as this console's worker?"),
            other => format!("{other:?}?"),
        };
        Self { effect, question }
    }
}

fn runs_question(verb: &str, ids: &[i64]) -> String {
    match ids {
        [one] => format!("{verb} run {one}?"),
        many => format!("{verb} {} runs ({})?", many.len(), id_list(many)),
    }
}

fn id_list(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(5).map(i64::to_string).collect();
    if ids.len() > 5 {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// One field `y` offers to copy: the key that picks it, what it is, its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyChoice {
    pub key: char,
    pub label: &'static str,
    pub value: String,
}

impl CopyChoice {
    pub fn new(key: char, label: &'static str, value: String) -> Self {
        Self { key, label, value }
    }
}

/// Where the operator was before a jump (`W`, `v`, `[`, Enter on a queue, a `:` command):
/// Esc, and `q` at depth, come back here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub pane: Pane,
    pub query: RunsQuery,
    pub run: Option<i64>,
    pub service: Option<String>,
}

impl Place {
    /// A breadcrumb: `Runs /status:failed`, `run 42`, `Manifests billing`.
    pub fn label(&self) -> String {
        match (self.pane, self.run, &self.service) {
            (Pane::Runs, Some(id), _) => format!("run {id}"),
            (Pane::Runs, None, _) if !self.query.text.is_empty() => {
                format!("Runs /{}", self.query.text)
            }
            (Pane::Manifests, _, Some(schema)) => format!("Manifests {schema}"),
            (Pane::Services, _, Some(schema)) => format!("service {schema}"),
            (pane, ..) => pane.title().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// `y` asked which field to copy.
    Copy(Vec<CopyChoice>),
    Help,
    Filter(String),
    Command(String),
    Confirm(Confirm),
    /// Keys go to the open editor or form.
    Editing,
    /// The audit trail overlay (`:audit`); Esc, q or ? close it.
    Audit,
    /// Every message of this session, in full (`:messages`); Esc, q or ? close it.
    Messages,
    /// Asking a label (and optional percent) for a template version.
    LabelInput {
        template: String,
        version: String,
        text: String,
    },
    /// Asking the exit code to complete a run with.
    ExitCode {
        run_id: i64,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// Messages the `:messages` log keeps; the oldest go first.
pub const MESSAGE_LOG: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub at: DateTime<Utc>,
    pub level: Level,
    pub text: String,
}

/// A view whose entity the store no longer has (or never had).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    Run(i64),
    Service(String),
}

/// IO the runtime performs for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    LoadRuns(RunsQuery),
    /// The Overview's queues, workers and activity (and keep them fresh while it shows).
    LoadBoard,
    OpenRun(i64),
    CloseRun,
    /// A part of the open run's log (the pager's window moves).
    LoadLogs {
        run_id: i64,
        request: LogRequest,
    },
    /// Search all of a run's log lines in the store.
    SearchLogs {
        run_id: i64,
        text: String,
    },
    /// The whole log in `$PAGER`: the runtime suspends the console meanwhile.
    OpenPager(i64),
    Cancel(Vec<i64>),
    Retry(Vec<i64>),
    /// Claim the next run of a queue as the console's own worker.
    Claim(String),
    Start(i64),
    Complete(i64, i32),
    Copy(String),
    LoadServices,
    /// A service's versions, and one version's content (the governing one when None).
    LoadManifests {
        schema: String,
        version: Option<String>,
    },
    Diff {
        schema: String,
        from: String,
        to: String,
    },
    /// A new draft of `schema`: the highest version bumped by `bump`.
    Propose {
        schema: String,
        text: String,
        bump: Bump,
    },
    /// New content for the draft `version` of `schema` (editing continued it).
    ReviseDraft {
        schema: String,
        version: String,
        text: String,
    },
    /// A service's detail (and keep it fresh while it shows).
    OpenService(String),
    CloseService,
    /// Suspend the console, edit `text` in $EDITOR, and answer `Data::Edited` (the runtime does
    /// this itself: it needs the terminal).
    EditExternally {
        schema: String,
        text: String,
        bump: Bump,
    },
    Activate {
        schema: String,
        version: String,
    },
    Lock(String),
    Unlock(String),
    Deploy(String),
    CreateService {
        project: String,
        name: String,
        schema: String,
        workflows: Vec<String>,
    },
    LoadTemplates,
    /// The newest audit rows, for the `:audit` overlay.
    LoadAudit,
    LoadTemplateArtifacts {
        template: String,
        version: String,
    },
    Promote {
        template: String,
        version: String,
    },
    Deprecate {
        template: String,
        version: String,
    },
    MakeDefault {
        template: String,
        version: String,
    },
    Label {
        template: String,
        label: String,
        version: String,
        percent: i32,
    },
}

impl Effect {
    /// Whether the effect changes the store (an action, run in order by the loader's action
    /// task) rather than reads it.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Effect::Cancel(_)
                | Effect::Retry(_)
                | Effect::Claim(_)
                | Effect::Start(_)
                | Effect::Complete(..)
                | Effect::Propose { .. }
                | Effect::ReviseDraft { .. }
                | Effect::Activate { .. }
                | Effect::Lock(_)
                | Effect::Unlock(_)
                | Effect::Deploy(_)
                | Effect::CreateService { .. }
                | Effect::Promote { .. }
                | Effect::Deprecate { .. }
                | Effect::MakeDefault { .. }
                | Effect::Label { .. }
        )
    }
}

/// Answers from the background, applied in arrival order.
#[derive(Debug, Clone)]
pub enum Data {
    /// A page of runs, and the query it answers (an answer to an older query is dropped).
    Runs(RunsQuery, Vec<Run>),
    Board(QueueBoard),
    /// Worker presence alone, for the status bar while the Overview is not on screen.
    Presence(Vec<WorkerPresence>),
    Overview(QueueOverview),
    Detail(Box<RunDetail>),
    /// New log lines of a run, in id order, following what the pager holds.
    Logs(i64, Vec<RunLog>),
    /// A part of a run's log, as the pager asked for it.
    LogWindow(Box<LogWindow>),
    /// How many log lines the open run has now, and the newest one's id.
    LogCount {
        run_id: i64,
        total: i64,
        last_id: Option<i64>,
    },
    /// The whole log of a run written to a file for `$PAGER` (the runtime pages it, then
    /// removes it).
    PagerFile {
        run_id: i64,
        path: std::path::PathBuf,
        lines: i64,
    },
    /// A log search's answer.
    LogMatches {
        run_id: i64,
        text: String,
        matches: LogMatches,
    },
    Done(String),
    Failed(String),
    /// The store stopped answering at `since`; what is on screen is from before then.
    Unreachable {
        since: DateTime<Utc>,
        error: String,
    },
    /// The store answers again.
    Reachable,
    /// What a view showed does not exist (any more); the loader stopped refreshing it.
    Gone {
        what: Gone,
        error: String,
    },
    Services(Vec<ServiceOverview>),
    Manifests {
        schema: String,
        history: Vec<ManifestHead>,
        content: Option<Box<Manifest>>,
    },
    Diff {
        from: String,
        to: String,
        changes: Vec<FieldChange>,
    },
    Templates(Vec<VersionRow>),
    Audit(Vec<AuditRow>),
    TemplateArtifacts {
        template: String,
        version: String,
        artifacts: Vec<StoredArtifact>,
    },
    Service(Box<ServiceDetail>),
    /// What $EDITOR left in the file (or why it could not run).
    Edited {
        schema: String,
        text: Result<String, String>,
        bump: Bump,
    },
}

pub struct App {
    pub pane: Pane,
    pub mode: Mode,
    pub read_only: bool,
    /// Why the console only reads, for the message a writing key gets.
    pub read_only_reason: String,
    pub store: String,
    pub user: String,
    pub keymap: Keymap,
    pub overview: OverviewPane,
    pub services: ServicesPane,
    pub manifests: ManifestsPane,
    pub templates: TemplatesPane,
    pub runs: RunsPane,
    pub message: Option<(Level, String)>,
    pub messages: VecDeque<Message>,
    /// The wall clock every age and heartbeat state on screen is measured against; the runtime
    /// sets it before each frame and on the timer (`next_visible_change`), tests set it by hand.
    pub now: DateTime<Utc>,
    pub last_update: Option<DateTime<Utc>>,
    /// Since when the store has not answered, and why; None while it answers.
    pub unreachable: Option<(DateTime<Utc>, String)>,
    /// Times on screen are shown in this offset (the local one; tests pin UTC).
    pub offset: FixedOffset,
    /// The terminal's size (columns, rows), from which the panes' page sizes follow.
    pub screen: (u16, u16),
    pub quit: bool,
    /// What the `:audit` overlay shows.
    pub audit: AuditView,
    /// The `:` line's history and Tab candidates.
    pub command_line: CommandLine,
    /// How far the help or messages overlay is scrolled.
    pub overlay_scroll: Scroll,
    /// The pane's filter when `/` was pressed: Esc goes back to it.
    pub filter_before: String,
    /// What is wrong with the filter being typed (the last good one stays applied).
    pub filter_error: Option<String>,
    /// Where the operator came from, newest last (the breadcrumbs).
    pub back: Vec<Place>,
    /// Said with the first copy: inside tmux, OSC 52 reaches the clipboard only when tmux
    /// lets it through.
    pub copy_hint: Option<String>,
}

impl App {
    pub fn new(store: String, user: String, keymap: Keymap, read_only: bool) -> Self {
        Self {
            pane: Pane::Overview,
            mode: Mode::Normal,
            read_only,
            store,
            user,
            keymap,
            overview: OverviewPane::default(),
            services: ServicesPane::default(),
            manifests: ManifestsPane::default(),
            templates: TemplatesPane::default(),
            runs: RunsPane::default(),
            filter_before: String::new(),
            filter_error: None,
            back: Vec::new(),
            copy_hint: None,
            message: None,
            messages: VecDeque::new(),
            now: Utc::now(),
            last_update: None,
            unreachable: None,
            offset: *chrono::Local::now().offset(),
            screen: (80, 24),
            read_only_reason: "monitor; ospdeck without it can".to_owned(),
            quit: false,
            audit: AuditView::default(),
            command_line: CommandLine::default(),
            overlay_scroll: Scroll::default(),
        }
    }

    /// What to load first.
    pub fn start(&self) -> Vec<Effect> {
        vec![Effect::LoadRuns(self.runs.query.clone()), Effect::LoadBoard]
    }

    pub fn context(&self) -> Context {
        match self.pane {
            Pane::Overview => Context::Overview,
            Pane::Runs if self.runs.detail.is_some() => Context::Detail,
            Pane::Runs => Context::Runs,
            Pane::Services if self.services.detail.is_some() => Context::ServiceDetail,
            Pane::Services => Context::Services,
            Pane::Manifests => Context::Manifests,
            Pane::Templates => Context::Templates,
        }
    }

    /// Sets the wall clock the screen is drawn against, in whole seconds: every age on screen
    /// then ticks at the same instant, one redraw a second at most, however many rows there are.
    pub fn set_clock(&mut self, now: DateTime<Utc>) {
        self.now = now.duration_trunc(TimeDelta::seconds(1)).unwrap_or(now);
    }

    pub fn set_screen(&mut self, width: u16, height: u16) {
        self.screen = (width, height);
        self.runs.cursor.keep_visible(self.page_rows());
    }

    /// The next moment a value on screen changes by the clock alone (an age ticks over, a
    /// heartbeat turns stale, a queue stalls); None when nothing on screen depends on the clock.
    /// The runtime sleeps until then, so an idle console redraws exactly when it must.
    pub fn next_visible_change(&self) -> Option<DateTime<Utc>> {
        let now = self.now;
        // The status bar counts live workers and stalled queues on every pane.
        let status_bar = self
            .overview
            .board
            .workers
            .iter()
            .filter_map(|w| liveness_changes_at(now, Some(w.heartbeat_at)));
        let pane = match self.pane {
            Pane::Overview => self.overview.next_visible_change(now),
            Pane::Runs => self.runs.next_visible_change(now, self.page_rows()),
            Pane::Services => self.services.next_visible_change(now),
            Pane::Manifests | Pane::Templates => None,
        };
        // Seen in whole seconds, a change shows at the first whole second after it.
        status_bar
            .chain(pane)
            .min()
            .map(|at| at.duration_round_up(TimeDelta::seconds(1)).unwrap_or(at))
    }

    /// Whether the line above the status bar is in use (an input line, a message, an outage).
    pub fn bottom_line(&self) -> bool {
        !matches!(self.mode, Mode::Normal | Mode::Help | Mode::Confirm(_))
            || self.message.is_some()
            || self.unreachable.is_some()
    }

    /// Rows of the run list on screen at the current size: the pane's body is the screen less
    /// the tab line, the status bar and the bottom line when it is in use.
    pub fn page_rows(&self) -> usize {
        let body = self
            .screen
            .1
            .saturating_sub(2 + u16::from(self.bottom_line()));
        RunsPane::list_rows(body)
    }

    /// Rows of a pane-high table on screen: the pane less the table's borders and header.
    pub fn table_rows(&self) -> usize {
        usize::from(
            self.screen
                .1
                .saturating_sub(2 + u16::from(self.bottom_line()) + 3),
        )
        .max(1)
    }

    fn key_ctx(&self) -> KeyCtx {
        KeyCtx {
            read_only: self.read_only,
            rows: self.page_rows(),
            height: self
                .screen
                .1
                .saturating_sub(2 + u16::from(self.bottom_line())),
            width: self.screen.0,
        }
    }

    /// Draws the current pane into `area`.
    pub fn render_pane(&self, frame: &mut Frame, area: Rect, theme: Theme) {
        let ctx = Ctx {
            now: self.now,
            theme,
            offset: self.offset,
            keymap: &self.keymap,
            read_only: self.read_only,
            workers: &self.overview.board.workers,
        };
        match self.pane {
            Pane::Overview => self.overview.render(&ctx, frame, area),
            Pane::Services => self.services.render(&ctx, frame, area),
            Pane::Manifests => self.manifests.render(&ctx, frame, area),
            Pane::Templates => self.templates.render(&ctx, frame, area),
            Pane::Runs => self.runs.render(&ctx, frame, area),
        }
    }

    /// Applies an answer from the background; answers what else to load (a page of runs that
    /// turned out to be the head of the list is followed as the head from then on).
    pub fn on_data(&mut self, data: Data, now: DateTime<Utc>) -> Vec<Effect> {
        self.set_clock(now);
        match data {
            Data::Runs(query, runs) => {
                self.last_update = Some(now);
                let rows = self.page_rows();
                return self.runs.on_runs(query, runs, rows);
            }
            Data::Board(board) => {
                self.overview.set_board(board, now);
                self.last_update = Some(now);
            }
            Data::Presence(workers) => self.overview.set_workers(workers, now),
            Data::Overview(overview) => {
                self.runs.counts = overview;
                self.last_update = Some(now);
            }
            Data::Detail(detail) => self.runs.on_detail(*detail),
            Data::Logs(run_id, lines) => self.runs.on_logs(run_id, lines),
            Data::LogWindow(window) => return self.runs.on_log_window(*window),
            Data::LogCount {
                run_id,
                total,
                last_id,
            } => return self.runs.on_log_count(run_id, total, last_id),
            Data::LogMatches {
                run_id,
                text,
                matches,
            } => return self.runs.on_log_matches(run_id, &text, matches),
            // The runtime pages the file before the app sees it; a console without a terminal of
            // its own says so.
            Data::PagerFile { path, .. } => {
                let _ = std::fs::remove_file(path);
            }
            Data::Done(text) => self.say(Level::Info, text),
            Data::Failed(text) => self.say(Level::Error, text),
            Data::Unreachable { since, error } => self.unreachable = Some((since, error)),
            Data::Reachable => self.unreachable = None,
            Data::Gone { what, error } => {
                match what {
                    Gone::Run(id) => self.runs.on_gone(id),
                    Gone::Service(schema) => {
                        self.services.on_gone(&schema);
                        if self.manifests.service.as_deref() == Some(schema.as_str()) {
                            self.manifests.service = None;
                            self.manifests.forget();
                            if self.pane == Pane::Manifests {
                                self.pane = Pane::Services;
                            }
                        }
                    }
                }
                self.say(Level::Error, error);
            }
            Data::Services(services) => {
                let rows = self.table_rows();
                self.services.set_services(services, now, rows);
                self.last_update = Some(now);
            }
            Data::Manifests {
                schema,
                history,
                content,
            } => {
                let rows = self.table_rows();
                let reply =
                    self.manifests
                        .set_manifests(schema, history, content.map(|c| *c), now, rows);
                return self.apply(reply);
            }
            Data::Diff { from, to, changes } => self.manifests.diff = Some((from, to, changes)),
            Data::Templates(rows) => {
                let screen_rows = self.table_rows();
                self.templates.set_versions(rows, now, screen_rows);
            }
            Data::Audit(rows) => self.audit.set_rows(rows, now),
            Data::TemplateArtifacts {
                template,
                version,
                artifacts,
            } => self.templates.artifacts = Some((template, version, artifacts)),
            Data::Service(detail) => self.services.on_service(*detail),
            Data::Edited { schema, text, bump } => {
                let reply = self.manifests.on_edited(schema, text, bump);
                return self.apply(reply);
            }
        }
        Vec::new()
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.on_normal_key(key),
            mode @ (Mode::Help | Mode::Audit | Mode::Messages) => self.on_overlay_key(mode, key),
            Mode::Filter(text) => self.on_filter_key(key, text),
            Mode::Copy(choices) => {
                let chosen = match key.code {
                    KeyCode::Char(c) => choices.into_iter().find(|choice| choice.key == c),
                    _ => None,
                };
                match chosen {
                    Some(choice) => {
                        let mut text =
                            format!("copied {} ({} bytes)", choice.label, choice.value.len());
                        if let Some(hint) = self.copy_hint.take() {
                            text.push_str(&format!("; {hint}"));
                        }
                        self.say(Level::Info, text);
                        vec![Effect::Copy(choice.value)]
                    }
                    None => Vec::new(),
                }
            }
            Mode::Command(text) => self.on_command_key(key, text),
            Mode::ExitCode { run_id, mut text } => match key.code {
                KeyCode::Enter => match text.trim().parse::<i32>() {
                    Ok(code) => vec![Effect::Complete(run_id, code)],
                    Err(_) => self.fail(format!("`{}` is not an exit code", text.trim())),
                },
                KeyCode::Esc => Vec::new(),
                _ => {
                    edit_line(&mut text, &key);
                    self.mode = Mode::ExitCode { run_id, text };
                    Vec::new()
                }
            },
            Mode::Editing => {
                let reply = if self.manifests.editor.is_some() {
                    self.manifests.on_editor_key(key)
                } else {
                    self.services.on_form_key(key)
                };
                self.apply(reply)
            }
            Mode::LabelInput {
                template,
                version,
                mut text,
            } => match key.code {
                KeyCode::Enter => {
                    let reply = self.templates.label_entered(&template, &version, &text);
                    self.apply(reply)
                }
                KeyCode::Esc => Vec::new(),
                _ => {
                    edit_line(&mut text, &key);
                    self.mode = Mode::LabelInput {
                        template,
                        version,
                        text,
                    };
                    Vec::new()
                }
            },
            Mode::Confirm(confirm) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.runs.confirmed(&confirm.effect);
                    vec![confirm.effect]
                }
                _ => {
                    self.say(Level::Info, "nothing done".into());
                    Vec::new()
                }
            },
        }
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(action) = self.keymap.action(self.context(), &key) else {
            self.refuse_read_only(&key);
            return Vec::new();
        };
        self.message = None;
        // `q` at depth goes back a level; ctrl-c always quits.
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        let action = match action {
            Action::Quit if !ctrl_c && self.depth() > 0 => Action::Back,
            other => other,
        };
        match action {
            Action::Quit => {
                self.quit = true;
                Vec::new()
            }
            Action::Back if !self.back.is_empty() && !self.pane_keeps_back() => self.go_back(),
            // Esc on a filtered list clears the filter, on every pane as on Runs.
            Action::Back
                if !matches!(self.pane, Pane::Runs)
                    && !self.filter_text().is_empty()
                    && self.depth() == 0 =>
            {
                self.set_filter("", true)
            }
            Action::Help => self.open_help(),
            Action::Command => {
                self.mode = Mode::Command(String::new());
                Vec::new()
            }
            Action::Filter => {
                if self.pane == Pane::Runs {
                    // The detail's pager notes what is on screen: the search starts from there.
                    let ctx = self.key_ctx();
                    self.runs.on_action(Action::Filter, &ctx);
                }
                let text = self.filter_text();
                self.filter_before = text.clone();
                self.filter_error = None;
                self.mode = Mode::Filter(text);
                Vec::new()
            }
            // Choosing a pane is a fresh start: the way back is forgotten.
            Action::NextPane
            | Action::PrevPane
            | Action::Overview
            | Action::Services
            | Action::Manifests
            | Action::Templates
            | Action::Runs
                if !self.back.is_empty() =>
            {
                self.back.clear();
                self.on_normal_key(key)
            }
            Action::NextPane => self.switch_pane(self.pane.step(1)),
            Action::PrevPane => self.switch_pane(self.pane.step(Pane::ALL.len() - 1)),
            Action::Overview => self.switch_pane(Pane::Overview),
            Action::Services => self.switch_pane(Pane::Services),
            Action::Manifests => self.switch_pane(Pane::Manifests),
            Action::Templates => self.switch_pane(Pane::Templates),
            Action::Runs => self.switch_pane(Pane::Runs),
            other => self.pane_action(other),
        }
    }

    /// An action for the pane on screen.
    pub(super) fn pane_action(&mut self, action: Action) -> Vec<Effect> {
        let opens_detail = action == Action::Open
            && ((self.pane == Pane::Runs && self.runs.detail.is_none())
                || (self.pane == Pane::Services && self.services.detail.is_none()));
        if opens_detail && !self.back.is_empty() {
            // In a chain of jumps, the list a row was opened from is a level of its own.
            let here = self.place();
            self.back.push(here);
        }
        let ctx = self.key_ctx();
        let reply = match self.pane {
            Pane::Overview => self.overview.on_action(action, &ctx),
            Pane::Services => self.services.on_action(action, &ctx),
            Pane::Manifests => self.manifests.on_action(action, &ctx),
            Pane::Templates => self.templates.on_action(action, &ctx),
            Pane::Runs => self.runs.on_action(action, &ctx),
        };
        self.apply(reply)
    }

    /// In monitor, a key of a writing action is not bound: it says why it does nothing, once
    /// (pressed again, the message stays and the log does not fill with it).
    fn refuse_read_only(&mut self, key: &KeyEvent) {
        let Some(action) = self.keymap.hidden_action(self.context(), key) else {
            return;
        };
        let text = format!(
            "read-only: this console cannot {} ({})",
            action.help(),
            self.read_only_reason
        );
        if self.message.as_ref().is_none_or(|(_, said)| *said != text) {
            self.say(Level::Error, text);
        }
    }

    /// How many levels deep the operator is: jumps taken, and a run's detail open.
    pub fn depth(&self) -> usize {
        let detail = match self.pane {
            Pane::Runs => self.runs.detail.is_some(),
            Pane::Services => self.services.detail.is_some(),
            _ => false,
        };
        self.back.len() + usize::from(detail)
    }

    /// Whether Esc belongs to the pane first (clearing a log search).
    fn pane_keeps_back(&self) -> bool {
        self.pane == Pane::Runs
            && self
                .runs
                .detail
                .as_ref()
                .is_some_and(|d| d.pager.search.is_some())
    }

    /// Where the operator is now, to come back to.
    pub fn place(&self) -> Place {
        Place {
            pane: self.pane,
            query: self.runs.query.clone(),
            run: self.runs.detail.as_ref().map(|d| d.run_id),
            service: match self.pane {
                Pane::Services => self.services.detail.as_ref().map(|d| d.schema.clone()),
                _ => self.manifests.service.clone(),
            },
        }
    }

    /// The breadcrumbs: every place come from, then here.
    pub fn crumbs(&self) -> Vec<String> {
        self.back
            .iter()
            .map(Place::label)
            .chain(std::iter::once(self.place().label()))
            .collect()
    }

    /// Goes back to where the last jump came from.
    fn go_back(&mut self) -> Vec<Effect> {
        let Some(place) = self.back.pop() else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        if place.pane == Pane::Runs {
            if self.runs.query.text != place.query.text
                || self.runs.query.status != place.query.status
            {
                effects.extend(self.runs.filter(place.query.clone()));
            }
            let open = self.runs.detail.as_ref().map(|d| d.run_id);
            match place.run {
                Some(id) if open != Some(id) => effects.extend(self.runs.open_run(id)),
                Some(_) => {}
                None => {
                    if self.runs.detail.take().is_some() {
                        effects.push(Effect::CloseRun);
                    }
                }
            }
        }
        if place.pane == Pane::Services {
            let open = self.services.detail.as_ref().map(|d| d.schema.clone());
            match &place.service {
                Some(schema) if open.as_ref() != Some(schema) => {
                    effects.extend(self.services.open_service(schema));
                }
                Some(_) => {}
                None => {
                    if self.services.detail.take().is_some() {
                        effects.push(Effect::CloseService);
                    }
                }
            }
        }
        if place.pane == Pane::Manifests
            && let Some(schema) = place
                .service
                .filter(|s| self.manifests.service.as_ref() != Some(s))
        {
            effects.extend(self.manifests.open(schema));
        }
        effects.extend(self.switch_pane(place.pane));
        effects
    }

    /// Carries out what a pane answered.
    pub(super) fn apply(&mut self, reply: Reply) -> Vec<Effect> {
        if let Some((level, text)) = reply.say {
            self.say(level, text);
        }
        if let Some(mode) = reply.mode {
            self.mode = mode;
        }
        let mut effects = reply.effects;
        if reply.goto.is_some() {
            let here = self.place();
            if self.back.last() != Some(&here) {
                self.back.push(here);
            }
        }
        match reply.goto {
            Some(Goto::Run(id)) => {
                self.pane = Pane::Runs;
                effects.extend(self.runs.open_run(id));
            }
            Some(Goto::Services) => self.pane = Pane::Services,
            Some(Goto::Service(schema)) => {
                self.pane = Pane::Services;
                effects.extend(self.services.open_service(&schema));
            }
            Some(Goto::Manifests(schema)) => {
                self.pane = Pane::Manifests;
                effects.extend(self.manifests.open(schema));
            }
            Some(Goto::Runs(query)) => {
                self.pane = Pane::Runs;
                effects.extend(self.runs.filter(query));
            }
            None => {}
        }
        effects
    }

    pub(super) fn switch_pane(&mut self, pane: Pane) -> Vec<Effect> {
        self.pane = pane;
        match pane {
            Pane::Overview => vec![Effect::LoadBoard],
            Pane::Services => vec![Effect::LoadServices],
            Pane::Templates => vec![Effect::LoadTemplates],
            Pane::Manifests => self.manifests.reload(),
            Pane::Runs => Vec::new(),
        }
    }

    /// The filter line: every keystroke filters (the run list asks the store, latest wins);
    /// Enter keeps the filter, Esc puts back the one from before `/`.
    fn on_filter_key(&mut self, key: KeyEvent, mut text: String) -> Vec<Effect> {
        match key.code {
            KeyCode::Enter => {
                let effects = self.set_filter(&text, true);
                if let Some(error) = self.filter_error.take() {
                    self.mode = Mode::Filter(text);
                    self.filter_error = Some(error);
                }
                effects
            }
            KeyCode::Esc => {
                let before = std::mem::take(&mut self.filter_before);
                let effects = self.set_filter(&before, true);
                self.filter_error = None;
                effects
            }
            _ => {
                edit_line(&mut text, &key);
                let effects = self.set_filter(&text, false);
                self.mode = Mode::Filter(text);
                effects
            }
        }
    }

    /// `:sort COLUMN [desc]` on the current pane's list.
    pub fn sort_list(&mut self, column: &str, descending: bool) -> Result<(), String> {
        let rows = self.table_rows();
        match self.pane {
            Pane::Overview => self.overview.workers.sort_by(column, descending, rows),
            Pane::Services => self.services.list.sort_by(column, descending, rows),
            Pane::Manifests => self.manifests.list.sort_by(column, descending, rows),
            Pane::Templates => self.templates.list.sort_by(column, descending, rows),
            Pane::Runs => Err(
                "the run list stays newest first, as the store pages it: filter it with / instead"
                    .into(),
            ),
        }
    }

    /// The current pane's filter text (the log search in a run's detail).
    pub fn filter_text(&self) -> String {
        match self.pane {
            Pane::Overview => self.overview.workers.filter_text().to_owned(),
            Pane::Services => self.services.list.filter_text().to_owned(),
            Pane::Templates => self.templates.list.filter_text().to_owned(),
            Pane::Manifests => self.manifests.list.filter_text().to_owned(),
            Pane::Runs => self.runs.filter_text(),
        }
    }

    /// Filters the current pane by `text`; `done` when the operator pressed Enter. A filter
    /// that does not parse is said on the filter line and the last good one stays.
    fn set_filter(&mut self, text: &str, done: bool) -> Vec<Effect> {
        let text = text.trim();
        let answer = match self.pane {
            Pane::Overview => self
                .overview
                .workers
                .set_filter(text, self.now)
                .map(|()| Vec::new()),
            Pane::Services => self
                .services
                .list
                .set_filter(text, self.now)
                .map(|()| Vec::new()),
            Pane::Templates => self
                .templates
                .list
                .set_filter(text, self.now)
                .map(|()| self.templates.load_artifacts()),
            Pane::Manifests => self
                .manifests
                .list
                .set_filter(text, self.now)
                .map(|()| Vec::new()),
            Pane::Runs => self.runs.type_filter(text, done),
        };
        match answer {
            Ok(effects) => {
                self.filter_error = None;
                effects
            }
            Err(error) => {
                self.filter_error = Some(error);
                Vec::new()
            }
        }
    }

    pub(super) fn fail(&mut self, text: String) -> Vec<Effect> {
        self.say(Level::Error, text);
        Vec::new()
    }

    /// Puts a message on the bottom line and keeps it, in full, in the `:messages` log.
    fn say(&mut self, level: Level, text: String) {
        if self.messages.len() == MESSAGE_LOG {
            self.messages.pop_front();
        }
        self.messages.push_back(Message {
            at: self.now,
            level,
            text: text.clone(),
        });
        self.message = Some((level, text));
    }
}

/// Minimal line editing for the filter and command lines.
pub(super) fn edit_line(text: &mut String, key: &KeyEvent) {
    match key.code {
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => text.clear(),
        KeyCode::Char(c)
            if !key.modifiers.contains(KeyModifiers::CONTROL) && text.chars().count() < 200 =>
        {
            text.push(c)
        }
        _ => {}
    }
}
