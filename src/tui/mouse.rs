//! The mouse: a click on a tab shows that pane, a click on a list row (the audit trail's too)
//! selects it (a click on the row already selected opens it, as Enter does), the wheel moves
//! through lists and scrolls overlays. Where a list's rows are follows the layouts of `view` and the panes; the tests
//! click where the rendered text is, so a layout that moves without this fails them.

use std::mem::discriminant;

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Constraint, Layout, Rect};

use super::app::{App, Effect, Mode, Pane};
use super::keymap::Action;
use super::panes::runs::RunsPane;
use super::view;

/// Rows one notch of the wheel moves.
const WHEEL_ROWS: i64 = 3;

/// The Overview's chart keeps at least this many rows (`panes::overview`'s `MIN_CHART_ROWS`).
const OVERVIEW_CHART_ROWS: u16 = 8;

impl App {
    /// What a mouse event changes; moves and drags change nothing.
    pub fn on_mouse(&mut self, event: MouseEvent) -> Vec<Effect> {
        match event.kind {
            MouseEventKind::ScrollDown => self.wheel(WHEEL_ROWS),
            MouseEventKind::ScrollUp => self.wheel(-WHEEL_ROWS),
            MouseEventKind::Down(MouseButton::Left) => self.click(event.column, event.row),
            _ => Vec::new(),
        }
    }

    fn wheel(&mut self, delta: i64) -> Vec<Effect> {
        match self.mode {
            Mode::Help | Mode::Messages | Mode::Audit => {
                self.scroll_overlay(delta);
                Vec::new()
            }
            Mode::Normal => {
                let action = if delta > 0 { Action::Down } else { Action::Up };
                let mut effects = Vec::new();
                for _ in 0..delta.unsigned_abs() {
                    effects.extend(self.pane_action(action));
                }
                last_of_each_kind(effects)
            }
            // An input line, a question or an editor is open: the wheel must not move what it
            // is about.
            _ => Vec::new(),
        }
    }

    fn click(&mut self, x: u16, y: u16) -> Vec<Effect> {
        if self.mode == Mode::Audit {
            self.click_audit(y);
            return Vec::new();
        }
        // Other overlays and input lines: a click must not act on the pane behind them.
        if self.mode != Mode::Normal {
            return Vec::new();
        }
        if y == 0 {
            return match view::tab_at(x) {
                Some(pane) => self.switch_pane(pane),
                None => Vec::new(),
            };
        }
        let body = self.body_area();
        match self.list_area(body) {
            Some(list) if x >= list.x && x < list.right() && y >= list.y && y < list.bottom() => {
                self.click_row(usize::from(y - list.y), usize::from(list.height))
            }
            _ => Vec::new(),
        }
    }

    /// The panes' area: the screen less the tab line, the status bar and the bottom line.
    fn body_area(&self) -> Rect {
        let (width, height) = self.screen;
        Rect {
            x: 0,
            y: 1,
            width,
            height: height.saturating_sub(2 + u16::from(self.bottom_line())),
        }
    }

    /// Where the rows of the pane's list are drawn in `body` (inside its border, below its
    /// header); None when the pane shows no list.
    fn list_area(&self, body: Rect) -> Option<Rect> {
        let inside = |area: Rect, header: u16| Rect {
            x: area.x + 1,
            y: area.y + 1 + header,
            width: area.width.saturating_sub(2),
            height: area.height.saturating_sub(2 + header),
        };
        match self.pane {
            Pane::Overview => {
                let board = &self.overview.board;
                if !self.overview.loaded || board.queues.is_empty() {
                    return None;
                }
                // The queue table's height, as the Overview lays it out.
                let room = body.height.saturating_sub(OVERVIEW_CHART_ROWS);
                let want_queues = board.queues.len() as u16 + 3;
                let want_workers = board.workers.len().max(1) as u16 + 3;
                let queue_rows = if want_queues + want_workers <= room {
                    want_queues
                } else {
                    want_queues.min(room.saturating_sub(want_workers.min(4)))
                };
                Some(inside(
                    Rect {
                        height: queue_rows,
                        ..body
                    },
                    1,
                ))
            }
            Pane::Services if !self.services.list.is_empty() => Some(inside(body, 1)),
            Pane::Manifests
                if self.manifests.service.is_some() && !self.manifests.list.is_empty() =>
            {
                let [list, _] =
                    Layout::horizontal([Constraint::Length(30), Constraint::Min(20)]).areas(body);
                Some(inside(list, 0))
            }
            Pane::Templates if !self.templates.list.is_empty() => {
                let [list, _] =
                    Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                        .areas(body);
                Some(inside(list, 0))
            }
            Pane::Runs if self.runs.detail.is_none() && !self.runs.runs.is_empty() => {
                // The table is at the bottom of the pane, its rows above its lower border.
                let rows = RunsPane::list_rows(body.height) as u16;
                Some(Rect {
                    x: body.x + 1,
                    y: body.bottom().saturating_sub(1 + rows),
                    width: body.width.saturating_sub(2),
                    height: rows,
                })
            }
            _ => None,
        }
    }

    /// A click on the `row`th row of the list on screen (`rows` of them).
    fn click_row(&mut self, row: usize, rows: usize) -> Vec<Effect> {
        let (cursor, len) = match self.pane {
            Pane::Overview => (&mut self.overview.cursor, self.overview.board.queues.len()),
            Pane::Services => {
                let len = self.services.list.len();
                (&mut self.services.list.cursor, len)
            }
            Pane::Manifests => {
                let len = self.manifests.list.len();
                (&mut self.manifests.list.cursor, len)
            }
            Pane::Templates => {
                let len = self.templates.list.len();
                (&mut self.templates.list.cursor, len)
            }
            Pane::Runs => (&mut self.runs.cursor, self.runs.runs.len()),
        };
        let index = cursor.offset + row;
        if index >= len {
            return Vec::new();
        }
        if index == cursor.selected {
            return self.pane_action(Action::Open);
        }
        cursor.move_by(index as i64 - cursor.selected as i64, len, rows);
        self.message = None;
        match self.pane {
            // Away from the top, newer runs wait behind the marker, as with the keys.
            Pane::Runs if self.runs.cursor.selected > 0 && self.runs.pinned.is_none() => {
                self.runs.pinned = self.runs.runs.first().map(|r| r.id);
                Vec::new()
            }
            // The keys load the selected version's artifacts as they move; so does a click.
            Pane::Templates => self.pane_action(Action::Open),
            _ => Vec::new(),
        }
    }
}

/// Several steps' effects as one: the last of each kind (three wheel steps load one page).
fn last_of_each_kind(effects: Vec<Effect>) -> Vec<Effect> {
    let mut kept: Vec<Effect> = Vec::new();
    for effect in effects.into_iter().rev() {
        if !kept
            .iter()
            .any(|k| discriminant(k) == discriminant(&effect))
        {
            kept.push(effect);
        }
    }
    kept.reverse();
    kept
}
