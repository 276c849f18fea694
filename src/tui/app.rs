//! The console's state and how keys and data change it. No IO here: a key yields `Effect`s that the
//! runtime carries out in the background, and their answers come back as `Data`. That split is
//! what lets the tests drive the console key by key without a terminal or a database.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, FixedOffset, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::catalog::{Catalog, ManifestEditor, ServiceForm};
use super::keymap::{Action, Context, Keymap};
use crate::domain::audit::AuditRow;
use crate::domain::manifest::{FieldChange, Manifest, ManifestHead, ManifestStatus};
use crate::domain::run::{Run, RunLog, RunStatus};
use crate::domain::template::StoredArtifact;
use crate::ops::{QueueCounts, QueueOverview, RunDetail, ServiceOverview, VersionRow};

/// Log lines kept per open run; older ones scroll out, however chatty the run is.
pub const LOG_RING: usize = 2_000;
/// Rows the run list asks for; the status counts cover the rest.
pub const RUN_PAGE: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Services,
    Manifests,
    Templates,
    Runs,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Services, Pane::Manifests, Pane::Templates, Pane::Runs];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Services => "Services",
            Pane::Manifests => "Manifests",
            Pane::Templates => "Templates",
            Pane::Runs => "Runs",
        }
    }

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(3)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailTab {
    Events,
    Logs,
    Artifacts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    Cancel(Vec<i64>),
    Retry(Vec<i64>),
    Deploy(String),
    Activate(String, String),
    Lock(String),
    Unlock(String),
    Promote(String, String),
    Deprecate(String, String),
    MakeDefault(String, String),
}

impl Confirm {
    pub fn question(&self) -> String {
        let (verb, ids) = match self {
            Confirm::Cancel(ids) => ("Cancel", ids),
            Confirm::Retry(ids) => ("Retry", ids),
            Confirm::Deploy(s) => return format!("Deploy the worker of {s} now?"),
            Confirm::Activate(s, v) => {
                return format!("Activate {s} {v}? The current version is superseded.");
            }
            Confirm::Lock(s) => {
                return format!("Lock {s}? Nothing can be activated until it is unlocked.");
            }
            Confirm::Unlock(s) => return format!("Unlock {s}?"),
            Confirm::Promote(t, v) => {
                return format!("Promote {t} {v} to stable? Its files freeze.");
            }
            Confirm::Deprecate(t, v) => {
                return format!("Deprecate {t} {v}? Only exact pins will resolve it.");
            }
            Confirm::MakeDefault(t, v) => return format!("Make {t} {v} the default?"),
        };
        match ids.as_slice() {
            [one] => format!("{verb} run {one}?"),
            many => format!("{verb} {} runs ({})?", many.len(), id_list(many)),
        }
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

/// Answers from the background, applied in arrival order.
#[derive(Debug, Clone)]
pub enum Data {
    Runs(Vec<Run>),
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
    pub marked: BTreeSet<i64>,
    pub overview: QueueOverview,
    pub detail: Option<DetailState>,
    pub message: Option<(Level, String)>,
    /// The clock for ages on screen: the time of the last data, so that a quiet console does not
    /// change (and a test's screen does not depend on the wall clock).
    pub now: DateTime<Utc>,
    pub last_update: Option<DateTime<Utc>>,
    /// Since when the store has not answered, and why; None while it answers.
    pub unreachable: Option<(DateTime<Utc>, String)>,
    /// Times on screen are shown in this offset (the local one; tests pin UTC).
    pub offset: FixedOffset,
    /// Rows the list shows per page, set by the view from the screen size.
    pub page_rows: usize,
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
            pane: Pane::Runs,
            mode: Mode::Normal,
            read_only,
            store,
            user,
            keymap,
            query: RunsQuery::default(),
            runs: Vec::new(),
            loaded: false,
            selected: 0,
            marked: BTreeSet::new(),
            overview: QueueOverview::default(),
            detail: None,
            message: None,
            now: Utc::now(),
            last_update: None,
            unreachable: None,
            offset: *chrono::Local::now().offset(),
            page_rows: 10,
            quit: false,
            catalog: Catalog::default(),
            editor: None,
            form: None,
            audit: Vec::new(),
        }
    }

    /// What to load first.
    pub fn start(&self) -> Vec<Effect> {
        vec![Effect::LoadRuns(self.query.clone())]
    }

    pub fn context(&self) -> Context {
        match (&self.pane, &self.detail) {
            (Pane::Runs, Some(_)) => Context::Detail,
            (Pane::Runs, None) => Context::Runs,
            (Pane::Services, _) => Context::Services,
            (Pane::Manifests, _) => Context::Manifests,
            (Pane::Templates, _) => Context::Templates,
        }
    }

    pub fn selected_run(&self) -> Option<&Run> {
        self.runs.get(self.selected)
    }

