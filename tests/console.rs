//! The console without a terminal: keys → effects and state, and what each pane and dialog looks
//! like at 80×24 and 160×48 (insta snapshots of ratatui's TestBackend).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ospdeck::domain::deployment::{DeploymentStatus, Liveness, WorkerDeployment};
use ospdeck::domain::manifest::{Manifest, ManifestContent, ManifestHead, ManifestStatus};
use ospdeck::domain::run::{
    LogLevel, MinuteActivity, Run, RunArtifact, RunEvent, RunLog, RunStatus, StatusCount,
};
use ospdeck::domain::service::Service;
use ospdeck::domain::template::{StoredArtifact, TemplateVersion, VersionStatus};
use ospdeck::domain::worker::{QueueStat, WorkerPresence};
use ospdeck::ops::ServiceOverview;
use ospdeck::ops::VersionRow;
use ospdeck::ops::{QueueBoard, QueueOverview, RunDetail};

use ospdeck::tui::app::{App, Confirm, Data, DetailTab, Effect, LOG_WINDOW, Mode, Pane, RunsQuery};
use ospdeck::tui::keymap::Keymap;
use ospdeck::tui::view::{self, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

fn run(id: i64, workflow: &str, status: RunStatus) -> Run {
    let created = t0() - Duration::seconds(id * 97);
    let started = !matches!(status, RunStatus::Queued | RunStatus::Claimed);
    let held = !matches!(status, RunStatus::Queued);
    Run {
        id,
        project_id: 1,
        project: "acme".into(),
        workflow_id: 1,
        workflow: workflow.into(),
        queue: "default".into(),
        status,
        priority: (id % 3) as i32,
        payload: serde_json::json!({ "branch": "main" }),
        payload_error: None,
        attempt: i32::from(held),
        max_attempts: 3,
        worker_id: held.then(|| "worker-a".to_owned()),
        lease_expires_at: None,
        run_after: created,
        cancel_requested: false,
        exit_code: match status {
            RunStatus::Succeeded => Some(0),
            RunStatus::Failed => Some(2),
            _ => None,
        },
        error: (status == RunStatus::Failed).then(|| "exit code 2".to_owned()),
        retry_of: None,
        created_at: created,
        claimed_at: held.then_some(created + Duration::seconds(1)),
        started_at: started.then_some(created + Duration::seconds(2)),
        finished_at: status
            .is_terminal()
            .then_some(created + Duration::seconds(30)),
    }
}

fn fixture_runs() -> Vec<Run> {
    let statuses = [
        ("deploy", RunStatus::Queued),
        ("build", RunStatus::Queued),
        ("test", RunStatus::Claimed),
        ("deploy", RunStatus::Running),
        ("backup", RunStatus::Succeeded),
        ("test", RunStatus::Failed),
        ("upgrade", RunStatus::Canceled),
        ("build", RunStatus::Succeeded),
    ];
    statuses
        .iter()
        .enumerate()
        .map(|(i, (wf, s))| run(8 - i as i64, wf, *s))
        .collect()
}

fn overview() -> QueueOverview {
    let count = |status, count| StatusCount { status, count };
    QueueOverview {
        counts: vec![
            count(RunStatus::Queued, 2),
            count(RunStatus::Claimed, 1),
            count(RunStatus::Running, 1),
            count(RunStatus::Succeeded, 1_234_567),
            count(RunStatus::Failed, 12_345),
            count(RunStatus::Canceled, 1),
        ],
        activity: (0..60)
            .map(|m| MinuteActivity {
                minutes_ago: m,
                succeeded: (m * 7) % 13,
                failed: i64::from(m % 9 == 0),
            })
            .collect(),
    }
}

fn app_with(read_only: bool) -> App {
    let keymap = Keymap::new(&BTreeMap::new(), read_only).unwrap_or_else(|e| panic!("{e}"));
    let mut app = App::new(
        "sqlite:///srv/ospdeck/ospdeck.db".into(),
        "operator".into(),
        keymap,
        read_only,
    );
    app.offset = FixedOffset::east_opt(0).unwrap_or_else(|| panic!("offset"));
    app
}

fn presence(id: &str, queues: &[&str], concurrency: i32, beat: DateTime<Utc>) -> WorkerPresence {
    WorkerPresence {
        worker_id: id.into(),
        host: "ops-1".into(),
        pid: 4242,
        queues: queues.iter().map(|q| q.to_string()).collect(),
        concurrency,
        version: "0.1.0".into(),
        service: None,
        runs_held: 1,
        started_at: beat - Duration::minutes(42),
        heartbeat_at: beat,
    }
}

/// Two queues: `default` served by an alive worker, `backup` with work and nobody serving it.
fn board() -> QueueBoard {
    QueueBoard {
        queues: vec![
            QueueStat {
                queue: "backup".into(),
                queued: 3,
                oldest_due: Some(t0() - Duration::minutes(7)),
                failed_last_hour: 1,
                ..Default::default()
            },
            QueueStat {
                queue: "default".into(),
                queued: 2,
                claimed: 1,
                running: 1,
                oldest_due: Some(t0() - Duration::seconds(40)),
                succeeded_last_hour: 57,
                failed_last_hour: 3,
            },
        ],
        workers: vec![presence(
            "worker-a",
            &["default"],
            4,
            t0() - Duration::seconds(4),
        )],
        activity: overview().activity,
        deploys: vec![t0() - Duration::minutes(20)],
    }
}

/// The Runs pane with the fixture's runs, counts and workers.
fn loaded(read_only: bool) -> App {
    let mut app = app_with(read_only);
    app.on_data(Data::Runs(app.runs.query.clone(), fixture_runs()), t0());
    app.on_data(Data::Overview(overview()), t0());
    app.on_data(Data::Board(board()), t0());
    press(&mut app, "4");
    app
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

/// The effect the open confirmation would carry out.
fn asked(app: &App) -> Option<&Effect> {
    match &app.mode {
        Mode::Confirm(c) => Some(&c.effect),
        _ => None,
    }
}

fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    keys.chars().flat_map(|c| app.on_key(key(c))).collect()
}

fn detail_of(run: Run) -> RunDetail {
    let id = run.id;
    let at = run.created_at;
    let event = |n: i64, from: Option<RunStatus>, to: RunStatus| RunEvent {
        id: n,
        run_id: id,
        event_type: "state_change".into(),
        from_status: from,
        to_status: Some(to),
        attempt: i32::from(to != RunStatus::Queued),
        actor: if to == RunStatus::Queued {
            "operator"
        } else {
            "worker-a"
        }
        .into(),
        message: None,
        created_at: at + Duration::seconds(n),
    };
    RunDetail {
        events: vec![
            event(1, None, RunStatus::Queued),
            event(2, Some(RunStatus::Queued), RunStatus::Claimed),
            event(3, Some(RunStatus::Claimed), RunStatus::Running),
        ],
        artifacts: vec![RunArtifact {
            id: 1,
            run_id: id,
            key: "deploy/report.txt".into(),
            url: Some("s3://artifacts/report.txt".into()),
            sha256: Some("ab".repeat(32)),
            size_bytes: Some(2048),
            content_type: Some("text/plain".into()),
            expires_at: None,
            created_at: at,
        }],
        retried_by: Vec::new(),
        run,
    }
}

fn log_lines(run_id: i64, from: i64, n: i64) -> Vec<RunLog> {
    (from..from + n)
        .map(|i| RunLog {
            id: i,
            run_id,
            level: if i % 5 == 0 {
                LogLevel::Error
            } else {
                LogLevel::Info
            },
            message: format!("line {i}: rolling out replica {}", i % 4),
            metadata: serde_json::Value::Null,
            created_at: t0() + Duration::seconds(i),
        })
        .collect()
}

fn screen(app: &mut App, width: u16, height: u16) -> String {
    app.set_screen(width, height);
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| panic!("{e}"));
    terminal
        .draw(|f| view::render(f, app, Theme::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    terminal.backend().to_string()
}

/// Snapshots one state at both sizes.
fn snap(name: &str, make: impl Fn() -> App) {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = make();
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen(&mut app, w, h));
    }
}

// ---------------------------------------------------------------------------------------------
// Keys → effects → state
// ---------------------------------------------------------------------------------------------

