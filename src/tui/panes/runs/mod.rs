//! The Runs pane: the live run list (keyset pages over the whole store, a cursor that stays on its
//! run, newer runs waiting behind a marker, a pause key, marks that outlive filters) and one run's
//! detail (events, logs, artifacts).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};

mod detail;
mod pager;

pub use detail::{DetailState, DetailTab};
pub use pager::{LOG_FETCH, LOG_WINDOW, LogPager, LogRequest, LogSearch, LogView, LogWindow};

use super::columns::{Col, Fitted, widest};
use super::{Ctx, Cursor, Goto, KeyCtx, Reply};
use crate::domain::age::{age, age_changes_at, countdown_changes_at};
use crate::domain::filter::Filter;
use crate::domain::run::{Page, RUN_FIELDS, Run, RunLog, RunStatus, Timing};
use crate::ops::{ACTIVITY_MINUTES, QueueOverview, RunDetail};
use crate::tui::app::{CopyChoice, Effect, Mode};
use crate::tui::keymap::Action;

/// Rows one page of the run list holds; the counts cover the rest.
pub const RUN_PAGE: i64 = 500;
/// From this pane height on, the sparkline has three rows (finished, then failed below).
const TALL: u16 = 30;

fn spark_rows(height: u16) -> u16 {
    if height >= TALL { 3 } else { 1 }
}

/// What the list shows; sent to the loader whenever it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunsQuery {
    pub status: Option<RunStatus>,
    pub text: String,
    /// Which page of the whole list (keyset: `G` reaches the oldest run of a store of millions).
    pub page: Page,
    /// Asked while the filter is typed: only the newest `TYPED_SCAN` runs are searched, so each
    /// key answers at once however large the store; Enter asks again over all of them.
    pub typed: bool,
}

/// How many of the newest runs a filter being typed searches (a scan of this many rows for a
/// word no index serves stays within a keystroke's budget on a store of millions).
pub const TYPED_SCAN: i64 = 10_000;

/// Where the cursor lands when a new page of runs arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    Top,
    Bottom,
}

#[derive(Debug, Default)]
pub struct RunsPane {
    pub query: RunsQuery,
    /// What is shown of `incoming`.
    pub runs: Vec<Run>,
    /// The newest answer from the store.
    pub incoming: Vec<Run>,
    /// Set once the first list has arrived; until then the pane says it is loading.
    pub loaded: bool,
    pub cursor: Cursor,
    /// Away from the top of the newest page, the newest run id shown: newer runs wait behind a
    /// marker instead of pushing the selected row down.
    pub pinned: Option<i64>,
    /// The live list is frozen (`p`); the store's updates wait in `incoming`.
    pub paused: bool,
    /// Where the cursor goes when the page asked for arrives.
    pub landing: Option<Landing>,
    /// Marks survive filter changes; the confirmation says when some are out of sight.
    pub marked: BTreeSet<i64>,
    /// Counts per status and the last hour's activity, for the header.
    pub counts: QueueOverview,
    pub detail: Option<DetailState>,
}

impl RunsPane {
    pub fn selected_run(&self) -> Option<&Run> {
        self.runs.get(self.cursor.selected)
    }

    /// A page of runs arrived for `query`: an answer to an older query is dropped. Answers what
    /// else to load: a page that turns out to be the head of the list is followed as the head.
    pub fn on_runs(&mut self, query: RunsQuery, runs: Vec<Run>, rows: usize) -> Vec<Effect> {
        if query != self.query {
            return Vec::new();
        }
        self.loaded = true;
        let head = matches!(query.page, Page::NewerThan(_)) && (runs.len() as i64) < RUN_PAGE;
        self.incoming = runs;
        if head {
            // Nothing newer beyond these: from here on this is the live head, and runs that
            // arrive wait behind the marker.
            self.query.page = Page::Newest;
            self.pinned = self.incoming.first().map(|r| r.id);
            self.show_incoming(rows);
            return vec![Effect::LoadRuns(self.query.clone())];
        }
        if !self.paused {
            self.show_incoming(rows);
        }
        Vec::new()
    }

