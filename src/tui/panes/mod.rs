//! The console's panes, a module each: its state, what its keys do (`on_action` → `Reply`), and
//! how it draws. A pane's `render` is a pure function of the pane and `Ctx` (the clock, the theme,
//! the keys); it writes nothing. A new pane is a new module here plus its line in `app::Pane`
//! and in the two dispatches of `App` (`on_action`, `render`).

pub mod columns;
pub mod listing;
pub mod manifests;
pub mod overview;
pub mod runs;
pub mod services;
pub mod templates;

use chrono::{DateTime, FixedOffset, Utc};

use super::app::{Confirm, Effect, Level, Mode};
use super::keymap::{Action, Keymap};
use super::style::Theme;
use crate::domain::worker::WorkerPresence;

/// What every pane draws against besides its own state.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub theme: Theme,
    /// Times of day are shown in this offset (the local one; tests pin UTC).
    pub offset: FixedOffset,
    pub keymap: &'a Keymap,
    pub read_only: bool,
    /// Every worker process that beat within the hour (whether a run's holder is alive).
    pub workers: &'a [WorkerPresence],
}

/// What a pane needs to know to handle a key.
#[derive(Debug, Clone, Copy)]
pub struct KeyCtx {
    pub read_only: bool,
    /// Rows of the pane's list on screen (page up and down move this far).
    pub rows: usize,
    /// Rows and columns of the pane's whole area (a pane with a layout of its own derives its
    /// page from them).
    pub height: u16,
    pub width: u16,
}

/// Where a key sends the operator, beyond the pane itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goto {
    Services,
    /// A service's detail (its schema).
    Service(String),
    /// A service's manifest versions.
    Manifests(String),
    /// The runs of this query.
    Runs(runs::RunsQuery),
    /// One run's detail.
    Run(i64),
}

/// A pane's answer to a key: loads and actions for the runtime, and what the console around the
/// pane should do (ask a question, open an input line, say something, show another pane).
#[derive(Debug, Default)]
pub struct Reply {
    pub effects: Vec<Effect>,
    pub mode: Option<Mode>,
    pub say: Option<(Level, String)>,
    pub goto: Option<Goto>,
}

impl Reply {
    pub fn effects(effects: Vec<Effect>) -> Self {
        Self {
            effects,
            ..Self::default()
        }
    }

    /// Asks before `effect`: `y` carries it out.
    pub fn ask(effect: Effect) -> Self {
        Self::mode(Mode::Confirm(Confirm::new(effect)))
    }

    pub fn mode(mode: Mode) -> Self {
        Self {
            mode: Some(mode),
            ..Self::default()
        }
    }

    pub fn goto(goto: Goto) -> Self {
        Self {
            goto: Some(goto),
            ..Self::default()
        }
    }

    pub fn fail(text: impl Into<String>) -> Self {
        Self {
            say: Some((Level::Error, text.into())),
            ..Self::default()
        }
    }

    pub fn info(text: impl Into<String>) -> Self {
        Self {
            say: Some((Level::Info, text.into())),
            ..Self::default()
        }
    }
}

/// How far a movement key moves a list's selection of `rows` rows on screen; None for other keys.
pub fn movement(action: Action, rows: usize) -> Option<i64> {
    Some(match action {
        Action::Up => -1,
        Action::Down => 1,
        Action::PageUp => -(rows as i64),
        Action::PageDown => rows as i64,
        Action::Top => i64::MIN / 2,
        Action::Bottom => i64::MAX / 2,
        _ => return None,
    })
}

/// A list's selection and scroll, kept by the pane (not the table widget) so that a refresh
/// leaves the selected row where it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub selected: usize,
    pub offset: usize,
}

impl Cursor {
    /// Moves by `delta` rows within `len`, scrolling so the selection stays among `rows` shown.
    pub fn move_by(&mut self, delta: i64, len: usize, rows: usize) {
        if len == 0 {
            *self = Cursor::default();
            return;
        }
        self.selected = (self.selected as i64 + delta).clamp(0, len as i64 - 1) as usize;
        self.keep_visible(rows);
    }

    pub fn keep_visible(&mut self, rows: usize) {
        let rows = rows.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + rows {
            self.offset = self.selected + 1 - rows;
        }
    }

    /// The list changed under the cursor: stay on the row whose key is `keep` if it is still
    /// there, on the same screen line.
    pub fn follow<T, K: PartialEq>(
        &mut self,
        items: &[T],
        keep: Option<K>,
        key: impl Fn(&T) -> K,
        rows: usize,
    ) {
        let line = self.selected.saturating_sub(self.offset);
        self.selected = keep
            .and_then(|k| items.iter().position(|i| key(i) == k))
            .unwrap_or(self.selected)
            .min(items.len().saturating_sub(1));
        // Same screen line, but never rows scrolled out of sight above while the screen has
        // room below: a list that fits shows from its first row.
        self.offset = self
            .selected
            .saturating_sub(line)
            .min(items.len().saturating_sub(rows.max(1)));
        self.keep_visible(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_keeps_its_row_and_screen_line_when_rows_arrive_above() {
        let mut c = Cursor::default();
        let rows: Vec<i64> = (1..=100).rev().collect();
        c.move_by(12, rows.len(), 10);
        assert_eq!((c.selected, c.offset), (12, 3));
        let keep = rows[c.selected];
        let more: Vec<i64> = (1..=105).rev().collect();
        c.follow(&more, Some(keep), |r| *r, 10);
        assert_eq!(more[c.selected], keep);
        assert_eq!(c.selected - c.offset, 9, "same line on screen");
        c.move_by(-1_000, more.len(), 10);
        assert_eq!(c, Cursor::default());
        // A row arriving above the selection of a list that fits does not hide the first row.
        let mut c = Cursor::default();
        c.follow(&[2, 1], Some(2), |r| *r, 10);
        c.follow(&[3, 2, 1], Some(2), |r| *r, 10);
        assert_eq!((c.selected, c.offset), (1, 0));
        c.move_by(1, 0, 10);
        assert_eq!(c, Cursor::default());
    }
}
