//! The Services pane: every service with its manifest, its worker's deployment and a heartbeat
//! judged against the clock; Enter opens a service's detail (`detail`), `n` the service form,
//! validated as the operator types.

pub mod detail;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Table, TableState, Wrap};
use ratatui_textarea::TextArea;

use self::detail::ServiceDetailView;
use super::columns::{Col, Fitted, widest};
use super::listing::{ListRow, Listing, SortKey};
use super::{Ctx, Goto, KeyCtx, Reply, movement};
use crate::domain::age::{age, age_changes_at};
use crate::domain::deployment::{DeploymentStatus, liveness, liveness_changes_at};
use crate::domain::filter::{Field, FieldValue};
use crate::domain::manifest::Drift;
use crate::domain::service::{WorkflowSpec, check_schema_name, check_service_name};
use crate::ops::{ServiceDetail, ServiceOverview};
use crate::tui::app::{Confirm, CopyChoice, Effect, Mode};
use crate::tui::keymap::Action;
use crate::tui::style::Theme;

impl ListRow for ServiceOverview {
    const FIELDS: &'static [Field] = &[
        Field::text("schema"),
        Field::text("name"),
        Field::text("project"),
        Field::text("manifest"),
        Field::text("status"),
        Field::text("worker"),
        Field::age("beat"),
    ];
    const COLUMNS: &'static [&'static str] = &["schema", "name", "project", "manifest", "beat"];
    type Key = String;

    fn key(&self) -> String {
        self.service.schema.clone()
    }

    fn field(&self, name: &str) -> FieldValue<'_> {
        let manifest = self.manifest.as_ref();
        let deployment = self.deployment.as_ref();
        match name {
            "schema" => FieldValue::Text(&self.service.schema),
            "name" => FieldValue::Text(&self.service.name),
            "project" => FieldValue::Text(&self.service.project),
            "manifest" => manifest.map_or(FieldValue::None, |m| FieldValue::Text(&m.version)),
            "status" => manifest.map_or(FieldValue::None, |m| FieldValue::Text(m.status.as_str())),
            "worker" => {
                deployment.map_or(FieldValue::None, |d| FieldValue::Text(d.status.as_str()))
            }
            "beat" => deployment
                .and_then(|d| d.last_heartbeat)
                .map_or(FieldValue::None, FieldValue::Time),
            _ => FieldValue::None,
        }
    }

    fn words(&self) -> Vec<&str> {
        vec![
            &self.service.schema,
            &self.service.name,
            &self.service.project,
        ]
    }

    fn sort_key(&self, column: &str) -> SortKey<'_> {
        match column {
            "name" => SortKey::Text(&self.service.name),
            "project" => SortKey::Text(&self.service.project),
            "manifest" => SortKey::Text(self.manifest.as_ref().map_or("", |m| m.version.as_str())),
            // Oldest heartbeat first: the worker that went quiet is the one to look at.
            "beat" => SortKey::Time(self.deployment.as_ref().and_then(|d| d.last_heartbeat)),
            _ => SortKey::Text(&self.service.schema),
        }
    }
}

#[derive(Default)]
pub struct ServicesPane {
    /// Every service, as `/` filters and `o` sorts them.
    pub list: Listing<ServiceOverview>,
    pub loaded: bool,
    /// The new-service form, while open.
    pub form: Option<ServiceForm>,
    /// One service's detail, while open (over the list).
    pub detail: Option<ServiceDetailView>,
}

impl ServicesPane {
    pub fn selected_service(&self) -> Option<&ServiceOverview> {
        self.list.selected()
    }

    pub fn set_services(
        &mut self,
        services: Vec<ServiceOverview>,
        now: DateTime<Utc>,
        rows: usize,
    ) {
        self.loaded = true;
        self.list.set_items(services, now, rows);
    }

    /// Opens the detail of `schema` (from the list, or from elsewhere: a run's service).
    pub fn open_service(&mut self, schema: &str) -> Vec<Effect> {
        if self.detail.as_ref().is_none_or(|d| d.schema != schema) {
            self.detail = Some(ServiceDetailView::new(schema));
        }
        self.list.select(&schema.to_owned());
        vec![Effect::OpenService(schema.to_owned())]
    }

    /// A fresh detail from the loader; one for a service no longer open is dropped.
    pub fn on_service(&mut self, detail: ServiceDetail) {
        if let Some(view) = self.detail.as_mut()
            && view.schema == detail.overview.service.schema
        {
            view.detail = Some(detail);
        }
    }

    /// The store no longer has `schema`: its detail closes.
    pub fn on_gone(&mut self, schema: &str) {
        if self.detail.as_ref().is_some_and(|d| d.schema == schema) {
            self.detail = None;
        }
    }

