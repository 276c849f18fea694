//! The console's `:` command line (one table: dispatch, Tab completion, history, help), its
//! scrollable overlays (help, audit with before/after, messages), monitor's answer to a write
//! key, the 16-colour theme and the mouse, driven key by key without a terminal.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ospdeck::domain::audit::AuditRow;
use ospdeck::domain::run::{Run, RunStatus};
use ospdeck::domain::service::Service;
use ospdeck::domain::template::{TemplateVersion, VersionStatus};
use ospdeck::domain::worker::QueueStat;
use ospdeck::ops::{QueueBoard, ServiceOverview, VersionRow};
use ospdeck::tui::app::{App, Data, Effect, Mode, Pane, RunsQuery};
use ospdeck::tui::command::COMMANDS;
use ospdeck::tui::keymap::Keymap;
use ospdeck::tui::overlay;
use ospdeck::tui::view::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0)
        .single()
        .expect("a time")
}

fn run(id: i64, workflow: &str, status: RunStatus) -> Run {
    let created = t0() - Duration::seconds(id * 97);
    let held = status != RunStatus::Queued;
    Run {
        id,
        project_id: 1,
        project: "acme".into(),
        workflow_id: 1,
        workflow: workflow.into(),
        queue: "default".into(),
        status,
        priority: 0,
        payload: serde_json::json!({ "branch": "main" }),
        payload_error: None,
        attempt: i32::from(held),
        max_attempts: 3,
        worker_id: held.then(|| "worker-a".to_owned()),
        lease_expires_at: None,
        run_after: created,
        cancel_requested: false,
        exit_code: None,
        error: (status == RunStatus::Failed).then(|| "exit code 2".to_owned()),
        retry_of: None,
        created_at: created,
        claimed_at: None,
        started_at: None,
        finished_at: status.is_terminal().then_some(created),
    }
}

fn fixture_runs() -> Vec<Run> {
    let statuses = [
        ("deploy", RunStatus::Queued),
        ("build", RunStatus::Queued),
        ("test", RunStatus::Running),
        ("backup", RunStatus::Succeeded),
        ("test", RunStatus::Failed),
        ("upgrade", RunStatus::Canceled),
    ];
    statuses
        .iter()
        .enumerate()
        .map(|(i, (wf, s))| run(6 - i as i64, wf, *s))
        .collect()
}

fn app_with(read_only: bool) -> App {
    let keymap = Keymap::new(&BTreeMap::new(), read_only).expect("keymap");
    let mut app = App::new(
        "sqlite:///srv/ospdeck/ospdeck.db".into(),
        "operator".into(),
        keymap,
        read_only,
    );
    app.offset = FixedOffset::east_opt(0).expect("offset");
    app.set_clock(t0());
    app
}

/// The Runs pane with six runs.
fn loaded(read_only: bool) -> App {
    let mut app = app_with(read_only);
    app.on_data(Data::Runs(app.runs.query.clone(), fixture_runs()), t0());
    press(&mut app, "4");
    app
}

fn service(id: i64, schema: &str) -> ServiceOverview {
    ServiceOverview {
        service: Service {
            id,
            project_id: 1,
            project: "telecom".into(),
            name: format!("{schema} service"),
            schema: schema.into(),
            created_by: "operator".into(),
            created_at: t0() - Duration::days(2),
        },
        manifest: None,
        deployment: None,
        worker: ospdeck::domain::deployment::Liveness::Missing,
    }
}

fn services() -> Vec<ServiceOverview> {
    vec![
        service(1, "crm_sync"),
        service(2, "telecom_billing"),
        service(3, "telecom_sms"),
    ]
}

fn audit_row(id: i64, actor: &str, action: &str, entity: &str, entity_id: &str) -> AuditRow {
    AuditRow {
        id,
        actor: actor.into(),
        action: action.into(),
        entity_type: entity.into(),
        entity_id: entity_id.into(),
        project_id: Some(1),
        before: Some(serde_json::json!({ "status": "draft", "version": "1.1.0" })),
        after: Some(serde_json::json!({
            "status": "active",
            "version": "1.1.0",
            "note": "activated after the review of the billing cycle change, ticket OPS-4411",
        })),
        at: t0() - Duration::minutes(id),
    }
}