#[test]
fn moving_is_clamped_to_the_list() {
    let mut app = loaded(false);
    press(&mut app, "kkk");
    assert_eq!(app.runs.cursor.selected, 0);
    press(&mut app, "jjj");
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(5));
    press(&mut app, "G");
    assert_eq!(app.runs.cursor.selected, 7);
    press(&mut app, "jj");
    assert_eq!(app.runs.cursor.selected, 7);
    press(&mut app, "g");
    assert_eq!(app.runs.cursor.selected, 0);
}

#[test]
fn marked_runs_are_canceled_together_after_confirmation() {
    let mut app = loaded(false);
    press(&mut app, " j "); // mark run 8, skip 7... space moves down: marks 8 and 6
    assert_eq!(
        app.runs.marked.iter().copied().collect::<Vec<_>>(),
        vec![6, 8]
    );
    assert!(press(&mut app, "x").is_empty());
    assert_eq!(
        app.mode,
        Mode::Confirm(Confirm::new(Effect::Cancel(vec![6, 8])))
    );
    assert_eq!(press(&mut app, "y"), vec![Effect::Cancel(vec![6, 8])]);
    assert!(app.runs.marked.is_empty());
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn a_confirmation_answered_no_does_nothing() {
    let mut app = loaded(false);
    // Run 8 is queued: the rules refuse it up front, nothing is asked.
    press(&mut app, "R");
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(
        app.message.as_ref().map(|m| m.1.as_str()),
        Some("run 8 is queued: only finished runs can be retried")
    );
    press(&mut app, "jjjjj"); // run 3, failed
    press(&mut app, "R");
    assert_eq!(
        app.mode,
        Mode::Confirm(Confirm::new(Effect::Retry(vec![3])))
    );
    assert!(press(&mut app, "n").is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m == "nothing done")
    );
}

#[test]
fn read_only_has_no_action_keys() {
    let mut app = loaded(true);
    assert!(press(&mut app, "xR").is_empty());
    assert_eq!(app.mode, Mode::Normal);
    // Reading still works.
    press(&mut app, "j");
    assert_eq!(app.runs.cursor.selected, 1);
}

#[test]
fn filter_and_status_reload_the_list() {
    let mut app = loaded(false);
    press(&mut app, "/");
    assert_eq!(app.mode, Mode::Filter(String::new()));
    // As the operator types: each filter that parses is asked for (the loader keeps the last),
    // over the newest runs only, so a key never waits on a scan of the whole store.
    let effects = press(&mut app, "depl");
    assert_eq!(effects.len(), 4);
    assert_eq!(
        effects.last(),
        Some(&Effect::LoadRuns(RunsQuery {
            status: None,
            text: "depl".into(),
            typed: true,
            ..RunsQuery::default()
        }))
    );
    // A term that does not parse yet is said on the filter line; the last good filter stays.
    // (`status` alone is a word until its colon comes.)
    let effects = press(&mut app, " status:z");
    assert_eq!(effects.len(), 6, "{effects:?}");
    assert!(
        app.filter_error
            .as_deref()
            .is_some_and(|e| e.starts_with("unknown status `z`")),
        "{:?}",
        app.filter_error
    );
    assert_eq!(app.runs.query.text, "depl status");
    // Enter on a bad filter keeps the line open; fixing it filters.
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    assert!(matches!(app.mode, Mode::Filter(_)));
    for _ in 0..9 {
        app.on_key(code(KeyCode::Backspace));
    }
    assert_eq!(app.filter_error, None);
    let shown = screen(&mut app, 80, 24);
    assert!(
        shown.contains("/depl in the newest 10000 · Enter searches all"),
        "{shown}"
    );
    // Enter asks the same filter over every run.
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::LoadRuns(RunsQuery {
            text: "depl".into(),
            ..RunsQuery::default()
        })]
    );
    assert_eq!(app.mode, Mode::Normal);
    let effects = press(&mut app, "s");
    assert_eq!(
        effects,
        vec![Effect::LoadRuns(RunsQuery {
            status: Some(RunStatus::Queued),
            text: "depl".into(),
            ..RunsQuery::default()
        })]
    );
    // Esc clears the whole filter.
    assert_eq!(
        app.on_key(code(KeyCode::Esc)),
        vec![Effect::LoadRuns(RunsQuery::default())]
    );
}

#[test]
fn the_command_line_filters_opens_and_names_mistakes() {
    let mut app = loaded(false);
    press(&mut app, ":runs failed");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::LoadRuns(RunsQuery {
            status: Some(RunStatus::Failed),
            text: String::new(),
            ..RunsQuery::default()
        })]
    );
    press(&mut app, ":run 5");
    assert_eq!(app.on_key(code(KeyCode::Enter)), vec![Effect::OpenRun(5)]);
    assert_eq!(app.runs.detail.as_ref().map(|d| d.run_id), Some(5));
    press(&mut app, ":runs sleeping");
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m.contains("unknown status `sleeping`"))
    );
    press(&mut app, ":q");
    app.on_key(code(KeyCode::Enter));
    assert!(app.quit);
}

#[test]
fn detail_opens_switches_tabs_and_closes() {
    let mut app = loaded(false);
    press(&mut app, "jjj");
    assert_eq!(app.on_key(code(KeyCode::Enter)), vec![Effect::OpenRun(5)]);
    press(&mut app, "l");
    assert_eq!(
        app.runs.detail.as_ref().map(|d| d.tab),
        Some(DetailTab::Logs)
    );
    press(&mut app, "a");
    assert_eq!(
        app.runs.detail.as_ref().map(|d| d.tab),
        Some(DetailTab::Artifacts)
    );
    // Cancel in the detail targets the open run.
    press(&mut app, "x");
    assert_eq!(
        app.mode,
        Mode::Confirm(Confirm::new(Effect::Cancel(vec![5])))
    );
    press(&mut app, "n");
    assert_eq!(app.on_key(code(KeyCode::Esc)), vec![Effect::CloseRun]);
    assert!(app.runs.detail.is_none());
}

#[test]
fn claim_start_and_complete_go_through_the_console_worker() {
    let mut app = loaded(false);
    // Every write asks first.
    assert!(press(&mut app, "c").is_empty());
    assert_eq!(press(&mut app, "y"), vec![Effect::Claim("default".into())]);
    press(&mut app, "S");
    assert_eq!(
        app.message.as_ref().map(|m| m.1.as_str()),
        Some("run 8 is queued: only a claimed run can be started")
    );
    press(&mut app, "jj");
    assert!(press(&mut app, "S").is_empty());
    assert_eq!(press(&mut app, "y"), vec![Effect::Start(6)]);
    assert!(press(&mut app, "C").is_empty());
    assert_eq!(
        app.mode,
        Mode::ExitCode {
            run_id: 6,
            text: "0".into()
        }
    );
    app.on_key(code(KeyCode::Backspace));
    press(&mut app, "3");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::Complete(6, 3)]
    );
    // A bad exit code is named, nothing is sent.
    press(&mut app, "C");
    press(&mut app, "x");
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m.contains("`0x` is not an exit code"))
    );
    // Read-only: none of them is even bound.
    let mut ro = loaded(true);
    assert!(press(&mut ro, "cSC").is_empty());
    assert_eq!(ro.mode, Mode::Normal);
    assert_eq!(
        ospdeck::tui::console_worker_id("ana.lima@corp"),
        "console-ana.limacorp"
    );
}

#[test]
fn log_search_asks_the_store_jumps_to_a_match_and_esc_clears_it() {
    let mut app = loaded(false);
    app.on_key(code(KeyCode::Enter));
    app.on_data(Data::Logs(8, log_lines(8, 1, 40)), t0());
    press(&mut app, "/");
    press(&mut app, "REPLICA 3");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::SearchLogs {
            run_id: 8,
            text: "REPLICA 3".into()
        }]
    );
    let ids: Vec<i64> = (1..=40).filter(|i| i % 4 == 3).collect();
    app.on_data(
        Data::LogMatches {
            run_id: 8,
            text: "REPLICA 3".into(),
            matches: ospdeck::domain::run::LogMatches { ids, total: 10 },
        },
        t0(),
    );
    let detail = app
        .runs
        .detail
        .as_ref()
        .unwrap_or_else(|| panic!("no detail"));
    assert_eq!(detail.tab, DetailTab::Logs);
    assert_eq!(detail.pager.current_match().map(|id| id % 4), Some(3));
    assert_eq!(
        detail
            .pager
            .match_label()
            .as_deref()
            .map(|l| l.starts_with("match ")),
        Some(true)
    );
    // Esc clears the search first, then closes the detail.
    assert!(app.on_key(code(KeyCode::Esc)).is_empty());
    assert!(
        app.runs
            .detail
            .as_ref()
            .is_some_and(|d| d.pager.search.is_none())
    );
    assert_eq!(app.on_key(code(KeyCode::Esc)), vec![Effect::CloseRun]);
}

