//! One run's detail: its facts and durations, events, attempts, logs (a pager over all its lines
//! in the store), artifacts, and its payload and error in full.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Tabs, Wrap};

use super::super::{Ctx, KeyCtx, Reply};
use super::RunsPane;
use super::pager::{LogPager, LogView, LogWindow, grouped};
use crate::domain::age::{age, age_changes_at, duration, duration_changes_at, span};
use crate::domain::run::{LogLevel, LogMatches, Run, RunLog, attempts};
use crate::ops::RunDetail;
use crate::tui::app::Effect;
use crate::tui::keymap::Action;
use crate::tui::style::date_time;

/// Rows of the facts above the tabs: a top border and six lines.
const INFO_ROWS: u16 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailTab {
    Events,
    Logs,
    Artifacts,
    Attempts,
    /// The payload and the error in full.
    Payload,
}

#[derive(Debug, Clone)]
pub struct DetailState {
    pub run_id: i64,
    pub detail: Option<RunDetail>,
    pub pager: LogPager,
    pub tab: DetailTab,
    /// Lines scrolled in the tabs other than the logs.
    pub scroll: u16,
}

/// Rows of log lines in a pane `height` rows high: the facts, the tab line and the pager's own
/// position line take the rest.
pub fn log_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(INFO_ROWS + 2)).max(1)
}

impl DetailState {
    pub(super) fn new(run_id: i64) -> Self {
        Self {
            run_id,
            detail: None,
            pager: LogPager::new(run_id),
            tab: DetailTab::Events,
            scroll: 0,
        }
    }

    /// The detail's own keys; None for the keys the pane handles (actions on the run, closing).
    pub fn on_action(&mut self, action: Action, ctx: &KeyCtx) -> Option<Reply> {
        let rows = log_rows(ctx.height);
        let logs = self.tab == DetailTab::Logs;
        let effects = match action {
            Action::Up if logs => self.pager.scroll(-1, rows),
            Action::Down if logs => self.pager.scroll(1, rows),
            Action::PageUp if logs => self.pager.scroll(-(rows as i64), rows),
            Action::PageDown if logs => self.pager.scroll(rows as i64, rows),
            Action::Top if logs => self.pager.first(rows),
            Action::Bottom if logs => self.pager.last(rows),
            Action::Up => self.scroll_by(-1, ctx),
            Action::Down => self.scroll_by(1, ctx),
            Action::PageUp => self.scroll_by(-(rows as i32), ctx),
            Action::PageDown => self.scroll_by(rows as i32, ctx),
            Action::Top => self.scroll_by(-i32::from(u16::MAX), ctx),
            Action::Bottom => self.scroll_by(i32::from(u16::MAX), ctx),
            Action::Back if self.pager.search.is_some() => {
                self.pager.clear_search();
                return Some(Reply::info("search cleared (Esc again closes the run)"));
            }
            Action::ShowEvents => self.show(DetailTab::Events),
            Action::ShowLogs => self.show(DetailTab::Logs),
            Action::ShowArtifacts => self.show(DetailTab::Artifacts),
            Action::ShowAttempts => self.show(DetailTab::Attempts),
            Action::ShowPayload => self.show(DetailTab::Payload),
            Action::Follow => {
                self.tab = DetailTab::Logs;
                self.pager.rows = rows;
                self.pager.toggle_follow()
            }
            Action::Wrap => {
                self.tab = DetailTab::Logs;
                self.pager.toggle_wrap();
                Vec::new()
            }
            Action::NextMatch | Action::PrevMatch => {
                self.tab = DetailTab::Logs;
                let (effects, say) = self.pager.next_match(action == Action::NextMatch, rows);
                return Some(Reply {
                    say: Some((crate::tui::app::Level::Info, say)),
                    ..Reply::effects(effects)
                });
            }
            Action::OpenPager => vec![Effect::OpenPager(self.run_id)],
            Action::Filter => {
                // The search asked next starts from what is on screen now.
                self.pager.rows = rows;
                return None;
            }
            _ => return None,
        };
        Some(Reply::effects(effects))
    }

