//! The overlays over the panes: help, the audit trail and the message log. Each scrolls
//! (j/k, pgup/pgdn, g/G) and only Esc, q or ? close it, so a stray key does not throw away
//! what was being read. Their lines are built for a width, wrapped here rather than by the
//! widget, so that the keys know how far there is to scroll.

use chrono::{DateTime, FixedOffset, Utc};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};

use super::app::{App, Effect, Level, Mode, edit_line};
use super::command::{Arg, COMMANDS};
use super::keymap::{Action, Context};
use super::panes::{Cursor, movement};
use super::style::Theme;
use crate::domain::audit::{AUDIT_FIELDS, AuditRow};
use crate::domain::filter::Filter;

/// How far an overlay's text is scrolled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scroll {
    pub offset: usize,
}

impl Scroll {
    /// Scrolls for a movement key over `total` lines, `page` of them on screen; false for any
    /// other action.
    pub fn on_action(&mut self, action: Action, total: usize, page: usize) -> bool {
        match movement(action, page.max(1)) {
            Some(delta) => {
                self.by(delta, total, page);
                true
            }
            None => false,
        }
    }

    pub fn by(&mut self, delta: i64, total: usize, page: usize) {
        let last = total.saturating_sub(page.max(1)) as i64;
        self.offset = (self.offset as i64).saturating_add(delta).clamp(0, last) as usize;
    }

    /// The offset for `total` lines and `page` rows (a resize can leave it past the end).
    pub fn clamped(self, total: usize, page: usize) -> usize {
        self.offset.min(total.saturating_sub(page.max(1)))
    }
}

/// The audit overlay: the newest rows, filtered as the operator types, one of them open.
#[derive(Debug, Default)]
pub struct AuditView {
    pub rows: Vec<AuditRow>,
    pub loaded: bool,
    pub cursor: Cursor,
    /// The `/` line's text, and whether keys go to it.
    pub filter_text: String,
    pub typing: bool,
    /// The last filter that parsed; while the text does not, it still applies.
    filter: Filter,
    /// Why the text does not parse.
    pub problem: Option<String>,
    /// The row shown in full (its id), and how far its before/after is scrolled.
    pub open: Option<i64>,
    pub detail: Scroll,
}

impl AuditView {
    pub fn set_rows(&mut self, rows: Vec<AuditRow>, now: DateTime<Utc>) {
        let keep = self.selected(now).map(|r| r.id);
        self.rows = rows;
        self.loaded = true;
        let visible: Vec<i64> = self.visible(now).iter().map(|r| r.id).collect();
        self.cursor
            .follow(&visible, keep, |id| *id, visible.len().max(1));
    }

    /// The rows the filter lets through, newest first.
    pub fn visible(&self, now: DateTime<Utc>) -> Vec<&AuditRow> {
        self.rows
            .iter()
            .filter(|r| self.filter.matches(*r, now))
            .collect()
    }

    pub fn selected(&self, now: DateTime<Utc>) -> Option<&AuditRow> {
        self.visible(now).get(self.cursor.selected).copied()
    }

    pub fn opened(&self) -> Option<&AuditRow> {
        let id = self.open?;
        self.rows.iter().find(|r| r.id == id)
    }

    /// The filter line changed: the rows narrow at once when it parses.
    fn set_filter_text(&mut self, text: String) {
        match Filter::parse(&text, AUDIT_FIELDS) {
            Ok(filter) => {
                self.filter = filter;
                self.problem = None;
                self.cursor = Cursor::default();
            }
            Err(e) => self.problem = Some(e.0),
        }
        self.filter_text = text;
    }

    /// Whether a line above the rows shows the filter (typed, or its problem).
    fn filter_line(&self) -> bool {
        self.typing || !self.filter_text.is_empty()
    }
}

/// The text inside an overlay on a screen of `(width, height)`, in columns and rows: the
/// overlay covers the panes between the tab line and the status bar, inside a border.
pub fn inner_size(screen: (u16, u16)) -> (usize, usize) {
    (
        usize::from(screen.0.saturating_sub(2)).max(1),
        usize::from(screen.1.saturating_sub(4)).max(1),
    )
}

/// The audit list's rows on screen: the overlay less the column header and the filter line.
fn audit_page(app: &App) -> usize {
    let (_, height) = inner_size(app.screen);
    height
        .saturating_sub(1 + usize::from(app.audit.filter_line()))
        .max(1)
}

impl App {
    pub(super) fn open_help(&mut self) -> Vec<Effect> {
        self.overlay_scroll = Scroll::default();
        self.mode = Mode::Help;
        Vec::new()
    }

