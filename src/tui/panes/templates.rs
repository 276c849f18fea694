//! The Templates pane: every template version with its status, default and labels, and the
//! artifacts of the chosen one; the lifecycle keys ask before they change anything.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use chrono::{DateTime, Utc};

use super::listing::{ListRow, Listing, SortKey};
use super::{Ctx, Cursor, KeyCtx, Reply, movement};
use crate::domain::filter::{Field, FieldValue};
use crate::domain::template::{StoredArtifact, VersionMove, check_label};
use crate::ops::VersionRow;
use crate::tui::app::{Confirm, CopyChoice, Effect, Mode};
use crate::tui::keymap::Action;

impl ListRow for VersionRow {
    const FIELDS: &'static [Field] = &[
        Field::text("template"),
        Field::text("version"),
        Field::choice("status", &["draft", "stable", "deprecated"]),
        Field::text("label"),
        Field::text("by"),
        Field::age("age"),
    ];
    const COLUMNS: &'static [&'static str] = &["template", "version", "status", "age"];
    type Key = (String, String);

    fn key(&self) -> (String, String) {
        (self.version.template.clone(), self.version.version.clone())
    }

    fn field(&self, name: &str) -> FieldValue<'_> {
        let v = &self.version;
        match name {
            "template" => FieldValue::Text(&v.template),
            "version" => FieldValue::Text(&v.version),
            "status" => FieldValue::Text(v.status.as_str()),
            "label" if self.is_default => {
                let mut labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
                labels.push("default");
                FieldValue::Texts(labels)
            }
            "label" => FieldValue::Texts(self.labels.iter().map(String::as_str).collect()),
            "by" => FieldValue::Text(&v.created_by),
            "age" => FieldValue::Time(v.created_at),
            _ => FieldValue::None,
        }
    }

    fn words(&self) -> Vec<&str> {
        let mut words = vec![
            self.version.template.as_str(),
            self.version.version.as_str(),
        ];
        words.extend(self.labels.iter().map(String::as_str));
        words
    }

    fn sort_key(&self, column: &str) -> SortKey<'_> {
        match column {
            "version" => SortKey::Text(&self.version.version),
            "status" => SortKey::Text(self.version.status.as_str()),
            "age" => SortKey::Time(Some(self.version.created_at)),
            _ => SortKey::Text(&self.version.template),
        }
    }
}

#[derive(Debug, Default)]
pub struct TemplatesPane {
    /// Every version, as `/` filters and `o` sorts them.
    pub list: Listing<VersionRow>,
    pub loaded: bool,
    /// The files of the version on screen: (template, version, artifacts).
    pub artifacts: Option<(String, String, Vec<StoredArtifact>)>,
    /// `:template NAME` before the versions arrived: select its newest version when they do.
    pub wanted: Option<String>,
}

impl TemplatesPane {
    pub fn selected_template_version(&self) -> Option<&VersionRow> {
        self.list.selected()
    }

    pub fn set_versions(&mut self, rows: Vec<VersionRow>, now: DateTime<Utc>, screen_rows: usize) {
        self.loaded = true;
        self.list.set_items(rows, now, screen_rows);
        let wanted = self
            .wanted
            .take()
            .and_then(|name| self.list.shown().position(|r| r.version.template == name));
        if let Some(i) = wanted {
            self.list.cursor = Cursor {
                selected: i,
                offset: i,
            };
        }
    }