    pub fn on_detail(&mut self, detail: RunDetail) {
        if let Some(d) = self.detail.as_mut().filter(|d| d.run_id == detail.run.id) {
            d.detail = Some(detail);
        }
    }

    pub fn on_logs(&mut self, run_id: i64, lines: Vec<RunLog>) {
        if let Some(d) = self.detail.as_mut().filter(|d| d.run_id == run_id) {
            d.pager.on_appended(lines);
        }
    }

    /// The run open in the detail is gone: back to the list.
    pub fn on_gone(&mut self, run_id: i64) {
        if self.detail.as_ref().is_some_and(|d| d.run_id == run_id) {
            self.detail = None;
        }
    }

    /// Shows the newest answer: at the top of the newest page it follows the newest run; away
    /// from it, the selected run keeps its row on screen and newer runs wait (`new_above`).
    fn show_incoming(&mut self, rows: usize) {
        let keep = self.selected_run().map(|r| r.id);
        let head = self.query.page == Page::Newest;
        let pinned = self.pinned.filter(|_| head);
        self.runs = self
            .incoming
            .iter()
            .filter(|r| pinned.is_none_or(|p| r.id <= p))
            .cloned()
            .collect();
        match self.landing.take() {
            Some(Landing::Top) => self.cursor = Cursor::default(),
            Some(Landing::Bottom) => {
                self.cursor.selected = self.runs.len().saturating_sub(1);
                self.cursor.offset = (self.cursor.selected + 1).saturating_sub(rows);
            }
            None if head && pinned.is_none() => self.cursor = Cursor::default(),
            None => self.cursor.follow(&self.runs, keep, |r| r.id, rows),
        }
    }

    /// Runs newer than the ones shown (away from the top, or paused), waiting behind the
    /// `▲ N new` marker.
    pub fn new_above(&self) -> usize {
        if self.query.page != Page::Newest {
            return 0;
        }
        match self.pinned.or_else(|| self.runs.first().map(|r| r.id)) {
            Some(newest) => self.incoming.iter().filter(|r| r.id > newest).count(),
            None => self.incoming.len(),
        }
    }

    /// The runs on screen now, `rows` of them at most.
    pub fn visible_runs(&self, rows: usize) -> &[Run] {
        let end = (self.cursor.offset + rows).min(self.runs.len());
        self.runs
            .get(self.cursor.offset.min(end)..end)
            .unwrap_or_default()
    }

    /// The next moment an age in the list changes with the clock.
    pub fn next_visible_change(&self, now: DateTime<Utc>, rows: usize) -> Option<DateTime<Utc>> {
        if let Some(d) = &self.detail {
            return d.next_visible_change(now);
        }
        self.visible_runs(rows)
            .iter()
            .flat_map(|r| {
                let expires = r
                    .lease_expires_at
                    .filter(|t| *t > now && r.status.is_held());
                [
                    Some(age_changes_at(now, r.created_at)),
                    expires,
                    timing_changes_at(r, now),
                ]
            })
            .flatten()
            .min()
    }

    /// Another filter: the list starts again from the newest run; marks stay.
    pub fn filter(&mut self, query: RunsQuery) -> Vec<Effect> {
        self.query = query;
        self.query.page = Page::Newest;
        self.cursor = Cursor::default();
        self.pinned = None;
        self.detail = None;
        vec![Effect::LoadRuns(self.query.clone())]
    }

    pub fn set_status(&mut self, status: Option<RunStatus>) -> Vec<Effect> {
        let query = RunsQuery {
            status,
            ..self.query.clone()
        };
        self.filter(query)
    }

    pub fn open_run(&mut self, id: i64) -> Vec<Effect> {
        self.detail = Some(DetailState::new(id));
        vec![Effect::OpenRun(id)]
    }

