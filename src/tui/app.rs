//! The console's state and how keys and data change it. No IO here: a key yields `Effect`s that the
//! runtime carries out in the background, and their answers come back as `Data`. That split is
//! what lets the tests drive the console key by key without a terminal or a database.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, FixedOffset, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::catalog::{Catalog, ManifestEditor, ServiceForm};
use super::keymap::{Action, Context, Keymap};
use super::panes::overview::OverviewPane;
use super::style::age_changes_at;
use crate::domain::audit::AuditRow;
use crate::domain::deployment::liveness_changes_at;
use crate::domain::manifest::{FieldChange, Manifest, ManifestHead, ManifestStatus};
use crate::domain::run::{Run, RunLog, RunStatus};
use crate::domain::template::StoredArtifact;
use crate::domain::worker::WorkerPresence;
use crate::ops::{QueueBoard, QueueCounts, QueueOverview, RunDetail, ServiceOverview, VersionRow};

/// Log lines kept per open run; older ones scroll out, however chatty the run is.
pub const LOG_RING: usize = 2_000;
/// Rows the run list asks for; the status counts cover the rest.
pub const RUN_PAGE: i64 = 500;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailTab {
    Events,
    Logs,
    Artifacts,
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

/// What the list shows; sent to the loader whenever it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunsQuery {
    pub status: Option<RunStatus>,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct DetailState {
    pub run_id: i64,
    pub detail: Option<RunDetail>,
    pub logs: VecDeque<RunLog>,
    pub tab: DetailTab,
    pub follow: bool,
    /// Lines scrolled up from the bottom of the logs (0 = at the end).
    pub scroll: usize,
    /// Only log lines containing this (case-insensitive) are shown.
    pub search: String,
}

impl DetailState {
    /// The log lines the search lets through, oldest first.
    pub fn visible_logs(&self) -> Vec<&RunLog> {
        if self.search.is_empty() {
            return self.logs.iter().collect();
        }
        let needle = self.search.to_lowercase();
        self.logs
            .iter()
            .filter(|l| l.message.to_lowercase().contains(&needle))
            .collect()
    }
}

/// IO the runtime performs for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    LoadRuns(RunsQuery),
    /// The Overview's queues, workers and activity (and keep them fresh while it shows).
    LoadBoard,
    OpenRun(i64),
    CloseRun,
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
    Runs(Vec<Run>),
    Board(QueueBoard),
    /// Worker presence alone, for the status bar while the Overview is not on screen.
    Presence(Vec<WorkerPresence>),
    Overview(QueueOverview),
    /// Fresh counts; the activity shown stays as it was.
    Counts(QueueCounts),
    Detail(Box<RunDetail>),
    /// New log lines of a run, in id order.
    Logs(i64, Vec<RunLog>),
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
    pub query: RunsQuery,
    pub runs: Vec<Run>,
    /// Set once the first list has arrived; until then the pane says it is loading.
    pub loaded: bool,
    pub selected: usize,
    /// The first row on screen; kept here (not by the table widget) so that rows do not slide.
    pub first_row: usize,
    /// The newest list from the store; `runs` is what is shown of it.
    pub incoming: Vec<Run>,
    /// Away from the top of the list, the newest run id shown: newer runs wait behind a marker
    /// instead of pushing the selected row down.
    pub pinned: Option<i64>,
    /// The live list is frozen (`p`); the store's updates wait in `incoming`.
    pub paused: bool,
    /// Marks survive filter changes; the confirmation says when some are out of sight.
    pub marked: BTreeSet<i64>,
    pub overview: QueueOverview,
    /// The Overview pane: queues, workers, the last hour.
    pub board: OverviewPane,
    pub detail: Option<DetailState>,
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
    pub catalog: Catalog,
    pub editor: Option<ManifestEditor>,
    pub form: Option<ServiceForm>,
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
            query: RunsQuery::default(),
            runs: Vec::new(),
            loaded: false,
            selected: 0,
            first_row: 0,
            incoming: Vec::new(),
            pinned: None,
            paused: false,
            marked: BTreeSet::new(),
            overview: QueueOverview::default(),
            board: OverviewPane::default(),
            detail: None,
            message: None,
            messages: VecDeque::new(),
            now: Utc::now(),
            last_update: None,
            unreachable: None,
            offset: *chrono::Local::now().offset(),
            screen: (80, 24),
            quit: false,
            catalog: Catalog::default(),
            editor: None,
            form: None,
            audit: Vec::new(),
        }
    }

    /// What to load first.
    pub fn start(&self) -> Vec<Effect> {
        vec![Effect::LoadRuns(self.query.clone()), Effect::LoadBoard]
    }

    pub fn context(&self) -> Context {
        match (&self.pane, &self.detail) {
            (Pane::Overview, _) => Context::Overview,
            (Pane::Runs, Some(_)) => Context::Detail,
            (Pane::Runs, None) => Context::Runs,
            (Pane::Services, _) => Context::Services,
            (Pane::Manifests, _) => Context::Manifests,
            (Pane::Templates, _) => Context::Templates,
        }
    }

    /// Sets the wall clock the screen is drawn against.
    pub fn set_clock(&mut self, now: DateTime<Utc>) {
        self.now = now;
    }

    /// The next moment a value on screen changes by the clock alone (an age ticks over, a
    /// heartbeat turns stale, a queue stalls); None when nothing on screen depends on the clock.
    /// The runtime sleeps until then, so an idle console redraws exactly when it must.
    pub fn next_visible_change(&self) -> Option<DateTime<Utc>> {
        let now = self.now;
        // The status bar counts live workers and stalled queues on every pane.
        let status_bar = self
            .board
            .board
            .workers
            .iter()
            .filter_map(|w| liveness_changes_at(now, Some(w.heartbeat_at)));
        let pane: Option<DateTime<Utc>> = match self.pane {
            Pane::Overview => self.board.next_visible_change(now),
            Pane::Runs if self.detail.is_none() => self
                .visible_runs()
                .iter()
                .map(|r| age_changes_at(now, r.created_at))
                .min(),
            Pane::Services => self
                .catalog
                .services
                .iter()
                .filter_map(|s| s.deployment.as_ref().and_then(|d| d.last_heartbeat))
                .flat_map(|t| {
                    [
                        Some(age_changes_at(now, t)),
                        liveness_changes_at(now, Some(t)),
                    ]
                })
                .flatten()
                .min(),
            _ => None,
        };
        status_bar.chain(pane).min()
    }

    pub fn selected_run(&self) -> Option<&Run> {
        self.runs.get(self.selected)
    }

    pub fn on_data(&mut self, data: Data, now: DateTime<Utc>) {
        self.now = now;
        match data {
            Data::Runs(runs) => {
                self.incoming = runs;
                self.loaded = true;
                self.last_update = Some(now);
                if !self.paused {
                    self.show_incoming();
                }
            }
            Data::Board(mut board) => {
                // The last hour's activity arrives with the run counts (on its own beat).
                board.activity = std::mem::take(&mut self.board.board.activity);
                self.board.set_board(board);
                self.last_update = Some(now);
            }
            Data::Presence(workers) => self.board.board.workers = workers,
            Data::Overview(overview) => {
                self.board.board.activity = overview.activity.clone();
                self.overview = overview;
                self.last_update = Some(now);
            }
            Data::Counts(counts) => {
                self.overview.counts = counts.counts;
                self.overview.active_workers = counts.active_workers;
                self.last_update = Some(now);
            }
            Data::Detail(detail) => {
                if let Some(d) = self.detail.as_mut().filter(|d| d.run_id == detail.run.id) {
                    d.detail = Some(*detail);
                }
            }
            Data::Logs(run_id, lines) => {
                if let Some(d) = self.detail.as_mut().filter(|d| d.run_id == run_id) {
                    for line in lines {
                        if d.logs.len() == LOG_RING {
                            d.logs.pop_front();
                        }
                        d.logs.push_back(line);
                    }
                    if d.follow {
                        d.scroll = 0;
                    }
                }
            }
            Data::Done(text) => self.say(Level::Info, text),
            Data::Failed(text) => self.say(Level::Error, text),
            Data::Unreachable { since, error } => self.unreachable = Some((since, error)),
            Data::Reachable => self.unreachable = None,
            Data::Gone { what, error } => {
                match what {
                    Gone::Run(id) => {
                        if self.detail.as_ref().is_some_and(|d| d.run_id == id) {
                            self.detail = None;
                        }
                    }
                    Gone::Service(schema) => {
                        if self.catalog.service.as_deref() == Some(schema.as_str()) {
                            self.catalog.service = None;
                            self.catalog.history.clear();
                            self.catalog.content = None;
                            self.catalog.diff = None;
                            if self.pane == Pane::Manifests {
                                self.pane = Pane::Services;
                            }
                        }
                    }
                }
                self.say(Level::Error, error);
            }
            Data::Services(services) => {
                self.catalog.set_services(services);
                self.last_update = Some(now);
            }
            Data::Manifests {
                schema,
                history,
                content,
            } => self
                .catalog
                .set_manifests(schema, history, content.map(|c| *c)),
            Data::Diff { from, to, changes } => self.catalog.diff = Some((from, to, changes)),
            Data::Templates(rows) => self.catalog.set_versions(rows),
            Data::Audit(rows) => self.audit = rows,
            Data::TemplateArtifacts {
                template,
                version,
                artifacts,
            } => self.catalog.artifacts = Some((template, version, artifacts)),
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.on_normal_key(key),
            Mode::Audit | Mode::Messages => Vec::new(),
            Mode::Help => {
                // Any key closes help; `q` there should not quit by surprise.
                Vec::new()
            }
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
            Mode::Editing => self.on_editing_key(key),
            Mode::LabelInput {
                template,
                version,
                mut text,
            } => match key.code {
                KeyCode::Enter => {
                    let mut words = text.split_whitespace();
                    let label = words.next().unwrap_or("").to_owned();
                    match words.next().map(|p| p.trim_end_matches('%').parse::<i32>()) {
                        None => vec![Effect::Label {
                            template,
                            label,
                            version,
                            percent: 100,
                        }],
                        Some(Ok(percent)) => vec![Effect::Label {
                            template,
                            label,
                            version,
                            percent,
                        }],
                        Some(Err(_)) => self.fail(format!("`{text}`: a label, then a percent")),
                    }
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
                    if matches!(confirm.effect, Effect::Cancel(_) | Effect::Retry(_)) {
                        self.marked.clear();
                    }
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
            Action::NextPane => self.switch_pane(self.pane.step(1)),
            Action::PrevPane => self.switch_pane(self.pane.step(Pane::ALL.len() - 1)),
            Action::Overview => self.switch_pane(Pane::Overview),
            Action::Services => self.switch_pane(Pane::Services),
            Action::Manifests => self.switch_pane(Pane::Manifests),
            Action::Templates => self.switch_pane(Pane::Templates),
            Action::Runs => self.switch_pane(Pane::Runs),
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page_rows() as i64)),
            Action::PageDown => self.move_by(self.page_rows() as i64),
            Action::Top => self.move_to(0),
            Action::Bottom => self.move_to(usize::MAX),
            Action::Open if self.pane == Pane::Services => {
                match self
                    .catalog
                    .selected_service()
                    .map(|s| s.service.schema.clone())
                {
                    Some(schema) => self.open_manifests(schema),
                    None => Vec::new(),
                }
            }
            Action::Open if self.pane == Pane::Templates => self.load_template_artifacts(),
            Action::Open if self.pane == Pane::Overview => {
                // A queue's runs: the text filter matches the queue's name.
                match self.board.selected_queue().map(|q| q.queue.clone()) {
                    Some(queue) => {
                        self.pane = Pane::Runs;
                        self.detail = None;
                        self.query = RunsQuery {
                            status: None,
                            text: queue,
                        };
                        self.load_runs()
                    }
                    None => Vec::new(),
                }
            }
            Action::Open if self.pane == Pane::Manifests => {
                self.catalog.diff = None;
                self.load_selected_version()
            }
            Action::Open => match (self.pane, self.selected_run()) {
                (Pane::Runs, Some(run)) if self.detail.is_none() => {
                    let id = run.id;
                    self.open_run(id)
                }
                _ => Vec::new(),
            },
            Action::Back if self.pane == Pane::Manifests => {
                if self.catalog.diff.take().is_none() {
                    self.pane = Pane::Services;
                }
                Vec::new()
            }
            Action::Back => {
                if let Some(d) = self.detail.as_mut().filter(|d| !d.search.is_empty()) {
                    d.search.clear();
                    Vec::new()
                } else if self.detail.take().is_some() {
                    vec![Effect::CloseRun]
                } else if !self.query.text.is_empty() || self.query.status.is_some() {
                    self.query = RunsQuery::default();
                    self.load_runs()
                } else {
                    Vec::new()
                }
            }
            Action::Filter => {
                let current = match &self.detail {
                    Some(d) => d.search.clone(),
                    None => self.query.text.clone(),
                };
                self.mode = Mode::Filter(current);
                Vec::new()
            }
            Action::Command => {
                self.mode = Mode::Command(String::new());
                Vec::new()
            }
            Action::CycleStatus => {
                let next = match self.query.status {
                    None => Some(RunStatus::ALL[0]),
                    Some(s) => RunStatus::ALL
                        .iter()
                        .position(|x| *x == s)
                        .and_then(|i| RunStatus::ALL.get(i + 1))
                        .copied(),
                };
                self.set_status_filter(next)
            }
            Action::Pause => {
                self.paused = !self.paused;
                if self.paused {
                    self.say(
                        Level::Info,
                        "paused: the list stays as it is until p".into(),
                    );
                } else {
                    self.show_incoming();
                    self.say(Level::Info, "live again".into());
                }
                Vec::new()
            }
            Action::Mark => {
                if let Some(id) = self.selected_run().map(|r| r.id) {
                    if !self.marked.remove(&id) {
                        self.marked.insert(id);
                    }
                    self.move_by(1);
                }
                Vec::new()
            }
            Action::CopyId => match self.selected_run() {
                Some(run) => {
                    let id = run.id.to_string();
                    self.say(Level::Info, format!("copied run id {id}"));
                    vec![Effect::Copy(id)]
                }
                None => Vec::new(),
            },
            Action::Cancel => self.confirm_with(Effect::Cancel),
            Action::Retry => self.confirm_with(Effect::Retry),
            Action::Claim => match self.current_run() {
                Some(run) => vec![Effect::Claim(run.queue.clone())],
                None => self.fail("no run selected: its queue is the one claimed from".into()),
            },
            Action::Start => match self.current_run_id() {
                Some(id) => vec![Effect::Start(id)],
                None => Vec::new(),
            },
            Action::Complete => {
                if let Some(run_id) = self.current_run_id() {
                    self.mode = Mode::ExitCode {
                        run_id,
                        text: "0".into(),
                    };
                }
                Vec::new()
            }
            Action::ShowEvents => self.detail_tab(DetailTab::Events),
            Action::ShowLogs => self.detail_tab(DetailTab::Logs),
            Action::ShowArtifacts => self.detail_tab(DetailTab::Artifacts),
            Action::NewService => {
                let project = self
                    .catalog
                    .selected_service()
                    .map(|s| s.service.project.clone())
                    .unwrap_or_default();
                self.form = Some(ServiceForm::new(&project));
                self.mode = Mode::Editing;
                Vec::new()
            }
            Action::Deploy => match self.catalog.selected_service() {
                Some(s) => {
                    self.mode =
                        Mode::Confirm(Confirm::new(Effect::Deploy(s.service.schema.clone())));
                    Vec::new()
                }
                None => Vec::new(),
            },
            Action::Propose => {
                let (Some(schema), Some(content)) =
                    (self.catalog.service.clone(), self.catalog.content.as_ref())
                else {
                    return self.fail("open a service's manifest first (Enter in Services)".into());
                };
                self.editor = Some(ManifestEditor::new(&schema, &content.content));
                self.mode = Mode::Editing;
                Vec::new()
            }
            Action::Activate => {
                let (Some(schema), Some(v)) = (
                    self.catalog.service.clone(),
                    self.catalog.selected_version(),
                ) else {
                    return Vec::new();
                };
                if v.status != ManifestStatus::Draft {
                    let text = format!(
                        "{} is {}; only a draft can be activated",
                        v.version, v.status
                    );
                    return self.fail(text);
                }
                self.mode = Mode::Confirm(Confirm::new(Effect::Activate {
                    schema,
                    version: v.version.clone(),
                }));
                Vec::new()
            }
            Action::Lock | Action::Unlock => {
                if let Some(schema) = self.catalog.service.clone() {
                    self.mode = Mode::Confirm(Confirm::new(if action == Action::Lock {
                        Effect::Lock(schema)
                    } else {
                        Effect::Unlock(schema)
                    }));
                }
                Vec::new()
            }
            Action::Diff => {
                let (Some(schema), Some(gov), Some(sel)) = (
                    self.catalog.service.clone(),
                    self.catalog.governing(),
                    self.catalog.selected_version(),
                ) else {
                    return self.fail("nothing to compare with: no governing version".into());
                };
                vec![Effect::Diff {
                    schema,
                    from: gov.version.clone(),
                    to: sel.version.clone(),
                }]
            }
            Action::Promote | Action::Deprecate | Action::MakeDefault | Action::LabelVersion => {
                let Some(row) = self.catalog.selected_template_version() else {
                    return Vec::new();
                };
                let (template, version) =
                    (row.version.template.clone(), row.version.version.clone());
                self.mode = match action {
                    Action::Promote => {
                        Mode::Confirm(Confirm::new(Effect::Promote { template, version }))
                    }
                    Action::Deprecate => {
                        Mode::Confirm(Confirm::new(Effect::Deprecate { template, version }))
                    }
                    Action::MakeDefault => {
                        Mode::Confirm(Confirm::new(Effect::MakeDefault { template, version }))
                    }
                    _ => Mode::LabelInput {
                        template,
                        version,
                        text: String::new(),
                    },
                };
                Vec::new()
            }
            Action::Follow => {
                if let Some(d) = self.detail.as_mut() {
                    d.follow = !d.follow;
                    d.tab = DetailTab::Logs;
                    if d.follow {
                        d.scroll = 0;
                    }
                }
                Vec::new()
            }
        }
    }

    fn switch_pane(&mut self, pane: Pane) -> Vec<Effect> {
        self.pane = pane;
        match pane {
            Pane::Overview => vec![Effect::LoadBoard],
            Pane::Services => vec![Effect::LoadServices],
            Pane::Templates => vec![Effect::LoadTemplates],
            Pane::Manifests => match self.catalog.service.clone() {
                Some(schema) => vec![Effect::LoadManifests {
                    schema,
                    version: self.catalog.selected_version().map(|v| v.version.clone()),
                }],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn open_manifests(&mut self, schema: String) -> Vec<Effect> {
        self.pane = Pane::Manifests;
        if self.catalog.service.as_deref() != Some(schema.as_str()) {
            self.catalog.history.clear();
            self.catalog.content = None;
            self.catalog.diff = None;
        }
        self.catalog.service = Some(schema.clone());
        vec![Effect::LoadManifests {
            schema,
            version: None,
        }]
    }

    fn load_template_artifacts(&self) -> Vec<Effect> {
        match self.catalog.selected_template_version() {
            Some(row) => vec![Effect::LoadTemplateArtifacts {
                template: row.version.template.clone(),
                version: row.version.version.clone(),
            }],
            None => Vec::new(),
        }
    }

    fn load_selected_version(&self) -> Vec<Effect> {
        match (&self.catalog.service, self.catalog.selected_version()) {
            (Some(schema), Some(v)) => vec![Effect::LoadManifests {
                schema: schema.clone(),
                version: Some(v.version.clone()),
            }],
            _ => Vec::new(),
        }
    }

    /// Keys for the manifest editor or the service form: Ctrl-S submits when valid, Esc leaves.
    fn on_editing_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(mut editor) = self.editor.take() {
            match key.code {
                KeyCode::Esc => return Vec::new(),
                KeyCode::Char('s') if ctrl => {
                    if let Some(problem) = &editor.problem {
                        let text = format!("not proposed: {problem}");
                        self.editor = Some(editor);
                        self.mode = Mode::Editing;
                        return self.fail(text);
                    }
                    return vec![Effect::Propose {
                        schema: editor.schema.clone(),
                        text: editor.text(),
                    }];
                }
                _ => {
                    editor.textarea.input(key);
                    editor.validate();
                }
            }
            self.editor = Some(editor);
            self.mode = Mode::Editing;
            return Vec::new();
        }
        if let Some(mut form) = self.form.take() {
            let submit = (key.code == KeyCode::Char('s') && ctrl)
                || (key.code == KeyCode::Enter && form.focus == form.fields.len() - 1);
            match key.code {
                KeyCode::Esc => return Vec::new(),
                _ if submit => {
                    if let Some(problem) = &form.problem {
                        let text = format!("not created: {problem}");
                        self.form = Some(form);
                        self.mode = Mode::Editing;
                        return self.fail(text);
                    }
                    return vec![Effect::CreateService {
                        project: form.value(0),
                        name: form.value(1),
                        schema: form.value(2),
                        workflows: form
                            .workflows()
                            .unwrap_or_default()
                            .iter()
                            .map(|w| format!("{}:{}", w.name, w.activities.join(",")))
                            .collect(),
                    }];
                }
                KeyCode::Tab | KeyCode::Down | KeyCode::Enter => form.set_focus(form.focus + 1),
                KeyCode::BackTab | KeyCode::Up => {
                    form.set_focus(form.focus + form.fields.len() - 1)
                }
                _ => {
                    form.fields[form.focus].input(key);
                    form.validate();
                }
            }
            self.form = Some(form);
            self.mode = Mode::Editing;
        }
        Vec::new()
    }

    fn open_run(&mut self, id: i64) -> Vec<Effect> {
        self.pane = Pane::Runs;
        self.detail = Some(DetailState {
            run_id: id,
            detail: None,
            logs: VecDeque::new(),
            tab: DetailTab::Events,
            follow: true,
            scroll: 0,
            search: String::new(),
        });
        vec![Effect::OpenRun(id)]
    }

    fn detail_tab(&mut self, tab: DetailTab) -> Vec<Effect> {
        if let Some(d) = self.detail.as_mut() {
            d.tab = tab;
        }
        Vec::new()
    }

    fn move_by(&mut self, delta: i64) -> Vec<Effect> {
        match self.pane {
            Pane::Overview => {
                self.board.move_by(delta);
                return Vec::new();
            }
            Pane::Services => {
                self.catalog.move_service(delta);
                return Vec::new();
            }
            Pane::Manifests => {
                self.catalog.move_version(delta);
                return Vec::new();
            }
            Pane::Templates => {
                self.catalog.move_template_version(delta);
                return self.load_template_artifacts();
            }
            _ => {}
        }
        if let Some(d) = self.detail.as_mut() {
            // In the detail, up and down scroll the logs; scrolling up stops following.
            if d.tab == DetailTab::Logs {
                let max = d.visible_logs().len().saturating_sub(1);
                d.scroll = (d.scroll as i64 - delta).clamp(0, max as i64) as usize;
                d.follow = d.scroll == 0 && d.follow;
            }
            return Vec::new();
        }
        if self.runs.is_empty() {
            return Vec::new();
        }
        let target = self.selected as i64 + delta;
        if target <= 0 && self.pinned.take().is_some() {
            // Back at the top: the runs that waited behind the marker come in.
            self.selected = 0;
            self.first_row = 0;
            if !self.paused {
                self.show_incoming();
            }
            return Vec::new();
        }
        let last = self.runs.len() as i64 - 1;
        self.selected = target.clamp(0, last) as usize;
        if self.selected > 0 && self.pinned.is_none() {
            self.pinned = self.runs.first().map(|r| r.id);
        }
        self.keep_selected_visible();
        Vec::new()
    }

    /// Shows the newest list from the store: at the top of the list it follows the newest run;
    /// away from it, the selected run keeps its row on screen and newer runs wait (`new_above`).
    fn show_incoming(&mut self) {
        let keep = self.selected_run().map(|r| r.id);
        let line = self.selected.saturating_sub(self.first_row);
        let pinned = self.pinned;
        self.runs = self
            .incoming
            .iter()
            .filter(|r| pinned.is_none_or(|p| r.id <= p))
            .cloned()
            .collect();
        if pinned.is_none() {
            self.selected = 0;
            self.first_row = 0;
            return;
        }
        self.selected = keep
            .and_then(|id| self.runs.iter().position(|r| r.id == id))
            .unwrap_or(self.selected)
            .min(self.runs.len().saturating_sub(1));
        self.first_row = self.selected.saturating_sub(line);
        self.keep_selected_visible();
    }

    /// Runs newer than the ones shown, waiting behind the `▲ N new` marker.
    pub fn new_above(&self) -> usize {
        self.pinned
            .map_or(0, |p| self.incoming.iter().filter(|r| r.id > p).count())
    }

    fn keep_selected_visible(&mut self) {
        let rows = self.page_rows();
        if self.selected < self.first_row {
            self.first_row = self.selected;
        } else if self.selected >= self.first_row + rows {
            self.first_row = self.selected + 1 - rows;
        }
    }

    /// Whether the line above the status bar is in use (an input line, a message, an outage).
    pub fn bottom_line(&self) -> bool {
        !matches!(self.mode, Mode::Normal | Mode::Help | Mode::Confirm(_))
            || self.message.is_some()
            || self.unreachable.is_some()
    }

    /// Rows of the run list on screen at the current size (the view lays it out the same way).
    pub fn page_rows(&self) -> usize {
        let body = self
            .screen
            .1
            .saturating_sub(2 + u16::from(self.bottom_line()));
        let header = 1 + if body >= 30 { 3 } else { 1 };
        // Two borders and the column header.
        usize::from(body.saturating_sub(header + 3)).max(1)
    }

    /// The runs on screen now.
    pub fn visible_runs(&self) -> &[Run] {
        let end = (self.first_row + self.page_rows()).min(self.runs.len());
        self.runs
            .get(self.first_row.min(end)..end)
            .unwrap_or_default()
    }

    fn move_to(&mut self, row: usize) -> Vec<Effect> {
        if matches!(
            self.pane,
            Pane::Overview | Pane::Services | Pane::Manifests | Pane::Templates
        ) {
            let delta = if row == 0 { i64::MIN / 2 } else { i64::MAX / 2 };
            return self.move_by(delta);
        }
        if let Some(d) = self.detail.as_mut() {
            d.scroll = if row == 0 {
                d.visible_logs().len().saturating_sub(1)
            } else {
                0
            };
            return Vec::new();
        }
        if row == 0 {
            return self.move_by(i64::MIN / 2);
        }
        self.move_by(i64::MAX / 2)
    }

    /// The run open in the detail, else the selected one.
    fn current_run(&self) -> Option<&Run> {
        match &self.detail {
            Some(d) => d.detail.as_ref().map(|x| &x.run),
            None => self.selected_run(),
        }
    }

    fn current_run_id(&self) -> Option<i64> {
        match &self.detail {
            Some(d) => Some(d.run_id),
            None => self.selected_run().map(|r| r.id),
        }
    }

    /// The runs an action applies to: the marked ones, else the one open or selected.
    fn targets(&self) -> Vec<i64> {
        if let Some(d) = &self.detail {
            return vec![d.run_id];
        }
        if !self.marked.is_empty() {
            return self.marked.iter().copied().collect();
        }
        self.selected_run().map(|r| vec![r.id]).unwrap_or_default()
    }

    fn confirm_with(&mut self, make: fn(Vec<i64>) -> Effect) -> Vec<Effect> {
        if self.read_only {
            self.say(Level::Error, "read-only: nothing can be changed".into());
            return Vec::new();
        }
        let ids = self.targets();
        if ids.is_empty() {
            self.say(Level::Info, "no run selected".into());
            return Vec::new();
        }
        // Marks outlive a filter change; the question says when some of them are out of sight.
        let hidden = ids
            .iter()
            .filter(|id| !self.runs.iter().any(|r| r.id == **id))
            .count();
        let mut confirm = Confirm::new(make(ids));
        if hidden > 0 && self.detail.is_none() {
            confirm
                .question
                .push_str(&format!(" {hidden} of them not shown by the filter."));
        }
        self.mode = Mode::Confirm(confirm);
        Vec::new()
    }

    fn set_status_filter(&mut self, status: Option<RunStatus>) -> Vec<Effect> {
        self.query.status = status;
        self.pane = Pane::Runs;
        self.load_runs()
    }

    /// A new filter: the list starts again from the top, marks stay.
    fn load_runs(&mut self) -> Vec<Effect> {
        self.selected = 0;
        self.first_row = 0;
        self.pinned = None;
        vec![Effect::LoadRuns(self.query.clone())]
    }

    pub fn set_screen(&mut self, width: u16, height: u16) {
        self.screen = (width, height);
        self.keep_selected_visible();
    }

    fn on_filter_key(&mut self, key: KeyEvent, mut text: String) -> Vec<Effect> {
        match key.code {
            KeyCode::Enter => {
                if let Some(d) = self.detail.as_mut() {
                    d.search = text.trim().to_owned();
                    d.tab = DetailTab::Logs;
                    d.scroll = 0;
                    return Vec::new();
                }
                self.query.text = text.trim().to_owned();
                self.load_runs()
            }
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
            ("" , _) => Vec::new(),
            ("q" | "quit", _) => {
                self.quit = true;
                Vec::new()
            }
            ("runs", None) => self.set_status_filter(None),
            ("runs", Some(s)) => match s.parse::<RunStatus>() {
                Ok(status) => self.set_status_filter(Some(status)),
                Err(_) => self.fail(format!(
                    "unknown status `{s}`: one of queued, claimed, running, succeeded, failed, canceled"
                )),
            },
            ("run", Some(id)) => match id.parse::<i64>() {
                Ok(id) if id > 0 => self.open_run(id),
                _ => self.fail(format!("`{id}` is not a run id")),
            },
            ("services", _) | ("service", None) => self.switch_pane(Pane::Services),
            ("service" | "manifest" | "manifests", Some(schema)) => {
                match crate::domain::service::check_schema_name(schema) {
                    Ok(()) => self.open_manifests(schema.to_owned()),
                    Err(e) => self.fail(e.0),
                }
            }
            ("manifests" | "manifest", None) => self.switch_pane(Pane::Manifests),
            ("template", Some(name)) => {
                self.catalog.wanted_template = Some(name.to_owned());
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