#[test]
fn panes_switch_by_number_and_tab() {
    let mut app = loaded(false);
    press(&mut app, "1");
    assert_eq!(app.pane, Pane::Services);
    app.on_key(code(KeyCode::Tab));
    assert_eq!(app.pane, Pane::Manifests);
    app.on_key(code(KeyCode::BackTab));
    app.on_key(code(KeyCode::BackTab));
    assert_eq!(app.pane, Pane::Overview);
    assert_eq!(app.on_key(code(KeyCode::BackTab)), Vec::<Effect>::new());
    assert_eq!(app.pane, Pane::Runs, "shift-tab wraps around");
    assert_eq!(press(&mut app, "0"), vec![Effect::LoadBoard]);
    assert_eq!(app.pane, Pane::Overview);
    press(&mut app, "q");
    assert!(app.quit);
}

#[test]
fn the_selection_follows_its_run_when_new_runs_arrive() {
    let mut app = loaded(false);
    press(&mut app, "jj");
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(6));
    let mut runs = vec![
        run(10, "build", RunStatus::Queued),
        run(9, "test", RunStatus::Queued),
    ];
    runs.extend(fixture_runs());
    app.on_data(Data::Runs(app.runs.query.clone(), runs), t0());
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(6));
}

#[test]
fn logs_stay_bounded_however_chatty_the_run() {
    let mut app = loaded(false);
    app.on_key(code(KeyCode::Enter));
    for page in 0..5 {
        app.on_data(Data::Logs(8, log_lines(8, page * 1_000 + 1, 1_000)), t0());
    }
    let detail = app
        .runs
        .detail
        .as_ref()
        .unwrap_or_else(|| panic!("no detail"));
    assert_eq!(detail.pager.lines.len(), LOG_WINDOW);
    assert_eq!(detail.pager.lines.back().map(|l| l.id), Some(5_000));
    // Lines of another run are not mixed in.
    app.on_data(Data::Logs(7, log_lines(7, 1, 3)), t0());
    assert_eq!(
        app.runs.detail.as_ref().map(|d| d.pager.lines.len()),
        Some(LOG_WINDOW)
    );
}

// ---------------------------------------------------------------------------------------------
// Colour where it carries meaning: the status badges (snapshots do not see styles).
// ---------------------------------------------------------------------------------------------