    fn show(&mut self, tab: DetailTab) -> Vec<Effect> {
        if self.tab != tab {
            self.scroll = 0;
        }
        self.tab = tab;
        Vec::new()
    }

    fn scroll_by(&mut self, delta: i32, ctx: &KeyCtx) -> Vec<Effect> {
        // The tab's rows as the render wraps them, near enough: the render clamps again, exactly,
        // so at worst an Up after G takes a press or two to show.
        let width = usize::from(ctx.width).max(1);
        let wrapped = |text: &str| text.chars().count().max(1).div_ceil(width);
        let rows = self.detail.as_ref().map_or(0, |d| match self.tab {
            DetailTab::Events => d
                .events
                .iter()
                .map(|e| wrapped(&format!("{:60}{}", "", e.message.as_deref().unwrap_or(""))))
                .sum(),
            DetailTab::Artifacts => d.artifacts.len(),
            DetailTab::Attempts => {
                attempts(&d.run, &d.events)
                    .iter()
                    .map(|a| {
                        2 + a
                            .error
                            .as_deref()
                            .map_or(0, |e| wrapped(&format!("   {e}")))
                    })
                    .sum::<usize>()
                    + 1
            }
            DetailTab::Payload | DetailTab::Logs => {
                let payload = serde_json::to_string_pretty(&d.run.payload).unwrap_or_default();
                let error = d.run.error.as_deref().unwrap_or("-");
                3 + payload.lines().map(wrapped).sum::<usize>()
                    + error.lines().map(wrapped).sum::<usize>()
            }
        }) + 2;
        let body = usize::from(ctx.height.saturating_sub(INFO_ROWS + 1));
        let max = rows.saturating_sub(body).min(usize::from(u16::MAX)) as i32;
        self.scroll = (i32::from(self.scroll) + delta).clamp(0, max) as u16;
        Vec::new()
    }

    /// The next moment the detail changes by the clock alone: an open wait or run duration
    /// ticks, a held run's lease runs out (then how long ago it did).
    pub fn next_visible_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let run = &self.detail.as_ref()?.run;
        let lease = run
            .lease_expires_at
            .filter(|_| run.status.is_held())
            .map(|lease| {
                if lease > now {
                    lease
                } else {
                    age_changes_at(now, lease)
                }
            });
        // Wait counts from creation until it starts; run and total count while it is not done.
        let open = (run.finished_at.is_none()).then(|| {
            let mut at = duration_changes_at(now, run.created_at);
            if let Some(started) = run.started_at {
                at = at.min(duration_changes_at(now, started));
            }
            at
        });
        lease.into_iter().chain(open).min()
    }

    /// The search line's Enter: a server-side search over all of the run's lines.
    pub fn search(&mut self, text: &str) -> Vec<Effect> {
        self.tab = DetailTab::Logs;
        self.pager.start_search(text)
    }

    /// What the search line starts with: the current search.
    pub fn search_text(&self) -> String {
        self.pager
            .search
            .as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_default()
    }
}

/// The pager's answers, for the run open in the detail.
impl RunsPane {
    fn pager_of(&mut self, run_id: i64) -> Option<&mut LogPager> {
        self.detail
            .as_mut()
            .filter(|d| d.run_id == run_id)
            .map(|d| &mut d.pager)
    }

    pub fn on_log_window(&mut self, window: LogWindow) -> Vec<Effect> {
        match self.pager_of(window.run_id) {
            Some(pager) => pager.on_window(window),
            None => Vec::new(),
        }
    }

    pub fn on_log_count(&mut self, run_id: i64, total: i64, last_id: Option<i64>) -> Vec<Effect> {
        match self.pager_of(run_id) {
            Some(pager) => pager.on_count(total, last_id),
            None => Vec::new(),
        }
    }

    pub fn on_log_matches(&mut self, run_id: i64, text: &str, matches: LogMatches) -> Vec<Effect> {
        match self.pager_of(run_id) {
            Some(pager) => pager.on_matches(text, matches),
            None => Vec::new(),
        }
    }
}

