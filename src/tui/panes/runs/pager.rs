//! The detail's log pager: a window of a few screens onto all of a run's lines in the store,
//! fetched by keyset on id as the operator scrolls (never the whole log), with line numbers from
//! the store, a stable position while not following, and a server-side search whose matches it
//! jumps between.

use std::collections::VecDeque;

use crate::domain::run::{LogMatches, RunLog};
use crate::tui::app::Effect;

/// Lines the pager holds at most, however chatty the run: a few screens at 160×48.
pub const LOG_WINDOW: usize = 600;
/// Lines fetched per round trip when the window moves.
pub const LOG_FETCH: i64 = 200;

/// Which part of a run's log to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRequest {
    /// The first lines.
    Head,
    /// The last lines.
    Tail,
    /// Lines before and from this line id: a match in its context.
    Around(i64),
    /// The lines just after this id (scrolling down, following).
    After(i64),
    /// The lines just before this id (scrolling up).
    Before(i64),
}

/// A loaded part of a run's log: its lines, oldest first, the 0-based line number of the first,
/// and how many lines the run has in all.
#[derive(Debug, Clone)]
pub struct LogWindow {
    pub run_id: i64,
    pub request: LogRequest,
    pub lines: Vec<RunLog>,
    pub first_rank: i64,
    pub total: i64,
}