#[test]
fn status_badges_are_coloured_unless_no_color() {
    let app = loaded(false);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap_or_else(|e| panic!("{e}"));
    for color in [true, false] {
        terminal
            .draw(|f| {
                view::render(
                    f,
                    &app,
                    Theme {
                        color,
                        ..Theme::default()
                    },
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let buffer = terminal.backend().buffer();
        let row_text = |y: u16| -> String {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect()
        };
        // The table row of run 3, the failed test: its STATUS cell starts at the "f" of failed.
        let y = (0..buffer.area.height)
            .find(|&y| row_text(y).contains("acme/test") && row_text(y).contains("failed"))
            .unwrap_or_else(|| panic!("no failed row"));
        let x = row_text(y)
            .char_indices()
            .find(|(_, c)| *c == 'f')
            .map(|(i, _)| row_text(y)[..i].chars().count() as u16)
            .unwrap_or_else(|| panic!("no status cell"));
        let style = buffer[(x, y)].style();
        if color {
            assert_eq!(style.fg, Some(Color::Red));
            assert!(style.add_modifier.contains(Modifier::BOLD));
        } else {
            assert!(matches!(style.fg, None | Some(Color::Reset)), "{style:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots of every pane and dialog
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshot_runs() {
    snap("runs", || loaded(false));
}

#[test]
fn snapshot_runs_marked_and_filtered() {
    snap("runs_marked_filtered", || {
        let mut app = loaded(false);
        press(&mut app, " j ");
        press(&mut app, "/dep");
        app.on_key(code(KeyCode::Enter));
        app
    });
}

#[test]
fn snapshot_monitor() {
    snap("monitor", || loaded(true));
}

#[test]
fn snapshot_empty_store() {
    snap("empty_store", || {
        let mut app = app_with(false);
        app.on_data(Data::Runs(app.runs.query.clone(), Vec::new()), t0());
        app
    });
}

#[test]
fn snapshot_no_match() {
    snap("no_match", || {
        let mut app = loaded(false);
        press(&mut app, "/nothing-like-this");
        app.on_key(code(KeyCode::Enter));
        app.on_data(Data::Runs(app.runs.query.clone(), Vec::new()), t0());
        app
    });
}

fn opened(tab: char) -> App {
    let mut app = loaded(false);
    press(&mut app, "jjjj"); // the running deploy
    app.on_key(code(KeyCode::Enter));
    let mut r = run(4, "deploy", RunStatus::Running);
    r.cancel_requested = true;
    app.on_data(Data::Detail(Box::new(detail_of(r))), t0());
    app.on_data(Data::Logs(4, log_lines(4, 1, 60)), t0());
    press(&mut app, &tab.to_string());
    app
}

#[test]
fn snapshot_detail_events() {
    snap("detail_events", || opened('e'));
}

#[test]
fn snapshot_detail_logs() {
    snap("detail_logs", || opened('l'));
}

#[test]
fn snapshot_detail_log_search() {
    snap("detail_log_search", || {
        let mut app = opened('l');
        press(&mut app, "/replica 2");
        app.on_key(code(KeyCode::Enter));
        app.on_data(
            Data::LogMatches {
                run_id: 4,
                text: "replica 2".into(),
                matches: ospdeck::domain::run::LogMatches {
                    ids: (1..=60).filter(|i| i % 4 == 2).collect(),
                    total: 15,
                },
            },
            t0(),
        );
        app
    });
}

#[test]
fn snapshot_exit_code_prompt() {
    snap("exit_code_prompt", || {
        let mut app = opened('e');
        press(&mut app, "C");
        app
    });
}

#[test]
fn snapshot_detail_artifacts() {
    snap("detail_artifacts", || opened('a'));
}

#[test]
fn snapshot_help() {
    snap("help", || {
        let mut app = loaded(false);
        press(&mut app, "?");
        app
    });
}

#[test]
fn snapshot_confirm_cancel() {
    snap("confirm_cancel", || {
        let mut app = loaded(false);
        press(&mut app, "  x");
        app
    });
}

#[test]
fn snapshot_command_line_and_error() {
    snap("command_line", || {
        let mut app = loaded(false);
        press(&mut app, ":runs fa");
        app
    });
    snap("error_message", || {
        let mut app = loaded(false);
        app.on_data(
            Data::Failed("run 3 already finished (succeeded); nothing to cancel".into()),
            t0(),
        );
        app
    });
}

#[test]
fn snapshot_other_panes() {
    for (key, name) in [
        ('1', "services_loading"),
        ('2', "manifests_unchosen"),
        ('3', "templates_loading"),
    ] {
        snap(&format!("pane_{name}"), || {
            let mut app = loaded(false);
            press(&mut app, &key.to_string());
            app
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Services and Manifests panes
// ---------------------------------------------------------------------------------------------

fn head(id: i64, service_id: i64, version: &str, status: ManifestStatus) -> ManifestHead {
    ManifestHead {
        id,
        service_id,
        version: version.into(),
        status,
        locked_fields: vec!["service_id".into(), "schema_name".into()],
        created_by: "operator".into(),
        created_at: t0() - Duration::hours(id),
    }
}

fn overview_of(
    id: i64,
    schema: &str,
    status: ManifestStatus,
    dep: DeploymentStatus,
    beat: Option<i64>,
) -> ServiceOverview {
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
        manifest: Some(head(id * 10, id, "1.0.0", status)),
        deployment: Some(WorkerDeployment {
            id,
            service_id: id,
            service_schema: schema.into(),
            manifest_id: Some(id * 10),
            manifest_path: None,
            status: dep,
            attempts: 1,
            logs: None,
            deployed_at: None,
            last_heartbeat: beat.map(|s| t0() - Duration::seconds(s)),
            worker_id: beat.map(|_| "billing-worker-1".to_owned()),
            worker_version: None,
            updated_at: t0(),
        }),
        worker: match beat {
            None => Liveness::Missing,
            Some(s) if s < 30 => Liveness::Alive,
            Some(_) => Liveness::Stale,
        },
    }
}

fn with_services() -> App {
    let mut app = loaded(false);
    app.on_data(
        Data::Services(vec![
            overview_of(
                1,
                "crm_sync",
                ManifestStatus::Active,
                DeploymentStatus::Pending,
                None,
            ),
            overview_of(
                2,
                "payments_gateway",
                ManifestStatus::Locked,
                DeploymentStatus::Failed,
                Some(600),
            ),
            overview_of(
                3,
                "telecom_billing",
                ManifestStatus::Active,
                DeploymentStatus::Deployed,
                Some(4),
            ),
        ]),
        t0(),
    );
    press(&mut app, "1");
    app
}

fn content() -> serde_json::Value {
    let wf = "processBilling:calculateCharges,sendInvoice"
        .parse()
        .map(|w| vec![w])
        .unwrap_or_default();
    ManifestContent::initial("Telecom Billing", "telecom_billing", &wf).to_value()
}

fn with_manifests() -> App {
    let mut app = with_services();
    press(&mut app, "G");
    assert_eq!(
        press(&mut app, "m"),
        vec![Effect::LoadManifests {
            schema: "telecom_billing".into(),
            version: None
        }]
    );
    let manifest = Manifest {
        id: 30,
        service_id: 3,
        service_name: "Telecom Billing".into(),
        version: "1.0.0".into(),
        status: ManifestStatus::Active,
        content: content(),
        locked_fields: vec!["service_id".into(), "schema_name".into()],
        created_by: "operator".into(),
        created_at: t0(),
        updated_at: t0(),
    };
    app.on_data(
        Data::Manifests {
            schema: "telecom_billing".into(),
            history: vec![
                head(30, 3, "1.0.0", ManifestStatus::Active),
                head(31, 3, "1.1.0", ManifestStatus::Draft),
            ],
            content: Some(Box::new(manifest)),
        },
        t0(),
    );
    app
}

#[test]
fn services_open_their_manifests_and_deploy_after_confirmation() {
    let mut app = with_services();
    assert_eq!(app.pane, Pane::Services);
    press(&mut app, "j");
    assert_eq!(
        app.services
            .selected_service()
            .map(|s| s.service.schema.as_str()),
        Some("payments_gateway")
    );
    assert!(press(&mut app, "d").is_empty());
    assert!(
        matches!(&app.mode, Mode::Confirm(c) if c.effect == Effect::Deploy("payments_gateway".into())
            && c.question.contains("manifest 1.0.0")),
        "{:?}",
        app.mode
    );
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Deploy("payments_gateway".into())]
    );
    let app = with_manifests();
    assert_eq!(app.pane, Pane::Manifests);
    assert_eq!(
        app.manifests.selected_version().map(|v| v.version.as_str()),
        Some("1.0.0")
    );
}

#[test]
fn manifests_activate_drafts_only_and_lock_after_confirmation() {
    let mut app = with_manifests();
    // The governing version is selected: activating it is refused in place.
    assert!(press(&mut app, "A").is_empty());
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m.contains("only a draft"))
    );
    press(&mut app, "j");
    press(&mut app, "A");
    assert_eq!(
        asked(&app),
        Some(&Effect::Activate {
            schema: "telecom_billing".into(),
            version: "1.1.0".into()
        })
    );
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Activate {
            schema: "telecom_billing".into(),
            version: "1.1.0".into()
        }]
    );
    assert_eq!(
        press(&mut app, "D"),
        vec![Effect::Diff {
            schema: "telecom_billing".into(),
            from: "1.0.0".into(),
            to: "1.1.0".into()
        }]
    );
    press(&mut app, "L");
    assert_eq!(
        app.mode,
        Mode::Confirm(Confirm::new(Effect::Lock("telecom_billing".into())))
    );
    press(&mut app, "n");
    // Read-only: none of these keys writes; `j` only loads the version it moves to.
    let mut ro = with_manifests();
    ro.read_only = true;
    ro.keymap = Keymap::new(&BTreeMap::new(), true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        press(&mut ro, "jALUpd"),
        vec![Effect::LoadManifests {
            schema: "telecom_billing".into(),
            version: Some("1.1.0".into())
        }]
    );
    assert_eq!(ro.mode, Mode::Normal);
}

#[test]
fn the_manifest_editor_validates_as_you_type_and_refuses_invalid_text() {
    let mut app = with_manifests();
    press(&mut app, "p");
    assert_eq!(app.mode, Mode::Editing);
    assert_eq!(
        app.manifests
            .editor
            .as_ref()
            .and_then(|e| e.problem.clone()),
        None
    );
    // Break the JSON: a stray character at the start.
    press(&mut app, "x");
    let problem = app
        .manifests
        .editor
        .as_ref()
        .and_then(|e| e.problem.clone());
    assert!(
        problem
            .as_deref()
            .is_some_and(|p| p.contains("invalid manifest")),
        "{problem:?}"
    );
    let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
    assert!(app.on_key(ctrl_s).is_empty());
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(_, m)| m.starts_with("not proposed"))
    );
    assert!(
        app.manifests.editor.is_some(),
        "the editor stays open with the text"
    );
    app.on_key(code(KeyCode::Backspace));
    assert!(app.on_key(ctrl_s).is_empty(), "Ctrl-S asks first");
    let effects = press(&mut app, "y");
    match effects.as_slice() {
        [Effect::Propose { schema, text, .. }] => {
            assert_eq!(schema, "telecom_billing");
            assert!(text.contains("\"service_schema\": \"telecom_billing\""));
        }
        other => panic!("{other:?}"),
    }
    assert!(app.manifests.editor.is_none());
}

#[test]
fn the_service_form_names_the_problem_and_creates_when_valid() {
    let mut app = with_services();
    press(&mut app, "n");
    assert_eq!(app.mode, Mode::Editing);
    let form = app
        .services
        .form
        .as_ref()
        .unwrap_or_else(|| panic!("no form"));
    assert_eq!((form.value(0).as_str(), form.focus), ("telecom", 1));
    press(&mut app, "Billing");
    app.on_key(code(KeyCode::Tab));
    press(&mut app, "Bad Schema");
    assert!(
        app.services
            .form
            .as_ref()
            .and_then(|f| f.problem.clone())
            .is_some_and(|p| p.contains("invalid schema"))
    );
    for _ in 0.."Bad Schema".len() {
        app.on_key(code(KeyCode::Backspace));
    }
    press(&mut app, "billing");
    app.on_key(code(KeyCode::Tab));
    press(&mut app, "processBilling:calc,send nightly");
    assert_eq!(
        app.services.form.as_ref().and_then(|f| f.problem.clone()),
        None
    );
    assert!(
        app.on_key(code(KeyCode::Enter)).is_empty(),
        "Enter asks first"
    );
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::CreateService {
            project: "telecom".into(),
            name: "Billing".into(),
            schema: "billing".into(),
            workflows: vec!["processBilling:calc,send".into(), "nightly:".into()],
        }]
    );
}

#[test]
fn snapshot_services_and_manifests() {
    snap("pane_services", with_services);
    snap("pane_manifests", with_manifests);
    snap("manifest_diff", || {
        let mut app = with_manifests();
        app.on_data(
            Data::Diff {
                from: "1.0.0".into(),
                to: "1.1.0".into(),
                changes: ospdeck::domain::manifest::diff(&content(), &{
                    let mut c = content();
                    c["description"] = serde_json::json!("adds auditing");
                    c["workflows"][0]["activities"][1] = serde_json::json!("sendReminder");
                    c
                }),
            },
            t0(),
        );
        app
    });
    snap("manifest_editor", || {
        let mut app = with_manifests();
        press(&mut app, "px");
        app
    });
    snap("service_form", || {
        let mut app = with_services();
        press(&mut app, "nBilling");
        app
    });
    snap("confirm_lock", || {
        let mut app = with_manifests();
        press(&mut app, "L");
        app
    });
    snap("help_manifests", || {
        let mut app = with_manifests();
        press(&mut app, "?");
        app
    });
}

// ---------------------------------------------------------------------------------------------
// Templates pane
// ---------------------------------------------------------------------------------------------

