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

use chrono::{DateTime, Utc};

use super::listing::{ListRow, Listing, SortKey};
use super::{Ctx, Cursor, Goto, KeyCtx, Reply, movement};
use crate::domain::filter::{Field, FieldValue};
use crate::domain::manifest::{
    self, Bump, ChangeKind, FieldChange, Manifest, ManifestHead, ManifestStatus,
    activation_refused, lock_refused, parse_manifest,
};
use crate::tui::app::{Confirm, CopyChoice, Effect, Mode};
use crate::tui::keymap::Action;
use crate::tui::style::Theme;

#[derive(Default)]
pub struct ManifestsPane {
    /// The service shown.
    pub service: Option<String>,
    /// Its versions, as `/` filters and `o` sorts them; the cursor is the chosen version.
    pub list: Listing<ManifestHead>,
    /// The content of the version on screen.
    pub content: Option<Manifest>,
    /// A diff on screen instead of the content: (from, to, changes).
    pub diff: Option<(String, String, Vec<FieldChange>)>,
    /// The JSON editor, while open.
    pub editor: Option<ManifestEditor>,
    /// The text handed to $EDITOR, to tell an edit from a file saved unchanged.
    pub external: Option<String>,
    /// `p` on a draft whose content was still loading: the editor opens when it arrives.
    pub propose_when_loaded: Option<String>,
}

/// The version a proposal of `history` gets with `bump`: the highest one bumped.
pub fn next_version(history: &[ManifestHead], bump: Bump) -> Option<String> {
    let highest = history
        .iter()
        .filter_map(|m| semver::Version::parse(&m.version).ok())
        .max()
        .unwrap_or_else(|| semver::Version::new(0, 0, 0));
    manifest::bump(&highest, bump).ok().map(|v| v.to_string())
}

fn next_bump(bump: Bump) -> Bump {
    match bump {
        Bump::Patch => Bump::Minor,
        Bump::Minor => Bump::Major,
        Bump::Major => Bump::Patch,
    }
}

impl ListRow for ManifestHead {
    const FIELDS: &'static [Field] = &[
        Field::text("version"),
        Field::choice(
            "status",
            &["draft", "active", "locked", "superseded", "rejected"],
        ),
        Field::text("by"),
        Field::age("age"),
    ];
    const COLUMNS: &'static [&'static str] = &["version", "status", "age"];
    type Key = String;

    fn key(&self) -> String {
        self.version.clone()
    }

    fn field(&self, name: &str) -> FieldValue<'_> {
        match name {
            "version" => FieldValue::Text(&self.version),
            "status" => FieldValue::Text(self.status.as_str()),
            "by" => FieldValue::Text(&self.created_by),
            "age" => FieldValue::Time(self.created_at),
            _ => FieldValue::None,
        }
    }

    fn words(&self) -> Vec<&str> {
        vec![&self.version, self.status.as_str(), &self.created_by]
    }

    fn sort_key(&self, column: &str) -> SortKey<'_> {
        match column {
            "status" => SortKey::Text(self.status.as_str()),
            "age" => SortKey::Time(Some(self.created_at)),
            _ => SortKey::Text(&self.version),
        }
    }
}

impl ManifestsPane {
    pub fn selected_version(&self) -> Option<&ManifestHead> {
        self.list.selected()
    }

    /// Every version of the service, whatever the filter (the rules judge all of them).
    pub fn history(&self) -> &[ManifestHead] {
        self.list.items()
    }

    pub fn governing(&self) -> Option<&ManifestHead> {
        self.history()
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
        self.list.clear();
        self.content = None;
        self.diff = None;
    }

    /// New history for `schema`; the version on screen stays selected if it still exists.
    pub fn set_manifests(
        &mut self,
        schema: String,
        history: Vec<ManifestHead>,
        content: Option<Manifest>,
        now: DateTime<Utc>,
        rows: usize,
    ) -> Reply {
        // The operator's choice outlives every refresh (a worker's heartbeat is enough to cause
        // one); the content's version (the governing one at first) only when nothing is chosen.
        let same_service = self.service.as_deref() == Some(schema.as_str());
        let keep = same_service
            .then(|| self.selected_version().map(|v| v.version.clone()))
            .flatten()
            .or_else(|| content.as_ref().map(|m| m.version.clone()));
        self.service = Some(schema);
        self.list.set_items(history, now, rows);
        let target = keep
            .filter(|v| self.list.shown().any(|m| m.version == *v))
            .or_else(|| self.governing().map(|m| m.version.clone()));
        match target {
            Some(version) => self.list.select(&version),
            None => self.list.cursor = Cursor::default(),
        }
        self.list.cursor.keep_visible(rows);
        if content.is_some() {
            self.content = content;
        }
        match (self.propose_when_loaded.take(), &self.content) {
            (Some(wanted), Some(c)) if c.version == wanted && self.editor.is_none() => {
                self.open_editor()
            }
            (Some(wanted), _) => {
                self.propose_when_loaded = Some(wanted);
                Reply::default()
            }
            _ => Reply::default(),
        }
    }

