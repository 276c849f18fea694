//! Drawing the Services and Manifests panes, the manifest editor and the service form.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::app::App;
use super::catalog::{FORM_FIELDS, ManifestEditor, ServiceForm};
use super::style::{Theme, age};
use crate::domain::deployment::{DeploymentStatus, Liveness, liveness};
use crate::domain::manifest::{ChangeKind, ManifestStatus};

fn manifest_style(theme: Theme, status: ManifestStatus) -> Style {
    theme.fg(match status {
        ManifestStatus::Draft => Color::Cyan,
        ManifestStatus::Active => Color::Green,
        ManifestStatus::Locked => Color::Yellow,
        ManifestStatus::Superseded => Color::DarkGray,
    })
}

fn deployment_style(theme: Theme, status: DeploymentStatus) -> Style {
    theme.fg(match status {
        DeploymentStatus::Deployed => Color::Green,
        DeploymentStatus::Deploying | DeploymentStatus::Pending => Color::Yellow,
        DeploymentStatus::Failed => Color::Red,
        DeploymentStatus::Stopped => Color::DarkGray,
    })
}

fn liveness_style(theme: Theme, l: Liveness) -> Style {
    theme.fg(match l {
        Liveness::Alive => Color::Green,
        Liveness::Stale => Color::Yellow,
        Liveness::Missing => Color::Red,
    })
}

fn liveness_label(l: Liveness) -> &'static str {
    match l {
        Liveness::Alive => "alive",
        Liveness::Stale => "stale",
        Liveness::Missing => "missing",
    }
}

pub fn render_services(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let c = &app.catalog;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" Services ({}) ", c.services.len()));
    if c.services.is_empty() {
        let text = if !c.loaded {
            "loading…"
        } else if app.read_only {
            "No services yet."
        } else {
            "No services yet. Press n to create one, or `ospdeck service create` / `ospdeck demo`."
        };
        frame.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let wide = area.width >= 110;
    let mut header = vec!["SCHEMA", "MANIFEST", "WORKER", "HEARTBEAT"];
    if wide {
        header.insert(1, "NAME");
        header.insert(2, "PROJECT");
    }
    let rows = c.services.iter().map(|s| {
        let manifest = match &s.manifest {
            Some(m) => Span::styled(
                format!("{} {}", m.version, m.status),
                manifest_style(theme, m.status),
            ),
            None => Span::raw("-"),
        };
        let worker = match &s.deployment {
            Some(d) => Span::styled(d.status.as_str(), deployment_style(theme, d.status)),
            None => Span::raw("-"),
        };
        // Judged against the clock now, not when the list was loaded.
        let beat = s.deployment.as_ref().and_then(|d| d.last_heartbeat);
        let state = liveness(app.now, beat);
        let heartbeat = match beat {
            Some(t) => format!("{} {}", liveness_label(state), age(app.now, t)),
            None => liveness_label(state).to_owned(),
        };
        let mut cells = vec![
            Cell::from(s.service.schema.clone()),
            Cell::from(manifest),
            Cell::from(worker),
            Cell::from(Span::styled(heartbeat, liveness_style(theme, state))),
        ];
        if wide {
            cells.insert(1, Cell::from(s.service.name.clone()));
            cells.insert(2, Cell::from(s.service.project.clone()));
        }
        Row::new(cells)
    });
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Min(20),
            Constraint::Min(20),
            Constraint::Length(14),
            Constraint::Length(18),
            Constraint::Length(10),
            Constraint::Length(14),
        ]
    } else {
        vec![
            Constraint::Min(20),
            Constraint::Length(18),
            Constraint::Length(10),
            Constraint::Length(12),
        ]
    };
    let mut state = TableState::default().with_selected(Some(c.selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
            .block(block)
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
        area,
        &mut state,
    );
}

pub fn render_manifests(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let c = &app.catalog;
    let Some(schema) = &c.service else {
        frame.render_widget(
            Paragraph::new(
                "Choose a service in Services (1) and press Enter, or type :service NAME.",
            )
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(" Manifests ")),
            area,
        );
        return;
    };
    let [list, body] =
        Layout::horizontal([Constraint::Length(30), Constraint::Min(20)]).areas(area);
    let rows = c.history.iter().map(|m| {
        Row::new(vec![
            Cell::from(m.version.clone()),
            Cell::from(Span::styled(
                m.status.as_str(),
                manifest_style(theme, m.status),
            )),
        ])
    });
    let mut state = TableState::default().with_selected(Some(c.version_selected));
    frame.render_stateful_widget(
        Table::new(rows, [Constraint::Length(12), Constraint::Length(11)])
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {schema} ")),
            )
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
        list,
        &mut state,
    );

    let (title, lines): (String, Vec<Line>) = match (&c.diff, &c.content) {
        (Some((from, to, changes)), _) => (
            format!(
                " diff {from} → {to} ({} changes) · Esc closes ",
                changes.len()
            ),
            if changes.is_empty() {
                vec![Line::styled("same content", theme.dim())]
            } else {
                changes
                    .iter()
                    .take(body.height as usize)
                    .map(|ch| {
                        let show = |v: &Option<serde_json::Value>| {
                            v.as_ref().map(|v| v.to_string()).unwrap_or_default()
                        };
                        match ch.kind {
                            ChangeKind::Added => Line::styled(
                                format!("+ {} = {}", ch.path, show(&ch.after)),
                                theme.fg(Color::Green),
                            ),
                            ChangeKind::Removed => Line::styled(
                                format!("- {} = {}", ch.path, show(&ch.before)),
                                theme.fg(Color::Red),
                            ),
                            ChangeKind::Changed => Line::styled(
                                format!(
                                    "~ {}: {} → {}",
                                    ch.path,
                                    show(&ch.before),
                                    show(&ch.after)
                                ),
                                theme.fg(Color::Yellow),
                            ),
                        }
                    })
                    .collect()
            },
        ),
        (None, Some(m)) => (
            format!(
                " {} {} · locked: {} ",
                m.version,
                m.status,
                if m.locked_fields.is_empty() {
                    "none".to_owned()
                } else {
                    m.locked_fields.join(", ")
                }
            ),
            serde_json::to_string_pretty(&m.content)
                .unwrap_or_default()
                .lines()
                .take(body.height as usize)
                .map(|l| Line::from(l.to_owned()))
                .collect(),
        ),
        (None, None) => (" manifest ".into(), vec![Line::from("loading…")]),
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        body,
    );
}