fn audit_rows() -> Vec<AuditRow> {
    vec![
        audit_row(1, "alice", "activate", "manifest", "telecom_billing@1.1.0"),
        audit_row(2, "bob", "publish", "template", "section7@1.2.0"),
        audit_row(3, "alice", "member", "membership", "carol"),
        audit_row(4, "bob", "create", "service", "telecom_billing"),
    ]
}

/// The audit overlay open on its rows.
fn with_audit() -> App {
    let mut app = loaded(false);
    press(&mut app, ":audit");
    assert_eq!(app.on_key(code(KeyCode::Enter)), vec![Effect::LoadAudit]);
    app.on_data(Data::Audit(audit_rows()), t0());
    app
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    keys.chars().flat_map(|c| app.on_key(key(c))).collect()
}

fn command_text(app: &App) -> &str {
    match &app.mode {
        Mode::Command(text) => text,
        other => panic!("the command line is not open: {other:?}"),
    }
}

fn draw(app: &mut App, width: u16, height: u16, theme: Theme) -> Buffer {
    app.set_screen(width, height);
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|f| view::render(f, app, theme))
        .expect("draw");
    terminal.backend().buffer().clone()
}

fn screen(app: &mut App, width: u16, height: u16) -> String {
    app.set_screen(width, height);
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|f| view::render(f, app, Theme::default()))
        .expect("draw");
    terminal.backend().to_string()
}

fn snap(name: &str, make: impl Fn() -> App) {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = make();
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen(&mut app, w, h));
    }
}

fn row_text(buffer: &Buffer, y: u16) -> String {
    (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol())
        .collect()
}

/// The screen cell where `text` first shows.
fn find(buffer: &Buffer, text: &str) -> (u16, u16) {
    for y in 0..buffer.area.height {
        let line = row_text(buffer, y);
        if let Some(i) = line.find(text) {
            return (line[..i].chars().count() as u16, y);
        }
    }
    panic!("`{text}` is not on screen");
}

fn mouse(kind: MouseEventKind, column: u16, row: u16) -> MouseEvent {
    MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }
}

fn click(app: &mut App, (column, row): (u16, u16)) -> Vec<Effect> {
    app.on_mouse(mouse(MouseEventKind::Down(MouseButton::Left), column, row))
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

#[test]
fn tab_completes_command_names_and_cycles_through_candidates() {
    let mut app = loaded(false);
    press(&mut app, ":ser");
    app.on_key(code(KeyCode::Tab));
    assert_eq!(command_text(&app), "service");
    let shown = app
        .command_line
        .completion
        .as_ref()
        .map(|c| c.candidates.clone());
    assert_eq!(
        shown,
        Some(vec!["service".to_owned(), "services".to_owned()])
    );
    app.on_key(code(KeyCode::Tab));
    assert_eq!(command_text(&app), "services");
    app.on_key(code(KeyCode::Tab));
    assert_eq!(command_text(&app), "service", "round again");
    app.on_key(code(KeyCode::BackTab));
    assert_eq!(command_text(&app), "services");
    // Typing ends the cycle; a unique name gets the space its argument needs.
    app.on_key(code(KeyCode::Backspace));
    assert!(app.command_line.completion.is_none());
    let mut app = loaded(false);
    press(&mut app, ":tem");
    app.on_key(code(KeyCode::Tab));
    assert_eq!(command_text(&app), "template");
    let mut app = loaded(false);
    press(&mut app, ":ru");
    app.on_key(code(KeyCode::Tab));
    app.on_key(code(KeyCode::Tab));
    press(&mut app, " f");
    app.on_key(code(KeyCode::Tab));
    assert_eq!(command_text(&app), "runs failed", "statuses complete too");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::LoadRuns(RunsQuery {
            status: Some(RunStatus::Failed),
            ..RunsQuery::default()
        })]
    );
}