    /// The filter line's Enter in a run's detail: a search of its logs (nothing without a detail).
    pub fn apply_filter(&mut self, text: &str) -> Vec<Effect> {
        // The list's filter is `type_filter`'s: only the detail's log search is asked for here.
        match self.detail.as_mut() {
            Some(d) => d.search(text),
            None => Vec::new(),
        }
    }

    /// A keystroke on the filter line: the list is asked again for each filter that parses
    /// (the loader loads the last of a burst); in the detail, Enter searches the logs.
    pub fn type_filter(&mut self, text: &str, done: bool) -> Result<Vec<Effect>, String> {
        if self.detail.is_some() {
            return Ok(if done {
                self.apply_filter(text)
            } else {
                Vec::new()
            });
        }
        Filter::parse(text, RUN_FIELDS).map_err(|e| e.0)?;
        // Typed keys search the newest runs; Enter (or a filter cleared) asks over all of them.
        let typed = !done && !text.is_empty();
        if text == self.query.text && (typed || !self.query.typed) {
            return Ok(Vec::new());
        }
        let query = RunsQuery {
            text: text.to_owned(),
            typed,
            ..self.query.clone()
        };
        Ok(self.filter(query))
    }

    pub fn filter_text(&self) -> String {
        match &self.detail {
            Some(d) => d.search_text(),
            None => self.query.text.clone(),
        }
    }

    /// `y` on a confirmation: the marks are spent when the action was for them (not when it was
    /// for the one run open in the detail).
    pub fn confirmed(&mut self, effect: &Effect) {
        if let Effect::Cancel(ids) | Effect::Retry(ids) = effect
            && ids.iter().eq(self.marked.iter())
        {
            self.marked.clear();
        }
    }

    pub fn toggle_pause(&mut self, rows: usize) -> Reply {
        self.paused = !self.paused;
        if self.paused {
            Reply::info("paused: the list holds still (ages still tick) until p")
        } else {
            self.show_incoming(rows);
            Reply::info("live again")
        }
    }

