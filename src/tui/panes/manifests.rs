//! The Manifests pane: one service's manifest versions, the content or a diff of the chosen one,
//! and the JSON editor that proposes a new version, validated as the operator types.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui_textarea::TextArea;
use serde_json::Value;

use super::{Ctx, Cursor, Goto, KeyCtx, Reply, movement};
use crate::domain::manifest::{
    ChangeKind, FieldChange, Manifest, ManifestHead, ManifestStatus, parse_manifest,
};
use crate::tui::app::{Effect, Mode};
use crate::tui::keymap::Action;
use crate::tui::style::Theme;

#[derive(Default)]
pub struct ManifestsPane {
    /// The service shown.
    pub service: Option<String>,
    pub history: Vec<ManifestHead>,
    /// The chosen version.
    pub cursor: Cursor,
    /// The content of the version on screen.
    pub content: Option<Manifest>,
    /// A diff on screen instead of the content: (from, to, changes).
    pub diff: Option<(String, String, Vec<FieldChange>)>,
    /// The JSON editor, while open.
    pub editor: Option<ManifestEditor>,
}

impl ManifestsPane {
    pub fn selected_version(&self) -> Option<&ManifestHead> {
        self.history.get(self.cursor.selected)
    }

    pub fn governing(&self) -> Option<&ManifestHead> {
        self.history
            .iter()
            .find(|m| matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked))
    }

    /// Shows `schema`'s versions (the governing one's content first).
    pub fn open(&mut self, schema: String) -> Vec<Effect> {
        if self.service.as_deref() != Some(schema.as_str()) {
            self.forget();
        }
        self.service = Some(schema.clone());
        vec![Effect::LoadManifests {
            schema,
            version: None,
        }]
    }

    /// What to load when the pane comes back on screen.
    pub fn reload(&self) -> Vec<Effect> {
        match self.service.clone() {
            Some(schema) => vec![Effect::LoadManifests {
                schema,
                version: self.selected_version().map(|v| v.version.clone()),
            }],
            None => Vec::new(),
        }
    }

    /// The service is gone: nothing of it stays on screen.
    pub fn forget(&mut self) {
        self.history.clear();
        self.content = None;
        self.diff = None;
        self.cursor = Cursor::default();
    }

    /// New history for `schema`; the version on screen stays selected if it still exists.
    pub fn set_manifests(
        &mut self,
        schema: String,
        history: Vec<ManifestHead>,
        content: Option<Manifest>,
    ) {
        // The operator's choice outlives every refresh (a worker's heartbeat is enough to cause
        // one); the content's version (the governing one at first) only when nothing is chosen.
        let same_service = self.service.as_deref() == Some(schema.as_str());
        let keep = same_service
            .then(|| self.selected_version().map(|v| v.version.clone()))
            .flatten()
            .or_else(|| content.as_ref().map(|m| m.version.clone()));
        self.service = Some(schema);
        self.history = history;
        self.cursor.selected = keep
            .and_then(|v| self.history.iter().position(|m| m.version == v))
            .or_else(|| {
                self.history.iter().position(|m| {
                    matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked)
                })
            })
            .unwrap_or(0);
        self.cursor.offset = self.cursor.offset.min(self.cursor.selected);
        if content.is_some() {
            self.content = content;
        }
    }

    pub fn on_action(&mut self, action: Action, ctx: &KeyCtx) -> Reply {
        if let Some(delta) = movement(action, ctx.rows) {
            self.cursor.move_by(delta, self.history.len(), ctx.rows);
            return Reply::default();
        }
        match action {
            Action::Open => {
                self.diff = None;
                match (&self.service, self.selected_version()) {
                    (Some(schema), Some(v)) => Reply::effects(vec![Effect::LoadManifests {
                        schema: schema.clone(),
                        version: Some(v.version.clone()),
                    }]),
                    _ => Reply::default(),
                }
            }
            Action::Back => {
                if self.diff.take().is_none() {
                    return Reply::goto(Goto::Services);
                }
                Reply::default()
            }
            Action::Propose => {
                let (Some(schema), Some(content)) = (self.service.clone(), self.content.as_ref())
                else {
                    return Reply::fail("open a service's manifest first (Enter in Services)");
                };
                self.editor = Some(ManifestEditor::new(&schema, &content.content));
                Reply::mode(Mode::Editing)
            }
            Action::Activate => {
                let (Some(schema), Some(v)) = (self.service.clone(), self.selected_version())
                else {
                    return Reply::default();
                };
                if v.status != ManifestStatus::Draft {
                    return Reply::fail(format!(
                        "{} is {}; only a draft can be activated",
                        v.version, v.status
                    ));
                }
                Reply::ask(Effect::Activate {
                    schema,
                    version: v.version.clone(),
                })
            }
            Action::Lock | Action::Unlock => match self.service.clone() {
                Some(schema) => Reply::ask(if action == Action::Lock {
                    Effect::Lock(schema)
                } else {
                    Effect::Unlock(schema)
                }),
                None => Reply::default(),
            },
            Action::Diff => {
                let (Some(schema), Some(gov), Some(sel)) = (
                    self.service.clone(),
                    self.governing(),
                    self.selected_version(),
                ) else {
                    return Reply::fail("nothing to compare with: no governing version");
                };
                Reply::effects(vec![Effect::Diff {
                    schema,
                    from: gov.version.clone(),
                    to: sel.version.clone(),
                }])
            }
            _ => Reply::default(),
        }
    }

    /// Keys while the editor is open: Ctrl-S proposes when valid, Esc drops the text.
    pub fn on_editor_key(&mut self, key: KeyEvent) -> Reply {
        let Some(mut editor) = self.editor.take() else {
            return Reply::default();
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return Reply::default(),
            KeyCode::Char('s') if ctrl => {
                if let Some(problem) = &editor.problem {
                    let text = format!("not proposed: {problem}");
                    self.editor = Some(editor);
                    return Reply {
                        mode: Some(Mode::Editing),
                        ..Reply::fail(text)
                    };
                }
                return Reply::effects(vec![Effect::Propose {
                    schema: editor.schema.clone(),
                    text: editor.text(),
                }]);
            }
            _ => {
                editor.textarea.input(key);
                editor.validate();
            }
        }
        self.editor = Some(editor);
        Reply::mode(Mode::Editing)
    }

    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        self.render_list(ctx, frame, area);
        if let Some(editor) = &self.editor {
            render_editor(frame, editor, ctx.theme, area);
        }
    }

    fn render_list(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let c = self;
        let Some(schema) = &c.service else {
            frame.render_widget(
                Paragraph::new(
                    "Choose a service in Services (1) and press Enter, or type :service NAME.",
                )
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL).title(" Manifests ")),
                area,
            );
            return;
        };
        let [list, body] =
            Layout::horizontal([Constraint::Length(30), Constraint::Min(20)]).areas(area);
        let rows = c.history.iter().map(|m| {
            Row::new(vec![
                Cell::from(m.version.clone()),
                Cell::from(Span::styled(m.status.as_str(), theme.manifest(m.status))),
            ])
        });
        let mut state = TableState::default()
            .with_offset(c.cursor.offset)
            .with_selected(Some(c.cursor.selected));
        frame.render_stateful_widget(
            Table::new(rows, [Constraint::Length(12), Constraint::Length(11)])
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(format!(" {schema} ")),
                )
                .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
            list,
            &mut state,
        );

        let (title, lines): (String, Vec<Line>) = match (&c.diff, &c.content) {
            (Some((from, to, changes)), _) => (
                format!(
                    " diff {from} → {to} ({} changes) · Esc closes ",
                    changes.len()
                ),
                if changes.is_empty() {
                    vec![Line::styled("same content", theme.dim())]
                } else {
                    changes
                        .iter()
                        .take(body.height as usize)
                        .map(|ch| {
                            let show = |v: &Option<serde_json::Value>| {
                                v.as_ref().map(|v| v.to_string()).unwrap_or_default()
                            };
                            match ch.kind {
                                ChangeKind::Added => Line::styled(
                                    format!("+ {} = {}", ch.path, show(&ch.after)),
                                    theme.fg(Color::Green),
                                ),
                                ChangeKind::Removed => Line::styled(
                                    format!("- {} = {}", ch.path, show(&ch.before)),
                                    theme.fg(Color::Red),
                                ),
                                ChangeKind::Changed => Line::styled(
                                    format!(
                                        "~ {}: {} → {}",
                                        ch.path,
                                        show(&ch.before),
                                        show(&ch.after)
                                    ),
                                    theme.fg(Color::Yellow),
                                ),
                            }
                        })
                        .collect()
                },
            ),
            (None, Some(m)) => (
                format!(
                    " {} {} · locked: {} ",
                    m.version,
                    m.status,
                    if m.locked_fields.is_empty() {
                        "none".to_owned()
                    } else {
                        m.locked_fields.join(", ")
                    }
                ),
                serde_json::to_string_pretty(&m.content)
                    .unwrap_or_default()
                    .lines()
                    .take(body.height as usize)
                    .map(|l| Line::from(l.to_owned()))
                    .collect(),
            ),
            (None, None) => (" manifest ".into(), vec![Line::from("loading…")]),
        };
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
            body,
        );
    }
}