fn version_row(version: &str, status: VersionStatus, default: bool, labels: &[&str]) -> VersionRow {
    VersionRow {
        version: TemplateVersion {
            id: 1,
            template: "section7".into(),
            version: version.into(),
            status,
            digest: "d".repeat(64),
            changelog: None,
            deprecation: None,
            created_by: "operator".into(),
            created_at: t0(),
        },
        is_default: default,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

fn with_templates() -> App {
    let mut app = loaded(false);
    assert_eq!(press(&mut app, "3"), vec![Effect::LoadTemplates]);
    app.on_data(
        Data::Templates(vec![
            version_row("1.2.0", VersionStatus::Draft, false, &[]),
            version_row("1.1.0", VersionStatus::Stable, false, &["canary@20%"]),
            version_row("1.0.0", VersionStatus::Stable, true, &["stable"]),
        ]),
        t0(),
    );
    app
}

#[test]
fn template_versions_are_promoted_defaulted_and_labelled_after_confirmation() {
    let mut app = with_templates();
    assert_eq!(
        press(&mut app, "j"),
        vec![Effect::LoadTemplateArtifacts {
            template: "section7".into(),
            version: "1.1.0".into()
        }]
    );
    press(&mut app, "*");
    assert_eq!(
        asked(&app),
        Some(&Effect::MakeDefault {
            template: "section7".into(),
            version: "1.1.0".into()
        })
    );
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::MakeDefault {
            template: "section7".into(),
            version: "1.1.0".into()
        }]
    );
    press(&mut app, "t");
    press(&mut app, "canary 30");
    assert!(app.on_key(code(KeyCode::Enter)).is_empty());
    assert!(
        matches!(&app.mode, Mode::Confirm(c)
            if c.question == "Change canary of section7 1.1.0 from 20% to 30%?"),
        "{:?}",
        app.mode
    );
    assert_eq!(
        press(&mut app, "y"),
        vec![Effect::Label {
            template: "section7".into(),
            label: "canary".into(),
            version: "1.1.0".into(),
            percent: 30
        }]
    );
    press(&mut app, "k");
    press(&mut app, "P");
    assert_eq!(
        app.mode,
        Mode::Confirm(Confirm::new(Effect::Promote {
            template: "section7".into(),
            version: "1.2.0".into()
        }))
    );
    press(&mut app, "n");
    press(&mut app, "jX");
    assert_eq!(
        app.mode,
        Mode::Confirm(Confirm::new(Effect::Deprecate {
            template: "section7".into(),
            version: "1.1.0".into()
        }))
    );
}

#[test]
fn the_template_command_selects_that_template() {
    let mut app = loaded(false);
    press(&mut app, ":template other");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::LoadTemplates]
    );
    let mut other = version_row("2.0.0", VersionStatus::Stable, true, &[]);
    other.version.template = "other".into();
    app.on_data(
        Data::Templates(vec![
            version_row("1.0.0", VersionStatus::Stable, true, &[]),
            other,
        ]),
        t0(),
    );
    assert_eq!(app.pane, Pane::Templates);
    assert_eq!(
        app.templates
            .selected_template_version()
            .map(|r| r.version.template.as_str()),
        Some("other")
    );
}

#[test]
fn snapshot_templates() {
    snap("pane_templates", || {
        let mut app = with_templates();
        app.on_data(
            Data::TemplateArtifacts {
                template: "section7".into(),
                version: "1.2.0".into(),
                artifacts: vec![
                    StoredArtifact {
                        kind: "master_prompt".into(),
                        locale: Some("fr".into()),
                        role: Some("system".into()),
                        path: "fr/master.md".into(),
                        content_type: "text/markdown".into(),
                        sha256: "a".repeat(64),
                        size_bytes: 179,
                    },
                    StoredArtifact {
                        kind: "json_config".into(),
                        locale: None,
                        role: None,
                        path: "config.json".into(),
                        content_type: "application/json".into(),
                        sha256: "b".repeat(64),
                        size_bytes: 91,
                    },
                ],
            },
            t0(),
        );
        app
    });
    snap("label_prompt", || {
        let mut app = with_templates();
        press(&mut app, "jtcanary 25");
        app
    });
}

#[test]
fn the_audit_overlay_loads_on_command_and_closes_only_on_esc_q_or_help() {
    let mut app = loaded(false);
    press(&mut app, ":audit");
    assert_eq!(app.on_key(code(KeyCode::Enter)), vec![Effect::LoadAudit]);
    assert_eq!(app.mode, Mode::Audit);
    assert!(
        press(&mut app, "x").is_empty(),
        "a key in the overlay acts on nothing"
    );
    assert_eq!(app.mode, Mode::Audit, "nor closes it");
    press(&mut app, "q");
    assert_eq!(app.mode, Mode::Normal);
    assert!(!app.quit, "q closes the overlay, not the console");
}

#[test]
fn snapshot_audit() {
    snap("audit", || {
        let mut app = loaded(false);
        press(&mut app, ":audit");
        app.on_key(code(KeyCode::Enter));
        let row = |id: i64, action: &str, entity: &str, entity_id: &str| {
            ospdeck::domain::audit::AuditRow {
                id,
                actor: "operator".into(),
                action: action.into(),
                entity_type: entity.into(),
                entity_id: entity_id.into(),
                project_id: Some(1),
                before: None,
                after: None,
                at: t0() - Duration::minutes(id),
            }
        };
        app.on_data(
            Data::Audit(vec![
                row(1, "activate", "manifest", "telecom_billing@1.1.0"),
                row(2, "publish", "template", "section7@1.2.0"),
                row(3, "member", "membership", "alice"),
                row(4, "create", "service", "telecom_billing"),
            ]),
            t0(),
        );
        app
    });
}

// ---------------------------------------------------------------------------------------------
// Live truth: the clock, stable selection, errors said once
// ---------------------------------------------------------------------------------------------

/// Moves the app's clock to its next visible change, as the runtime's timer does.
fn tick(app: &mut App) -> Option<DateTime<Utc>> {
    let at = app.next_visible_change()?;
    assert!(at > app.now, "the next change is in the future");
    app.set_clock(at);
    Some(at)
}

#[test]
fn a_worker_that_stops_beating_turns_stale_then_missing_with_no_new_data() {
    let mut app = loaded(false);
    press(&mut app, "0");
    app.set_clock(t0());
    let first = screen(&mut app, 80, 24);
    assert!(first.contains("alive 4s"), "{first}");
    assert!(first.contains("workers 1"), "{first}");
    let mut seen = Vec::new();
    // No data arrives from here on: only the clock moves.
    for _ in 0..400 {
        if tick(&mut app).is_none() {
            break;
        }
        let text = screen(&mut app, 80, 24);
        for state in ["alive", "stale", "missing"] {
            // The worker's HEARTBEAT cell: the state, then its age ("stale 31s").
            let shown = (0..10).any(|d| text.contains(&format!("{state} {d}")));
            if shown && seen.last() != Some(&state) {
                seen.push(state);
            }
        }
        if app.now - t0() > Duration::minutes(3) {
            break;
        }
    }
    assert_eq!(seen, ["alive", "stale", "missing"]);
    let last = screen(&mut app, 80, 24);
    assert!(last.contains("workers 0"), "{last}");
    // With its only worker gone, `default` has work and nobody serving it either.
    assert!(last.contains("2 stalled"), "{last}");
}

#[test]
fn the_timer_is_due_exactly_when_the_screen_changes() {
    let mut app = loaded(false);
    app.set_clock(t0());
    let mut redraws = 0;
    for _ in 0..5 {
        let before = screen(&mut app, 80, 24);
        let at = app
            .next_visible_change()
            .unwrap_or_else(|| panic!("ages on screen"));
        // Just before the deadline nothing visible differs: a redraw then would be wasted.
        app.set_clock(at - Duration::milliseconds(1));
        assert_eq!(screen(&mut app, 80, 24), before);
        app.set_clock(at);
        assert_ne!(screen(&mut app, 80, 24), before, "a value changed at {at}");
        redraws += 1;
    }
    assert_eq!(redraws, 5);
    // The fixture's youngest run is 97 s old: ages move by the minute, so ticks are a minute apart.
    let at = app
        .next_visible_change()
        .unwrap_or_else(|| panic!("ages on screen"));
    assert!(at - app.now <= Duration::minutes(1));
    assert!(at - app.now > Duration::seconds(1));
    // A pane with nothing that ages needs no timer beyond the status bar's workers.
    let mut app = with_manifests();
    app.on_data(Data::Presence(Vec::new()), t0());
    app.set_clock(t0());
    assert_eq!(app.next_visible_change(), None);
}

