//! One service in full: its manifest and whether the deployed worker runs it (drift), the
//! worker's registry status judged against the clock, its queues, workflows, the worker's
//! deployments with every step's output, and its recent runs. Kept fresh by the loader while open.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::deployment_style;
use crate::domain::age::{age, age_changes_at};
use crate::domain::deployment::{DeployAttempt, liveness, liveness_changes_at};
use crate::domain::manifest::Drift;
use crate::ops::ServiceDetail;
use crate::tui::keymap::Action;
use crate::tui::panes::Ctx;
use crate::tui::style::Theme;

/// Output lines shown per step of the newest deployment (the rest with Enter).
const NEWEST_OUTPUT_LINES: usize = 4;

/// The open detail of one service.
#[derive(Debug, Clone)]
pub struct ServiceDetailView {
    pub schema: String,
    /// None until the first answer arrives.
    pub detail: Option<ServiceDetail>,
    /// First line shown.
    pub scroll: usize,
    /// Every step's whole output instead of its tail.
    pub full_output: bool,
}

impl ServiceDetailView {
    pub fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            detail: None,
            scroll: 0,
            full_output: false,
        }
    }

    /// The next moment a heartbeat age or state in the detail changes with the clock.
    pub fn next_visible_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let beat = self
            .detail
            .as_ref()?
            .overview
            .deployment
            .as_ref()?
            .last_heartbeat?;
        [
            Some(age_changes_at(now, beat)),
            liveness_changes_at(now, Some(beat)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let [crumb, body] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
        let hint = |action: Action, what: &str| {
            ctx.keymap
                .key_for(action)
                .map(|k| format!("{k} {what}"))
                .unwrap_or_default()
        };
        let hints: Vec<String> = [
            hint(Action::OpenManifests, "manifests"),
            if ctx.read_only {
                String::new()
            } else {
                hint(Action::Deploy, "deploy")
            },
            hint(Action::Open, "full output"),
            hint(Action::Back, "back"),
        ]
        .into_iter()
        .filter(|h| !h.is_empty())
        .collect();
        frame.render_widget(
            Line::from(vec![
                Span::styled("Services › ", theme.dim()),
                Span::styled(
                    self.schema.clone(),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::styled(format!("   {}", hints.join(" · ")), theme.dim()),
            ]),
            crumb,
        );
        let Some(d) = &self.detail else {
            frame.render_widget(
                Paragraph::new("loading…").block(Block::default().borders(Borders::ALL)),
                body,
            );
            return;
        };
        let lines = self.lines(d, ctx);
        let inner_rows = body.height.saturating_sub(2) as usize;
        let scroll = self.scroll.min(lines.len().saturating_sub(inner_rows));
        let title = format!(
            " {} · {} · project {} ",
            d.overview.service.schema, d.overview.service.name, d.overview.service.project
        );
        let position = if lines.len() > inner_rows {
            format!(
                " lines {}-{} of {} ",
                scroll + 1,
                (scroll + inner_rows).min(lines.len()),
                lines.len()
            )
        } else {
            String::new()
        };
        frame.render_widget(
            Paragraph::new(lines).scroll((scroll as u16, 0)).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(title)
                    .title_bottom(Line::from(position).right_aligned()),
            ),
            body,
        );
    }

    /// Every line of the detail, top to bottom.
    fn lines(&self, d: &ServiceDetail, ctx: &Ctx) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let now = ctx.now;
        let label = |text: &str| Span::styled(format!("{text:<10}"), theme.dim());
        let mut lines = vec![drift_line(&d.drift, theme)];

        // The governing manifest and the newest draft waiting behind it.
        let mut manifest = vec![label("manifest")];
        match &d.overview.manifest {
            Some(m) => manifest.push(Span::styled(
                format!("{} {}", m.version, m.status),
                theme.manifest(m.status),
            )),
            None => manifest.push(Span::raw("none governs")),
        }
        let drafts = d
            .history
            .iter()
            .filter(|m| m.status == crate::domain::manifest::ManifestStatus::Draft)
            .count();
        if drafts > 0 {
            manifest.push(Span::styled(
                format!(" · {drafts} draft(s), newest {}", newest_draft(d)),
                theme.dim(),
            ));
        }
        lines.push(Line::from(manifest));

        // The registry row: status, and liveness from its heartbeats against the clock now.
        let mut worker = vec![label("worker")];
        match &d.overview.deployment {
            Some(dep) => {
                worker.push(Span::styled(
                    dep.status.as_str(),
                    deployment_style(theme, dep.status),
                ));
                let state = liveness(now, dep.last_heartbeat);
                let beat = match dep.last_heartbeat {
                    Some(t) => format!(" · {} (beat {} ago)", state.as_str(), age(now, t)),
                    None => format!(" · {} (never beat)", state.as_str()),
                };
                worker.push(Span::styled(beat, theme.liveness(state)));
                let who = [dep.worker_id.clone(), dep.worker_version.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" v");
                if !who.is_empty() {
                    worker.push(Span::raw(format!(" · {who}")));
                }
            }
            None => worker.push(Span::raw("never deployed")),
        }
        lines.push(Line::from(worker));

        // The queue's name on a line of its own: a schema may take 63 of 80 columns.
        for q in &d.queues {
            lines.push(Line::from(vec![label("queue"), Span::raw(q.queue.clone())]));
            let mut spans = vec![
                Span::raw(" ".repeat(10)),
                Span::styled(
                    format!("{} queued", q.queued),
                    if q.queued > 0 {
                        theme.fg(Color::Blue)
                    } else {
                        theme.dim()
                    },
                ),
                Span::raw(format!(" · {} running", q.claimed + q.running)),
            ];
            if let Some(due) = q.oldest_due {
                spans.push(Span::raw(format!(" · oldest {}", age(now, due))));
            }
            spans.push(Span::styled(
                format!(
                    " · last hour {} ok, {} failed",
                    q.succeeded_last_hour, q.failed_last_hour
                ),
                theme.dim(),
            ));
            lines.push(Line::from(spans));
        }

        let prefix = format!("{}.", d.overview.service.schema);
        let names: Vec<&str> = d
            .workflows
            .iter()
            .map(|w| w.name.strip_prefix(&prefix).unwrap_or(&w.name))
            .collect();
        lines.push(Line::from(vec![
            label("workflows"),
            Span::raw(if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }),
        ]));

        lines.push(Line::default());
        lines.push(Line::styled(
            format!("Deployments ({}, newest first)", d.deployments.len()),
            Style::default().add_modifier(Modifier::BOLD),
        ));
        if d.deployments.is_empty() {
            lines.push(Line::styled("  none recorded", theme.dim()));
        }
        for (i, deployment) in d.deployments.iter().enumerate() {
            lines.push(deployment_line(deployment, ctx));
            // The newest deployment shows each step's tail; older ones their last line; Enter
            // shows everything.
            let keep = match (self.full_output, i) {
                (true, _) => usize::MAX,
                (false, 0) => NEWEST_OUTPUT_LINES,
                (false, _) => 1,
            };
            for step in deployment {
                lines.push(step_line(step, theme));
                let output: Vec<&str> = step.output.lines().collect();
                let skipped = output.len().saturating_sub(keep);
                if skipped > 0 {
                    lines.push(Line::styled(
                        format!("      │ … {skipped} earlier line(s)"),
                        theme.dim(),
                    ));
                }
                for text in &output[skipped..] {
                    lines.push(Line::styled(format!("      │ {text}"), theme.dim()));
                }
            }
        }

        lines.push(Line::default());
        lines.push(Line::styled(
            format!("Recent runs ({})", d.recent_runs.len()),
            Style::default().add_modifier(Modifier::BOLD),
        ));
        for run in &d.recent_runs {
            lines.push(Line::from(vec![
                Span::raw(format!("  {:>7} ", run.id)),
                Span::styled(
                    format!("{:<9} ", run.status.as_str()),
                    theme.status(run.status),
                ),
                Span::raw(format!("{} ", run.workflow)),
                Span::styled(format!("{} ago", age(now, run.created_at)), theme.dim()),
            ]));
        }
        lines
    }

    /// Scrolls by `delta` lines (movement keys).
    pub fn scroll_by(&mut self, delta: i64) {
        self.scroll = (self.scroll as i64 + delta).clamp(0, u16::MAX as i64) as usize;
    }
}