    /// The editor on the content on screen, which is the selected draft when `p` continues one.
    fn open_editor(&mut self) -> Reply {
        let (Some(schema), Some(content)) = (self.service.clone(), self.content.as_ref()) else {
            return Reply::fail("open a service's manifest first (Enter in Services)");
        };
        let mut editor = ManifestEditor::new(&schema, &content.content);
        editor.base = format!("{} {}", content.status, content.version);
        editor.next = next_version(self.list.items(), editor.bump);
        // A draft is continued: saving changes it rather than making one more version.
        if content.status.content_can_change() {
            editor.revise = Some(content.version.clone());
            editor.in_place = true;
        }
        self.editor = Some(editor);
        Reply::mode(Mode::Editing)
    }

    pub fn on_action(&mut self, action: Action, ctx: &KeyCtx) -> Reply {
        if let Some(delta) = movement(action, ctx.rows) {
            self.list.move_by(delta, ctx.rows);
            // The content beside the list is the chosen version's, as in Templates.
            self.diff = None;
            return match (&self.service, self.selected_version()) {
                (Some(schema), Some(v)) => Reply::effects(vec![Effect::LoadManifests {
                    schema: schema.clone(),
                    version: Some(v.version.clone()),
                }]),
                _ => Reply::default(),
            };
        }
        if action == Action::CopyId {
            let mut choices = Vec::new();
            if let Some(m) = &self.content {
                choices.push(CopyChoice::new('m', "manifest", pretty_json(&m.content)));
                choices.push(CopyChoice::new('v', "version", m.version.clone()));
            }
            if let Some(schema) = &self.service {
                choices.push(CopyChoice::new('s', "schema", schema.clone()));
            }
            if choices.is_empty() {
                return Reply::info("nothing to copy here yet");
            }
            return Reply::mode(Mode::Copy(choices));
        }
        if matches!(action, Action::Sort | Action::SortReverse) {
            let on = self
                .list
                .cycle_sort(action == Action::SortReverse, ctx.rows);
            return Reply::info(format!("versions sorted by {on}"));
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
                // A selected draft is continued (its content, not the governing one's); other
                // versions start from the content on screen.
                let draft = self
                    .selected_version()
                    .filter(|v| v.status == ManifestStatus::Draft)
                    .map(|v| v.version.clone());
                match (draft, &self.service, &self.content) {
                    (Some(version), Some(schema), content)
                        if content.as_ref().is_none_or(|c| c.version != version) =>
                    {
                        self.diff = None;
                        self.propose_when_loaded = Some(version.clone());
                        Reply::effects(vec![Effect::LoadManifests {
                            schema: schema.clone(),
                            version: Some(version),
                        }])
                    }
                    _ => self.open_editor(),
                }
            }
            Action::EditExternal => {
                let (Some(schema), Some(content)) = (self.service.clone(), self.content.as_ref())
                else {
                    return Reply::fail("open a service's manifest first (Enter in Services)");
                };
                let text = serde_json::to_string_pretty(&content.content).unwrap_or_default();
                self.external = Some(text.clone());
                Reply::effects(vec![Effect::EditExternally {
                    schema,
                    text,
                    bump: Bump::Patch,
                }])
            }
            Action::Activate => {
                let (Some(schema), Some(v)) = (self.service.clone(), self.selected_version())
                else {
                    return Reply::default();
                };
                if let Some(why) =
                    activation_refused(&schema, &v.version, v.status, self.list.items())
                {
                    return Reply::fail(why);
                }
                let now = match self.governing() {
                    Some(g) => format!(" {} {} becomes superseded.", g.version, g.status),
                    None => String::new(),
                };
                let question = format!(
                    "Activate {schema} {}?{now} The service's workflows follow it.",
                    v.version
                );
                Reply::mode(Mode::Confirm(Confirm {
                    effect: Effect::Activate {
                        schema,
                        version: v.version.clone(),
                    },
                    question,
                }))
            }
            Action::Lock | Action::Unlock => {
                let Some(schema) = self.service.clone() else {
                    return Reply::default();
                };
                let to = if action == Action::Lock {
                    ManifestStatus::Locked
                } else {
                    ManifestStatus::Active
                };
                if let Some(why) = lock_refused(&schema, self.list.items(), to) {
                    return Reply::fail(why);
                }
                Reply::ask(if action == Action::Lock {
                    Effect::Lock(schema)
                } else {
                    Effect::Unlock(schema)
                })
            }
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

    /// $EDITOR came back: an unchanged file does nothing, invalid text opens in the console's
    /// editor with the problem shown (nothing typed is lost), valid text is proposed after a
    /// question.
    pub fn on_edited(&mut self, schema: String, text: Result<String, String>, bump: Bump) -> Reply {
        let sent = self.external.take();
        let text = match text {
            Ok(text) => text,
            Err(e) => return Reply::fail(format!("$EDITOR: {e}")),
        };
        if sent.as_deref().map(str::trim) == Some(text.trim()) {
            return Reply::info(format!(
                "{schema}: the manifest was not changed; nothing proposed"
            ));
        }
        let mut editor = ManifestEditor::from_text(&schema, &text);
        editor.base = "$EDITOR".to_owned();
        editor.bump = bump;
        editor.next = next_version(self.list.items(), bump);
        editor.original = sent.unwrap_or_default();
        match editor.problem.clone() {
            Some(problem) => {
                self.editor = Some(editor);
                Reply {
                    mode: Some(Mode::Editing),
                    ..Reply::fail(format!("not proposed: {problem}; fix it here"))
                }
            }
            None => {
                let question = editor.propose_question();
                Reply::mode(Mode::Confirm(Confirm {
                    effect: editor.propose_effect(),
                    question,
                }))
            }
        }
    }

    /// Keys while the editor is open: Ctrl-B changes the bump, Ctrl-S asks to propose when
    /// valid, Esc drops the text (asking first when it was edited).
    pub fn on_editor_key(&mut self, key: KeyEvent) -> Reply {
        let Some(mut editor) = self.editor.take() else {
            return Reply::default();
        };
        // A question on the status line takes the next key: `y` does it, any other key goes
        // back to the text as it was.
        if let Some(question) = editor.asking.take() {
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                return match question {
                    EditorQuestion::Propose => Reply::effects(vec![editor.propose_effect()]),
                    EditorQuestion::Discard => {
                        Reply::info(format!("edits to {}'s manifest discarded", editor.schema))
                    }
                };
            }
            self.editor = Some(editor);
            return Reply {
                mode: Some(Mode::Editing),
                ..Reply::info("nothing done; the text is as it was")
            };
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc if !editor.edited() => return Reply::default(),
            KeyCode::Esc => editor.asking = Some(EditorQuestion::Discard),
            KeyCode::Char('b') if ctrl => {
                // A continued draft: in place → patch → minor → major → in place.
                match (editor.revise.is_some(), editor.in_place, editor.bump) {
                    (true, true, _) => {
                        editor.in_place = false;
                        editor.bump = Bump::Patch;
                    }
                    (true, false, Bump::Major) => editor.in_place = true,
                    _ => editor.bump = next_bump(editor.bump),
                }
                editor.next = next_version(self.list.items(), editor.bump);
            }
            KeyCode::Char('s') if ctrl => {
                if let Some(problem) = &editor.problem {
                    let text = format!("not proposed: {problem}");
                    self.editor = Some(editor);
                    return Reply {
                        mode: Some(Mode::Editing),
                        ..Reply::fail(text)
                    };
                }
                editor.asking = Some(EditorQuestion::Propose);
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
                    "Choose a service in Services (1), Enter, then m for its manifests; or type :manifest NAME.",
                )
                .wrap(Wrap { trim: true })
                .block(Block::default().borders(Borders::ALL).title(" Manifests ")),
                area,
            );
            return;
        };
        let [list, body] =
            Layout::horizontal([Constraint::Length(30), Constraint::Min(20)]).areas(area);
        let rows = c.list.shown().map(|m| {
            Row::new(vec![
                Cell::from(m.version.clone()),
                Cell::from(Span::styled(m.status.as_str(), theme.manifest(m.status))),
            ])
        });
        let mut state = TableState::default()
            .with_offset(c.list.cursor.offset)
            .with_selected(Some(c.list.cursor.selected));
        frame.render_stateful_widget(
            Table::new(rows, [Constraint::Length(12), Constraint::Length(11)])
                .block(Block::default().borders(Borders::ALL).title(
                    if c.list.filter_text().is_empty() {
                        format!(" {schema} ")
                    } else {
                        format!(" {schema} ({}) ", c.list.count_label())
                    },
                ))
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
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(
            " {} → {} · from {} ",
            editor.schema,
            editor.target(),
            editor.base
        ))
        .title_bottom(" ^B version · ^S save · Esc ");
    frame.render_widget(&editor.textarea, block.inner(text));
    frame.render_widget(block, text);
    let asking = theme.fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let line = match (&editor.asking, &editor.problem) {
        (Some(EditorQuestion::Propose), _) => {
            Line::styled(format!("{} y saves", editor.propose_question()), asking)
        }
        (Some(EditorQuestion::Discard), _) => Line::styled(
            format!(
                "Discard your edits to {}'s manifest? y discards",
                editor.schema
            ),
            asking,
        ),
        (None, None) => Line::styled("✓ a valid manifest", theme.fg(Color::Green)),
        (None, Some(p)) => Line::styled(format!("✗ {p}"), theme.fg(Color::Red)),
    };
    frame.render_widget(line, status);
}

