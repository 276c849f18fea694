//! The console's state and how keys and data change it. No IO here: a key yields `Effect`s that the
//! runtime carries out in the background, and their answers come back as `Data`. That split is
//! what lets the tests drive the console key by key without a terminal or a database.

use std::collections::VecDeque;

use chrono::{DateTime, DurationRound, FixedOffset, TimeDelta, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;

use super::keymap::{Action, Context, Keymap};
use super::panes::manifests::ManifestsPane;
use super::panes::overview::OverviewPane;
use super::panes::runs::RunsPane;
pub use super::panes::runs::{
    DetailState, DetailTab, LOG_WINDOW, Landing, LogRequest, LogWindow, RUN_PAGE, RunsQuery,
};
use super::panes::services::ServicesPane;
use super::panes::templates::TemplatesPane;
use super::panes::{Ctx, Goto, KeyCtx, Reply};
use super::style::Theme;
use crate::domain::audit::AuditRow;
use crate::domain::deployment::liveness_changes_at;
use crate::domain::manifest::{FieldChange, Manifest, ManifestHead};
use crate::domain::run::{LogMatches, Run, RunLog, RunStatus};
use crate::domain::template::StoredArtifact;
use crate::domain::worker::WorkerPresence;
use crate::ops::{QueueBoard, QueueOverview, RunDetail, ServiceOverview, VersionRow};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    Filter(String),
    Command(String),
    Confirm(Confirm),
    /// Keys go to the open editor or form.
    Editing,
    /// The audit trail overlay (`:audit`); any key closes it.
    Audit,
    /// Every message of this session, in full (`:messages`); any key closes it.
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
    Propose {
        schema: String,
        text: String,
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
}

pub struct App {
    pub pane: Pane,
    pub mode: Mode,
    pub read_only: bool,
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
    pub audit: Vec<AuditRow>,
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
            message: None,
            messages: VecDeque::new(),
            now: Utc::now(),
            last_update: None,
            unreachable: None,
            offset: *chrono::Local::now().offset(),
            screen: (80, 24),
            quit: false,
            audit: Vec::new(),
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
                self.overview.set_board(board);
                self.last_update = Some(now);
            }
            Data::Presence(workers) => self.overview.board.workers = workers,
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
                self.services.set_services(services);
                self.last_update = Some(now);
            }
            Data::Manifests {
                schema,
                history,
                content,
            } => self
                .manifests
                .set_manifests(schema, history, content.map(|c| *c)),
            Data::Diff { from, to, changes } => self.manifests.diff = Some((from, to, changes)),
            Data::Templates(rows) => self.templates.set_versions(rows),
            Data::Audit(rows) => self.audit = rows,
            Data::TemplateArtifacts {
                template,
                version,
                artifacts,
            } => self.templates.artifacts = Some((template, version, artifacts)),
        }
        Vec::new()
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.on_normal_key(key),
            // Any key closes an overlay; `q` there should not quit by surprise.
            Mode::Help | Mode::Audit | Mode::Messages => Vec::new(),
            Mode::Filter(text) => self.on_filter_key(key, text),
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
                    let mut words = text.split_whitespace();
                    let label = words.next().unwrap_or("").to_owned();
                    let percent = match words.next() {
                        None => 100,
                        Some(p) => match p.trim_end_matches('%').parse::<i32>() {
                            Ok(percent) => percent,
                            Err(_) => {
                                return self.fail(format!("`{text}`: a label, then a percent"));
                            }
                        },
                    };
                    vec![Effect::Label {
                        template,
                        label,
                        version,
                        percent,
                    }]
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
            return Vec::new();
        };
        self.message = None;
        match action {
            Action::Quit => {
                self.quit = true;
                Vec::new()
            }
            Action::Help => {
                self.mode = Mode::Help;
                Vec::new()
            }
            Action::Command => {
                self.mode = Mode::Command(String::new());
                Vec::new()
            }
            Action::NextPane => self.switch_pane(self.pane.step(1)),
            Action::PrevPane => self.switch_pane(self.pane.step(Pane::ALL.len() - 1)),
            Action::Overview => self.switch_pane(Pane::Overview),
            Action::Services => self.switch_pane(Pane::Services),
            Action::Manifests => self.switch_pane(Pane::Manifests),
            Action::Templates => self.switch_pane(Pane::Templates),
            Action::Runs => self.switch_pane(Pane::Runs),
            other => {
                let ctx = self.key_ctx();
                let reply = match self.pane {
                    Pane::Overview => self.overview.on_action(other, &ctx),
                    Pane::Services => self.services.on_action(other, &ctx),
                    Pane::Manifests => self.manifests.on_action(other, &ctx),
                    Pane::Templates => self.templates.on_action(other, &ctx),
                    Pane::Runs => self.runs.on_action(other, &ctx),
                };
                self.apply(reply)
            }
        }
    }

    /// Carries out what a pane answered.
    fn apply(&mut self, reply: Reply) -> Vec<Effect> {
        if let Some((level, text)) = reply.say {
            self.say(level, text);
        }
        if let Some(mode) = reply.mode {
            self.mode = mode;
        }
        let mut effects = reply.effects;
        match reply.goto {
            Some(Goto::Services) => self.pane = Pane::Services,
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

    fn switch_pane(&mut self, pane: Pane) -> Vec<Effect> {
        self.pane = pane;
        match pane {
            Pane::Overview => vec![Effect::LoadBoard],
            Pane::Services => vec![Effect::LoadServices],
            Pane::Templates => vec![Effect::LoadTemplates],
            Pane::Manifests => self.manifests.reload(),
            Pane::Runs => Vec::new(),
        }
    }

    fn on_filter_key(&mut self, key: KeyEvent, mut text: String) -> Vec<Effect> {
        match key.code {
            KeyCode::Enter => self.runs.apply_filter(&text),
            KeyCode::Esc => Vec::new(),
            _ => {
                edit_line(&mut text, &key);
                self.mode = Mode::Filter(text);
                Vec::new()
            }
        }
    }

    fn on_command_key(&mut self, key: KeyEvent, mut text: String) -> Vec<Effect> {
        match key.code {
            KeyCode::Enter => self.run_command(text.trim()),
            KeyCode::Esc => Vec::new(),
            _ => {
                edit_line(&mut text, &key);
                self.mode = Mode::Command(text);
                Vec::new()
            }
        }
    }

    fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let arg = words.next();
        match (verb, arg) {
            ("", _) => Vec::new(),
            ("q" | "quit", _) => {
                self.quit = true;
                Vec::new()
            }
            // `:runs [STATUS]` names the whole filter: a text filter from before does not linger.
            ("runs", None) => self.apply(Reply::goto(Goto::Runs(RunsQuery::default()))),
            ("runs", Some(s)) => match s.parse::<RunStatus>() {
                Ok(status) => self.apply(Reply::goto(Goto::Runs(RunsQuery {
                    status: Some(status),
                    ..RunsQuery::default()
                }))),
                Err(_) => self.fail(format!(
                    "unknown status `{s}`: one of queued, claimed, running, succeeded, failed, canceled"
                )),
            },
            ("run", Some(id)) => match id.parse::<i64>() {
                Ok(id) if id > 0 => {
                    self.pane = Pane::Runs;
                    self.runs.open_run(id)
                }
                _ => self.fail(format!("`{id}` is not a run id")),
            },
            ("overview", _) => self.switch_pane(Pane::Overview),
            ("services", _) | ("service", None) => self.switch_pane(Pane::Services),
            ("service" | "manifest" | "manifests", Some(schema)) => {
                match crate::domain::service::check_schema_name(schema) {
                    Ok(()) => self.apply(Reply::goto(Goto::Manifests(schema.to_owned()))),
                    Err(e) => self.fail(e.0),
                }
            }
            ("manifests" | "manifest", None) => self.switch_pane(Pane::Manifests),
            ("template", Some(name)) => {
                self.templates.wanted = Some(name.to_owned());
                self.switch_pane(Pane::Templates)
            }
            ("templates" | "template", _) => self.switch_pane(Pane::Templates),
            ("help", _) => {
                self.mode = Mode::Help;
                Vec::new()
            }
            ("messages" | "mes", _) => {
                self.mode = Mode::Messages;
                Vec::new()
            }
            ("audit", _) => {
                self.mode = Mode::Audit;
                vec![Effect::LoadAudit]
            }
            _ => self.fail(format!(
                "unknown command `{line}`: try :runs [STATUS], :run ID, :messages, :help, :q"
            )),
        }
    }

    fn fail(&mut self, text: String) -> Vec<Effect> {
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
fn edit_line(text: &mut String, key: &KeyEvent) {
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