#[test]
fn a_run_age_advances_with_the_clock() {
    let mut app = loaded(false);
    app.set_clock(t0());
    assert!(screen(&mut app, 80, 24).contains(" 1m "));
    app.set_clock(t0() + Duration::minutes(7));
    let later = screen(&mut app, 80, 24);
    assert!(later.contains(" 8m "), "{later}");
}

#[test]
fn the_manifest_selection_survives_twenty_refreshes() {
    let mut app = with_manifests();
    press(&mut app, "j");
    let chosen = app.manifests.selected_version().map(|v| v.version.clone());
    assert_eq!(chosen.as_deref(), Some("1.1.0"));
    for _ in 0..20 {
        app.on_data(
            Data::Manifests {
                schema: "telecom_billing".into(),
                history: vec![
                    head(30, 3, "1.0.0", ManifestStatus::Active),
                    head(31, 3, "1.1.0", ManifestStatus::Draft),
                ],
                content: None,
            },
            t0(),
        );
    }
    assert_eq!(
        app.manifests.selected_version().map(|v| v.version.clone()),
        chosen
    );
    assert_eq!(
        press(&mut app, "D"),
        vec![Effect::Diff {
            schema: "telecom_billing".into(),
            from: "1.0.0".into(),
            to: "1.1.0".into()
        }]
    );
}

#[test]
fn the_runs_cursor_stays_on_its_run_while_fifty_arrive() {
    let mut app = loaded(false);
    app.set_screen(80, 24);
    press(&mut app, "jj");
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(6));
    let line = app.runs.cursor.selected - app.runs.cursor.offset;
    let mut runs: Vec<Run> = (9..59)
        .rev()
        .map(|id| run(id, "build", RunStatus::Queued))
        .collect();
    runs.extend(fixture_runs());
    app.on_data(Data::Runs(app.runs.query.clone(), runs), t0());
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(6));
    assert_eq!(
        app.runs.cursor.selected - app.runs.cursor.offset,
        line,
        "the row did not slide"
    );
    assert_eq!(app.runs.new_above(), 50);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("▲ 50 new"), "{text}");
    // A space now marks the run under the cursor, not one that arrived.
    press(&mut app, " ");
    assert!(app.runs.marked.contains(&6));
    // At the top, the waiting runs come in and the list follows the newest again.
    press(&mut app, "g");
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(58));
    assert_eq!(app.runs.new_above(), 0);
    app.on_data(
        Data::Runs(
            app.runs.query.clone(),
            vec![run(59, "test", RunStatus::Queued)],
        ),
        t0(),
    );
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(59));
}

#[test]
fn pause_freezes_the_list_until_resumed() {
    let mut app = loaded(false);
    press(&mut app, "p");
    assert!(app.runs.paused);
    app.on_data(
        Data::Runs(
            app.runs.query.clone(),
            vec![run(99, "build", RunStatus::Queued)],
        ),
        t0(),
    );
    assert_eq!(app.runs.runs.len(), 8, "nothing moved while paused");
    assert!(screen(&mut app, 80, 24).contains("paused"));
    press(&mut app, "p");
    assert_eq!(app.runs.runs.iter().map(|r| r.id).collect::<Vec<_>>(), [99]);
}

#[test]
fn marks_survive_a_filter_change_and_the_question_counts_the_hidden() {
    let mut app = loaded(false);
    press(&mut app, " "); // marks 8
    press(&mut app, "s"); // status filter: queued
    app.on_data(
        Data::Runs(
            app.runs.query.clone(),
            vec![run(7, "build", RunStatus::Queued)],
        ),
        t0(),
    );
    assert!(app.runs.marked.contains(&8), "the mark outlived the filter");
    press(&mut app, "x");
    match &app.mode {
        Mode::Confirm(c) => {
            assert_eq!(c.effect, Effect::Cancel(vec![8]));
            assert!(c.question.contains("1 of them not shown"), "{}", c.question);
        }
        other => panic!("no confirmation: {other:?}"),
    }
}

#[test]
fn a_missing_run_is_said_once_and_the_view_returns() {
    let mut app = loaded(false);
    press(&mut app, ":");
    for c in "run 99999".chars() {
        app.on_key(key(c));
    }
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::OpenRun(99999)]
    );
    app.on_data(
        Data::Gone {
            what: ospdeck::tui::app::Gone::Run(99999),
            error: "run 99999: unknown run 99999".into(),
        },
        t0(),
    );
    assert!(app.runs.detail.is_none(), "back to the list");
    assert_eq!(app.context(), ospdeck::tui::keymap::Context::Runs);
    // Later refreshes do not say it again; a later action's message is not hidden by it.
    app.on_data(Data::Runs(app.runs.query.clone(), fixture_runs()), t0());
    app.on_data(Data::Done("canceled 8".into()), t0());
    assert_eq!(
        app.message,
        Some((ospdeck::tui::app::Level::Info, "canceled 8".into()))
    );
    let said = app
        .messages
        .iter()
        .filter(|m| m.text.contains("99999"))
        .count();
    assert_eq!(said, 1);
    // Every message stays readable in full in `:messages`.
    let long = format!("deploy failed: {}", "x".repeat(200));
    app.on_data(Data::Failed(long.clone()), t0());
    press(&mut app, ":");
    for c in "messages".chars() {
        app.on_key(key(c));
    }
    app.on_key(code(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Messages);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("deploy failed:"), "{text}");
    assert!(
        text.matches('x').count() >= 200,
        "the whole message, wrapped: {text}"
    );
}

#[test]
fn a_missing_service_returns_to_services() {
    let mut app = with_manifests();
    app.on_data(
        Data::Gone {
            what: ospdeck::tui::app::Gone::Service("telecom_billing".into()),
            error: "service telecom_billing: unknown service".into(),
        },
        t0(),
    );
    assert_eq!(app.pane, Pane::Services);
    assert!(app.manifests.service.is_none());
}

#[test]
fn overview_enter_opens_the_queue_runs() {
    let mut app = loaded(false);
    press(&mut app, "0");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::LoadRuns(RunsQuery {
            status: None,
            text: "queue:backup".into(),
            ..RunsQuery::default()
        })]
    );
    assert_eq!(app.pane, Pane::Runs);
}

#[test]
fn snapshot_overview() {
    snap("overview", || {
        let mut app = loaded(false);
        press(&mut app, "0");
        app
    });
    snap("overview_empty", || {
        let mut app = app_with(false);
        app.on_data(Data::Board(QueueBoard::default()), t0());
        app
    });
}

/// A queue of a million runs: its counts are shortened to fit their columns, never cut off into
/// another number (a six-wide column showed 1 000 000 as "100000").
#[test]
fn overview_counts_of_millions_are_shortened_not_cut() {
    let mut app = loaded(false);
    let mut big = board();
    big.queues[0].queued = 1_000_000;
    big.queues[1].succeeded_last_hour = 12_345_678;
    app.on_data(Data::Board(big), t0());
    press(&mut app, "0");
    for (w, h) in [(80, 24), (160, 48)] {
        let text = screen(&mut app, w, h);
        let backup = text
            .lines()
            .find(|l| l.contains("│backup "))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(backup.contains("1000k"), "{backup}");
        assert!(!backup.contains("100000"), "{backup}");
        let default = text
            .lines()
            .find(|l| l.contains("│default "))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(default.contains("12.3M"), "{default}");
    }
}

#[test]
fn g_and_shift_g_page_through_the_whole_store() {
    use ospdeck::domain::run::Page;
    use ospdeck::tui::app::RUN_PAGE;
    let mut app = loaded(false);
    let page = |from: i64| -> Vec<Run> {
        (0..RUN_PAGE)
            .map(|i| run(from - i, "build", RunStatus::Succeeded))
            .collect()
    };
    // A full first page: there may be older runs, so G asks for the oldest page.
    let newest = page(2_000);
    app.on_data(Data::Runs(app.runs.query.clone(), newest), t0());
    let effects = press(&mut app, "G");
    let oldest_query = RunsQuery {
        page: Page::Oldest,
        ..RunsQuery::default()
    };
    assert_eq!(effects, vec![Effect::LoadRuns(oldest_query.clone())]);
    // An answer to the old query that arrives late is dropped.
    app.on_data(Data::Runs(RunsQuery::default(), page(2_100)), t0());
    assert_eq!(app.runs.runs[0].id, 2_000);
    app.on_data(Data::Runs(oldest_query, page(RUN_PAGE)), t0());
    assert_eq!(
        app.runs.selected_run().map(|r| r.id),
        Some(1),
        "the oldest run"
    );
    // Back at the newest page from anywhere with g.
    assert_eq!(
        press(&mut app, "g"),
        vec![Effect::LoadRuns(RunsQuery::default())]
    );
}