pub fn render_editor(frame: &mut Frame, editor: &ManifestEditor, theme: Theme, area: Rect) {
    frame.render_widget(Clear, area);
    let [text, status] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    let block = Block::default().borders(Borders::ALL).title(format!(
        " propose {} · Ctrl-S proposes · Esc drops ",
        editor.schema
    ));
    frame.render_widget(&editor.textarea, block.inner(text));
    frame.render_widget(block, text);
    let line = match &editor.problem {
        None => Line::styled("✓ a valid manifest", theme.fg(Color::Green)),
        Some(p) => Line::styled(format!("✗ {p}"), theme.fg(Color::Red)),
    };
    frame.render_widget(line, status);
}

pub fn render_form(frame: &mut Frame, form: &ServiceForm, theme: Theme, area: Rect) {
    let width = area.width.min(76);
    let height = (FORM_FIELDS.len() as u16 * 3 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" new service · Tab next field · Ctrl-S creates · Esc drops ");
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let mut constraints: Vec<Constraint> =
        FORM_FIELDS.iter().map(|_| Constraint::Length(3)).collect();
    constraints.push(Constraint::Min(1));
    let areas = Layout::vertical(constraints).split(inner);
    let hints = [
        "project key",
        "display name",
        "schema: [a-z][a-z0-9_]{1,62}",
        "workflows: name:activity,activity …",
    ];
    for (i, field) in form.fields.iter().enumerate() {
        let block = Block::default()
            .borders(Borders::ALL)
            .title(format!(" {} ", hints[i]))
            .border_style(if i == form.focus {
                theme.fg(Color::Cyan).add_modifier(Modifier::BOLD)
            } else {
                theme.dim()
            });
        frame.render_widget(field, block.inner(areas[i]));
        frame.render_widget(block, areas[i]);
    }
    let line = match &form.problem {
        None => Line::styled("✓ ready to create", theme.fg(Color::Green)),
        Some(p) => Line::styled(format!("✗ {p}"), theme.fg(Color::Red)),
    };
    if let Some(last) = areas.last() {
        frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), *last);
    }
}

pub fn render_templates(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let c = &app.catalog;
    let [list, body] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" Template versions ({}) ", c.versions.len()));
    if c.versions.is_empty() {
        let text = if c.versions_loaded {
            "No templates yet. Publish one: `ospdeck template publish DIR --template T --version 1.0.0`."
        } else {
            "loading…"
        };
        frame.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let rows = c.versions.iter().map(|r| {
        let v = &r.version;
        let style = theme.fg(match v.status {
            crate::domain::template::VersionStatus::Draft => Color::Cyan,
            crate::domain::template::VersionStatus::Stable => Color::Green,
            crate::domain::template::VersionStatus::Deprecated => Color::DarkGray,
        });
        let mut tags = r.labels.clone();
        if r.is_default {
            tags.insert(0, "default".into());
        }
        Row::new(vec![
            Cell::from(v.template.clone()),
            Cell::from(v.version.clone()),
            Cell::from(Span::styled(v.status.as_str(), style)),
            Cell::from(tags.join(",")),
        ])
    });
    let mut state = TableState::default().with_selected(Some(c.version_row));
    frame.render_stateful_widget(
        Table::new(
            rows,
            [
                Constraint::Min(9),
                Constraint::Length(7),
                Constraint::Length(10),
                Constraint::Min(14),
            ],
        )
        .block(block)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
        list,
        &mut state,
    );
    let selected = c.selected_template_version();
    let (title, lines): (String, Vec<Line>) = match (&c.artifacts, selected) {
        (Some((t, v, artifacts)), Some(row))
            if *t == row.version.template && *v == row.version.version =>
        {
            let mut lines = vec![Line::styled(
                format!(
                    "digest {}…",
                    &row.version.digest[..16.min(row.version.digest.len())]
                ),
                theme.dim(),
            )];
            lines.extend(artifacts.iter().map(|a| {
                Line::from(vec![
                    Span::raw(format!("{} ", a.path)),
                    Span::styled(
                        format!(
                            "{} {}B {}",
                            a.locale.as_deref().unwrap_or("-"),
                            a.size_bytes,
                            &a.sha256[..10.min(a.sha256.len())]
                        ),
                        theme.dim(),
                    ),
                ])
            }));
            (format!(" {t} {v} · {} artifacts ", artifacts.len()), lines)
        }
        (_, Some(row)) => (
            format!(" {} {} ", row.version.template, row.version.version),
            vec![Line::styled("Enter shows its artifacts", theme.dim())],
        ),
        _ => (" artifacts ".into(), Vec::new()),
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(title)),
        body,
    );
}