fn time(ctx: &Ctx, t: Option<DateTime<Utc>>) -> String {
    date_time(&ctx.offset, ctx.now, t)
}

/// For a held run: until when its lease runs, and whether its holder is beating.
fn holder_note(ctx: &Ctx, r: &Run) -> Vec<Span<'static>> {
    let (Some(lease), Some(holder)) = (r.lease_expires_at, r.worker_id.as_deref()) else {
        return Vec::new();
    };
    if !r.status.is_held() {
        return Vec::new();
    }
    if lease <= ctx.now {
        return vec![Span::styled(
            format!(
                "  lease expired {} ago: {holder} stopped renewing it",
                age(ctx.now, lease)
            ),
            ctx.theme.error(),
        )];
    }
    let beat = match ctx.workers.iter().find(|w| w.worker_id == holder) {
        Some(w) => {
            let state = w.liveness(ctx.now);
            Span::styled(
                format!(" ({holder} {})", state.as_str()),
                ctx.theme.liveness(state),
            )
        }
        None => Span::styled(format!(" ({holder} not in the registry)"), ctx.theme.dim()),
    };
    vec![
        Span::raw(format!("  lease until {}", time(ctx, Some(lease)))),
        beat,
    ]
}

/// Wait (created → started, or → now while it waits), run (started → finished, or → now), total.
fn durations(ctx: &Ctx, r: &Run) -> String {
    let now = ctx.now;
    let wait = span(r.created_at, r.started_at.or(r.finished_at), now);
    let mut text = match (r.started_at, r.finished_at) {
        (None, None) => format!("waiting {}", duration(wait)),
        (None, Some(_)) => format!("waited {} (never started)", duration(wait)),
        (Some(started), finished) => {
            let ran = duration(span(started, finished, now));
            let verb = if finished.is_some() { "ran" } else { "running" };
            format!("wait {}  {verb} {ran}", duration(wait))
        }
    };
    text.push_str(&format!(
        "  total {}",
        duration(span(r.created_at, r.finished_at, now))
    ));
    text
}

/// `text` cut to `width` columns, with a hint that `i` shows it whole.
fn one_line(label: &str, text: &str, width: u16) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let full = format!("{label} {flat}");
    let width = usize::from(width);
    if full.chars().count() <= width {
        return full;
    }
    let keep = width.saturating_sub(6);
    format!("{}… (i)", full.chars().take(keep).collect::<String>())
}

impl DetailState {
    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let d = self;
        let theme = ctx.theme;
        let [info, tabs, body] = Layout::vertical([
            Constraint::Length(INFO_ROWS),
            Constraint::Length(1),
            Constraint::Min(1),
        ])
        .areas(area);