    pub(super) fn open_messages(&mut self) -> Vec<Effect> {
        self.overlay_scroll = Scroll::default();
        self.mode = Mode::Messages;
        Vec::new()
    }

    pub(super) fn open_audit(&mut self) -> Vec<Effect> {
        self.audit.open = None;
        self.audit.typing = false;
        self.mode = Mode::Audit;
        vec![Effect::LoadAudit]
    }

    /// A key in an open overlay (`mode`, taken out of `self.mode`); the overlay stays open
    /// unless the key closes it.
    pub(super) fn on_overlay_key(&mut self, mode: Mode, key: KeyEvent) -> Vec<Effect> {
        let stays = match mode {
            Mode::Audit => self.on_audit_key(key),
            Mode::Help | Mode::Messages => {
                let action = self.keymap.action(Context::Global, &key);
                if closes(action) {
                    false
                } else {
                    if let Some(action) = action {
                        let (width, page) = inner_size(self.screen);
                        let total = if mode == Mode::Help {
                            help_lines(self, Theme::default(), width).len()
                        } else {
                            message_lines(self, Theme::default(), width).len()
                        };
                        self.overlay_scroll.on_action(action, total, page);
                    }
                    true
                }
            }
            _ => true,
        };
        if stays {
            self.mode = mode;
        }
        Vec::new()
    }

    /// Mouse wheel over an overlay: `delta` lines.
    pub(super) fn scroll_overlay(&mut self, delta: i64) {
        let (width, page) = inner_size(self.screen);
        match self.mode {
            Mode::Help => {
                let total = help_lines(self, Theme::default(), width).len();
                self.overlay_scroll.by(delta, total, page);
            }
            Mode::Messages => {
                let total = message_lines(self, Theme::default(), width).len();
                self.overlay_scroll.by(delta, total, page);
            }
            Mode::Audit => {
                if let Some(row) = self.audit.opened() {
                    let total =
                        audit_detail_lines(row, &self.offset, Theme::default(), width).len();
                    self.audit.detail.by(delta, total, page);
                } else {
                    let len = self.audit.visible(self.now).len();
                    let rows = audit_page(self);
                    self.audit.cursor.move_by(delta, len, rows);
                }
            }
            _ => {}
        }
    }

    /// A click in the audit list: selects the row under it, or opens the row already selected.
    pub(super) fn click_audit(&mut self, y: u16) {
        if self.audit.open.is_some() || self.audit.typing {
            return;
        }
        // Below the tab line, the overlay's border, the filter line and the column header.
        let top = 3 + u16::from(self.audit.filter_line());
        let Some(row) = y.checked_sub(top).map(usize::from) else {
            return;
        };
        let rows = audit_page(self);
        let index = self.audit.cursor.offset + row;
        let len = self.audit.visible(self.now).len();
        if row >= rows || index >= len {
            return;
        }
        if index == self.audit.cursor.selected {
            self.audit.open = self.audit.selected(self.now).map(|r| r.id);
            self.audit.detail = Scroll::default();
        } else {
            let delta = index as i64 - self.audit.cursor.selected as i64;
            self.audit.cursor.move_by(delta, len, rows);
        }
    }

    /// Whether the audit overlay stays open after `key`.
    fn on_audit_key(&mut self, key: KeyEvent) -> bool {
        if self.audit.typing {
            match key.code {
                KeyCode::Enter => self.audit.typing = false,
                KeyCode::Esc => {
                    self.audit.typing = false;
                    self.audit.set_filter_text(String::new());
                }
                _ => {
                    let mut text = self.audit.filter_text.clone();
                    edit_line(&mut text, &key);
                    self.audit.set_filter_text(text);
                }
            }
            return true;
        }
        let action = self.keymap.action(Context::Global, &key);
        let (width, page) = inner_size(self.screen);
        if let Some(row) = self.audit.opened() {
            // Esc goes back to the list; q and ? close the overlay.
            match action {
                Some(Action::Back) => self.audit.open = None,
                a if closes(a) => return false,
                Some(a) => {
                    let total =
                        audit_detail_lines(row, &self.offset, Theme::default(), width).len();
                    self.audit.detail.on_action(a, total, page);
                }
                None => {}
            }
            return true;
        }
        // `/` is the lists' filter key.
        if self.keymap.action(Context::Runs, &key) == Some(Action::Filter) {
            self.audit.typing = true;
            return true;
        }
        match action {
            a if closes(a) => return false,
            Some(Action::Open) => {
                self.audit.open = self.audit.selected(self.now).map(|r| r.id);
                self.audit.detail = Scroll::default();
            }
            Some(a) => {
                let rows = audit_page(self);
                if let Some(delta) = movement(a, rows) {
                    let len = self.audit.visible(self.now).len();
                    self.audit.cursor.move_by(delta, len, rows);
                }
            }
            None => {}
        }
        true
    }
}