#[test]
fn moving_past_a_page_edge_turns_the_page() {
    use ospdeck::domain::run::Page;
    use ospdeck::tui::app::RUN_PAGE;
    let mut app = loaded(false);
    let page = |from: i64, n: i64| -> Vec<Run> {
        (0..n)
            .map(|i| run(from - i, "build", RunStatus::Succeeded))
            .collect()
    };
    app.on_data(
        Data::Runs(app.runs.query.clone(), page(1_000, RUN_PAGE)),
        t0(),
    );
    press(&mut app, "g");
    // Down past the last row of a full page: the page just older, cursor on its first row.
    app.runs.cursor.selected = RUN_PAGE as usize - 1;
    let older = RunsQuery {
        page: Page::OlderThan(1_000 - RUN_PAGE + 1),
        ..RunsQuery::default()
    };
    assert_eq!(press(&mut app, "j"), vec![Effect::LoadRuns(older.clone())]);
    app.on_data(Data::Runs(older, page(500, RUN_PAGE)), t0());
    assert_eq!(
        (
            app.runs.cursor.selected,
            app.runs.selected_run().map(|r| r.id)
        ),
        (0, Some(500))
    );
    // Up past its first row: the runs just newer, cursor on the last of them.
    let newer = RunsQuery {
        page: Page::NewerThan(500),
        ..RunsQuery::default()
    };
    assert_eq!(press(&mut app, "k"), vec![Effect::LoadRuns(newer.clone())]);
    assert!(
        app.on_data(Data::Runs(newer, page(1_000, RUN_PAGE)), t0())
            .is_empty()
    );
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(501));
    // Once more: only three runs are newer than 1000, so this is the live head again, and
    // it is followed as such from now on.
    let head = RunsQuery {
        page: Page::NewerThan(1_000),
        ..RunsQuery::default()
    };
    app.runs.cursor.selected = 0;
    assert_eq!(press(&mut app, "k"), vec![Effect::LoadRuns(head.clone())]);
    let effects = app.on_data(Data::Runs(head, page(1_003, 3)), t0());
    assert_eq!(effects, vec![Effect::LoadRuns(RunsQuery::default())]);
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(1_001));
    app.on_data(
        Data::Runs(RunsQuery::default(), page(1_010, RUN_PAGE)),
        t0(),
    );
    assert_eq!(
        app.runs.selected_run().map(|r| r.id),
        Some(1_001),
        "the cursor stayed"
    );
    assert_eq!(
        app.runs.new_above(),
        7,
        "runs newer than the head seen wait behind the marker"
    );
}

#[test]
fn a_run_whose_lease_ran_out_says_so_in_the_list_and_the_detail() {
    let mut app = loaded(false);
    let mut held = run(30, "deploy", RunStatus::Running);
    held.worker_id = Some("ghost".into());
    held.lease_expires_at = Some(t0() + Duration::seconds(20));
    let mut runs = vec![held.clone()];
    runs.extend(fixture_runs());
    app.on_data(Data::Runs(app.runs.query.clone(), runs), t0());
    app.set_clock(t0());
    assert!(!screen(&mut app, 80, 24).contains("expired"));
    // The flip is on the clock: the next redraw is due when the lease runs out.
    let at = app
        .next_visible_change()
        .unwrap_or_else(|| panic!("a deadline"));
    assert!(at <= t0() + Duration::seconds(20));
    app.set_clock(t0() + Duration::seconds(21));
    assert!(screen(&mut app, 80, 24).contains("expired"));
    press(&mut app, "g");
    app.on_key(code(KeyCode::Enter));
    app.on_data(
        Data::Detail(Box::new(detail_of(held))),
        t0() + Duration::seconds(21),
    );
    let text = screen(&mut app, 160, 48);
    assert!(
        text.contains("lease expired 1s ago: ghost stopped renewing it"),
        "{text}"
    );
}

#[test]
fn paused_new_runs_are_counted_even_at_the_top() {
    let mut app = loaded(false);
    press(&mut app, "p");
    let mut runs = vec![run(10, "build", RunStatus::Queued)];
    runs.extend(fixture_runs());
    app.on_data(Data::Runs(app.runs.query.clone(), runs), t0());
    press(&mut app, "g");
    assert_eq!(app.runs.new_above(), 1);
    assert!(screen(&mut app, 80, 24).contains("▲ 1 new"));
}

#[test]
fn runs_command_replaces_the_whole_filter() {
    let mut app = loaded(false);
    press(&mut app, "/");
    press(&mut app, "backup");
    app.on_key(code(KeyCode::Enter));
    press(&mut app, ":runs failed");
    assert_eq!(
        app.on_key(code(KeyCode::Enter)),
        vec![Effect::LoadRuns(RunsQuery {
            status: Some(RunStatus::Failed),
            ..RunsQuery::default()
        })]
    );
}

#[test]
fn marks_stay_when_the_action_was_for_the_run_in_the_detail() {
    let mut app = loaded(false);
    press(&mut app, " "); // marks 8
    press(&mut app, ":run 3");
    app.on_key(code(KeyCode::Enter));
    press(&mut app, "R");
    assert_eq!(press(&mut app, "y"), vec![Effect::Retry(vec![3])]);
    assert!(app.runs.marked.contains(&8));
}

// ---------------------------------------------------------------------------------------------
// Triage: jumps and the way back, copying a field, writes refused up front
// ---------------------------------------------------------------------------------------------

#[test]
fn from_a_run_to_its_workflow_and_back_with_crumbs() {
    let mut app = loaded(false);
    press(&mut app, "jjjjj"); // run 3, acme/test, failed
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(3));
    let effects = press(&mut app, "l");
    assert_eq!(effects, vec![Effect::OpenRun(3)]);
    assert_eq!(
        app.runs.detail.as_ref().map(|d| d.tab),
        Some(DetailTab::Logs),
        "l opens the logs straight from the list"
    );
    app.on_data(
        Data::Detail(Box::new(detail_of(fixture_runs()[5].clone()))),
        t0(),
    );
    let effects = press(&mut app, "W");
    assert_eq!(
        effects,
        vec![Effect::LoadRuns(RunsQuery {
            text: "project:acme workflow:test".into(),
            ..RunsQuery::default()
        })]
    );
    assert_eq!(
        app.crumbs(),
        vec!["run 3", "Runs /project:acme workflow:test"]
    );
    let shown = screen(&mut app, 80, 24);
    assert!(
        shown
            .lines()
            .next()
            .is_some_and(|l| l.contains("run 3 › Runs /project:acme")),
        "{shown}"
    );
    // q at depth goes back, not out: to the run it came from.
    assert_eq!(
        press(&mut app, "q"),
        vec![Effect::LoadRuns(RunsQuery::default()), Effect::OpenRun(3)]
    );
    assert!(!app.quit);
    assert!(app.back.is_empty());
    assert_eq!(app.runs.detail.as_ref().map(|d| d.run_id), Some(3));
    // Out of the detail, then q quits.
    press(&mut app, "q");
    assert!(app.runs.detail.is_none() && !app.quit);
    press(&mut app, "q");
    assert!(app.quit);
}

#[test]
fn a_run_goes_to_its_service_and_its_retry_chain() {
    let mut app = loaded(false);
    let mut service_run = run(9, "billing.sync", RunStatus::Failed);
    service_run.retry_of = Some(3);
    let mut runs = fixture_runs();
    runs.insert(0, service_run);
    app.on_data(Data::Runs(app.runs.query.clone(), runs), t0());
    assert_eq!(app.runs.selected_run().map(|r| r.id), Some(9));
    let effects = press(&mut app, "v");
    assert_eq!(app.pane, Pane::Services);
    assert_eq!(effects, vec![Effect::OpenService("billing".into())]);
    assert_eq!(app.crumbs(), vec!["Runs", "service billing"]);
    app.on_key(code(KeyCode::Esc));
    assert_eq!(app.pane, Pane::Runs);
    // `[` opens the run it retries; from there `]` finds the retry among the loaded runs.
    assert_eq!(press(&mut app, "["), vec![Effect::OpenRun(3)]);
    app.on_data(
        Data::Detail(Box::new(detail_of(fixture_runs()[5].clone()))),
        t0(),
    );
    assert_eq!(press(&mut app, "]"), vec![Effect::OpenRun(9)]);
    // A run of no service says so.
    app.on_data(
        Data::Detail(Box::new(detail_of(run(9, "build", RunStatus::Failed)))),
        t0(),
    );
    press(&mut app, "v");
    assert_eq!(
        app.message.as_ref().map(|m| m.1.as_str()),
        Some("run 9 belongs to no service: build is not a service's workflow")
    );
}