#[test]
fn tab_offers_the_schemas_the_services_pane_loaded_and_loads_them_first() {
    let mut app = loaded(false);
    press(&mut app, ":service tel");
    assert_eq!(app.on_key(code(KeyCode::Tab)), vec![Effect::LoadServices]);
    assert_eq!(command_text(&app), "service tel", "nothing to offer yet");
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m.contains("loading services"))
    );
    app.on_data(Data::Services(services()), t0());
    app.on_key(code(KeyCode::Tab));
    assert_eq!(command_text(&app), "service telecom_billing");
    app.on_key(code(KeyCode::Tab));
    assert_eq!(command_text(&app), "service telecom_sms");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::OpenService("telecom_sms".into())]
    );
    assert_eq!(app.pane, Pane::Services);
}

#[test]
fn runs_with_several_words_filters_by_the_rest_of_the_line() {
    let mut app = loaded(false);
    press(&mut app, ":runs status:failed workflow:test");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::LoadRuns(RunsQuery {
            text: "status:failed workflow:test".into(),
            ..RunsQuery::default()
        })]
    );
    press(&mut app, ":nonsense");
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m.contains("unknown command `nonsense`") && m.contains("runs"))
    );
    press(&mut app, ":run");
    app.on_key(code(KeyCode::Enter));
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m.contains("needs a run id"))
    );
    // A unique prefix is the command.
    press(&mut app, ":ov");
    assert_eq!(app.on_key(code(KeyCode::Enter)), vec![Effect::LoadBoard]);
    assert_eq!(app.pane, Pane::Overview);
}

#[test]
fn up_and_down_recall_earlier_commands() {
    let mut app = loaded(false);
    for line in [":runs failed", ":overview", ":runs"] {
        press(&mut app, line);
        app.on_key(code(KeyCode::Enter));
    }
    press(&mut app, ":ru");
    app.on_key(code(KeyCode::Up));
    assert_eq!(command_text(&app), "runs");
    app.on_key(code(KeyCode::Up));
    assert_eq!(command_text(&app), "overview");
    app.on_key(code(KeyCode::Up));
    app.on_key(code(KeyCode::Up));
    assert_eq!(command_text(&app), "runs failed", "the oldest stays");
    app.on_key(code(KeyCode::Down));
    app.on_key(code(KeyCode::Down));
    assert_eq!(command_text(&app), "runs");
    app.on_key(code(KeyCode::Down));
    assert_eq!(command_text(&app), "ru", "past the newest: what was typed");
    // Kept across sessions as text, oldest first.
    let kept = app.command_line.history_text();
    let mut next = loaded(false);
    next.command_line.load_history(&kept);
    press(&mut next, ":");
    next.on_key(code(KeyCode::Up));
    assert_eq!(command_text(&next), "runs");
}

// ---------------------------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------------------------

fn help_text(app: &App, width: usize) -> Vec<String> {
    overlay::help_lines(app, Theme::default(), width)
        .iter()
        .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
        .collect()
}

#[test]
fn help_lists_every_command_and_fits_its_width() {
    let app = loaded(false);
    let lines = help_text(&app, 78);
    let text = lines.join("\n");
    for command in COMMANDS {
        assert!(
            text.contains(&format!(":{}", command.name)),
            ":{} missing",
            command.name
        );
    }
    for line in &lines {
        assert!(line.chars().count() <= 78, "too wide: {line}");
    }
    assert!(text.contains("cancel marked/selected (not in monitor)"));
}

#[test]
fn read_only_help_says_which_keys_are_not_bound() {
    let app = loaded(true);
    let text = help_text(&app, 78).join("\n");
    let (_, hidden) = text
        .split_once("this console is read-only")
        .expect("a read-only section");
    assert!(hidden.contains("cancel marked/selected"));
    assert!(hidden.contains("retry marked/selected"));
}

