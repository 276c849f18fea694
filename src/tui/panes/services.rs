//! The Services pane: every service with its manifest, its worker's deployment and a heartbeat
//! judged against the clock; `n` opens the service form, validated as the operator types.

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui_textarea::TextArea;

use super::{Ctx, Cursor, Goto, KeyCtx, Reply, movement};
use crate::domain::age::{age, age_changes_at};
use crate::domain::deployment::{DeploymentStatus, liveness, liveness_changes_at};
use crate::domain::service::{WorkflowSpec, check_schema_name, check_service_name};
use crate::ops::ServiceOverview;
use crate::tui::app::{Effect, Mode};
use crate::tui::keymap::Action;
use crate::tui::style::Theme;

#[derive(Default)]
pub struct ServicesPane {
    pub services: Vec<ServiceOverview>,
    pub loaded: bool,
    pub cursor: Cursor,
    /// The new-service form, while open.
    pub form: Option<ServiceForm>,
}

impl ServicesPane {
    pub fn selected_service(&self) -> Option<&ServiceOverview> {
        self.services.get(self.cursor.selected)
    }

    pub fn set_services(&mut self, services: Vec<ServiceOverview>) {
        let keep = self.selected_service().map(|s| s.service.id);
        self.services = services;
        self.loaded = true;
        let rows = self.services.len().max(1);
        self.cursor
            .follow(&self.services, keep, |s| s.service.id, rows);
    }

    /// The next moment a heartbeat age or state in the list changes with the clock.
    pub fn next_visible_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.services
            .iter()
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
        if let Some(delta) = movement(action, ctx.rows) {
            self.cursor.move_by(delta, self.services.len(), ctx.rows);
            return Reply::default();
        }
        match action {
            Action::Open => {
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
                if let Some(s) = self.selected_service() {
                    return Reply::ask(Effect::Deploy(s.service.schema.clone()));
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
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let submit = (key.code == KeyCode::Char('s') && ctrl)
            || (key.code == KeyCode::Enter && form.focus == form.fields.len() - 1);
        match key.code {
            KeyCode::Esc => return Reply::default(),
            _ if submit => {
                if let Some(problem) = &form.problem {
                    let text = format!("not created: {problem}");
                    self.form = Some(form);
                    return Reply {
                        mode: Some(Mode::Editing),
                        ..Reply::fail(text)
                    };
                }
                return Reply::effects(vec![Effect::CreateService {
                    project: form.value(0),
                    name: form.value(1),
                    schema: form.value(2),
                    workflows: form
                        .workflows()
                        .unwrap_or_default()
                        .iter()
                        .map(|w| format!("{}:{}", w.name, w.activities.join(",")))
                        .collect(),
                }]);
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
        self.render_list(ctx, frame, area);
        if let Some(form) = &self.form {
            render_form(frame, form, ctx.theme, area);
        }
    }

    fn render_list(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let c = self;
        let block = Block::default()
            .borders(Borders::ALL)
            .title(format!(" Services ({}) ", c.services.len()));
        if c.services.is_empty() {
            let text = if !c.loaded {
                "loading…"
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
        let wide = area.width >= 110;
        let mut header = vec!["SCHEMA", "MANIFEST", "WORKER", "HEARTBEAT"];
        if wide {
            header.insert(1, "NAME");
            header.insert(2, "PROJECT");
        }
        let rows = c.services.iter().map(|s| {
            let manifest = match &s.manifest {
                Some(m) => Span::styled(
                    format!("{} {}", m.version, m.status),
                    theme.manifest(m.status),
                ),
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
            let mut cells = vec![
                Cell::from(s.service.schema.clone()),
                Cell::from(manifest),
                Cell::from(worker),
                Cell::from(Span::styled(heartbeat, theme.liveness(state))),
            ];
            if wide {
                cells.insert(1, Cell::from(s.service.name.clone()));
                cells.insert(2, Cell::from(s.service.project.clone()));
            }
            Row::new(cells)
        });
        let widths: Vec<Constraint> = if wide {
            vec![
                Constraint::Min(20),
                Constraint::Min(20),
                Constraint::Length(14),
                Constraint::Length(18),
                Constraint::Length(10),
                Constraint::Length(14),
            ]
        } else {
            vec![
                Constraint::Min(20),
                Constraint::Length(18),
                Constraint::Length(10),
                Constraint::Length(12),
            ]
        };
        let mut state = TableState::default()
            .with_offset(c.cursor.offset)
            .with_selected(Some(c.cursor.selected));
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
                .block(block)
                .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
            area,
            &mut state,
        );
    }
}

fn deployment_style(theme: Theme, status: DeploymentStatus) -> Style {
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
    let line = match &form.problem {
        None => Line::styled("✓ ready to create", theme.fg(Color::Green)),
        Some(p) => Line::styled(format!("✗ {p}"), theme.fg(Color::Red)),
    };
    if let Some(last) = areas.last() {
        frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), *last);
    }
}

pub const FORM_FIELDS: [&str; 4] = ["project", "name", "schema", "workflows"];

/// The service form: four one-line fields, checked as the operator types.
pub struct ServiceForm {
    pub fields: [TextArea<'static>; 4],
    pub focus: usize,
    pub problem: Option<String>,
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