#[test]
fn y_offers_the_run_fields_to_copy() {
    let mut app = loaded(false);
    app.copy_hint = Some("tmux hint".into());
    press(&mut app, "jjjjj"); // run 3, failed: it has an error
    assert!(press(&mut app, "y").is_empty());
    let shown = screen(&mut app, 80, 24);
    assert!(
        shown.contains("copy: i id · p payload · e error · w workflow · c command"),
        "{shown}"
    );
    assert_eq!(
        press(&mut app, "p"),
        vec![Effect::Copy(r#"{"branch":"main"}"#.into())]
    );
    assert_eq!(
        app.message.as_ref().map(|m| m.1.as_str()),
        Some("copied payload (17 bytes); tmux hint")
    );
    press(&mut app, "y");
    assert_eq!(
        press(&mut app, "e"),
        vec![Effect::Copy("exit code 2".into())]
    );
    assert_eq!(
        app.message.as_ref().map(|m| m.1.as_str()),
        Some("copied error (11 bytes)"),
        "the tmux hint is said once"
    );
    press(&mut app, "y");
    assert!(
        press(&mut app, "z").is_empty(),
        "another key copies nothing"
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn bulk_actions_leave_out_what_the_rules_forbid() {
    let mut app = loaded(false);
    // Marks: 8 (queued), 4 (succeeded), 3 (failed).
    press(&mut app, " ");
    press(&mut app, "jjj ");
    press(&mut app, " ");
    assert_eq!(
        app.runs.marked.iter().copied().collect::<Vec<_>>(),
        vec![3, 4, 8]
    );
    press(&mut app, "x");
    let Mode::Confirm(confirm) = app.mode.clone() else {
        panic!("asks: {:?}", app.mode)
    };
    assert_eq!(confirm.effect, Effect::Cancel(vec![8]));
    assert!(
        confirm
            .question
            .contains("2 marked run(s) left out: only queued, claimed or running"),
        "{}",
        confirm.question
    );
    press(&mut app, "n");
    press(&mut app, "R");
    let Mode::Confirm(confirm) = app.mode.clone() else {
        panic!("asks: {:?}", app.mode)
    };
    assert_eq!(confirm.effect, Effect::Retry(vec![3, 4]));
}

#[test]
fn durations_show_in_the_list_and_tick_with_the_clock() {
    let mut app = loaded(false);
    let shown = screen(&mut app, 80, 24);
    // Queued runs wait, held ones run, finished ones took.
    for text in ["wait 12m", "run 9m", "took 28s"] {
        assert!(shown.contains(text), "{text} in {shown}");
    }
    app.set_clock(t0() + Duration::minutes(2));
    let shown = screen(&mut app, 80, 24);
    assert!(
        shown.contains("wait 14m") && shown.contains("run 11m"),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Filter as you type and sort, in every list
// ---------------------------------------------------------------------------------------------

fn filter(app: &mut App, text: &str) {
    press(app, "/");
    press(app, text);
}

#[test]
fn services_filter_as_you_type_sort_naturally_and_esc_undoes() {
    let mut app = with_services();
    filter(&mut app, "pay");
    // No round trip: the loaded list narrows at each key.
    assert_eq!(
        app.services
            .list
            .shown()
            .map(|s| s.service.schema.as_str())
            .collect::<Vec<_>>(),
        vec!["payments_gateway"]
    );
    let shown = screen(&mut app, 80, 24);
    assert!(shown.contains("Services (1 of 3 /pay)"), "{shown}");
    // Terms: the worker's deployment status, a heartbeat older than a minute.
    app.on_key(code(KeyCode::Esc));
    assert_eq!(
        app.services.list.len(),
        3,
        "Esc puts back the filter from before /"
    );
    filter(&mut app, "worker:deployed,failed beat:>1m");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.services
            .list
            .shown()
            .map(|s| s.service.schema.as_str())
            .collect::<Vec<_>>(),
        vec!["payments_gateway"]
    );
    assert_eq!(app.mode, Mode::Normal, "Enter keeps the filter");
    // A term that does not parse says so and keeps the list as it was.
    filter(&mut app, " colour:red");
    assert!(
        app.filter_error
            .as_deref()
            .is_some_and(|e| e.starts_with("unknown field `colour`: filter on schema")),
        "{:?}",
        app.filter_error
    );
    // (While its name was typed, `colour` was a word; the filter applied is the last that parsed.)
    assert!(!app.services.list.filter_text().contains("red"));
    let shown = screen(&mut app, 80, 24);
    assert!(shown.contains("unknown field `colour`"), "{shown}");
}

#[test]
fn every_list_sorts_by_a_column_and_sort_names_it() {
    let mut app = with_services();
    let order = |app: &App| {
        app.services
            .list
            .shown()
            .map(|s| s.service.schema.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        order(&app),
        ["crm_sync", "payments_gateway", "telecom_billing"]
    );
    press(&mut app, ":sort schema desc");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        order(&app),
        ["telecom_billing", "payments_gateway", "crm_sync"]
    );
    press(&mut app, ":sort colour");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.message.as_ref().map(|m| m.1.as_str()),
        Some("no column `colour` here: sort by schema, name, project, manifest, beat")
    );
    // o cycles the columns and says which; O turns the order around.
    press(&mut app, "o");
    assert_eq!(
        app.message.as_ref().map(|m| m.1.as_str()),
        Some("services sorted by name↑")
    );
    // Templates: versions in natural order (1.10.0 after 1.9.0), filtered by label.
    let mut app = with_templates();
    filter(&mut app, "label:canary");
    app.on_key(code(KeyCode::Enter));
    assert_eq!(
        app.templates
            .list
            .shown()
            .map(|r| r.version.version.as_str())
            .collect::<Vec<_>>(),
        vec!["1.1.0"]
    );
    // Manifests: the versions of one service, by status.
    let mut app = with_manifests();
    filter(&mut app, "status:draft");
    assert_eq!(
        app.manifests
            .list
            .shown()
            .map(|m| m.version.as_str())
            .collect::<Vec<_>>(),
        vec!["1.1.0"]
    );
    assert_eq!(
        app.manifests.history().len(),
        2,
        "the rules still see every version"
    );
    // The Overview's workers.
    let mut app = loaded(false);
    press(&mut app, "0");
    filter(&mut app, "worker:nobody");
    app.on_key(code(KeyCode::Enter));
    assert!(app.overview.workers.is_empty());
    let shown = screen(&mut app, 80, 24);
    assert!(shown.contains("Workers (0 of 1 /worker:nobody)"), "{shown}");
    // The run list is the store's order.
    press(&mut app, "4");
    press(&mut app, ":sort age");
    app.on_key(code(KeyCode::Enter));
    assert!(
        app.message
            .as_ref()
            .is_some_and(|m| m.1.starts_with("the run list stays newest first")),
        "{:?}",
        app.message
    );
}

#[test]
fn y_copies_the_focused_field_of_every_pane() {
    // A manifest, as JSON to paste.
    let mut app = with_manifests();
    press(&mut app, "y");
    let effects = press(&mut app, "m");
    assert!(
        matches!(effects.as_slice(), [Effect::Copy(text)] if text.contains(r#""schema_name": "telecom_billing""#)),
        "{effects:?}"
    );
    // A service's schema.
    let mut app = with_services();
    press(&mut app, "y");
    assert_eq!(press(&mut app, "s"), vec![Effect::Copy("crm_sync".into())]);
    // A template version.
    let mut app = with_templates();
    press(&mut app, "y");
    assert_eq!(
        press(&mut app, "v"),
        vec![Effect::Copy("section7@1.2.0".into())]
    );
    // In a run's logs, the line on screen (here the first: no search).
    let mut app = opened('l');
    press(&mut app, "y");
    let Mode::Copy(choices) = app.mode.clone() else {
        panic!("{:?}", app.mode)
    };
    assert!(
        choices
            .iter()
            .any(|c| c.key == 'l' && c.label == "log line"),
        "{choices:?}"
    );
}
