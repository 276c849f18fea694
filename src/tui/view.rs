//! Drawing: a pure function of the app state onto a frame. Narrow terminals (80 columns) drop
//! the less important columns rather than squeezing every one.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Tabs, Wrap,
};

use super::app::{App, DetailState, DetailTab, Level, Mode, Pane};
use super::keymap::Action;
use super::panes::Ctx;
pub use super::style::{Theme, age};
use crate::domain::run::{Run, RunStatus};
use crate::ops::ACTIVITY_MINUTES;

/// Draws the whole screen. Pure: it reads the app and writes only the frame.
pub fn render(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    let [tabs, body, message, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(u16::from(app.bottom_line())),
        Constraint::Length(1),
    ])
    .areas(area);

    render_tabs(frame, app, theme, tabs);
    let ctx = Ctx {
        now: app.now,
        theme,
        offset: app.offset,
    };
    match app.pane {
        Pane::Overview => app.board.render(&ctx, body, frame.buffer_mut()),
        Pane::Runs => match app.detail.as_ref() {
            Some(detail) => render_detail(frame, detail, app, theme, body),
            None => render_runs(frame, app, theme, body),
        },
        Pane::Services => super::view_catalog::render_services(frame, app, theme, body),
        Pane::Manifests => super::view_catalog::render_manifests(frame, app, theme, body),
        Pane::Templates => super::view_catalog::render_templates(frame, app, theme, body),
    }
    if let Some(editor) = app.editor.as_ref() {
        super::view_catalog::render_editor(frame, editor, theme, body);
    }
    if let Some(form) = app.form.as_ref() {
        super::view_catalog::render_form(frame, form, theme, body);
    }
    render_bottom_line(frame, app, theme, message);
    render_status_bar(frame, app, theme, status);

    match &app.mode {
        Mode::Help => render_help(frame, app, theme, area),
        Mode::Audit => render_audit(frame, app, theme, area),
        Mode::Messages => render_messages(frame, app, theme, area),
        Mode::Confirm(confirm) => render_dialog(
            frame,
            &confirm.question,
            "y confirm · any other key keeps things as they are",
            theme,
            area,
        ),
        _ => {}
    }
}

fn render_tabs(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let badge = if app.read_only { " READ-ONLY " } else { " RW " };
    let [left, right] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(badge.len() as u16)])
            .areas(area);
    let titles: Vec<Line> = Pane::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| Line::from(format!("{i} {}", p.title())))
        .collect();
    let selected = Pane::ALL.iter().position(|p| *p == app.pane);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(theme.selected().add_modifier(Modifier::BOLD))
            .divider("│"),
        left,
    );
    let badge_style = if app.read_only {
        theme
            .fg(Color::Yellow)
            .add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        theme.dim()
    };
    frame.render_widget(Span::styled(badge, badge_style), right);
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