    pub fn on_data(&mut self, data: Data, now: DateTime<Utc>) {
        self.now = now;
        match data {
            Data::Runs(runs) => {
                let keep = self.selected_run().map(|r| r.id);
                self.runs = runs;
                self.loaded = true;
                self.last_update = Some(now);
                // Stay on the same run when rows above it come and go.
                self.selected = keep
                    .and_then(|id| self.runs.iter().position(|r| r.id == id))
                    .unwrap_or(self.selected)
                    .min(self.runs.len().saturating_sub(1));
                let present: BTreeSet<i64> = self.runs.iter().map(|r| r.id).collect();
                self.marked.retain(|id| present.contains(id));
            }
            Data::Overview(overview) => {
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
            Data::Done(text) => self.message = Some((Level::Info, text)),
            Data::Failed(text) => self.message = Some((Level::Error, text)),
            Data::Unreachable { since, error } => self.unreachable = Some((since, error)),
            Data::Reachable => self.unreachable = None,
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
            Mode::Audit => Vec::new(),
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
                    self.marked.clear();
                    vec![match confirm {
                        Confirm::Cancel(ids) => Effect::Cancel(ids),
                        Confirm::Retry(ids) => Effect::Retry(ids),
                        Confirm::Deploy(schema) => Effect::Deploy(schema),
                        Confirm::Activate(schema, version) => Effect::Activate { schema, version },
                        Confirm::Lock(schema) => Effect::Lock(schema),
                        Confirm::Unlock(schema) => Effect::Unlock(schema),
                        Confirm::Promote(template, version) => {
                            Effect::Promote { template, version }
                        }
                        Confirm::Deprecate(template, version) => {
                            Effect::Deprecate { template, version }
                        }
                        Confirm::MakeDefault(template, version) => {
                            Effect::MakeDefault { template, version }
                        }
                    }]
                }
                _ => {
                    self.message = Some((Level::Info, "nothing done".into()));
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
            Action::NextPane => self.switch_pane(Pane::ALL[(self.pane.index() + 1) % 4]),
            Action::PrevPane => self.switch_pane(Pane::ALL[(self.pane.index() + 3) % 4]),
            Action::Services => self.switch_pane(Pane::Services),
            Action::Manifests => self.switch_pane(Pane::Manifests),
            Action::Templates => self.switch_pane(Pane::Templates),
            Action::Runs => self.switch_pane(Pane::Runs),
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page_rows.max(1) as i64)),
            Action::PageDown => self.move_by(self.page_rows.max(1) as i64),
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
                    self.selected = 0;
                    vec![Effect::LoadRuns(self.query.clone())]
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
                    self.message = Some((Level::Info, format!("copied run id {id}")));
                    vec![Effect::Copy(id)]
                }
                None => Vec::new(),
            },
            Action::Cancel => self.confirm_with(Confirm::Cancel),
            Action::Retry => self.confirm_with(Confirm::Retry),
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
                    self.mode = Mode::Confirm(Confirm::Deploy(s.service.schema.clone()));
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
                self.mode = Mode::Confirm(Confirm::Activate(schema, v.version.clone()));
                Vec::new()
            }
            Action::Lock | Action::Unlock => {
                if let Some(schema) = self.catalog.service.clone() {
                    self.mode = Mode::Confirm(if action == Action::Lock {
                        Confirm::Lock(schema)
                    } else {
                        Confirm::Unlock(schema)
                    });
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
                let (t, v) = (row.version.template.clone(), row.version.version.clone());
                self.mode = match action {
                    Action::Promote => Mode::Confirm(Confirm::Promote(t, v)),
                    Action::Deprecate => Mode::Confirm(Confirm::Deprecate(t, v)),
                    Action::MakeDefault => Mode::Confirm(Confirm::MakeDefault(t, v)),
                    _ => Mode::LabelInput {
                        template: t,
                        version: v,
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
                KeyCode::Tab | KeyCode::Down | KeyCode::Enter => {
                    form.focus = (form.focus + 1) % form.fields.len();
                }
                KeyCode::BackTab | KeyCode::Up => {
                    form.focus = (form.focus + form.fields.len() - 1) % form.fields.len();
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
        let last = self.runs.len() as i64 - 1;
        self.selected = (self.selected as i64 + delta).clamp(0, last) as usize;
        Vec::new()
    }

    fn move_to(&mut self, row: usize) -> Vec<Effect> {
        if matches!(
            self.pane,
            Pane::Services | Pane::Manifests | Pane::Templates
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
        self.selected = row.min(self.runs.len().saturating_sub(1));
        Vec::new()
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

    fn confirm_with(&mut self, make: fn(Vec<i64>) -> Confirm) -> Vec<Effect> {
        if self.read_only {
            self.message = Some((Level::Error, "read-only: nothing can be changed".into()));
            return Vec::new();
        }
        let ids = self.targets();
        if ids.is_empty() {
            self.message = Some((Level::Info, "no run selected".into()));
        } else {
            self.mode = Mode::Confirm(make(ids));
        }
        Vec::new()
    }

    fn set_status_filter(&mut self, status: Option<RunStatus>) -> Vec<Effect> {
        self.query.status = status;
        self.selected = 0;
        self.pane = Pane::Runs;
        vec![Effect::LoadRuns(self.query.clone())]
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
                self.selected = 0;
                vec![Effect::LoadRuns(self.query.clone())]
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
            ("audit", _) => {
                self.mode = Mode::Audit;
                vec![Effect::LoadAudit]
            }
            _ => self.fail(format!(
                "unknown command `{line}`: try :runs [STATUS], :run ID, :help, :q"
            )),
        }
    }

    fn fail(&mut self, text: String) -> Vec<Effect> {
        self.message = Some((Level::Error, text));
        Vec::new()
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