/// What the editor asks on its status line before it goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditorQuestion {
    Propose,
    Discard,
}

/// The manifest JSON editor (ratatui-textarea), checked against the manifest rules on every key.
pub struct ManifestEditor {
    pub schema: String,
    pub textarea: TextArea<'static>,
    /// None when the text is a valid manifest for the service.
    pub problem: Option<String>,
    /// How the proposal's version follows the highest one (Ctrl-B changes it).
    pub bump: Bump,
    /// The version the proposal gets with that bump.
    pub next: Option<String>,
    /// What the text started from (`draft 1.1.0`, `active 1.0.0`, `$EDITOR`).
    pub base: String,
    /// The text it opened with: anything else is an edit Esc asks about.
    pub original: String,
    /// The question on the status line, while one is asked.
    pub asking: Option<EditorQuestion>,
    /// The draft the editor continues, if it opened on one.
    pub revise: Option<String>,
    /// Saving changes that draft (else it proposes a new version with `bump`).
    pub in_place: bool,
}

impl ManifestEditor {
    pub fn new(schema: &str, content: &Value) -> Self {
        let text = serde_json::to_string_pretty(content).unwrap_or_else(|_| "{}".into());
        Self::from_text(schema, &text)
    }

    pub fn from_text(schema: &str, text: &str) -> Self {
        let mut textarea = TextArea::new(text.lines().map(str::to_owned).collect());
        textarea.set_cursor_line_style(Style::default().add_modifier(Modifier::UNDERLINED));
        let mut editor = Self {
            schema: schema.to_owned(),
            textarea,
            problem: None,
            bump: Bump::Patch,
            next: None,
            base: String::new(),
            original: String::new(),
            asking: None,
            revise: None,
            in_place: false,
        };
        editor.original = editor.text();
        editor.validate();
        editor
    }