    /// The keys of the list and the detail.
    pub fn on_action(&mut self, action: Action, ctx: &KeyCtx) -> Reply {
        let rows = ctx.rows;
        if let Some(d) = self.detail.as_mut()
            && let Some(reply) = d.on_action(action, ctx)
        {
            return reply;
        }
        match action {
            Action::Up => self.move_by(-1, rows),
            Action::Down => self.move_by(1, rows),
            Action::PageUp => self.move_by(-(rows as i64), rows),
            Action::PageDown => self.move_by(rows as i64, rows),
            Action::Top => self.move_to_end(false, rows),
            Action::Bottom => self.move_to_end(true, rows),
            Action::Open => match (&self.detail, self.selected_run()) {
                (None, Some(run)) => {
                    let id = run.id;
                    Reply::effects(self.open_run(id))
                }
                _ => Reply::default(),
            },
            Action::Back => {
                if self.detail.take().is_some() {
                    Reply::effects(vec![Effect::CloseRun])
                } else if !self.query.text.is_empty() || self.query.status.is_some() {
                    Reply::effects(self.filter(RunsQuery::default()))
                } else {
                    Reply::default()
                }
            }
            Action::CycleStatus => {
                let next = match self.query.status {
                    None => Some(RunStatus::ALL[0]),
                    Some(s) => RunStatus::ALL
                        .iter()
                        .position(|x| *x == s)
                        .and_then(|i| RunStatus::ALL.get(i + 1))
                        .copied(),
                };
                Reply::effects(self.set_status(next))
            }
            Action::Pause => self.toggle_pause(rows),
            Action::Sort | Action::SortReverse => {
                Reply::info("the run list stays newest first, as the store pages it: / filters it")
            }
            Action::Mark => {
                if let Some(id) = self.selected_run().map(|r| r.id) {
                    if !self.marked.remove(&id) {
                        self.marked.insert(id);
                    }
                    return self.move_by(1, rows);
                }
                Reply::default()
            }
            Action::CopyId => match self.current_run() {
                Some(run) => {
                    let mut choices = copy_choices(run);
                    if let Some(line) = self.focused_log_line(ctx) {
                        choices.push(CopyChoice::new('l', "log line", line));
                    }
                    Reply::mode(Mode::Copy(choices))
                }
                None => Reply::default(),
            },
            Action::ShowEvents | Action::ShowLogs => match self.selected_run().map(|r| r.id) {
                Some(id) => {
                    let effects = self.open_run(id);
                    if let Some(d) = self.detail.as_mut() {
                        d.tab = if action == Action::ShowLogs {
                            DetailTab::Logs
                        } else {
                            DetailTab::Events
                        };
                    }
                    Reply::effects(effects)
                }
                None => Reply::default(),
            },
            Action::WorkflowRuns => match self.current_run() {
                Some(run) => Reply::goto(Goto::Runs(RunsQuery {
                    text: format!("project:{} workflow:{}", run.project, run.workflow),
                    ..RunsQuery::default()
                })),
                None => Reply::default(),
            },
            Action::GoService => match self.current_run() {
                Some(run) => match run.service_schema() {
                    Some(schema) => Reply::goto(Goto::Service(schema.to_owned())),
                    None => Reply::fail(format!(
                        "run {} belongs to no service: {} is not a service's workflow",
                        run.id, run.workflow
                    )),
                },
                None => Reply::default(),
            },
            Action::RetryOf => match self.current_run() {
                Some(run) => match run.retry_of {
                    Some(id) => Reply::goto(Goto::Run(id)),
                    None => {
                        Reply::info(format!("run {} is no retry: it was queued itself", run.id))
                    }
                },
                None => Reply::default(),
            },
            Action::RetriedBy => match self.current_run() {
                Some(run) => {
                    let id = run.id;
                    match self.retried_by(id) {
                        Some(retry) => Reply::goto(Goto::Run(retry)),
                        None => Reply::info(format!("run {id} has not been retried")),
                    }
                }
                None => Reply::default(),
            },
            Action::Cancel => self.ask_for_targets(Effect::Cancel, ctx),
            Action::Retry => self.ask_for_targets(Effect::Retry, ctx),
            Action::Claim => match self.current_run() {
                Some(run) => Reply::ask(Effect::Claim(run.queue.clone())),
                None => Reply::fail("no run selected: its queue is the one claimed from"),
            },
            Action::Start => match self.current_run() {
                Some(run) if run.status != RunStatus::Claimed => Reply::fail(format!(
                    "run {} is {}: only a claimed run can be started",
                    run.id, run.status
                )),
                Some(run) => Reply::ask(Effect::Start(run.id)),
                None => Reply::default(),
            },
            Action::Complete => match self.current_run_id() {
                Some(run_id) => Reply::mode(Mode::ExitCode {
                    run_id,
                    text: "0".into(),
                }),
                None => Reply::default(),
            },
            _ => Reply::default(),
        }
    }

    fn move_by(&mut self, delta: i64, rows: usize) -> Reply {
        if self.runs.is_empty() {
            return Reply::default();
        }
        let target = self.cursor.selected as i64 + delta;
        if target < 0 && self.query.page != Page::Newest {
            // Above the first row of an older page: the page just newer.
            return Reply::effects(match self.runs.first().map(|r| r.id) {
                Some(first) => self.turn_page(Page::NewerThan(first), Landing::Bottom),
                None => self.turn_page(Page::Newest, Landing::Top),
            });
        }
        let last = self.runs.len() as i64 - 1;
        if target > last && self.runs.len() as i64 >= RUN_PAGE {
            // Below the last row of a full page: the page just older.
            if let Some(oldest) = self.runs.last().map(|r| r.id) {
                return Reply::effects(self.turn_page(Page::OlderThan(oldest), Landing::Top));
            }
        }
        if target <= 0 && self.pinned.take().is_some() {
            // Back at the top: the runs that waited behind the marker come in.
            self.cursor = Cursor::default();
            if !self.paused {
                self.show_incoming(rows);
            }
            return Reply::default();
        }
        self.cursor.move_by(delta, self.runs.len(), rows);
        if self.cursor.selected > 0 && self.pinned.is_none() {
            self.pinned = self.runs.first().map(|r| r.id);
        }
        Reply::default()
    }