        let Some(detail) = d.detail.as_ref() else {
            frame.render_widget(
                Paragraph::new(format!("loading run {}…", d.run_id))
                    .block(Block::default().borders(Borders::ALL)),
                area,
            );
            return;
        };
        let r = &detail.run;
        let mut status = vec![
            Span::raw(format!("run {}  {}/{}  ", r.id, r.project, r.workflow)),
            Span::styled(r.status.as_str(), theme.status(r.status)),
        ];
        if r.cancel_requested && !r.status.is_terminal() {
            status.push(Span::styled(" (cancel requested)", theme.error()));
        }
        status.extend(holder_note(ctx, r));
        // Only a finished run is retried, and a finished run has no lease note: the chain has
        // the rest of the first line.
        let mut chain = Vec::new();
        if let Some(of) = r.retry_of {
            chain.push(format!("retry of {of}"));
        }
        if let Some(newest) = detail.retried_by.last() {
            let mut retried = format!("retried as {} ({})", newest.id, newest.status);
            if detail.retried_by.len() > 1 {
                retried.push_str(&format!(" +{} earlier", detail.retried_by.len() - 1));
            }
            chain.push(retried);
        }
        if !chain.is_empty() {
            status.push(Span::styled(
                format!("  {}", chain.join(" · ")),
                theme.fg(Color::Cyan),
            ));
        }
        let payload = one_line("payload", &r.payload_text(), info.width);
        let lines = vec![
            Line::from(status),
            Line::from(format!(
                // The short facts first: 80 columns cut a long queue or worker name, not them.
                "exit {}  attempt {}/{}  priority {}  queue {}  worker {}",
                r.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.attempt,
                r.max_attempts,
                r.priority,
                r.queue,
                r.worker_id.as_deref().unwrap_or("-"),
            )),
            Line::from(format!(
                "created {}  started {}  finished {}",
                time(ctx, Some(r.created_at)),
                time(ctx, r.started_at),
                time(ctx, r.finished_at),
            )),
            Line::from(durations(ctx, r)),
            Line::styled(payload, theme.dim()),
            match &r.error {
                Some(e) => Line::styled(one_line("error", e, info.width), theme.error()),
                None => Line::styled("error -", theme.dim()),
            },
        ];
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::TOP)),
            info,
        );

        let key = |a: Action| {
            ctx.keymap
                .key_for(a)
                .map(|k| k.to_string())
                .unwrap_or_default()
        };
        let tries = attempts(r, &detail.events);
        let tab_titles = vec![
            Line::from(format!(
                "{} events {}",
                key(Action::ShowEvents),
                detail.events.len()
            )),
            Line::from(format!(
                "{} logs {}",
                key(Action::ShowLogs),
                grouped(d.pager.total)
            )),
            Line::from(format!(
                "{} artifacts {}",
                key(Action::ShowArtifacts),
                detail.artifacts.len()
            )),
            Line::from(format!(
                "{} attempts {}",
                key(Action::ShowAttempts),
                tries.len()
            )),
            Line::from(format!("{} payload", key(Action::ShowPayload))),
        ];
        let selected = match d.tab {
            DetailTab::Events => 0,
            DetailTab::Logs => 1,
            DetailTab::Artifacts => 2,
            DetailTab::Attempts => 3,
            DetailTab::Payload => 4,
        };
        frame.render_widget(
            Tabs::new(tab_titles)
                .select(selected)
                .highlight_style(theme.selected())
                .divider("│"),
            tabs,
        );

        let lines: Vec<Line> = match d.tab {
            DetailTab::Logs => return self.render_logs(ctx, frame, body),
            DetailTab::Events => detail
                .events
                .iter()
                .rev()
                .map(|e| {
                    let to = e.to_status.map(|s| s.as_str()).unwrap_or(&e.event_type);
                    let from = e.from_status.map(|s| s.as_str()).unwrap_or("·");
                    Line::from(vec![
                        Span::styled(time(ctx, Some(e.created_at)), theme.dim()),
                        Span::raw(format!("  {from} → ")),
                        Span::styled(
                            to.to_owned(),
                            e.to_status.map(|s| theme.status(s)).unwrap_or_default(),
                        ),
                        Span::raw(format!(
                            "  attempt {}  by {}{}",
                            e.attempt,
                            e.actor,
                            e.message
                                .as_deref()
                                .map(|m| format!("  {m}"))
                                .unwrap_or_default()
                        )),
                    ])
                })
                .collect(),
            DetailTab::Attempts => attempt_lines(ctx, r, &tries),
            DetailTab::Payload => {
                let pretty =
                    serde_json::to_string_pretty(&r.payload).unwrap_or_else(|_| r.payload_text());
                let mut lines = vec![Line::styled("payload", theme.dim())];
                lines.extend(pretty.lines().map(|l| Line::from(l.to_owned())));
                if let Some(e) = &r.payload_error {
                    lines.push(Line::styled(format!("(stored text: {e})"), theme.dim()));
                }
                lines.push(Line::default());
                lines.push(Line::styled("error", theme.dim()));
                match &r.error {
                    Some(e) => {
                        lines.extend(e.lines().map(|l| Line::styled(l.to_owned(), theme.error())))
                    }
                    None => lines.push(Line::from("-")),
                }
                lines
            }
            DetailTab::Artifacts => {
                if detail.artifacts.is_empty() {
                    vec![Line::styled("no artifacts", theme.dim())]
                } else {
                    detail
                        .artifacts
                        .iter()
                        .map(|a| {
                            Line::from(format!(
                                "{}  {}  {}  {}",
                                a.key,
                                a.size_bytes
                                    .map(|s| format!("{s} B"))
                                    .unwrap_or_else(|| "-".into()),
                                a.sha256
                                    .as_deref()
                                    .map(|h| &h[..h.len().min(16)])
                                    .unwrap_or("-"),
                                a.url.as_deref().unwrap_or("")
                            ))
                        })
                        .collect()
                }
            }
        };
        // Scrolled no further than the last screen (G on a short list shows it, not nothing).
        let width = usize::from(body.width).max(1);
        let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(width)).sum();
        let last_top = rows.saturating_sub(usize::from(body.height));
        let scroll = usize::from(d.scroll).min(last_top) as u16;
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0)),
            body,
        );
    }

    fn render_logs(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let pager = &self.pager;
        let [head, body] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
        let rows = usize::from(body.height).max(1);

        let number_width = pager.total.max(1).to_string().len();
        let current = pager.current_match();
        let words: &[String] = pager.search.as_ref().map_or(&[], |s| &s.words);
        let line_of = |i: usize, l: &RunLog| {
            let number = pager.first_rank + i as i64 + 1;
            let number_style = if current == Some(l.id) {
                theme.selected()
            } else {
                theme.dim()
            };
            let style = match l.level {
                LogLevel::Error => theme.fg(Color::Red),
                LogLevel::Warn => theme.fg(Color::Yellow),
                _ => Style::default(),
            };
            let mut spans = vec![
                Span::styled(format!("{number:>number_width$}"), number_style),
                Span::styled(format!(" {} ", time(ctx, Some(l.created_at))), theme.dim()),
            ];
            spans.extend(highlighted(&l.message, words, style, ctx));
            Line::from(spans)
        };
        let width = usize::from(body.width).max(1);
        let height_of = |line: &Line| {
            if pager.wrap {
                line.width().max(1).div_ceil(width)
            } else {
                1
            }
        };
        let len = pager.lines.len();
        // Bottom-anchored at the end: as many of the last lines as fit, wrapped or not.
        let top = match pager.view {
            LogView::End if pager.wrap => {
                let mut used = 0;
                let mut top = len;
                while top > 0 {
                    let h = height_of(&line_of(top - 1, &pager.lines[top - 1]));
                    if used + h > rows {
                        break;
                    }
                    used += h;
                    top -= 1;
                }
                top.min(len.saturating_sub(1))
            }
            _ => pager.top_index(rows),
        };
        // The lines that fit from the top (fewer than the rows when long lines wrap).
        let mut lines: Vec<Line> = Vec::new();
        let mut used = 0;
        for (i, l) in pager.lines.iter().enumerate().skip(top) {
            let line = line_of(i, l);
            let h = height_of(&line);
            if used >= rows || (used > 0 && used + h > rows) {
                break;
            }
            used += h;
            lines.push(line);
        }

        // Where the view is, the search, and the modes, on one line.
        let mut state: Vec<Span> = Vec::new();
        if lines.is_empty() {
            state.push(Span::styled(
                if pager.loaded {
                    "no log lines yet"
                } else {
                    "loading…"
                },
                theme.dim(),
            ));
        } else {
            let from = pager.first_rank + top as i64 + 1;
            state.push(Span::raw(format!(
                "lines {}-{} of {}",
                grouped(from),
                grouped(from + lines.len() as i64 - 1),
                grouped(pager.total)
            )));
        }
        if let Some(search) = &pager.search {
            let found = pager
                .match_label()
                .unwrap_or_else(|| "searching…".to_owned());
            state.push(Span::styled(
                format!("  /{} {found}", search.text),
                theme.fg(Color::Yellow),
            ));
        }
        let mode = |on: bool, a: Action, word: &str| {
            let k = ctx
                .keymap
                .key_for(a)
                .map(|k| k.to_string())
                .unwrap_or_default();
            Span::styled(
                format!("  {k} {word}"),
                if on {
                    theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)
                } else {
                    theme.dim()
                },
            )
        };
        state.push(mode(pager.follow, Action::Follow, "follow"));
        state.push(mode(pager.wrap, Action::Wrap, "wrap"));
        if !pager.follow && !pager.at_end() {
            state.push(Span::styled("  ▼ more (G)", theme.fg(Color::Cyan)));
        }
        frame.render_widget(Line::from(state), head);

        let mut paragraph = Paragraph::new(lines);
        if pager.wrap {
            paragraph = paragraph.wrap(Wrap { trim: false });
        }
        frame.render_widget(paragraph, body);
    }
}

