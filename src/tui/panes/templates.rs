//! The Templates pane: every template version with its status, default and labels, and the
//! artifacts of the chosen one; the lifecycle keys ask before they change anything.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{Ctx, Cursor, KeyCtx, Reply, movement};
use crate::domain::template::StoredArtifact;
use crate::ops::VersionRow;
use crate::tui::app::{Effect, Mode};
use crate::tui::keymap::Action;

#[derive(Debug, Default)]
pub struct TemplatesPane {
    pub versions: Vec<VersionRow>,
    pub loaded: bool,
    pub cursor: Cursor,
    /// The files of the version on screen: (template, version, artifacts).
    pub artifacts: Option<(String, String, Vec<StoredArtifact>)>,
    /// `:template NAME` before the versions arrived: select its newest version when they do.
    pub wanted: Option<String>,
}

impl TemplatesPane {
    pub fn selected_template_version(&self) -> Option<&VersionRow> {
        self.versions.get(self.cursor.selected)
    }

    pub fn set_versions(&mut self, rows: Vec<VersionRow>) {
        let keep = self
            .selected_template_version()
            .map(|r| (r.version.template.clone(), r.version.version.clone()));
        self.versions = rows;
        self.loaded = true;
        if let Some(name) = self.wanted.take()
            && let Some(i) = self
                .versions
                .iter()
                .position(|r| r.version.template == name)
        {
            self.cursor = Cursor {
                selected: i,
                offset: i,
            };
            return;
        }
        let rows = self.versions.len().max(1);
        self.cursor.follow(
            &self.versions,
            keep,
            |r| (r.version.template.clone(), r.version.version.clone()),
            rows,
        );
    }

    fn load_artifacts(&self) -> Vec<Effect> {
        match self.selected_template_version() {
            Some(row) => vec![Effect::LoadTemplateArtifacts {
                template: row.version.template.clone(),
                version: row.version.version.clone(),
            }],
            None => Vec::new(),
        }
    }

    pub fn on_action(&mut self, action: Action, ctx: &KeyCtx) -> Reply {
        if let Some(delta) = movement(action, ctx.rows) {
            self.cursor.move_by(delta, self.versions.len(), ctx.rows);
            return Reply::effects(self.load_artifacts());
        }
        if action == Action::Open {
            return Reply::effects(self.load_artifacts());
        }
        let Some(row) = self.selected_template_version() else {
            return Reply::default();
        };
        let (template, version) = (row.version.template.clone(), row.version.version.clone());
        match action {
            Action::Promote => Reply::ask(Effect::Promote { template, version }),
            Action::Deprecate => Reply::ask(Effect::Deprecate { template, version }),
            Action::MakeDefault => Reply::ask(Effect::MakeDefault { template, version }),
            Action::LabelVersion => Reply::mode(Mode::LabelInput {
                template,
                version,
                text: String::new(),
            }),
            _ => Reply::default(),
        }
    }

    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let c = self;
        let [list, body] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(area);
        let block = Block::default()
            .borders(Borders::ALL)
            .title(format!(" Template versions ({}) ", c.versions.len()));
        if c.versions.is_empty() {
            let text = if c.loaded {
                "No templates yet. Publish one: `ospdeck template publish DIR --template T --version 1.0.0`."
            } else {
                "loading…"
            };
            frame.render_widget(
                Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
                area,
            );
            return;
        }
        let rows = c.versions.iter().map(|r| {
            let v = &r.version;
            let style = theme.fg(match v.status {
                crate::domain::template::VersionStatus::Draft => Color::Cyan,
                crate::domain::template::VersionStatus::Stable => Color::Green,
                crate::domain::template::VersionStatus::Deprecated => Color::DarkGray,
            });
            let mut tags = r.labels.clone();
            if r.is_default {
                tags.insert(0, "default".into());
            }
            Row::new(vec![
                Cell::from(v.template.clone()),
                Cell::from(v.version.clone()),
                Cell::from(Span::styled(v.status.as_str(), style)),
                Cell::from(tags.join(",")),
            ])
        });
        let mut state = TableState::default()
            .with_offset(c.cursor.offset)
            .with_selected(Some(c.cursor.selected));
        frame.render_stateful_widget(
            Table::new(
                rows,
                [
                    Constraint::Min(9),
                    Constraint::Length(7),
                    Constraint::Length(10),
                    Constraint::Min(14),
                ],
            )
            .block(block)
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
            list,
            &mut state,
        );
        let selected = c.selected_template_version();
        let (title, lines): (String, Vec<Line>) = match (&c.artifacts, selected) {
            (Some((t, v, artifacts)), Some(row))
                if *t == row.version.template && *v == row.version.version =>
            {
                let mut lines = vec![Line::styled(
                    format!(
                        "digest {}…",
                        &row.version.digest[..16.min(row.version.digest.len())]
                    ),
                    theme.dim(),
                )];
                lines.extend(artifacts.iter().map(|a| {
                    Line::from(vec![
                        Span::raw(format!("{} ", a.path)),
                        Span::styled(
                            format!(
                                "{} {}B {}",
                                a.locale.as_deref().unwrap_or("-"),
                                a.size_bytes,
                                &a.sha256[..10.min(a.sha256.len())]
                            ),
                            theme.dim(),
                        ),
                    ])
                }));
                (format!(" {t} {v} · {} artifacts ", artifacts.len()), lines)
            }
            (_, Some(row)) => (
                format!(" {} {} ", row.version.template, row.version.version),
                vec![Line::styled("Enter shows its artifacts", theme.dim())],
            ),
            _ => (" artifacts ".into(), Vec::new()),
        };
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL).title(title)),
            body,
        );
    }
}