    /// `g` and `G`: the first row of the newest page, the last row of the oldest.
    fn move_to_end(&mut self, bottom: bool, rows: usize) -> Reply {
        if !bottom {
            if self.query.page != Page::Newest {
                return Reply::effects(self.turn_page(Page::Newest, Landing::Top));
            }
            return self.move_by(i64::MIN / 2, rows);
        }
        // A full page may have older runs beyond it: the bottom is the oldest page's last row.
        if self.runs.len() as i64 >= RUN_PAGE || self.query.page != Page::Newest {
            return Reply::effects(self.turn_page(Page::Oldest, Landing::Bottom));
        }
        self.cursor.move_by(i64::MAX / 2, self.runs.len(), rows);
        if self.cursor.selected > 0 && self.pinned.is_none() {
            self.pinned = self.runs.first().map(|r| r.id);
        }
        Reply::default()
    }

    /// Asks for another page of the same list; the cursor lands on its first or last row.
    fn turn_page(&mut self, page: Page, landing: Landing) -> Vec<Effect> {
        self.query.page = page;
        self.landing = Some(landing);
        self.pinned = None;
        vec![Effect::LoadRuns(self.query.clone())]
    }

    /// The run open in the detail, else the selected one.
    fn current_run(&self) -> Option<&Run> {
        match &self.detail {
            Some(d) => d.detail.as_ref().map(|x| &x.run),
            None => self.selected_run(),
        }
    }

    fn current_run_id(&self) -> Option<i64> {
        match &self.detail {
            Some(d) => Some(d.run_id),
            None => self.selected_run().map(|r| r.id),
        }
    }

    /// The runs an action applies to: the marked ones, else the one open or selected.
    fn targets(&self) -> Vec<i64> {
        if let Some(d) = &self.detail {
            return vec![d.run_id];
        }
        if !self.marked.is_empty() {
            return self.marked.iter().copied().collect();
        }
        self.selected_run().map(|r| vec![r.id]).unwrap_or_default()
    }

    /// Asks before canceling or retrying the targets, leaving out (and saying so) the runs whose
    /// status the rules do not allow it for: only unfinished runs cancel, only finished ones retry.
    fn ask_for_targets(&mut self, make: fn(Vec<i64>) -> Effect, ctx: &KeyCtx) -> Reply {
        if ctx.read_only {
            return Reply::fail("read-only: nothing can be changed");
        }
        let ids = self.targets();
        if ids.is_empty() {
            return Reply::info("no run selected");
        }
        let cancel = matches!(make(Vec::new()), Effect::Cancel(_));
        let refused: Vec<(i64, RunStatus)> = ids
            .iter()
            .filter_map(|id| self.known_status(*id).map(|s| (*id, s)))
            .filter(|(_, s)| {
                if cancel {
                    s.is_terminal()
                } else {
                    !s.is_terminal()
                }
            })
            .collect();
        let rule = if cancel {
            "only queued, claimed or running runs can be canceled"
        } else {
            "only finished runs can be retried"
        };
        if let [(id, status)] = refused.as_slice()
            && ids.len() == 1
        {
            return Reply::fail(format!("run {id} is {status}: {rule}"));
        }
        if refused.len() == ids.len() {
            return Reply::fail(format!("none of the {} runs qualifies: {rule}", ids.len()));
        }
        let ids: Vec<i64> = ids
            .into_iter()
            .filter(|id| !refused.iter().any(|(r, _)| r == id))
            .collect();
        // Marks outlive a filter change; the question says when some of them are out of sight.
        let hidden = ids
            .iter()
            .filter(|id| !self.runs.iter().any(|r| r.id == **id))
            .count();
        let mut reply = Reply::ask(make(ids));
        if let Some(Mode::Confirm(confirm)) = reply.mode.as_mut() {
            if hidden > 0 && self.detail.is_none() {
                confirm
                    .question
                    .push_str(&format!(" {hidden} of them not shown by the filter."));
            }
            if !refused.is_empty() {
                confirm.question.push_str(&format!(
                    " {} marked run(s) left out: {rule}.",
                    refused.len()
                ));
            }
        }
        reply
    }