#[test]
fn help_scrolls_and_only_esc_q_or_help_close_it() {
    let mut app = loaded(false);
    app.set_screen(80, 24);
    press(&mut app, "?");
    assert_eq!(app.mode, Mode::Help);
    press(&mut app, "xRj");
    assert_eq!(app.mode, Mode::Help, "other keys do not close it");
    assert_eq!(app.overlay_scroll.offset, 1);
    press(&mut app, "G");
    let total = overlay::help_lines(&app, Theme::default(), 78).len();
    assert_eq!(app.overlay_scroll.offset, total - 20, "the last page");
    press(&mut app, "g");
    assert_eq!(app.overlay_scroll.offset, 0);
    app.on_key(code(KeyCode::PageDown));
    assert_eq!(app.overlay_scroll.offset, 20);
    app.on_key(code(KeyCode::Esc));
    for close in [code(KeyCode::Esc), key('q'), key('?')] {
        press(&mut app, "?");
        assert_eq!(app.overlay_scroll.offset, 0, "opens at the top");
        app.on_key(close);
        assert_eq!(app.mode, Mode::Normal);
        assert!(!app.quit);
    }
}

// ---------------------------------------------------------------------------------------------
// Monitor
// ---------------------------------------------------------------------------------------------

#[test]
fn in_monitor_a_write_key_says_it_is_read_only_once() {
    let mut app = loaded(true);
    assert!(press(&mut app, "x").is_empty());
    assert_eq!(
        app.message.as_ref().map(|(_, m)| m.as_str()),
        Some(
            "read-only: this console cannot cancel marked/selected (monitor; ospdeck without it can)"
        )
    );
    press(&mut app, "xx");
    let said = app
        .messages
        .iter()
        .filter(|m| m.text.starts_with("read-only"))
        .count();
    assert_eq!(said, 1, "pressed again, it is not said again");
    press(&mut app, "R");
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m == "read-only: this console cannot retry marked/selected (monitor; ospdeck without it can)")
    );
    // A key no action has says nothing.
    let mut app = loaded(true);
    press(&mut app, "Z");
    assert_eq!(app.message, None);
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

#[test]
fn audit_rows_open_to_their_before_and_after() {
    let mut app = with_audit();
    app.set_screen(80, 24);
    press(&mut app, "j");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.audit.open, Some(2));
    let row = app.audit.opened().expect("the open row");
    let text: String = overlay::audit_detail_lines(row, &app.offset, Theme::default(), 78)
        .iter()
        .flat_map(|l| l.spans.iter().map(|s| s.content.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("changed: note, status"), "{text}");
    assert!(text.contains("\"draft\"") && text.contains("\"active\""));
    // Esc goes back to the list, not out.
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Audit);
    assert_eq!(app.audit.open, None);
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn a_click_selects_an_audit_row_and_a_second_opens_it() {
    let mut app = with_audit();
    let buffer = draw(&mut app, 80, 24, Theme::default());
    let at = find(&buffer, "membership carol");
    click(&mut app, at);
    assert_eq!(app.audit.selected(app.now).map(|r| r.id), Some(3));
    assert_eq!(app.audit.open, None);
    click(&mut app, at);
    assert_eq!(app.audit.open, Some(3));
    // With the filter line shown the rows sit one lower, and the click follows them.
    let mut app = with_audit();
    press(&mut app, "/bob");
    app.on_key(code(KeyCode::Enter));
    let buffer = draw(&mut app, 80, 24, Theme::default());
    click(&mut app, find(&buffer, "service telecom_billing"));
    assert_eq!(app.audit.selected(app.now).map(|r| r.id), Some(4));
}

