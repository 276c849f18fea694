//! Drawing: a pure function of the app state onto a frame. Narrow terminals (80 columns) drop
//! the less important columns rather than squeezing every one.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};

use super::app::{App, Level, Mode, Pane};
use super::keymap::Action;
pub use super::panes::runs::count_label;
pub use super::style::{Theme, age};

/// A time of day in the console's offset, or "-".
fn time(app: &App, t: Option<DateTime<Utc>>) -> String {
    super::style::clock_time(&app.offset, t)
}

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
    app.render_pane(frame, body, theme);
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
    if !app.back.is_empty() {
        // After a jump the tab line is the way back: where from, and here.
        let crumbs = app.crumbs();
        let last = crumbs.len().saturating_sub(1);
        let mut spans = vec![Span::styled(format!("{} ", app.pane.index()), theme.dim())];
        for (i, crumb) in crumbs.into_iter().enumerate() {
            if i > 0 {
                spans.push(Span::styled(" › ", theme.dim()));
            }
            let style = if i == last {
                theme.selected().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            spans.push(Span::styled(crumb, style));
        }
        spans.push(Span::styled("  esc back", theme.dim()));
        frame.render_widget(Line::from(spans), left);
        frame.render_widget(Span::styled(badge, badge_style(app, theme)), right);
        return;
    }
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
    frame.render_widget(Span::styled(badge, badge_style(app, theme)), right);
}

fn badge_style(app: &App, theme: Theme) -> Style {
    if app.read_only {
        theme
            .fg(Color::Yellow)
            .add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        theme.dim()
    }
}

fn render_bottom_line(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    if area.height == 0 {
        return;
    }
    let line = match &app.mode {
        Mode::Filter(text) => {
            let mut spans = vec![Span::raw("/"), Span::raw(text.clone()), Span::raw("▏ ")];
            match &app.filter_error {
                Some(error) => spans.push(Span::styled(error.clone(), theme.error())),
                None if text.is_empty() => spans.push(Span::styled(
                    "words, or field:value (status:failed age:>10m) · Enter keeps · Esc undoes",
                    theme.dim(),
                )),
                None => spans.push(Span::styled("Enter keeps · Esc undoes", theme.dim())),
            }
            Line::from(spans)
        }
        Mode::Copy(choices) => {
            let mut spans = vec![Span::raw("copy: ")];
            for (i, c) in choices.iter().enumerate() {
                if i > 0 {
                    spans.push(Span::styled(" · ", theme.dim()));
                }
                spans.push(Span::styled(c.key.to_string(), theme.fg(Color::Cyan)));
                spans.push(Span::raw(format!(" {}", c.label)));
            }
            spans.push(Span::styled("  (any other key: nothing)", theme.dim()));
            Line::from(spans)
        }
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
        .runs
        .counts
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
    // Workers that beat within the stale limit now, and queues nobody serves: the two facts an
    // operator must not miss on any pane, then how fresh the screen is. Who and where come
    // last: a narrow screen cuts those first.
    let live = app.overview.live_workers(app.now);
    let stalled = app.overview.stalled(app.now);
    let alarm = if stalled.is_empty() {
        String::new()
    } else {
        format!(" stalled {} │", stalled.len())
    };
    let text = format!(
        " {help}{mode} │ queued {depth} │ workers {live} │{alarm} updated {updated} │ {} │ {}",
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

/// A full-screen overlay (one cell in from each edge) with `lines` in a titled box.
fn render_overlay(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>, wrap: bool) {
    let popup = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    };
    frame.render_widget(Clear, popup);
    let mut text = Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title));
    if wrap {
        text = text.wrap(Wrap { trim: false });
    }
    frame.render_widget(text, popup);
}

fn render_audit(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let lines: Vec<Line> = if app.audit.is_empty() {
        vec![Line::styled("loading…", theme.dim())]
    } else {
        app.audit
            .iter()
            .take(area.height.saturating_sub(4) as usize)
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
    let title = " audit trail, newest first · any key closes ";
    render_overlay(frame, area, title, lines, false);
}

fn render_messages(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
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
    let title = " messages, newest first · any key closes ";
    render_overlay(frame, area, title, lines, true);
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