/// Where the view is: bottom-anchored at the window's last line, or from a given line down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogView {
    End,
    At(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSearch {
    pub text: String,
    /// The words highlighted on screen (lower case), as the full-text search takes them.
    pub words: Vec<String>,
    /// None until the store answers.
    pub matches: Option<LogMatches>,
    /// Which match the view is on.
    pub current: Option<usize>,
    /// The line the search started from: the first match at or after it comes first.
    from_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct LogPager {
    pub run_id: i64,
    /// The window, oldest first and contiguous in the run.
    pub lines: VecDeque<RunLog>,
    /// 0-based line number of `lines[0]` within the run.
    pub first_rank: i64,
    /// Lines the run has in the store (as last counted).
    pub total: i64,
    pub loaded: bool,
    pub view: LogView,
    /// Stick to the end as lines arrive.
    pub follow: bool,
    /// Long lines wrap instead of being cut at the edge.
    pub wrap: bool,
    pub search: Option<LogSearch>,
    /// The load asked for and not answered yet; other answers are stale.
    pub pending: Option<LogRequest>,
    /// Refreshes seen while `pending` waited (a load lost to an outage is asked again).
    pending_refreshes: u8,
    /// Lines of log on screen, as the last key saw it.
    pub rows: usize,
}

pub use crate::domain::number::grouped;

impl LogPager {
    pub fn new(run_id: i64) -> Self {
        Self {
            run_id,
            lines: VecDeque::new(),
            first_rank: 0,
            total: 0,
            loaded: false,
            view: LogView::End,
            follow: true,
            wrap: false,
            search: None,
            // The loader answers an opened run with its last lines.
            pending: Some(LogRequest::Tail),
            pending_refreshes: 0,
            rows: 20,
        }
    }

    fn end_rank(&self) -> i64 {
        self.first_rank + self.lines.len() as i64
    }

    pub fn at_start(&self) -> bool {
        self.first_rank == 0
    }

    pub fn at_end(&self) -> bool {
        self.end_rank() >= self.total
    }

    fn index_of(&self, id: i64) -> Option<usize> {
        self.lines.binary_search_by_key(&id, |l| l.id).ok()
    }

    /// Index in the window of the first line on screen, `rows` lines high.
    pub fn top_index(&self, rows: usize) -> usize {
        match self.view {
            LogView::End => self.lines.len().saturating_sub(rows),
            LogView::At(id) => self
                .lines
                .partition_point(|l| l.id < id)
                .min(self.lines.len().saturating_sub(1)),
        }
    }

    /// 1-based numbers of the first and last line on screen.
    pub fn shown_range(&self, rows: usize) -> Option<(i64, i64)> {
        if self.lines.is_empty() {
            return None;
        }
        let top = self.top_index(rows);
        let last = (top + rows).min(self.lines.len());
        Some((
            self.first_rank + top as i64 + 1,
            self.first_rank + last as i64,
        ))
    }

    fn request(&mut self, request: LogRequest) -> Vec<Effect> {
        if self.pending == Some(request) {
            return Vec::new();
        }
        self.pending = Some(request);
        self.pending_refreshes = 0;
        vec![Effect::LoadLogs {
            run_id: self.run_id,
            request,
        }]
    }

    /// Moves the view by `delta` lines; near the window's edges the next page is asked for
    /// ahead of need. Scrolling up stops following.
    pub fn scroll(&mut self, delta: i64, rows: usize) -> Vec<Effect> {
        self.rows = rows.max(1);
        let rows = self.rows;
        if delta < 0 {
            self.follow = false;
        }
        if self.lines.is_empty() {
            return Vec::new();
        }
        let len = self.lines.len();
        let max_top = len.saturating_sub(rows) as i64;
        let target = (self.top_index(rows) as i64 + delta).clamp(0, max_top) as usize;
        if delta > 0 && target as i64 == max_top && self.at_end() {
            self.view = LogView::End;
        } else if delta != 0 {
            self.view = LogView::At(self.lines[target].id);
        }
        let mut effects = Vec::new();
        if target < rows && !self.at_start() {
            effects.extend(self.request(LogRequest::Before(self.lines[0].id)));
        } else if target + 2 * rows > len
            && !self.at_end()
            && let Some(last) = self.lines.back()
        {
            effects.extend(self.request(LogRequest::After(last.id)));
        }
        effects
    }

    /// `g`: the first screen of the log, filled.
    pub fn first(&mut self, rows: usize) -> Vec<Effect> {
        self.rows = rows.max(1);
        self.follow = false;
        match self.lines.front() {
            Some(first) if self.at_start() => {
                self.view = LogView::At(first.id);
                Vec::new()
            }
            _ => self.request(LogRequest::Head),
        }
    }

    /// `G`: the last screen of the log, filled.
    pub fn last(&mut self, rows: usize) -> Vec<Effect> {
        self.rows = rows.max(1);
        if self.at_end() && self.loaded {
            self.view = LogView::End;
            Vec::new()
        } else {
            self.request(LogRequest::Tail)
        }
    }

    pub fn toggle_follow(&mut self) -> Vec<Effect> {
        self.follow = !self.follow;
        if !self.follow {
            // Where the end was stays put as lines arrive.
            let top = self.top_index(self.rows);
            if let Some(line) = self.lines.get(top) {
                self.view = LogView::At(line.id);
            }
            return Vec::new();
        }
        self.last(self.rows)
    }

    pub fn toggle_wrap(&mut self) {
        self.wrap = !self.wrap;
    }

    /// A load answered: merged into the window (or replacing it), trimmed to LOG_WINDOW lines
    /// on the side away from the view. Answers to loads no longer wanted are dropped.
    pub fn on_window(&mut self, w: LogWindow) -> Vec<Effect> {
        if w.run_id != self.run_id || self.pending != Some(w.request) {
            return Vec::new();
        }
        self.pending = None;
        self.loaded = true;
        self.total = w.total;
        let contiguous_after = matches!(w.request, LogRequest::After(id)
            if self.lines.back().is_some_and(|l| l.id == id));
        let contiguous_before = matches!(w.request, LogRequest::Before(id)
            if self.lines.front().is_some_and(|l| l.id == id));
        if contiguous_after {
            self.lines.extend(w.lines);
            self.trim_front();
        } else if contiguous_before {
            for line in w.lines.into_iter().rev() {
                self.lines.push_front(line);
            }
            self.first_rank = w.first_rank;
            self.trim_back();
        } else {
            self.lines = w.lines.into();
            self.first_rank = w.first_rank;
            self.trim_back();
            self.view = match w.request {
                LogRequest::Head => match self.lines.front() {
                    Some(first) => LogView::At(first.id),
                    None => LogView::End,
                },
                LogRequest::Around(id) => {
                    let at = self.lines.partition_point(|l| l.id < id);
                    // The match a third of the way down, its context around it.
                    let top = at.saturating_sub(self.rows / 3);
                    match self.lines.get(top) {
                        Some(line) => LogView::At(line.id),
                        None => LogView::End,
                    }
                }
                _ => LogView::End,
            };
        }
        // Following a chatty run: keep catching up while more is there.
        if self.follow
            && !self.at_end()
            && let Some(last) = self.lines.back()
        {
            let id = last.id;
            return self.request(LogRequest::After(id));
        }
        Vec::new()
    }

    fn trim_front(&mut self) {
        while self.lines.len() > LOG_WINDOW {
            self.lines.pop_front();
            self.first_rank += 1;
        }
        if let LogView::At(id) = self.view
            && self.lines.front().is_some_and(|l| l.id > id)
        {
            self.view = self
                .lines
                .front()
                .map_or(LogView::End, |l| LogView::At(l.id));
        }
    }

    fn trim_back(&mut self) {
        while self.lines.len() > LOG_WINDOW {
            self.lines.pop_back();
        }
    }

    /// The store's count after a change: following, the new lines are fetched; otherwise only
    /// the count grows and the view stays where it is.
    pub fn on_count(&mut self, total: i64, last_id: Option<i64>) -> Vec<Effect> {
        self.total = total;
        if self.pending.is_some() {
            self.pending_refreshes += 1;
            if self.pending_refreshes < 3 {
                return Vec::new();
            }
            // Lost (the store was away when it was asked): ask again below.
            self.pending = None;
        }
        let window_last = self.lines.back().map(|l| l.id);
        if !self.loaded || (window_last.is_none() && total > 0) {
            return self.request(LogRequest::Tail);
        }
        if self.follow && last_id > window_last {
            return match window_last {
                Some(id) if total - self.end_rank() <= LOG_FETCH => {
                    self.request(LogRequest::After(id))
                }
                _ => self.request(LogRequest::Tail),
            };
        }
        Vec::new()
    }

    /// Lines known to follow the window's end (a caller that streams lines in).
    pub fn on_appended(&mut self, lines: Vec<RunLog>) {
        let last = self.lines.back().map_or(0, |l| l.id);
        self.lines.extend(lines.into_iter().filter(|l| l.id > last));
        self.loaded = true;
        if self.pending == Some(LogRequest::Tail) {
            self.pending = None;
        }
        self.total = self.total.max(self.end_rank());
        self.trim_front();
    }

    /// The search line's Enter: asks the store for every matching line (empty text clears).
    pub fn start_search(&mut self, text: &str) -> Vec<Effect> {
        let text = text.trim();
        if text.is_empty() {
            self.search = None;
            return Vec::new();
        }
        let from_id = self.lines.get(self.top_index(self.rows)).map(|l| l.id);
        self.search = Some(LogSearch {
            text: text.to_owned(),
            words: text
                .split_whitespace()
                .map(|w| w.trim_matches('"').to_lowercase())
                .filter(|w| !w.is_empty())
                .collect(),
            matches: None,
            current: None,
            from_id,
        });
        vec![Effect::SearchLogs {
            run_id: self.run_id,
            text: text.to_owned(),
        }]
    }

    /// The store's matches: the view jumps to the first one from where the search started
    /// (wrapping to the first of all).
    pub fn on_matches(&mut self, text: &str, matches: LogMatches) -> Vec<Effect> {
        let Some(search) = self.search.as_mut().filter(|s| s.text == text) else {
            return Vec::new();
        };
        let from = search.from_id.unwrap_or(0);
        let first = matches.ids.iter().position(|id| *id >= from).unwrap_or(0);
        let any = !matches.ids.is_empty();
        search.matches = Some(matches);
        if any { self.jump_to(first) } else { Vec::new() }
    }

    /// `n` / `N`: the next or previous match, wrapping; what to tell the operator.
    pub fn next_match(&mut self, forward: bool, rows: usize) -> (Vec<Effect>, String) {
        self.rows = rows.max(1);
        let Some(search) = &self.search else {
            return (Vec::new(), "no search: / searches the whole log".into());
        };
        let Some(matches) = &search.matches else {
            return (Vec::new(), format!("searching for `{}`…", search.text));
        };
        let n = matches.ids.len();
        if n == 0 {
            return (Vec::new(), format!("no line matches `{}`", search.text));
        }
        let (next, wrapped) = match (search.current, forward) {
            (None, _) => (0, false),
            (Some(i), true) if i + 1 >= n => (0, true),
            (Some(i), true) => (i + 1, false),
            (Some(0), false) => (n - 1, true),
            (Some(i), false) => (i - 1, false),
        };
        let effects = self.jump_to(next);
        let mut say = self.match_label().unwrap_or_default();
        if wrapped {
            say.push_str(if forward {
                " (wrapped to the first)"
            } else {
                " (wrapped to the last)"
            });
        }
        (effects, say)
    }

    /// "match 3 of 41" (and how many beyond the listed ones).
    pub fn match_label(&self) -> Option<String> {
        let search = self.search.as_ref()?;
        let matches = search.matches.as_ref()?;
        if matches.total == 0 {
            return Some(format!("no match for `{}`", search.text));
        }
        let mut text = format!(
            "match {} of {}",
            search.current.map_or(0, |i| i + 1),
            grouped(matches.total)
        );
        if matches.unlisted() > 0 {
            text.push_str(&format!(
                " (n/N visit the first {})",
                grouped(matches.ids.len() as i64)
            ));
        }
        Some(text)
    }

    /// The id of the match the view is on.
    pub fn current_match(&self) -> Option<i64> {
        let search = self.search.as_ref()?;
        search.matches.as_ref()?.ids.get(search.current?).copied()
    }

    fn jump_to(&mut self, index: usize) -> Vec<Effect> {
        let Some(id) = self
            .search
            .as_mut()
            .and_then(|s| {
                s.current = Some(index);
                s.matches.as_ref()
            })
            .and_then(|m| m.ids.get(index).copied())
        else {
            return Vec::new();
        };
        self.follow = false;
        let above = self.rows / 3;
        let below = self.rows - above;
        // In the window with its context on screen: no round trip.
        if let Some(at) = self.index_of(id)
            && (at >= above || self.at_start())
            && (self.lines.len() - at >= below || self.at_end())
        {
            let top = at.saturating_sub(above);
            self.view = LogView::At(self.lines[top].id);
            return Vec::new();
        }
        self.request(LogRequest::Around(id))
    }

    pub fn clear_search(&mut self) -> bool {
        self.search.take().is_some()
    }
}
