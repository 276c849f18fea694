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
use super::overlay;
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
        Mode::Help => overlay::render_help(frame, app, theme, area),
        Mode::Audit => overlay::render_audit(frame, app, theme, area),
        Mode::Messages => overlay::render_messages(frame, app, theme, area),
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
        .map(|(i, p)| Line::from(tab_title(i, *p)))
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

fn tab_title(i: usize, pane: Pane) -> String {
    format!("{i} {}", pane.title())
}

/// The pane whose tab is at column `x` of the tab line.
pub fn tab_at(x: u16) -> Option<Pane> {
    let mut start = 0;
    for (i, pane) in Pane::ALL.iter().enumerate() {
        // The tab line pads each title with a space either side, a divider between two.
        let end = start + tab_title(i, *pane).chars().count() as u16 + 2;
        if (start..end).contains(&x) {
            return Some(*pane);
        }
        start = end + 1;
    }
    None
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
                None => spans.push(Span::styled(
                    "Enter keeps · Esc undoes · ctrl-u clears",
                    theme.dim(),
                )),
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
        Mode::Command(text) => command_line(app, text, theme, area.width),
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

/// The `:` line, and after it the Tab candidates with the one in the line highlighted; when
/// they do not all fit, the ones around the chosen one.
fn command_line(app: &App, text: &str, theme: Theme, width: u16) -> Line<'static> {
    let mut spans = vec![Span::raw(":"), Span::raw(text.to_owned()), Span::raw("▏")];
    let Some(completion) = &app.command_line.completion else {
        return Line::from(spans);
    };
    let used = text.chars().count() + 2;
    let room = usize::from(width).saturating_sub(used + 4);
    let len = |c: &String| c.chars().count() + 2;
    let candidates = &completion.candidates;
    // The first shown: as early as lets the chosen one fit.
    let mut first = 0;
    while first < completion.chosen
        && candidates[first..=completion.chosen]
            .iter()
            .map(len)
            .sum::<usize>()
            > room
    {
        first += 1;
    }
    spans.push(Span::raw("  "));
    if first > 0 {
        spans.push(Span::styled("… ", theme.dim()));
    }
    let mut taken = 0;
    for (i, candidate) in candidates.iter().enumerate().skip(first) {
        taken += len(candidate);
        if i > completion.chosen && taken > room {
            spans.push(Span::styled("…", theme.dim()));
            break;
        }
        let style = if i == completion.chosen {
            theme.selected()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(candidate.clone(), style));
        spans.push(Span::raw("  "));
    }
    Line::from(spans)
}