    pub fn edited(&self) -> bool {
        self.text() != self.original
    }

    pub fn propose_effect(&self) -> Effect {
        match (&self.revise, self.in_place) {
            (Some(version), true) => Effect::ReviseDraft {
                schema: self.schema.clone(),
                version: version.clone(),
                text: self.text(),
            },
            _ => Effect::Propose {
                schema: self.schema.clone(),
                text: self.text(),
                bump: self.bump,
            },
        }
    }

    /// Where saving puts the text: `draft 1.2.0 (in place)` or `1.2.1 (patch bump)`.
    pub fn target(&self) -> String {
        match (&self.revise, self.in_place) {
            (Some(version), true) => format!("draft {version} (in place)"),
            _ => format!(
                "{} ({} bump)",
                self.next.as_deref().unwrap_or("?"),
                self.bump.as_str()
            ),
        }
    }

    /// What `y` will do, in full.
    pub fn propose_question(&self) -> String {
        match (&self.revise, self.in_place) {
            (Some(version), true) => {
                format!("Save your edits to draft {} {version}?", self.schema)
            }
            _ => format!(
                "Propose {} {} (a {} bump) as a new draft?",
                self.schema,
                self.next.as_deref().unwrap_or("?"),
                self.bump.as_str()
            ),
        }
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

/// A manifest as an operator pastes it: indented JSON.
fn pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