fn render_editor(frame: &mut Frame, editor: &ManifestEditor, theme: Theme, area: Rect) {
    frame.render_widget(Clear, area);
    let [text, status] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let block = Block::default().borders(Borders::ALL).title(format!(
        " propose {} · Ctrl-S proposes · Esc drops ",
        editor.schema
    ));
    frame.render_widget(&editor.textarea, block.inner(text));
    frame.render_widget(block, text);
    let line = match &editor.problem {
        None => Line::styled("✓ a valid manifest", theme.fg(Color::Green)),
        Some(p) => Line::styled(format!("✗ {p}"), theme.fg(Color::Red)),
    };
    frame.render_widget(line, status);
}

/// The manifest JSON editor (ratatui-textarea), checked against the manifest rules on every key.
pub struct ManifestEditor {
    pub schema: String,
    pub textarea: TextArea<'static>,
    /// None when the text is a valid manifest for the service.
    pub problem: Option<String>,
}

impl ManifestEditor {
    pub fn new(schema: &str, content: &Value) -> Self {
        let text = serde_json::to_string_pretty(content).unwrap_or_else(|_| "{}".into());
        let mut textarea = TextArea::new(text.lines().map(str::to_owned).collect());
        textarea.set_cursor_line_style(Style::default().add_modifier(Modifier::UNDERLINED));
        let mut editor = Self {
            schema: schema.to_owned(),
            textarea,
            problem: None,
        };
        editor.validate();
        editor
    }

    pub fn text(&self) -> String {
        self.textarea.lines().join("\n")
    }

    pub fn validate(&mut self) {
        self.problem = parse_manifest(&self.text(), &self.schema)
            .err()
            .map(|e| e.0);
    }
}