#[test]
fn audit_rows_filter_as_you_type_with_the_shared_grammar() {
    let mut app = with_audit();
    press(&mut app, "/actor:al");
    assert!(app.audit.typing);
    assert_eq!(app.audit.visible(app.now).len(), 2);
    press(&mut app, " action:act");
    assert_eq!(
        app.audit
            .visible(app.now)
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![1]
    );
    // Keys go to the filter while it is open: q is a letter, not a close.
    assert_eq!(app.mode, Mode::Audit);
    app.on_key(code(KeyCode::Enter));
    assert!(!app.audit.typing);
    press(&mut app, "/");
    for _ in 0.." action:act".len() {
        app.on_key(code(KeyCode::Backspace));
    }
    press(&mut app, " \"disk");
    assert!(
        app.audit
            .problem
            .as_ref()
            .is_some_and(|p| p.contains("quote"))
    );
    assert_eq!(
        app.audit.visible(app.now).len(),
        2,
        "the last filter that parsed still holds"
    );
    app.on_key(code(KeyCode::Esc));
    assert!(app.audit.filter_text.is_empty());
    assert_eq!(app.audit.visible(app.now).len(), 4);
    press(&mut app, "/age:>150s");
    assert_eq!(app.audit.visible(app.now).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 16 colours
// ---------------------------------------------------------------------------------------------

fn colours(buffer: &Buffer) -> Vec<Color> {
    buffer.content.iter().flat_map(|c| [c.fg, c.bg]).collect()
}

/// A console state to draw.
type MakeApp = fn() -> App;

#[test]
fn a_16_colour_terminal_gets_only_ansi_colours() {
    let states: [(&str, MakeApp); 6] = [
        ("runs", || loaded(false)),
        ("help", || {
            let mut app = loaded(true);
            press(&mut app, "?");
            app
        }),
        ("audit", with_audit),
        ("audit detail", || {
            let mut app = with_audit();
            app.on_key(code(KeyCode::Enter));
            app
        }),
        ("services", || {
            let mut app = loaded(false);
            app.on_data(Data::Services(services()), t0());
            press(&mut app, "1");
            app
        }),
        ("overview", || {
            let mut app = loaded(false);
            press(&mut app, "0");
            app
        }),
    ];
    for (name, make) in &states {
        let mut app = make();
        let ansi = colours(&draw(&mut app, 80, 24, Theme::ansi16()));
        let odd: Vec<&Color> = ansi
            .iter()
            .filter(|c| matches!(c, Color::Indexed(_) | Color::Rgb(..)))
            .collect();
        assert!(odd.is_empty(), "{name}: {odd:?}");
        assert!(
            ansi.contains(&Color::DarkGray) || ansi.contains(&Color::Cyan),
            "{name}: still coloured"
        );
    }
    // The same screen on a 256-colour terminal does use more than the 16: the test can fail.
    let mut app = loaded(false);
    let full = colours(&draw(&mut app, 80, 24, Theme::default()));
    assert!(full.iter().any(|c| matches!(c, Color::Indexed(_))));
    assert_eq!(
        Theme::detect(None, None, Some("xterm-16color")),
        Theme::ansi16()
    );
}

// ---------------------------------------------------------------------------------------------
// Mouse
// ---------------------------------------------------------------------------------------------

#[test]
fn a_click_on_a_tab_shows_its_pane() {
    let mut app = loaded(false);
    for (title, pane) in [
        ("1 Services", Pane::Services),
        ("3 Templates", Pane::Templates),
        ("0 Overview", Pane::Overview),
        ("4 Runs", Pane::Runs),
    ] {
        let buffer = draw(&mut app, 80, 24, Theme::default());
        let (x, y) = find(&buffer, title);
        click(&mut app, (x + 2, y));
        assert_eq!(app.pane, pane, "{title}");
    }
    let buffer = draw(&mut app, 80, 24, Theme::default());
    let (x, y) = find(&buffer, "1 Services");
    assert_eq!(click(&mut app, (x, y)), vec![Effect::LoadServices]);
}

#[test]
fn a_click_selects_a_row_and_a_second_click_opens_it() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = loaded(false);
        let buffer = draw(&mut app, w, h, Theme::default());
        let at = find(&buffer, "acme/test");
        assert!(click(&mut app, at).is_empty());
        assert_eq!(app.runs.selected_run().map(|r| r.id), Some(4), "{w}x{h}");
        assert_eq!(click(&mut app, at), vec![Effect::OpenRun(4)]);
        assert_eq!(app.runs.detail.as_ref().map(|d| d.run_id), Some(4));
    }
    // The Services list, below its header.
    let mut app = loaded(false);
    app.on_data(Data::Services(services()), t0());
    press(&mut app, "1");
    let buffer = draw(&mut app, 80, 24, Theme::default());
    click(&mut app, find(&buffer, "telecom_sms"));
    assert_eq!(
        app.services
            .selected_service()
            .map(|s| s.service.schema.as_str()),
        Some("telecom_sms")
    );
    // A click on the header or below the rows selects nothing.
    let (x, y) = find(&buffer, "SCHEMA");
    click(&mut app, (x, y));
    let (_, last) = find(&buffer, "telecom_sms");
    click(&mut app, (x, last + 3));
    assert_eq!(app.services.list.cursor.selected, 2);
}