fn render_runs(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let tall = area.height >= 30;
    let [counts, spark, table] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(if tall { 3 } else { 1 }),
        Constraint::Min(3),
    ])
    .areas(area);

    let mut spans: Vec<Span> = Vec::new();
    for c in &app.overview.counts {
        let style = if app.query.status == Some(c.status) {
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
    for m in &app.overview.activity {
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

    let wide = area.width >= 110;
    let mut title = format!(" Runs ({}", app.runs.len());
    if app.runs.len() as i64 >= super::app::RUN_PAGE {
        title.push_str(" newest");
    }
    title.push(')');
    if let Some(s) = app.query.status {
        title.push_str(&format!(" status={s}"));
    }
    if !app.query.text.is_empty() {
        title.push_str(&format!(" /{}", app.query.text));
    }
    if !app.marked.is_empty() {
        title.push_str(&format!(" · {} marked", app.marked.len()));
    }
    title.push(' ');
    let mut block = Block::default().borders(Borders::ALL).title(title);
    // Runs that arrived while the operator is down the list wait here rather than push it.
    let waiting = app.new_above();
    if waiting > 0 || app.paused {
        let mut note = String::from(" ");
        if waiting > 0 {
            note.push_str(&format!("▲ {waiting} new (g) "));
        }
        if app.paused {
            note.push_str("⏸ paused (p) ");
        }
        block = block.title(
            Line::styled(note, theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)).right_aligned(),
        );
    }

    if app.runs.is_empty() {
        let text = if !app.loaded {
            "loading…".to_owned()
        } else if app.query != Default::default() {
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

    let header_cells: &[&str] = if wide {
        &[
            " ",
            "ID",
            "STATUS",
            "PROJECT/WORKFLOW",
            "QUEUE",
            "TRY",
            "PRI",
            "WORKER",
            "AGE",
        ]
    } else {
        &[
            " ",
            "ID",
            "STATUS",
            "PROJECT/WORKFLOW",
            "TRY",
            "WORKER",
            "AGE",
        ]
    };
    let header = Row::new(header_cells.iter().map(|h| Cell::from(*h)))
        .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = app.runs.iter().map(|run| run_row(run, app, theme, wide));
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(1),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Min(20),
            Constraint::Length(14),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(18),
            Constraint::Length(5),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Min(14),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Length(4),
        ]
    };
    let mut state = TableState::default()
        .with_offset(app.first_row)
        .with_selected(Some(app.selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block)
            .row_highlight_style(theme.selected()),
        table,
        &mut state,
    );
}

fn run_row<'a>(run: &'a Run, app: &App, theme: Theme, wide: bool) -> Row<'a> {
    let mark = if app.marked.contains(&run.id) {
        "*"
    } else {
        " "
    };
    let status = if run.cancel_requested && !run.status.is_terminal() {
        Span::styled("canceling", theme.status(RunStatus::Canceled))
    } else {
        Span::styled(run.status.as_str(), theme.status(run.status))
    };
    let mut cells = vec![
        Cell::from(mark),
        Cell::from(run.id.to_string()),
        Cell::from(status),
        Cell::from(format!("{}/{}", run.project, run.workflow)),
    ];
    if wide {
        cells.push(Cell::from(run.queue.as_str()));
    }
    cells.push(Cell::from(format!("{}/{}", run.attempt, run.max_attempts)));
    if wide {
        cells.push(Cell::from(run.priority.to_string()));
    }
    cells.push(Cell::from(run.worker_id.as_deref().unwrap_or("-")));
    cells.push(Cell::from(age(app.now, run.created_at)));
    Row::new(cells)
}