/// A log message with every search word in it (case-insensitive) highlighted.
fn highlighted(message: &str, words: &[String], style: Style, ctx: &Ctx) -> Vec<Span<'static>> {
    let mark = ctx
        .theme
        .fg(Color::Yellow)
        .add_modifier(Modifier::REVERSED | Modifier::BOLD);
    let lower = message.to_lowercase();
    // Lower-casing can change byte lengths outside ASCII: highlight only when it did not.
    if words.is_empty() || lower.len() != message.len() {
        return vec![Span::styled(message.to_owned(), style)];
    }
    let mut marks = vec![false; message.len()];
    for word in words.iter().filter(|w| !w.is_empty()) {
        let mut from = 0;
        while let Some(at) = lower[from..].find(word.as_str()) {
            let start = from + at;
            marks[start..start + word.len()]
                .iter_mut()
                .for_each(|m| *m = true);
            from = start + word.len();
        }
    }
    let mut spans = Vec::new();
    let mut start = 0;
    for i in 1..=message.len() {
        let boundary =
            i == message.len() || (marks[i] != marks[start] && message.is_char_boundary(i));
        if boundary {
            let text = message[start..i].to_owned();
            spans.push(Span::styled(text, if marks[start] { mark } else { style }));
            start = i;
        }
    }
    spans
}