/// Esc, q and ? close an overlay (q there should not quit by surprise).
fn closes(action: Option<Action>) -> bool {
    matches!(action, Some(Action::Back | Action::Quit | Action::Help))
}

/// `text` in lines of at most `width` characters, broken between words where it can be.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line: Vec<char> = Vec::new();
    for word in text.split(' ') {
        let word: Vec<char> = word.chars().collect();
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line).into_iter().collect());
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.extend(word);
        // A word longer than a line is cut where the line ends.
        while line.len() > width {
            let rest = line.split_off(width);
            lines.push(std::mem::replace(&mut line, rest).into_iter().collect());
        }
    }
    lines.push(line.into_iter().collect());
    lines
}

/// How a help entry's first column lines up: keys to the right, next to what they do; commands
/// to the left, as they are typed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Right,
    Left,
}

/// `help` in a column `width` wide after a `key_width` column holding `key` on its first line.
fn entry(
    align: Align,
    key: String,
    help: &str,
    key_width: usize,
    width: usize,
    key_style: Style,
    style: Style,
) -> Vec<Line<'static>> {
    let text_width = width.saturating_sub(key_width + 2).max(10);
    wrap(help, text_width)
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let shown = if i == 0 { key.clone() } else { String::new() };
            let column = match align {
                Align::Left => format!("{shown:<key_width$}  "),
                Align::Right => format!("{shown:>key_width$}  "),
            };
            Line::from(vec![
                Span::styled(column, key_style),
                Span::styled(text, style),
            ])
        })
        .collect()
}

fn heading(text: String) -> Line<'static> {
    Line::styled(text, Style::default().add_modifier(Modifier::BOLD))
}

/// What help shows `width` columns wide: the keys of the context (and, read-only, the ones not
/// bound), every `:` command from the command table, and the overlays' own keys.
pub fn help_lines(app: &App, theme: Theme, width: usize) -> Vec<Line<'static>> {
    let context = app.context();
    let keys = app.keymap.help_actions(context);
    let hidden = app.keymap.hidden_help(context);
    let key_width = keys
        .iter()
        .chain(&hidden)
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(1)
        .min(16);
    let key_style = theme.fg(Color::Cyan);
    let mut lines = vec![heading(format!("Keys here ({context:?})"))];
    for (key, action) in &keys {
        let help = if action.writes() {
            format!("{} (not in monitor)", action.help())
        } else {
            action.help().to_owned()
        };
        lines.extend(entry(
            Align::Right,
            key.clone(),
            &help,
            key_width,
            width,
            key_style,
            Style::default(),
        ));
    }
    if !hidden.is_empty() {
        lines.push(Line::default());
        lines.push(heading(
            "Not bound: this console is read-only (monitor), these keys would write".into(),
        ));
        for (key, action) in &hidden {
            lines.extend(entry(
                Align::Right,
                key.clone(),
                action.help(),
                key_width,
                width,
                theme.dim(),
                theme.dim(),
            ));
        }
    }
    lines.push(Line::default());
    lines.push(heading(
        "Commands (: opens the line; Tab completes, ↑/↓ recall earlier ones)".into(),
    ));
    let usage = |c: &super::command::Command| {
        if c.usage.is_empty() {
            format!(":{}", c.name)
        } else {
            format!(":{} {}", c.name, c.usage)
        }
    };
    let command_width = COMMANDS
        .iter()
        .map(|c| usage(c).chars().count())
        .max()
        .unwrap_or(1)
        .min(width / 2);
    for c in COMMANDS {
        let mut help = c.help.to_owned();
        if !c.aliases.is_empty() {
            let aliases: Vec<String> = c.aliases.iter().map(|a| format!(":{a}")).collect();
            help.push_str(&format!(" (also {})", aliases.join(", ")));
        }
        help.push_str(match c.arg {
            Arg::RunsFilter => " · Tab offers statuses",
            Arg::Schema => " · Tab offers schemas",
            Arg::Template => " · Tab offers template names",
            Arg::None | Arg::RunId => "",
        });
        lines.extend(entry(
            Align::Left,
            usage(c),
            &help,
            command_width,
            width,
            key_style,
            Style::default(),
        ));
    }
    lines.push(Line::default());
    lines.push(heading("In help, audit and messages".into()));
    let keys_of = |actions: &[Action]| -> String {
        actions
            .iter()
            .filter_map(|a| app.keymap.key_for(*a).map(|k| k.to_string()))
            .collect::<Vec<_>>()
            .join("/")
    };
    for (keys, help) in [
        (keys_of(&[Action::Down, Action::Up]), "scroll"),
        (keys_of(&[Action::PageDown, Action::PageUp]), "a page"),
        (keys_of(&[Action::Top, Action::Bottom]), "first / last line"),
        (
            keys_of(&[Action::Back, Action::Quit, Action::Help]),
            "close (Esc in an audit row: back to the list)",
        ),
    ] {
        lines.extend(entry(
            Align::Right,
            keys,
            help,
            key_width,
            width,
            key_style,
            Style::default(),
        ));
    }
    lines
}