    /// The files of the version now selected (after a move, or a filter that changed it).
    pub fn load_artifacts(&self) -> Vec<Effect> {
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
            self.list.move_by(delta, ctx.rows);
            return Reply::effects(self.load_artifacts());
        }
        if matches!(action, Action::Sort | Action::SortReverse) {
            let on = self
                .list
                .cycle_sort(action == Action::SortReverse, ctx.rows);
            return Reply::info(format!("versions sorted by {on}"));
        }
        if action == Action::CopyId
            && let Some(r) = self.selected_template_version()
        {
            return Reply::mode(Mode::Copy(vec![
                CopyChoice::new(
                    'v',
                    "version",
                    format!("{}@{}", r.version.template, r.version.version),
                ),
                CopyChoice::new('d', "digest", r.version.digest.clone()),
            ]));
        }
        if action == Action::Open {
            return Reply::effects(self.load_artifacts());
        }
        let Some(row) = self.selected_template_version() else {
            return Reply::default();
        };
        let (template, version) = (row.version.template.clone(), row.version.version.clone());
        let wanted = match action {
            Action::Promote => VersionMove::Promote,
            Action::Deprecate => VersionMove::Deprecate,
            Action::MakeDefault => VersionMove::MakeDefault,
            Action::LabelVersion => VersionMove::Label,
            _ => return Reply::default(),
        };
        // The rules refuse up front: no question whose `y` could only fail.
        if let Some(why) = wanted.refused(&template, &version, row.version.status, row.is_default) {
            return Reply::fail(why);
        }
        match wanted {
            VersionMove::Promote => Reply::ask(Effect::Promote { template, version }),
            VersionMove::Deprecate => Reply::ask(Effect::Deprecate { template, version }),
            VersionMove::MakeDefault => {
                let now = match self.default_of(&template) {
                    Some(current) => format!(" (now {current})"),
                    None => " (it has none yet)".to_owned(),
                };
                let question = format!("Make {template} {version} the default{now}?");
                Reply::mode(Mode::Confirm(Confirm {
                    effect: Effect::MakeDefault { template, version },
                    question,
                }))
            }
            VersionMove::Label | VersionMove::Delete => Reply::mode(Mode::LabelInput {
                template,
                version,
                text: String::new(),
            }),
        }
    }

    /// The default version of `template`, as listed.
    fn default_of(&self, template: &str) -> Option<&str> {
        self.list
            .items()
            .iter()
            .find(|r| r.version.template == template && r.is_default)
            .map(|r| r.version.version.as_str())
    }

    /// Where `label` of `template` points now, with its percent, as listed (`canary@20%`).
    fn label_of(&self, template: &str, label: &str) -> Option<(String, i32)> {
        self.list
            .items()
            .iter()
            .filter(|r| r.version.template == template)
            .find_map(|r| {
                r.labels.iter().find_map(|l| {
                    let (name, percent) = match l.split_once('@') {
                        Some((name, p)) => (name, p.trim_end_matches('%').parse().ok()?),
                        None => (l.as_str(), 100),
                    };
                    (name == label).then(|| (r.version.version.clone(), percent))
                })
            })
    }

    /// The label line was entered (`canary 25`): ask, saying where the label stands and where
    /// it goes.
    pub fn label_entered(&self, template: &str, version: &str, text: &str) -> Reply {
        let mut words = text.split_whitespace();
        let label = words.next().unwrap_or("").to_owned();
        let percent = match words.next() {
            None => 100,
            Some(p) => match p.trim_end_matches('%').parse::<i32>() {
                Ok(percent) if (0..=100).contains(&percent) => percent,
                _ => return Reply::fail(format!("`{text}`: a label, then a percent (0-100)")),
            },
        };
        if let Err(e) = check_label(&label) {
            return Reply::fail(e.0);
        }
        let question = match self.label_of(template, &label) {
            Some((from, was)) if from == version && was == percent => {
                return Reply::info(format!(
                    "{label} of {template} is at {version} ({percent}%) already: nothing to do"
                ));
            }
            Some((from, was)) if from == version => {
                format!("Change {label} of {template} {version} from {was}% to {percent}%?")
            }
            Some((from, was)) => {
                format!(
                    "Move {label} of {template} from {from} ({was}%) to {version} ({percent}%)?"
                )
            }
            None => format!("Label {template} {version} as {label} ({percent}%)? A new label."),
        };
        Reply::mode(Mode::Confirm(Confirm {
            effect: Effect::Label {
                template: template.to_owned(),
                label,
                version: version.to_owned(),
                percent,
            },
            question,
        }))
    }

    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let c = self;
        let [list, body] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(area);
        let block = Block::default().borders(Borders::ALL).title(format!(
            " Template versions ({}) · {} ",
            c.list.count_label(),
            c.list.sort_label()
        ));
        if c.list.is_empty() {
            let text = if !c.list.filter_text().is_empty() {
                "No version matches this filter. / changes it."
            } else if c.loaded {
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
        let rows = c.list.shown().map(|r| {
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
            .with_offset(c.list.cursor.offset)
            .with_selected(Some(c.list.cursor.selected));
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