fn newest_draft(d: &ServiceDetail) -> String {
    d.history
        .iter()
        .rev()
        .find(|m| m.status == crate::domain::manifest::ManifestStatus::Draft)
        .map(|m| m.version.clone())
        .unwrap_or_default()
}

/// Drift in a colour an operator notices: the worker runs another manifest than the governing one.
fn drift_line(drift: &Drift, theme: Theme) -> Line<'static> {
    let loud = if theme.color {
        Style::default()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    };
    match drift {
        Drift::Drifted {
            deployed,
            governing,
        } => Line::from(vec![
            Span::styled(" DRIFT ", loud),
            Span::styled(
                format!(" worker runs manifest {deployed}; {governing} governs: deploy it"),
                theme.fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
        ]),
        Drift::InStep { version } => Line::styled(
            format!("in step  worker runs manifest {version}, the governing one"),
            theme.fg(Color::Green),
        ),
        Drift::NotDeployed => Line::styled(
            "not deployed  no worker is known to run a manifest (see worker, deployments)",
            theme.fg(Color::Yellow),
        ),
        Drift::NoGoverning => Line::styled(
            "no governing manifest  nothing to deploy until a version is active",
            theme.fg(Color::Yellow),
        ),
    }
}

/// `▸ 09:12 3 steps · failed, rolled back` with the end time in the console's offset.
fn deployment_line(steps: &[DeployAttempt], ctx: &Ctx) -> Line<'static> {
    let theme = ctx.theme;
    let started = steps.first().map(|s| s.started_at);
    let last = steps.last();
    let attempts = steps.iter().map(|s| s.attempt).max().unwrap_or(0);
    let (outcome, style) = match last {
        Some(s) if s.step == crate::domain::deployment::DeployStep::Rollback => {
            ("failed, rolled back", theme.fg(Color::Red))
        }
        Some(s) if s.exit_code == Some(0) => ("deployed", theme.fg(Color::Green)),
        Some(_) => ("failed", theme.fg(Color::Red)),
        None => ("no steps", theme.dim()),
    };
    Line::from(vec![
        Span::raw(format!("  ▸ {} ", when(ctx, started))),
        Span::styled(outcome, style.add_modifier(Modifier::BOLD)),
        Span::styled(
            format!(
                " · {attempts} attempt(s) · {}",
                started
                    .map(|t| format!("{} ago", age(ctx.now, t)))
                    .unwrap_or_default()
            ),
            theme.dim(),
        ),
    ])
}

/// A time of day today, with its date on any other day.
fn when(ctx: &Ctx, t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t)
            if t.with_timezone(&ctx.offset).date_naive()
                != ctx.now.with_timezone(&ctx.offset).date_naive() =>
        {
            t.with_timezone(&ctx.offset)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        }
        other => crate::tui::style::clock_time(&ctx.offset, other),
    }
}

fn step_line(step: &DeployAttempt, theme: Theme) -> Line<'static> {
    let took = (step.finished_at - step.started_at)
        .num_milliseconds()
        .max(0) as f64
        / 1000.0;
    let (exit, style) = match step.exit_code {
        Some(0) => ("exit 0".to_owned(), theme.fg(Color::Green)),
        Some(c) => (format!("exit {c}"), theme.fg(Color::Red)),
        None => ("no exit".to_owned(), theme.fg(Color::Red)),
    };
    Line::from(vec![
        Span::raw(format!("    {} {:<8} ", step.attempt, step.step.as_str())),
        Span::styled(format!("{exit:<8}"), style),
        Span::styled(format!("{took:.1}s"), theme.dim()),
    ])
}