    /// In the logs: the line of the current match, else the first line on screen.
    fn focused_log_line(&self, ctx: &KeyCtx) -> Option<String> {
        let d = self.detail.as_ref().filter(|d| d.tab == DetailTab::Logs)?;
        let pager = &d.pager;
        let line = match pager.current_match() {
            Some(id) => pager.lines.iter().find(|l| l.id == id),
            None => pager
                .lines
                .get(pager.top_index(detail::log_rows(ctx.height))),
        }?;
        Some(line.message.clone())
    }

    /// A run's status as last loaded (the detail's run, or a row of the list).
    fn known_status(&self, id: i64) -> Option<RunStatus> {
        self.detail
            .as_ref()
            .and_then(|d| d.detail.as_ref())
            .map(|d| &d.run)
            .into_iter()
            .chain(self.runs.iter())
            .chain(self.incoming.iter())
            .find(|r| r.id == id)
            .map(|r| r.status)
    }

    /// The newest run loaded that retries `id`.
    fn retried_by(&self, id: i64) -> Option<i64> {
        self.incoming
            .iter()
            .chain(self.runs.iter())
            .filter(|r| r.retry_of == Some(id))
            .map(|r| r.id)
            .max()
    }

    /// Rows of the list in a pane `height` rows high: the counts line, the sparkline, and the
    /// table's borders and column header take the rest (as `render_list` lays it out).
    pub fn list_rows(height: u16) -> usize {
        usize::from(height.saturating_sub(1 + spark_rows(height) + 3)).max(1)
    }

    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        match &self.detail {
            Some(detail) => detail.render(ctx, frame, area),
            None => self.render_list(ctx, frame, area),
        }
    }

    fn render_list(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let tall = area.height >= TALL;
        let [counts, spark, table] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(spark_rows(area.height)),
            Constraint::Min(3),
        ])
        .areas(area);

        let mut spans: Vec<Span> = Vec::new();
        for c in &self.counts.counts {
            let style = if self.query.status == Some(c.status) {
                theme.status(c.status).add_modifier(Modifier::REVERSED)
            } else {
                theme.status(c.status)
            };
            spans.push(Span::styled(c.status.as_str(), style));
            spans.push(Span::raw(format!(" {}  ", count_label(c.count))));
        }
        frame.render_widget(Line::from(spans), counts);

        // Finished per minute over the last hour, oldest on the left; failures below in red.
        let minutes = ACTIVITY_MINUTES as usize;
        let mut done = vec![0u64; minutes];
        let mut failed = vec![0u64; minutes];
        for m in &self.counts.activity {
            if let Some(i) = minutes.checked_sub(1 + m.minutes_ago.max(0) as usize) {
                done[i] = (m.succeeded + m.failed).max(0) as u64;
                failed[i] = m.failed.max(0) as u64;
            }
        }
        let label = "last hour ";
        let [spark_label, spark_area] = Layout::horizontal([
            Constraint::Length(label.len() as u16),
            Constraint::Length(minutes as u16),
        ])
        .areas(spark);
        frame.render_widget(Span::styled(label, theme.dim()), spark_label);
        let [ok_area, fail_area] = if tall {
            Layout::vertical([Constraint::Length(2), Constraint::Length(1)]).areas(spark_area)
        } else {
            [spark_area, Rect::default()]
        };
        frame.render_widget(
            Sparkline::default()
                .data(&done)
                .style(theme.fg(Color::Green)),
            ok_area,
        );
        if fail_area.height > 0 {
            frame.render_widget(
                Sparkline::default()
                    .data(&failed)
                    .style(theme.fg(Color::Red)),
                fail_area,
            );
        }

        let full = self.runs.len() as i64 >= RUN_PAGE;
        let mut title = format!(" Runs ({}", self.runs.len());
        match (self.query.page, self.runs.first(), self.runs.last()) {
            (Page::Newest, ..) if full => title.push_str(" newest"),
            (Page::Oldest, ..) => title.push_str(" oldest"),
            (Page::OlderThan(_) | Page::NewerThan(_), Some(first), Some(last)) => {
                title.push_str(&format!(", ids {}–{}", last.id, first.id));
            }
            _ => {}
        }
        title.push(')');
        if let Some(s) = self.query.status {
            title.push_str(&format!(" status={s}"));
        }
        if !self.query.text.is_empty() {
            title.push_str(&format!(" /{}", self.query.text));
            let total: i64 = self.counts.counts.iter().map(|c| c.count).sum();
            if self.query.typed && !full && total > TYPED_SCAN {
                title.push_str(&format!(
                    " in the newest {} · Enter searches all",
                    count_label(TYPED_SCAN)
                ));
            }
        }
        if !self.marked.is_empty() {
            title.push_str(&format!(" · {} marked", self.marked.len()));
        }
        title.push(' ');
        let mut block = Block::default().borders(Borders::ALL).title(title);
        // Runs that arrived while the operator is down the list wait here rather than push it.
        let waiting = self.new_above();
        let away = self.query.page != Page::Newest;
        if waiting > 0 || self.paused || away {
            let mut note = String::from(" ");
            if waiting > 0 {
                note.push_str(&format!("▲ {waiting} new (g) "));
            } else if away {
                note.push_str("▲ newer runs (g) ");
            }
            if self.paused {
                note.push_str("⏸ paused (p) ");
            }
            block = block.title(
                Line::styled(note, theme.fg(Color::Cyan).add_modifier(Modifier::BOLD))
                    .right_aligned(),
            );
        }

        if self.runs.is_empty() {
            let text = if !self.loaded {
                "loading…".to_owned()
            } else if self.query != Default::default() {
                "No runs match this filter. Esc clears it.".to_owned()
            } else {
                "No runs yet. Load the demo workspace with `ospdeck demo`, or queue one with `ospdeck run enqueue`.".to_owned()
            };
            frame.render_widget(
                Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
                table,
            );
            return;
        }

        // Widths from every run loaded (not only those on screen), so they hold while scrolling.
        let digits = |n: i64| n.max(1).ilog10() as usize + 1;
        let cols = [
            Col::new(" ", 1, 1, 0),
            Col::new(
                "ID",
                self.runs.iter().map(|r| digits(r.id)).max().unwrap_or(1),
                4,
                0,
            ),
            Col::new("STATUS", 9, 7, 0),
            Col::new(
                "PROJECT/WORKFLOW",
                self.runs
                    .iter()
                    .map(|r| r.project.chars().count() + 1 + r.workflow.chars().count())
                    .max()
                    .unwrap_or(0),
                12,
                0,
            ),
            Col::new(
                "QUEUE",
                widest(self.runs.iter().map(|r| r.queue.as_str())),
                8,
                3,
            ),
            Col::new(
                "TRY",
                self.runs
                    .iter()
                    .map(|r| digits(i64::from(r.attempt)) + 1 + digits(i64::from(r.max_attempts)))
                    .max()
                    .unwrap_or(3),
                3,
                2,
            ),
            Col::new(
                "PRI",
                self.runs
                    .iter()
                    .map(|r| r.priority.to_string().len())
                    .max()
                    .unwrap_or(1),
                3,
                4,
            ),
            Col::new(
                "WORKER",
                widest(
                    self.runs
                        .iter()
                        .map(|r| r.worker_id.as_deref().unwrap_or("-")),
                ),
                6,
                1,
            ),
            // The longest timing text: "queued " and a three-character age ("queued 41m").
            Col::new("TIME", 10, 8, 0),
            Col::new("AGE", 4, 3, 0),
        ];
        // The table's borders take two cells, the highlight symbol none.
        let fitted = Fitted::new(&cols, table.width.saturating_sub(2));
        let header = fitted.header();
        let widths = fitted.constraints();
        let shown = self.visible_runs(RunsPane::list_rows(area.height));
        let rows = shown.iter().map(|run| run_row(run, self, ctx, &fitted));
        // Only the rows on screen are built; the state's selection is relative to them.
        let mut state = TableState::default().with_selected(Some(
            self.cursor.selected.saturating_sub(self.cursor.offset),
        ));
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(header)
                .block(block)
                .row_highlight_style(theme.selected()),
            table,
            &mut state,
        );
    }
}