    /// Asks before deploying `schema`, saying which manifest goes out and what runs now.
    fn ask_deploy(&self, schema: &str) -> Reply {
        let detail = self
            .detail
            .as_ref()
            .filter(|d| d.schema == schema)
            .and_then(|d| d.detail.as_ref());
        let governing = detail
            .and_then(|d| d.overview.manifest.as_ref())
            .or_else(|| {
                self.list
                    .items()
                    .iter()
                    .find(|s| s.service.schema == schema)
                    .and_then(|s| s.manifest.as_ref())
            })
            .map(|m| m.version.clone());
        let Some(version) = governing else {
            return Reply::fail(format!(
                "{schema} has no active manifest: activate a version before deploying"
            ));
        };
        let now = match detail.map(|d| &d.drift) {
            Some(Drift::Drifted { deployed, .. }) => format!(" (the worker runs {deployed})"),
            Some(Drift::InStep { .. }) => " again (the worker runs it already)".to_owned(),
            _ => String::new(),
        };
        Reply::mode(Mode::Confirm(Confirm {
            effect: Effect::Deploy(schema.to_owned()),
            question: format!(
                "Deploy the worker of {schema} with manifest {version}{now}? The deployer runs now."
            ),
        }))
    }

    fn on_detail_action(&mut self, action: Action, ctx: &KeyCtx) -> Reply {
        let Some(view) = self.detail.as_mut() else {
            return Reply::default();
        };
        if let Some(delta) = movement(action, ctx.rows) {
            view.scroll_by(delta.clamp(-100_000, 100_000));
            return Reply::default();
        }
        let schema = view.schema.clone();
        match action {
            Action::Back => {
                self.detail = None;
                Reply::effects(vec![Effect::CloseService])
            }
            Action::Open => {
                view.full_output = !view.full_output;
                Reply::default()
            }
            Action::OpenManifests => Reply::goto(Goto::Manifests(schema)),
            Action::CopyId => Reply::mode(Mode::Copy(vec![CopyChoice::new('s', "schema", schema)])),
            Action::Deploy => self.ask_deploy(&schema),
            _ => Reply::default(),
        }
    }

