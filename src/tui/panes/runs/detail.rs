//! One run's detail: its facts, events, logs and artifacts.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Tabs};

use super::super::{Ctx, KeyCtx, Reply};
use crate::domain::age::age;
use crate::domain::run::{Run, RunLog};
use crate::ops::RunDetail;
use crate::tui::keymap::Action;
use crate::tui::style::clock_time;

/// Log lines kept per open run; older ones scroll out, however chatty the run is.
pub const LOG_RING: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailTab {
    Events,
    Logs,
    Artifacts,
}

#[derive(Debug, Clone)]
pub struct DetailState {
    pub run_id: i64,
    pub detail: Option<RunDetail>,
    pub logs: VecDeque<RunLog>,
    pub tab: DetailTab,
    pub follow: bool,
    /// Lines scrolled up from the bottom of the logs (0 = at the end).
    pub scroll: usize,
    /// Only log lines containing this (case-insensitive) are shown.
    pub search: String,
}

impl DetailState {
    pub(super) fn new(run_id: i64) -> Self {
        Self {
            run_id,
            detail: None,
            logs: VecDeque::new(),
            tab: DetailTab::Events,
            follow: true,
            scroll: 0,
            search: String::new(),
        }
    }

    /// The detail's own keys; None for the keys the pane handles (actions on the run, closing).
    pub fn on_action(&mut self, action: Action, ctx: &KeyCtx) -> Option<Reply> {
        let rows = ctx.rows as i64;
        match action {
            Action::Up => self.scroll_by(-1),
            Action::Down => self.scroll_by(1),
            Action::PageUp => self.scroll_by(-rows),
            Action::PageDown => self.scroll_by(rows),
            Action::Top => self.scroll = self.visible_logs().len().saturating_sub(1),
            Action::Bottom => self.scroll = 0,
            Action::Back if !self.search.is_empty() => self.search.clear(),
            Action::ShowEvents => self.tab = DetailTab::Events,
            Action::ShowLogs => self.tab = DetailTab::Logs,
            Action::ShowArtifacts => self.tab = DetailTab::Artifacts,
            Action::Follow => {
                self.follow = !self.follow;
                self.tab = DetailTab::Logs;
                if self.follow {
                    self.scroll = 0;
                }
            }
            _ => return None,
        }
        Some(Reply::default())
    }

    /// Up and down scroll the logs; scrolling up stops following.
    fn scroll_by(&mut self, delta: i64) {
        if self.tab == DetailTab::Logs {
            let max = self.visible_logs().len().saturating_sub(1);
            self.scroll = (self.scroll as i64 - delta).clamp(0, max as i64) as usize;
            self.follow = self.scroll == 0 && self.follow;
        }
    }

    /// The log lines the search lets through, oldest first.
    pub fn visible_logs(&self) -> Vec<&RunLog> {
        if self.search.is_empty() {
            return self.logs.iter().collect();
        }
        let needle = self.search.to_lowercase();
        self.logs
            .iter()
            .filter(|l| l.message.to_lowercase().contains(&needle))
            .collect()
    }
}

fn time(ctx: &Ctx, t: Option<DateTime<Utc>>) -> String {
    clock_time(&ctx.offset, t)
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

impl DetailState {
    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let d = self;
        let theme = ctx.theme;
        let [info, tabs, body] = Layout::vertical([
            Constraint::Length(5),
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
        let lines = vec![
            Line::from(status),
            Line::from(format!(
                "queue {}  priority {}  attempt {}/{}  worker {}  exit {}",
                r.queue,
                r.priority,
                r.attempt,
                r.max_attempts,
                r.worker_id.as_deref().unwrap_or("-"),
                r.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into())
            )),
            Line::from(format!(
                "created {}  claimed {}  started {}  finished {}{}",
                time(ctx, Some(r.created_at)),
                time(ctx, r.claimed_at),
                time(ctx, r.started_at),
                time(ctx, r.finished_at),
                r.retry_of
                    .map(|id| format!("  retry of {id}"))
                    .unwrap_or_default()
            )),
            match &r.error {
                Some(e) => Line::styled(format!("error: {e}"), theme.error()),
                None => Line::styled(format!("payload {}", r.payload_text()), theme.dim()),
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
        let tab_titles = vec![
            Line::from(format!(
                "{} events ({})",
                key(Action::ShowEvents),
                detail.events.len()
            )),
            Line::from(if d.search.is_empty() {
                format!("{} logs ({})", key(Action::ShowLogs), d.logs.len())
            } else {
                format!(
                    "{} logs ({} of {}) /{}",
                    key(Action::ShowLogs),
                    d.visible_logs().len(),
                    d.logs.len(),
                    d.search
                )
            }),
            Line::from(format!(
                "{} artifacts ({})",
                key(Action::ShowArtifacts),
                detail.artifacts.len()
            )),
            Line::from(if d.follow {
                format!("{} following", key(Action::Follow))
            } else {
                format!("{} follow", key(Action::Follow))
            }),
        ];
        let selected = match d.tab {
            DetailTab::Events => 0,
            DetailTab::Logs => 1,
            DetailTab::Artifacts => 2,
        };
        frame.render_widget(
            Tabs::new(tab_titles)
                .select(selected)
                .highlight_style(theme.selected())
                .divider("│"),
            tabs,
        );

        let height = body.height as usize;
        let lines: Vec<Line> = match d.tab {
            DetailTab::Events => detail
                .events
                .iter()
                .rev()
                .take(height)
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
            DetailTab::Logs => {
                let visible = d.visible_logs();
                if visible.is_empty() {
                    let text = if d.logs.is_empty() {
                        "no log lines yet".to_owned()
                    } else {
                        format!("no line contains `{}` (Esc clears the search)", d.search)
                    };
                    vec![Line::styled(text, theme.dim())]
                } else {
                    let end = visible.len().saturating_sub(d.scroll);
                    let start = end.saturating_sub(height);
                    visible[start..end]
                        .iter()
                        .map(|l| {
                            let style = match l.level {
                                crate::domain::run::LogLevel::Error => theme.fg(Color::Red),
                                crate::domain::run::LogLevel::Warn => theme.fg(Color::Yellow),
                                _ => Style::default(),
                            };
                            Line::from(vec![
                                Span::styled(time(ctx, Some(l.created_at)), theme.dim()),
                                Span::raw(" "),
                                Span::styled(l.message.clone(), style),
                            ])
                        })
                        .collect()
                }
            }
            DetailTab::Artifacts => {
                if detail.artifacts.is_empty() {
                    vec![Line::styled("no artifacts", theme.dim())]
                } else {
                    detail
                        .artifacts
                        .iter()
                        .take(height)
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
        frame.render_widget(Paragraph::new(lines), body);
    }
}