fn time(app: &App, t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.with_timezone(&app.offset).format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn render_detail(frame: &mut Frame, d: &DetailState, app: &App, theme: Theme, area: Rect) {
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
            time(app, Some(r.created_at)),
            time(app, r.claimed_at),
            time(app, r.started_at),
            time(app, r.finished_at),
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
        app.keymap
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
                    Span::styled(time(app, Some(e.created_at)), theme.dim()),
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
                            Span::styled(time(app, Some(l.created_at)), theme.dim()),
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

fn render_bottom_line(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    if area.height == 0 {
        return;
    }
    let line = match &app.mode {
        Mode::Filter(text) => Line::from(vec![
            Span::raw("/"),
            Span::raw(text.clone()),
            Span::raw("▏"),
        ]),
        Mode::Command(text) => Line::from(vec![
            Span::raw(":"),
            Span::raw(text.clone()),
            Span::raw("▏"),
        ]),
        Mode::LabelInput {
            template,
            version,
            text,
        } => Line::from(vec![
            Span::raw(format!("label {template} {version} as (name [percent]): ")),
            Span::raw(text.clone()),
            Span::raw("▏"),
        ]),
        Mode::ExitCode { run_id, text } => Line::from(vec![
            Span::raw(format!("complete run {run_id} with exit code: ")),
            Span::raw(text.clone()),
            Span::styled("▏ Enter completes · Esc keeps it running", theme.dim()),
        ]),
        // An outage outranks any message: everything on screen is from before it.
        _ if app.unreachable.is_some() => {
            let (since, error) = app
                .unreachable
                .as_ref()
                .map_or((None, ""), |(t, e)| (Some(*t), e.as_str()));
            Line::styled(
                format!(
                    "store unreachable since {}, retrying; showing what was loaded before ({error})",
                    time(app, since)
                ),
                theme.error(),
            )
        }
        _ => match &app.message {
            Some((Level::Error, text)) => Line::styled(format!("error: {text}"), theme.error()),
            Some((Level::Info, text)) => Line::from(text.clone()),
            None => Line::default(),
        },
    };
    frame.render_widget(line, area);
}

fn render_status_bar(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let depth = app
        .overview
        .depth()
        .map(|c| count_label(c.count))
        .unwrap_or_else(|| "-".into());
    let updated = match app.last_update {
        Some(t) => time(app, Some(t)),
        None => "never".into(),
    };
    let mode = if app.read_only { "READ-ONLY" } else { "RW" };
    let help = app
        .keymap
        .key_for(Action::Help)
        .map(|k| format!("{k} help │ "))
        .unwrap_or_default();
    // The store's location is the longest part: last, so a narrow screen cuts only that.
    // Workers that beat within the stale limit now, and queues nobody serves: the two facts an
    // operator must not miss on any pane.
    let live = app.board.live_workers(app.now);
    let stalled = app.board.stalled(app.now);
    let alarm = if stalled.is_empty() {
        String::new()
    } else {
        format!(" stalled {} │", stalled.len())
    };
    let text = format!(
        " {help}{mode} │ {} │ queued {depth} │ workers {live} │{alarm} updated {updated} │ {}",
        app.user, app.store
    );
    let style = if stalled.is_empty() {
        theme.dim().add_modifier(Modifier::REVERSED)
    } else {
        theme.error().add_modifier(Modifier::REVERSED)
    };
    frame.render_widget(Paragraph::new(text).style(style), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn render_help(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let entries = app.keymap.help(app.context());
    // One column when it fits, else two side by side (80×24 holds about 40 keys that way).
    let rows_fit = area.height.saturating_sub(2).max(1) as usize;
    let columns = if entries.len() <= rows_fit { 1 } else { 2 };
    let per_column = entries.len().div_ceil(columns);
    let col_width: u16 = if columns == 1 { 60 } else { 39 };
    let popup = centered(area, col_width * columns as u16 + 2, per_column as u16 + 2);
    frame.render_widget(Clear, popup);
    let title = if app.read_only {
        " keys (read-only: no actions) · any key closes "
    } else {
        " keys · any key closes "
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let key_width = if columns == 1 { 14 } else { 11 };
    for (c, chunk) in entries.chunks(per_column.max(1)).enumerate() {
        let lines: Vec<Line> = chunk
            .iter()
            .map(|(keys, help)| {
                Line::from(vec![
                    Span::styled(format!("{keys:>key_width$}"), theme.fg(Color::Cyan)),
                    Span::raw(format!(" {help}")),
                ])
            })
            .collect();
        let x = inner.x + c as u16 * col_width;
        let column = Rect {
            x,
            y: inner.y,
            width: col_width.min(inner.right().saturating_sub(x)),
            height: inner.height,
        };
        frame.render_widget(Paragraph::new(lines), column);
    }
}

fn render_audit(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let popup = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    };
    frame.render_widget(Clear, popup);
    let lines: Vec<Line> = if app.audit.is_empty() {
        vec![Line::styled("loading…", theme.dim())]
    } else {
        app.audit
            .iter()
            .take(popup.height.saturating_sub(2) as usize)
            .map(|r| {
                Line::from(vec![
                    Span::styled(time(app, Some(r.at)), theme.dim()),
                    Span::raw(format!("  {}  ", r.actor)),
                    Span::styled(r.action.clone(), theme.fg(Color::Cyan)),
                    Span::raw(format!("  {} {}", r.entity_type, r.entity_id)),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" audit trail, newest first · any key closes "),
        ),
        popup,
    );
}

fn render_messages(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let popup = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    };
    frame.render_widget(Clear, popup);
    let lines: Vec<Line> = if app.messages.is_empty() {
        vec![Line::styled("no messages yet", theme.dim())]
    } else {
        // Newest first, each in full: wrapping shows what the bottom line had to cut.
        app.messages
            .iter()
            .rev()
            .map(|m| {
                let style = match m.level {
                    Level::Error => theme.error(),
                    Level::Info => Style::default(),
                };
                Line::from(vec![
                    Span::styled(time(app, Some(m.at)), theme.dim()),
                    Span::raw("  "),
                    Span::styled(m.text.clone(), style),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" messages, newest first · any key closes "),
        ),
        popup,
    );
}

fn render_dialog(frame: &mut Frame, question: &str, hint: &str, theme: Theme, area: Rect) {
    let popup = centered(area, 60, 5);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(vec![
            Line::styled(
                question.to_owned(),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Line::styled(hint.to_owned(), theme.dim()),
        ])
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true })
        .block(Block::default().borders(Borders::ALL).title(" confirm ")),
        popup,
    );
}