    /// The next moment a heartbeat age or state in the list changes with the clock.
    pub fn next_visible_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(view) = &self.detail {
            return view.next_visible_change(now);
        }
        self.list
            .shown()
            .filter_map(|s| s.deployment.as_ref().and_then(|d| d.last_heartbeat))
            .flat_map(|t| {
                [
                    Some(age_changes_at(now, t)),
                    liveness_changes_at(now, Some(t)),
                ]
            })
            .flatten()
            .min()
    }

    pub fn on_action(&mut self, action: Action, ctx: &KeyCtx) -> Reply {
        if self.detail.is_some() {
            return self.on_detail_action(action, ctx);
        }
        if let Some(delta) = movement(action, ctx.rows) {
            self.list.move_by(delta, ctx.rows);
            return Reply::default();
        }
        match action {
            Action::CopyId => {
                if let Some(s) = self.selected_service() {
                    return Reply::mode(Mode::Copy(vec![
                        CopyChoice::new('s', "schema", s.service.schema.clone()),
                        CopyChoice::new('n', "name", s.service.name.clone()),
                    ]));
                }
            }
            Action::Sort | Action::SortReverse => {
                let on = self
                    .list
                    .cycle_sort(action == Action::SortReverse, ctx.rows);
                return Reply::info(format!("services sorted by {on}"));
            }
            Action::Open => {
                if let Some(schema) = self.selected_service().map(|s| s.service.schema.clone()) {
                    return Reply::effects(self.open_service(&schema));
                }
            }
            Action::OpenManifests => {
                if let Some(s) = self.selected_service() {
                    return Reply::goto(Goto::Manifests(s.service.schema.clone()));
                }
            }
            Action::NewService => {
                let project = self
                    .selected_service()
                    .map(|s| s.service.project.clone())
                    .unwrap_or_default();
                self.form = Some(ServiceForm::new(&project));
                return Reply::mode(Mode::Editing);
            }
            Action::Deploy => {
                if let Some(schema) = self.selected_service().map(|s| s.service.schema.clone()) {
                    return self.ask_deploy(&schema);
                }
            }
            _ => {}
        }
        Reply::default()
    }

    /// Keys while the form is open: Tab moves, Ctrl-S (or Enter on the last field) creates when
    /// valid, Esc drops it.
    pub fn on_form_key(&mut self, key: KeyEvent) -> Reply {
        let Some(mut form) = self.form.take() else {
            return Reply::default();
        };
        // A question on the form's last line takes the next key: `y` does it, any other key
        // goes back to the form with every field as it was.
        if let Some(question) = form.asking.take() {
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                return match question {
                    FormQuestion::Create => Reply::effects(vec![form.create_effect()]),
                    FormQuestion::Discard => Reply::info("the new service's form was discarded"),
                };
            }
            self.form = Some(form);
            return Reply {
                mode: Some(Mode::Editing),
                ..Reply::info("nothing done; the form is as it was")
            };
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let submit = (key.code == KeyCode::Char('s') && ctrl)
            || (key.code == KeyCode::Enter && form.focus == form.fields.len() - 1);
        match key.code {
            KeyCode::Esc if !form.edited() => return Reply::default(),
            KeyCode::Esc => form.asking = Some(FormQuestion::Discard),
            _ if submit => {
                if let Some(problem) = &form.problem {
                    let text = format!("not created: {problem}");
                    self.form = Some(form);
                    return Reply {
                        mode: Some(Mode::Editing),
                        ..Reply::fail(text)
                    };
                }
                form.asking = Some(FormQuestion::Create);
            }
            KeyCode::Tab | KeyCode::Down | KeyCode::Enter => form.set_focus(form.focus + 1),
            KeyCode::BackTab | KeyCode::Up => form.set_focus(form.focus + form.fields.len() - 1),
            _ => {
                form.fields[form.focus].input(key);
                form.validate();
            }
        }
        self.form = Some(form);
        Reply::mode(Mode::Editing)
    }

    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        match &self.detail {
            Some(view) => view.render(ctx, frame, area),
            None => self.render_list(ctx, frame, area),
        }
        if let Some(form) = &self.form {
            render_form(frame, form, ctx.theme, area);
        }
    }

    fn render_list(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let c = self;
        let title = format!(
            " Services ({}) · sorted by {} ",
            c.list.count_label(),
            c.list.sort_label()
        );
        let block = Block::default().borders(Borders::ALL).title(title);
        if c.list.is_empty() {
            let text = if !c.loaded {
                "loading…"
            } else if !c.list.filter_text().is_empty() {
                "No service matches this filter. / changes it, Esc in the filter line undoes it."
            } else if ctx.read_only {
                "No services yet."
            } else {
                "No services yet. Press n to create one, or `ospdeck service create` / `ospdeck demo`."
            };
            frame.render_widget(
                Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
                area,
            );
            return;
        }
        let all = c.list.items();
        let manifest_text = |s: &ServiceOverview| match &s.manifest {
            Some(m) => format!("{} {}", m.version, m.status),
            None => "-".to_owned(),
        };
        let cols = [
            Col::new(
                "SCHEMA",
                widest(all.iter().map(|s| s.service.schema.as_str())),
                12,
                0,
            ),
            Col::new(
                "NAME",
                widest(all.iter().map(|s| s.service.name.as_str())),
                10,
                2,
            ),
            Col::new(
                "PROJECT",
                widest(all.iter().map(|s| s.service.project.as_str())),
                8,
                1,
            ),
            Col::new(
                "MANIFEST",
                all.iter()
                    .map(|s| manifest_text(s).chars().count())
                    .max()
                    .unwrap_or(1),
                10,
                0,
            ),
            Col::new("WORKER", 10, 7, 0),
            Col::new("HEARTBEAT", 12, 8, 0),
        ];
        let fitted = Fitted::new(&cols, area.width.saturating_sub(2));
        let header = fitted.header();
        let widths = fitted.constraints();
        let rows = c.list.shown().map(|s| {
            let manifest = match &s.manifest {
                Some(m) => Span::styled(manifest_text(s), theme.manifest(m.status)),
                None => Span::raw("-"),
            };
            let worker = match &s.deployment {
                Some(d) => Span::styled(d.status.as_str(), deployment_style(theme, d.status)),
                None => Span::raw("-"),
            };
            // Judged against the clock now, not when the list was loaded.
            let beat = s.deployment.as_ref().and_then(|d| d.last_heartbeat);
            let state = liveness(ctx.now, beat);
            let heartbeat = match beat {
                Some(t) => format!("{} {}", state.as_str(), age(ctx.now, t)),
                None => state.as_str().to_owned(),
            };
            let cells = [
                Cell::from(s.service.schema.as_str()),
                Cell::from(s.service.name.as_str()),
                Cell::from(s.service.project.as_str()),
                Cell::from(manifest),
                Cell::from(worker),
                Cell::from(Span::styled(heartbeat, theme.liveness(state))),
            ];
            fitted.row(cells)
        });
        let mut state = TableState::default()
            .with_offset(c.list.cursor.offset)
            .with_selected(Some(c.list.cursor.selected));
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(header)
                .block(block)
                .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
            area,
            &mut state,
        );
    }
}

pub(super) fn deployment_style(theme: Theme, status: DeploymentStatus) -> Style {
    theme.fg(match status {
        DeploymentStatus::Deployed => Color::Green,
        DeploymentStatus::Deploying | DeploymentStatus::Pending => Color::Yellow,
        DeploymentStatus::Failed => Color::Red,
        DeploymentStatus::Stopped => Color::DarkGray,
    })
}