/// An exact count up to five digits, then shortened ("123k", "4.5M") so a line of six counts
/// fits 80 columns on a store of millions.
pub fn count_label(count: i64) -> String {
    match count {
        ..100_000 => count.to_string(),
        100_000..10_000_000 => format!("{}k", count / 1_000),
        _ => format!("{:.1}M", count as f64 / 1e6),
    }
}

/// What `y` offers to copy of a run.
fn copy_choices(run: &Run) -> Vec<CopyChoice> {
    let mut choices = vec![
        CopyChoice::new('i', "id", run.id.to_string()),
        CopyChoice::new('p', "payload", run.payload_text()),
        CopyChoice::new('w', "workflow", format!("{}/{}", run.project, run.workflow)),
        CopyChoice::new('c', "command", format!("ospdeck run show {}", run.id)),
    ];
    if let Some(error) = &run.error {
        choices.insert(2, CopyChoice::new('e', "error", error.clone()));
    }
    choices
}

/// One run's row, with the cells of the columns `fitted` kept (in `render_list`'s order).
fn run_row<'a>(run: &'a Run, pane: &RunsPane, ctx: &Ctx, fitted: &Fitted) -> Row<'a> {
    let theme = ctx.theme;
    let mark = if pane.marked.contains(&run.id) {
        "*"
    } else {
        " "
    };
    let status = if run.lease_expired(ctx.now) {
        Span::styled("expired", theme.error())
    } else if run.cancel_requested && !run.status.is_terminal() {
        Span::styled("canceling", theme.status(RunStatus::Canceled))
    } else {
        Span::styled(run.status.as_str(), theme.status(run.status))
    };
    let cells = [
        Cell::from(mark),
        Cell::from(run.id.to_string()),
        Cell::from(status),
        Cell::from(format!("{}/{}", run.project, run.workflow)),
        Cell::from(run.queue.as_str()),
        Cell::from(format!("{}/{}", run.attempt, run.max_attempts)),
        Cell::from(run.priority.to_string()),
        Cell::from(run.worker_id.as_deref().unwrap_or("-")),
        Cell::from(timing_text(run, ctx.now)),
        Cell::from(age(ctx.now, run.created_at)),
    ];
    fitted.row(cells)
}

/// Where the run's time goes: `wait 3m` queued, `in 2m` scheduled, `run 45s` held, `took 12s`.
pub fn timing_text(run: &Run, now: DateTime<Utc>) -> String {
    match run.timing(now) {
        Timing::Waiting(since) => format!("wait {}", age(now, since)),
        Timing::Scheduled(at) => format!("in {}", age(at, now)),
        Timing::Running(since) => format!("run {}", age(now, since)),
        Timing::Took(from, to) => format!("took {}", age(to, from)),
        Timing::NeverRan(queued, ended) => format!("queued {}", age(ended, queued)),
    }
}

/// When `timing_text` next changes by the clock alone.
fn timing_changes_at(run: &Run, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match run.timing(now) {
        Timing::Waiting(since) | Timing::Running(since) => Some(age_changes_at(now, since)),
        Timing::Scheduled(at) => Some(countdown_changes_at(now, at)),
        Timing::Took(..) | Timing::NeverRan(..) => None,
    }
}