fn queue(name: &str, queued: i64) -> QueueStat {
    QueueStat {
        queue: name.into(),
        queued,
        oldest_due: Some(t0() - Duration::minutes(queued)),
        ..Default::default()
    }
}

fn template_version(template: &str, version: &str) -> VersionRow {
    VersionRow {
        version: TemplateVersion {
            id: 1,
            template: template.into(),
            version: version.into(),
            status: VersionStatus::Stable,
            digest: "d".repeat(64),
            changelog: None,
            deprecation: None,
            created_by: "operator".into(),
            created_at: t0(),
        },
        is_default: false,
        labels: Vec::new(),
    }
}

#[test]
fn clicks_select_queues_and_template_versions_where_they_are_drawn() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = app_with(false);
        app.on_data(
            Data::Board(QueueBoard {
                queues: vec![queue("backup", 3), queue("default", 2), queue("mail", 1)],
                ..QueueBoard::default()
            }),
            t0(),
        );
        let buffer = draw(&mut app, w, h, Theme::default());
        click(&mut app, find(&buffer, "mail"));
        assert_eq!(
            app.overview.selected_queue().map(|q| q.queue.as_str()),
            Some("mail"),
            "{w}x{h}"
        );
        // The selected queue again: its runs, as Enter.
        let effects = click(&mut app, find(&buffer, "mail"));
        assert_eq!(app.pane, Pane::Runs);
        assert!(matches!(effects.as_slice(), [Effect::LoadRuns(q)] if q.text == "queue:mail"));

        let mut app = app_with(false);
        press(&mut app, "3");
        app.on_data(
            Data::Templates(vec![
                template_version("invoice", "2.0.0"),
                template_version("section7", "1.1.0"),
                template_version("section7", "1.0.0"),
            ]),
            t0(),
        );
        let buffer = draw(&mut app, w, h, Theme::default());
        let (x, y) = find(&buffer, "section7");
        // The keys load a version's artifacts as they select it; so does a click.
        assert_eq!(
            click(&mut app, (x, y + 1)),
            vec![Effect::LoadTemplateArtifacts {
                template: "section7".into(),
                version: "1.0.0".into()
            }],
            "{w}x{h}"
        );
    }
}

#[test]
fn the_wheel_moves_through_lists_and_scrolls_overlays() {
    let mut app = loaded(false);
    draw(&mut app, 80, 24, Theme::default());
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 10, 10));
    assert_eq!(app.runs.cursor.selected, 3);
    app.on_mouse(mouse(MouseEventKind::ScrollUp, 10, 10));
    assert_eq!(app.runs.cursor.selected, 0);
    press(&mut app, "?");
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 10, 10));
    assert_eq!(app.overlay_scroll.offset, 3);
    assert_eq!(app.mode, Mode::Help);
    // Clicks in an overlay do not reach the pane behind it.
    let before = app.runs.cursor;
    click(&mut app, (10, 12));
    assert_eq!(app.runs.cursor, before);
    assert_eq!(app.mode, Mode::Help);
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshot_command_completion() {
    snap("command_completion", || {
        let mut app = loaded(false);
        app.on_data(Data::Services(services()), t0());
        press(&mut app, ":service te");
        app.on_key(code(KeyCode::Tab));
        app.on_key(code(KeyCode::Tab));
        app
    });
}

#[test]
fn snapshot_help_scrolled() {
    snap("help_scrolled", || {
        let mut app = loaded(true);
        app.set_screen(80, 24);
        press(&mut app, "?");
        app.on_key(code(KeyCode::PageDown));
        app
    });
}

#[test]
fn snapshot_audit_detail_and_filter() {
    snap("audit_detail", || {
        let mut app = with_audit();
        app.on_key(code(KeyCode::Enter));
        app
    });
    snap("audit_filtered", || {
        let mut app = with_audit();
        press(&mut app, "/actor:bob");
        app
    });
}