fn render_form(frame: &mut Frame, form: &ServiceForm, theme: Theme, area: Rect) {
    let width = area.width.min(76);
    let height = (FORM_FIELDS.len() as u16 * 3 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" new service · Tab next field · Ctrl-S creates · Esc drops ");
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let mut constraints: Vec<Constraint> =
        FORM_FIELDS.iter().map(|_| Constraint::Length(3)).collect();
    constraints.push(Constraint::Min(1));
    let areas = Layout::vertical(constraints).split(inner);
    let hints = [
        "project key",
        "display name",
        "schema: [a-z][a-z0-9_]{1,62}",
        "workflows: name:activity,activity …",
    ];
    for (i, field) in form.fields.iter().enumerate() {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(format!(" {} ", hints[i]))
            .border_style(if i == form.focus {
                theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)
            } else {
                theme.dim()
            });
        frame.render_widget(field, block.inner(areas[i]));
        frame.render_widget(block, areas[i]);
    }
    let asking = theme.fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let line = match (&form.asking, &form.problem) {
        (Some(FormQuestion::Create), _) => Line::styled(form.create_question(), asking),
        (Some(FormQuestion::Discard), _) => {
            Line::styled("Discard your edits to the new service? y discards", asking)
        }
        (None, None) => Line::styled("✓ ready to create", theme.fg(Color::Green)),
        (None, Some(p)) => Line::styled(format!("✗ {p}"), theme.fg(Color::Red)),
    };
    if let Some(last) = areas.last() {
        frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), *last);
    }
}

pub const FORM_FIELDS: [&str; 4] = ["project", "name", "schema", "workflows"];

/// What the form asks before it goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormQuestion {
    Create,
    Discard,
}

/// The service form: four one-line fields, checked as the operator types.
pub struct ServiceForm {
    pub fields: [TextArea<'static>; 4],
    pub focus: usize,
    pub problem: Option<String>,
    /// The question on the form's last line, while one is asked.
    pub asking: Option<FormQuestion>,
    /// The project the form opened with: anything else typed is an edit to keep.
    initial_project: String,
}

impl ServiceForm {
    pub fn new(project: &str) -> Self {
        let field = |text: &str| {
            let mut field = TextArea::new(vec![text.to_owned()]);
            field.set_cursor_line_style(Style::default());
            field
        };
        let mut form = Self {
            fields: [field(project), field(""), field(""), field("")],
            focus: 0,
            problem: None,
            asking: None,
            initial_project: project.to_owned(),
        };
        form.set_focus(if project.is_empty() { 0 } else { 1 });
        form.validate();
        form
    }

    /// Moves the focus; only the focused field shows its cursor.
    pub fn set_focus(&mut self, focus: usize) {
        self.focus = focus % self.fields.len();
        for (i, field) in self.fields.iter_mut().enumerate() {
            field.set_cursor_style(if i == self.focus {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            });
        }
    }

    /// Whether anything was typed since the form opened.
    pub fn edited(&self) -> bool {
        self.value(0) != self.initial_project || (1..4).any(|i| !self.value(i).is_empty())
    }

    fn create_effect(&self) -> Effect {
        Effect::CreateService {
            project: self.value(0),
            name: self.value(1),
            schema: self.value(2),
            workflows: self
                .workflows()
                .unwrap_or_default()
                .iter()
                .map(|w| format!("{}:{}", w.name, w.activities.join(",")))
                .collect(),
        }
    }

    /// What `y` will do, in full.
    pub fn create_question(&self) -> String {
        let workflows = self.workflows().map(|w| w.len()).unwrap_or(0);
        format!(
            "Create {} (schema {}) in {} with {workflows} workflow(s) and queue its deploy? y creates",
            self.value(1),
            self.value(2),
            self.value(0)
        )
    }

    pub fn value(&self, i: usize) -> String {
        self.fields[i].lines().join("").trim().to_owned()
    }

    /// `processBilling:calculateCharges,sendInvoice handlePayment:pay` (space or ';' between).
    pub fn workflows(&self) -> Result<Vec<WorkflowSpec>, String> {
        self.value(3)
            .split([' ', ';'])
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<WorkflowSpec>().map_err(|e| e.0))
            .collect()
    }

    pub fn validate(&mut self) {
        self.problem = (|| {
            if self.value(0).is_empty() {
                return Some("project: which project the service belongs to".to_owned());
            }
            if let Err(e) = check_service_name(&self.value(1)) {
                return Some(e.0);
            }
            if let Err(e) = check_schema_name(&self.value(2)) {
                return Some(e.0);
            }
            self.workflows().err()
        })();
    }
}