/// Every message of the session, newest first, each in full.
pub fn message_lines(app: &App, theme: Theme, width: usize) -> Vec<Line<'static>> {
    if app.messages.is_empty() {
        return vec![Line::styled("no messages yet", theme.dim())];
    }
    let mut lines = Vec::new();
    for m in app.messages.iter().rev() {
        let style = match m.level {
            Level::Error => theme.error(),
            Level::Info => Style::default(),
        };
        let at = super::style::clock_time(&app.offset, Some(m.at));
        for (i, text) in wrap(&m.text, width.saturating_sub(10).max(10))
            .into_iter()
            .enumerate()
        {
            let at = if i == 0 { at.clone() } else { String::new() };
            lines.push(Line::from(vec![
                Span::styled(format!("{at:<8}  "), theme.dim()),
                Span::styled(text, style),
            ]));
        }
    }
    lines
}

/// A time with its date when it is not today.
fn when(now: DateTime<Utc>, offset: &FixedOffset, t: DateTime<Utc>) -> String {
    let local = t.with_timezone(offset);
    if local.date_naive() == now.with_timezone(offset).date_naive() {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// One audit row in full: who, when, what changed, and the before and after as JSON.
pub fn audit_detail_lines(
    row: &AuditRow,
    offset: &FixedOffset,
    theme: Theme,
    width: usize,
) -> Vec<Line<'static>> {
    let at = row.at.with_timezone(offset).format("%Y-%m-%d %H:%M:%S");
    let mut lines = Vec::new();
    let project = row
        .project_id
        .map(|p| format!(" · project {p}"))
        .unwrap_or_default();
    for text in wrap(
        &format!(
            "{} {} {} by {} at {at}{project}",
            row.action, row.entity_type, row.entity_id, row.actor
        ),
        width,
    ) {
        lines.push(Line::styled(
            text,
            Style::default().add_modifier(Modifier::BOLD),
        ));
    }
    let changed = row.changed_keys();
    if !changed.is_empty() {
        for text in wrap(&format!("changed: {}", changed.join(", ")), width) {
            lines.push(Line::styled(text, theme.fg(Color::Yellow)));
        }
    }
    for (label, value) in [("before", &row.before), ("after", &row.after)] {
        lines.push(Line::default());
        lines.push(Line::styled(
            label.to_owned(),
            theme.fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ));
        match value {
            None => lines.push(Line::styled("  (nothing recorded)", theme.dim())),
            Some(v) => {
                let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
                for json_line in text.lines() {
                    // Continuations of a long value keep the value's indentation.
                    let indent = json_line.len() - json_line.trim_start().len() + 2;
                    for (i, part) in wrap(json_line.trim_start(), width.saturating_sub(indent))
                        .into_iter()
                        .enumerate()
                    {
                        let pad = if i == 0 { indent } else { indent + 2 };
                        lines.push(Line::from(format!("{:pad$}{part}", "")));
                    }
                }
            }
        }
    }
    lines
}

/// A full-screen overlay (one cell in from each edge) showing `lines` from `scroll` on, with
/// where that is in the title's right corner.
fn render_scrolled(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    lines: Vec<Line<'static>>,
    scroll: Scroll,
    theme: Theme,
) {
    let popup = popup_area(area);
    frame.render_widget(Clear, popup);
    let page = usize::from(popup.height.saturating_sub(2)).max(1);
    let total = lines.len();
    let from = scroll.clamped(total, page);
    let shown: Vec<Line> = lines.into_iter().skip(from).take(page).collect();
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(title.to_owned());
    if total > page {
        block = block.title(
            Line::styled(
                format!(" {}-{} of {total} ", from + 1, (from + page).min(total)),
                theme.dim(),
            )
            .right_aligned(),
        );
    }
    frame.render_widget(Paragraph::new(shown).block(block), popup);
}

/// Where an overlay goes on a screen of `area`: over the panes, between the tab line (which
/// says where one is) and the status bar.
fn popup_area(area: Rect) -> Rect {
    Rect {
        x: area.x,
        y: area.y + 1,
        width: area.width,
        height: area.height.saturating_sub(2),
    }
}

pub fn render_help(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let (width, _) = inner_size((area.width, area.height));
    let title = if app.read_only {
        " help (read-only) · j/k scroll · Esc closes "
    } else {
        " help · j/k scroll · Esc closes "
    };
    let lines = help_lines(app, theme, width);
    render_scrolled(frame, area, title, lines, app.overlay_scroll, theme);
}

pub fn render_messages(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let (width, _) = inner_size((area.width, area.height));
    let lines = message_lines(app, theme, width);
    let title = " messages, newest first · j/k scroll · Esc closes ";
    render_scrolled(frame, area, title, lines, app.overlay_scroll, theme);
}

pub fn render_audit(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let view = &app.audit;
    let (width, _) = inner_size((area.width, area.height));
    if let Some(row) = view.opened() {
        let lines = audit_detail_lines(row, &app.offset, theme, width);
        let title = format!(" audit #{} · j/k scroll · Esc back · q closes ", row.id);
        render_scrolled(frame, area, &title, lines, view.detail, theme);
        return;
    }
    let popup = popup_area(area);
    frame.render_widget(Clear, popup);
    let visible = view.visible(app.now);
    let count = if view.filter_text.is_empty() {
        format!("{}", visible.len())
    } else {
        format!("{} of {}", visible.len(), view.rows.len())
    };
    let block = Block::default().borders(Borders::ALL).title(format!(
        " audit trail ({count}) · Enter opens · / filters · Esc closes "
    ));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let mut table_area = inner;
    if view.filter_line() {
        let line = match &view.problem {
            Some(problem) => Line::from(vec![
                Span::raw(format!("/{}", view.filter_text)),
                Span::raw(if view.typing { "▏ " } else { " " }),
                Span::styled(problem.clone(), theme.error()),
            ]),
            None => Line::from(vec![
                Span::raw(format!("/{}", view.filter_text)),
                Span::styled(
                    if view.typing {
                        "▏ actor: action: entity: age:>1h"
                    } else {
                        ""
                    },
                    theme.dim(),
                ),
            ]),
        };
        frame.render_widget(line, Rect { height: 1, ..inner });
        table_area.y += 1;
        table_area.height = table_area.height.saturating_sub(1);
    }
    if visible.is_empty() {
        let text = if !view.loaded {
            "loading…"
        } else if view.rows.is_empty() {
            "The audit trail is empty."
        } else {
            "No change matches this filter."
        };
        frame.render_widget(Line::styled(text, theme.dim()), table_area);
        return;
    }
    let rows = visible.iter().map(|r| {
        Row::new(vec![
            Cell::from(Span::styled(when(app.now, &app.offset, r.at), theme.dim())),
            Cell::from(r.actor.clone()),
            Cell::from(Span::styled(r.action.clone(), theme.fg(Color::Cyan))),
            Cell::from(format!("{} {}", r.entity_type, r.entity_id)),
        ])
    });
    let header = Row::new(vec!["WHEN", "ACTOR", "ACTION", "ENTITY"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let mut state = TableState::default()
        .with_offset(view.cursor.offset)
        .with_selected(Some(view.cursor.selected));
    frame.render_stateful_widget(
        Table::new(
            rows,
            [
                Constraint::Length(16),
                Constraint::Length(14),
                Constraint::Length(10),
                Constraint::Min(20),
            ],
        )
        .header(header)
        .row_highlight_style(theme.selected()),
        table_area,
        &mut state,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_between_words_and_cuts_long_ones() {
        assert_eq!(wrap("one two three", 7), vec!["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 5), vec![""]);
        for line in wrap("a bcdefghijklmnop qr", 5) {
            assert!(line.chars().count() <= 5, "{line}");
        }
    }

    #[test]
    fn scrolling_stops_at_both_ends() {
        let mut s = Scroll::default();
        s.on_action(Action::Down, 30, 10);
        assert_eq!(s.offset, 1);
        s.on_action(Action::Bottom, 30, 10);
        assert_eq!(s.offset, 20);
        s.on_action(Action::PageDown, 30, 10);
        assert_eq!(s.offset, 20);
        s.on_action(Action::Top, 30, 10);
        assert_eq!(s.offset, 0);
        assert!(!s.on_action(Action::Cancel, 30, 10));
        assert_eq!(Scroll { offset: 25 }.clamped(30, 10), 20);
    }
}