/// Each attempt: its worker, times, how it ended, its exit code and error.
fn attempt_lines(ctx: &Ctx, r: &Run, tries: &[crate::domain::run::Attempt]) -> Vec<Line<'static>> {
    let theme = ctx.theme;
    if tries.is_empty() {
        return vec![Line::styled("not claimed yet", theme.dim())];
    }
    let mut lines = Vec::new();
    for a in tries.iter().rev() {
        let mut head = vec![Span::raw(format!("#{} {}  ", a.number, a.worker))];
        match a.outcome {
            Some(outcome) => {
                let word = if outcome == crate::domain::run::RunStatus::Queued {
                    "requeued"
                } else {
                    outcome.as_str()
                };
                head.push(Span::styled(word.to_owned(), theme.status(outcome)));
                if let Some(by) = a.ended_by.as_deref().filter(|by| *by != a.worker) {
                    head.push(Span::raw(format!(" by {by}")));
                }
            }
            None => head.push(Span::styled("in progress", theme.status(r.status))),
        }
        if let Some(code) = a.exit_code {
            head.push(Span::raw(format!("  exit {code}")));
        }
        if let Some(started) = a.started_at {
            let verb = if a.finished_at.is_some() {
                "ran"
            } else {
                "running"
            };
            head.push(Span::raw(format!(
                "  {verb} {}",
                duration(span(started, a.finished_at, ctx.now))
            )));
        }
        lines.push(Line::from(head));
        lines.push(Line::styled(
            format!(
                "   claimed {}  started {}  ended {}",
                time(ctx, Some(a.claimed_at)),
                time(ctx, a.started_at),
                time(ctx, a.finished_at),
            ),
            theme.dim(),
        ));
        if let Some(e) = &a.error {
            lines.push(Line::styled(format!("   {e}"), theme.error()));
        }
    }
    if tries.len() > 1 {
        lines.push(Line::styled(
            "exit codes of earlier attempts are not recorded (only the run's last)",
            theme.dim(),
        ));
    }
    lines
}
