//! The run detail's log pager on a real store: the app's effects are answered by the loader's own
//! log reads (`log_window`, `log_search`), so what is tested is what the console does, minus the
//! terminal. Plus the detail's facts (durations, dates, retry chain, attempts, payload and error in
//! full) as snapshots at 80×24 and 160×48.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ospdeck::domain::run::{LogLevel, NewLogLine, Run, RunEvent, RunStatus};
use ospdeck::domain::workflow::WorkflowType;
use ospdeck::ops::{EnqueueRequest, Ops, RunDetail, RunLink, WorkflowRequest};
use ospdeck::tui::app::{App, Data, DetailTab, Effect, LOG_WINDOW, LogRequest, Pane};
use ospdeck::tui::keymap::Keymap;
use ospdeck::tui::view::{self, Theme};
use ospdeck::tui::{log_search, log_window};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Modifier;

use common::{BoxError, Harness};

conformance!(
    a_line_4000_lines_back_is_found_highlighted_and_reached_with_n,
    g_and_g_fill_the_screen_and_scrolling_fetches_by_keyset,
    paused_the_view_holds_still_and_following_sticks_to_the_end,
);

fn app() -> App {
    let keymap = Keymap::new(&BTreeMap::new(), false).unwrap_or_else(|e| panic!("{e}"));
    let mut app = App::new("sqlite://test".into(), "operator".into(), keymap, false);
    app.offset = FixedOffset::east_opt(0).unwrap_or_else(|| panic!("offset"));
    app.set_screen(80, 24);
    app
}

fn key(app: &mut App, c: char) -> Vec<Effect> {
    app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(app: &mut App, c: KeyCode) -> Vec<Effect> {
    app.on_key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn typed(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| key(app, c)).collect()
}

/// Answers the app's effects the way the loader does, until it asks for nothing more.
async fn settle(app: &mut App, ops: &Ops, effects: Vec<Effect>) -> Result<(), BoxError> {
    let mut queue = effects;
    let mut rounds = 0;
    while let Some(effect) = (!queue.is_empty()).then(|| queue.remove(0)) {
        rounds += 1;
        assert!(rounds < 100, "the pager keeps asking: {effect:?}");
        let data = match effect {
            Effect::OpenRun(id) => {
                let detail = ops.run_detail(id).await?;
                queue.extend(app.on_data(Data::Detail(Box::new(detail)), Utc::now()));
                Data::LogWindow(Box::new(log_window(ops, id, LogRequest::Tail).await?))
            }
            Effect::LoadLogs { run_id, request } => {
                Data::LogWindow(Box::new(log_window(ops, run_id, request).await?))
            }
            Effect::SearchLogs { run_id, text } => log_search(ops, run_id, text).await?,
            _ => continue,
        };
        queue.extend(app.on_data(data, Utc::now()));
    }
    Ok(())
}

/// A key, and the loads it asks for answered.
async fn press(app: &mut App, ops: &Ops, c: char) -> Result<(), BoxError> {
    let effects = key(app, c);
    settle(app, ops, effects).await
}

/// What the loader sends after a change: the line count and the newest id.
async fn refreshed(app: &mut App, ops: &Ops, run_id: i64) -> Result<(), BoxError> {
    let total = ops.count_run_logs(run_id, None).await?;
    let last_id = ops
        .run_logs_before(run_id, i64::MAX, 1)
        .await?
        .first()
        .map(|l| l.id);
    let effects = app.on_data(
        Data::LogCount {
            run_id,
            total,
            last_id,
        },
        Utc::now(),
    );
    settle(app, ops, effects).await
}

fn draw(app: &mut App) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap_or_else(|e| panic!("{e}"));
    terminal
        .draw(|f| view::render(f, app, Theme::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    terminal.backend().buffer().clone()
}

fn row_text(buffer: &Buffer, y: u16) -> String {
    (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol().to_owned())
        .collect()
}

fn screen_text(buffer: &Buffer) -> String {
    (0..buffer.area.height)
        .map(|y| row_text(buffer, y))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The row that starts with line number `number`, and whether `word` on it is highlighted.
fn highlighted_on_line(buffer: &Buffer, number: i64, word: &str) -> Option<bool> {
    let y = (0..buffer.area.height).find(|y| {
        row_text(buffer, *y)
            .trim_start()
            .starts_with(&format!("{number} "))
    })?;
    let text = row_text(buffer, y);
    let at = text.find(word)?;
    // The row is ASCII, so byte offsets are columns.
    Some((at..at + word.len()).all(|x| {
        buffer[(x as u16, y)]
            .style()
            .add_modifier
            .contains(Modifier::REVERSED)
    }))
}

fn line_text(k: usize) -> String {
    match k {
        1_000 => format!("step {k}: checksum mismatch in layer 7"),
        2_500 | 4_995 => format!("step {k}: checksum retried"),
        _ => format!("step {k}: copying layer {}", k % 13),
    }
}

async fn seed(ops: &Ops, lines: usize) -> Result<i64, BoxError> {
    ops.create_project("acme", Some("Acme")).await?;
    ops.create_workflow(&WorkflowRequest::new(
        "acme",
        "build",
        WorkflowType::Build,
        "true",
    ))
    .await?;
    let id = ops
        .enqueue_run(&EnqueueRequest {
            project: "acme",
            workflow: "build",
            ..Default::default()
        })
        .await?;
    append(ops, id, 1, lines).await?;
    Ok(id)
}

/// Lines `from..from+n` (1-based numbers), in batches as a worker writes them.
async fn append(ops: &Ops, id: i64, from: usize, n: usize) -> Result<(), BoxError> {
    let all: Vec<NewLogLine> = (from..from + n)
        .map(|k| NewLogLine::new(LogLevel::Info, &line_text(k), serde_json::json!({})))
        .collect();
    for batch in all.chunks(1_000) {
        ops.append_logs(id, batch).await?;
    }
    Ok(())
}

async fn opened(h: &Harness, lines: usize) -> Result<(App, i64), BoxError> {
    let id = seed(&h.ops, lines).await?;
    let mut app = app();
    key(&mut app, '4');
    let effects = typed(&mut app, &format!(":run {id}"));
    assert!(effects.is_empty());
    let effects = code(&mut app, KeyCode::Enter);
    assert_eq!(effects, vec![Effect::OpenRun(id)]);
    settle(&mut app, &h.ops, effects).await?;
    let effects = key(&mut app, 'l');
    settle(&mut app, &h.ops, effects).await?;
    Ok((app, id))
}

fn pager(app: &App) -> &ospdeck::tui::panes::runs::LogPager {
    &app.runs
        .detail
        .as_ref()
        .unwrap_or_else(|| panic!("no detail open"))
        .pager
}

/// The pager on a real store, on both backends.
mod cases {
    use super::*;
    use crate::common::TestResult;

    pub async fn a_line_4000_lines_back_is_found_highlighted_and_reached_with_n(
        h: Harness,
    ) -> TestResult {
        let (mut app, _) = opened(&h, 5_000).await?;
        let shown = screen_text(&draw(&mut app));
        assert!(
            shown.contains("lines 4 988-5 000 of 5 000"),
            "opens on the last screen:\n{shown}"
        );
        assert!(pager(&app).lines.len() <= LOG_WINDOW);

        // `/checksum`, Enter: the store finds all three; the first from here on is line 4 995.
        assert!(typed(&mut app, "/checksum").is_empty());
        let effects = code(&mut app, KeyCode::Enter);
        assert!(
            matches!(effects.as_slice(), [Effect::SearchLogs { text, .. }] if text == "checksum")
        );
        settle(&mut app, &h.ops, effects).await?;
        assert_eq!(pager(&app).match_label().as_deref(), Some("match 3 of 3"));
        let buffer = draw(&mut app);
        assert_eq!(highlighted_on_line(&buffer, 4_995, "checksum"), Some(true));

        // `n` wraps to the first match: line 1 000, 4 000 lines back, in its context.
        let effects = key(&mut app, 'n');
        assert!(
            app.message
                .as_ref()
                .is_some_and(|(_, m)| m.starts_with("match 1 of 3")),
            "{:?}",
            app.message
        );
        settle(&mut app, &h.ops, effects).await?;
        let buffer = draw(&mut app);
        let shown = screen_text(&buffer);
        assert_eq!(
            highlighted_on_line(&buffer, 1_000, "checksum"),
            Some(true),
            "line 1000 on screen, its match highlighted:\n{shown}"
        );
        assert!(shown.contains("mismatch in layer 7"));
        assert!(shown.contains("match 1 of 3"), "{shown}");
        // The lines around it are on screen too, not the match alone.
        let (from, to) = pager(&app).shown_range(13).unwrap_or_default();
        assert!(from < 1_000 && to > 1_000, "{from}-{to}");
        assert_eq!(highlighted_on_line(&buffer, 999, "step"), Some(false));

        // `n` again goes on to line 2 500, `N` back to 1 000.
        press(&mut app, &h.ops, 'n').await?;
        assert!(highlighted_on_line(&draw(&mut app), 2_500, "checksum") == Some(true));
        press(&mut app, &h.ops, 'N').await?;
        assert!(highlighted_on_line(&draw(&mut app), 1_000, "checksum") == Some(true));
        assert!(
            pager(&app).lines.len() <= LOG_WINDOW,
            "memory stays bounded"
        );

        // Esc clears the search; Esc again closes the run.
        assert!(code(&mut app, KeyCode::Esc).is_empty());
        assert!(pager(&app).search.is_none());
        assert_eq!(code(&mut app, KeyCode::Esc), vec![Effect::CloseRun]);
        Ok(())
    }

    pub async fn g_and_g_fill_the_screen_and_scrolling_fetches_by_keyset(h: Harness) -> TestResult {
        let (mut app, _) = opened(&h, 5_000).await?;
        press(&mut app, &h.ops, 'g').await?;
        assert_eq!(pager(&app).shown_range(13), Some((1, 13)));
        assert!(screen_text(&draw(&mut app)).contains("lines 1-13 of 5 000"));
        // Down through three windows' worth: the window moves along, never holding the whole log.
        for _ in 0..1_500 {
            let effects = key(&mut app, 'j');
            settle(&mut app, &h.ops, effects).await?;
        }
        assert_eq!(pager(&app).shown_range(13), Some((1_501, 1_513)));
        assert!(pager(&app).lines.len() <= LOG_WINDOW);
        assert!(screen_text(&draw(&mut app)).contains("1501 "));
        press(&mut app, &h.ops, 'G').await?;
        assert_eq!(pager(&app).shown_range(13), Some((4_988, 5_000)));
        // Page up from the end, then back to the top.
        let effects = code(&mut app, KeyCode::PageUp);
        settle(&mut app, &h.ops, effects).await?;
        assert_eq!(pager(&app).shown_range(13), Some((4_975, 4_987)));
        press(&mut app, &h.ops, 'g').await?;
        assert_eq!(pager(&app).shown_range(13), Some((1, 13)));
        Ok(())
    }

    pub async fn paused_the_view_holds_still_and_following_sticks_to_the_end(
        h: Harness,
    ) -> TestResult {
        let (mut app, id) = opened(&h, 3_000).await?;
        assert!(pager(&app).follow);
        // Up a few lines: no longer following.
        for _ in 0..40 {
            press(&mut app, &h.ops, 'k').await?;
        }
        assert!(!pager(&app).follow);
        let before = pager(&app).shown_range(13);
        append(&h.ops, id, 3_001, 150).await?;
        refreshed(&mut app, &h.ops, id).await?;
        assert_eq!(
            pager(&app).shown_range(13),
            before,
            "new lines moved the view"
        );
        assert_eq!(pager(&app).total, 3_150);
        assert!(screen_text(&draw(&mut app)).contains("of 3 150"));
        // `f`: to the end, and it stays there as lines arrive.
        press(&mut app, &h.ops, 'f').await?;
        assert!(pager(&app).follow);
        assert_eq!(pager(&app).shown_range(13), Some((3_138, 3_150)));
        append(&h.ops, id, 3_151, 1_000).await?;
        refreshed(&mut app, &h.ops, id).await?;
        assert_eq!(pager(&app).shown_range(13), Some((4_138, 4_150)));
        assert!(pager(&app).lines.len() <= LOG_WINDOW);
        // The wrap key toggles; long lines then take more than one row.
        key(&mut app, 'w');
        assert!(pager(&app).wrap);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The detail's facts, without a store.
// ---------------------------------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0)
        .single()
        .unwrap_or_default()
}

fn failed_twice() -> RunDetail {
    let created = t0() - Duration::days(1) - Duration::hours(2);
    let at = |mins: i64| created + Duration::minutes(mins);
    let event = |n: i64,
                 from: Option<RunStatus>,
                 to: RunStatus,
                 attempt: i32,
                 actor: &str,
                 msg: Option<&str>| {
        RunEvent {
            id: n,
            run_id: 41,
            event_type: "state_change".into(),
            from_status: from,
            to_status: Some(to),
            attempt,
            actor: actor.into(),
            message: msg.map(str::to_owned),
            created_at: at(n * 7),
        }
    };
    let error = "exit code 2: migration 0042_add_index failed: ERROR: could not create unique index \
                 \"users_email_key\" DETAIL: Key (email)=(ana@example.com) is duplicated. The \
                 transaction was rolled back; nothing was applied.";
    RunDetail {
        run: Run {
            id: 41,
            project_id: 1,
            project: "acme".into(),
            workflow_id: 1,
            workflow: "deploy".into(),
            queue: "deploy-tasks".into(),
            status: RunStatus::Failed,
            priority: 0,
            payload: serde_json::json!({
                "service": "billing",
                "version": "2.4.1",
                "migrations": ["0041_accounts", "0042_add_index"],
                "notes": "rolled out after the freeze; ask ana before retrying anything here"
            }),
            payload_error: None,
            attempt: 2,
            max_attempts: 3,
            worker_id: Some("worker-b".into()),
            lease_expires_at: None,
            run_after: created,
            cancel_requested: false,
            exit_code: Some(2),
            error: Some(error.into()),
            retry_of: Some(37),
            created_at: created,
            claimed_at: Some(at(35)),
            started_at: Some(at(42)),
            finished_at: Some(at(49)),
        },
        events: vec![
            event(
                0,
                None,
                RunStatus::Queued,
                0,
                "ana",
                Some("retry of run 37"),
            ),
            event(
                1,
                Some(RunStatus::Queued),
                RunStatus::Claimed,
                1,
                "worker-a",
                None,
            ),
            event(
                2,
                Some(RunStatus::Claimed),
                RunStatus::Running,
                1,
                "worker-a",
                None,
            ),
            event(
                3,
                Some(RunStatus::Running),
                RunStatus::Queued,
                1,
                "rescuer",
                Some("lease expired"),
            ),
            event(
                5,
                Some(RunStatus::Queued),
                RunStatus::Claimed,
                2,
                "worker-b",
                None,
            ),
            event(
                6,
                Some(RunStatus::Claimed),
                RunStatus::Running,
                2,
                "worker-b",
                None,
            ),
            event(
                7,
                Some(RunStatus::Running),
                RunStatus::Failed,
                2,
                "worker-b",
                Some(error),
            ),
        ],
        artifacts: Vec::new(),
        retried_by: vec![
            RunLink {
                id: 44,
                status: RunStatus::Failed,
            },
            RunLink {
                id: 45,
                status: RunStatus::Running,
            },
        ],
    }
}

fn detail_app(tab: char) -> App {
    let mut app = app();
    app.pane = Pane::Runs;
    let effects = typed(&mut app, ":run 41");
    assert!(effects.is_empty());
    code(&mut app, KeyCode::Enter);
    app.on_data(Data::Detail(Box::new(failed_twice())), t0());
    key(&mut app, tab);
    app
}

fn snap(name: &str, make: impl Fn() -> App) {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = make();
        app.set_screen(w, h);
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| panic!("{e}"));
        terminal
            .draw(|f| view::render(f, &app, Theme::default()))
            .unwrap_or_else(|e| panic!("{e}"));
        let text = screen_text(terminal.backend().buffer());
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

#[test]
fn the_detail_shows_durations_dates_the_retry_chain_and_both_payload_and_error() {
    let app = detail_app('e');
    let mut app = app;
    let text = screen_text(&draw(&mut app));
    // Yesterday's times carry their date; durations are wait, run and total.
    assert!(text.contains("created Nov 21 07:30:00"), "{text}");
    assert!(
        text.contains("wait 42m00s  ran 7m00s  total 49m00s"),
        "{text}"
    );
    assert!(
        text.contains("failed  retry of 37 · retried as 45 (running) +1 earlier"),
        "{text}"
    );
    assert!(text.contains("payload {"), "{text}");
    assert!(text.contains("error exit code 2: migration"), "{text}");
    assert!(
        text.contains("… (i)"),
        "a cut error says where to read it whole:\n{text}"
    );
    assert_eq!(
        app.runs.detail.as_ref().map(|d| d.tab),
        Some(DetailTab::Events)
    );
}

#[test]
fn snapshot_detail_facts() {
    snap("detail_facts", || detail_app('e'));
}

#[test]
fn snapshot_detail_attempts() {
    snap("detail_attempts", || detail_app('h'));
}

#[test]
fn snapshot_detail_payload_and_error_in_full() {
    snap("detail_payload", || detail_app('i'));
}

#[test]
fn open_durations_tick_while_a_run_waits_or_runs_and_stop_when_it_is_done() {
    let mut app = detail_app('e');
    // Finished: nothing in the detail changes by the clock.
    assert_eq!(
        app.runs
            .detail
            .as_ref()
            .and_then(|d| d.next_visible_change(t0())),
        None
    );
    let mut running = failed_twice();
    running.run.status = RunStatus::Running;
    running.run.finished_at = None;
    running.run.started_at = Some(t0() - Duration::seconds(90));
    app.on_data(Data::Detail(Box::new(running)), t0());
    app.set_clock(t0());
    // "running 1m30s" shows seconds: the next second changes it.
    assert_eq!(app.next_visible_change(), Some(t0() + Duration::seconds(1)));
    let text = screen_text(&draw(&mut app));
    assert!(text.contains("running 1m30s"), "{text}");
}

#[test]
fn the_detail_help_lists_the_pager_keys() {
    let mut app = detail_app('l');
    key(&mut app, '?');
    let text = screen_text(&draw(&mut app));
    for hint in [
        "next log match",
        "wrap long log lines",
        "whole log in $PAGER",
        "show attempts",
    ] {
        assert!(text.contains(hint), "{hint} missing:\n{text}");
    }
}

fn long_lines(run_id: i64, n: i64) -> Vec<ospdeck::domain::run::RunLog> {
    (1..=n)
        .map(|i| ospdeck::domain::run::RunLog {
            id: i,
            run_id,
            level: if i % 7 == 0 { LogLevel::Warn } else { LogLevel::Info },
            message: format!(
                "line {i}: applying migration {i:04}_accounts (batch {}), {} rows rewritten, indexes rebuilt online without locks",
                i % 3,
                i * 1_000
            ),
            metadata: serde_json::Value::Null,
            created_at: t0() - Duration::minutes(30) + Duration::seconds(i),
        })
        .collect()
}

#[test]
fn snapshot_detail_logs_wrapped() {
    snap("detail_logs_wrapped", || {
        let mut app = detail_app('l');
        app.on_data(Data::Logs(41, long_lines(41, 40)), t0());
        key(&mut app, 'w');
        app
    });
}

#[test]
fn wrapped_the_last_line_stays_on_screen_and_the_range_says_what_shows() {
    let mut app = detail_app('l');
    app.on_data(Data::Logs(41, long_lines(41, 40)), t0());
    key(&mut app, 'w');
    let text = screen_text(&draw(&mut app));
    assert!(text.contains("rebuilt online without locks"), "{text}");
    assert!(text.contains("line 40: applying"), "{text}");
    // Each line takes two rows at 80 columns: 6 of 13 rows' worth fit.
    assert!(text.contains("lines 35-40 of 40"), "{text}");
}

#[test]
fn g_in_a_short_tab_shows_its_end_not_an_empty_screen() {
    let mut app = detail_app('i');
    key(&mut app, 'G');
    let text = screen_text(&draw(&mut app));
    assert!(text.contains("nothing was applied"), "{text}");
    // Up from there moves at once (the scroll stops at the last screen, not beyond it).
    for _ in 0..4 {
        key(&mut app, 'k');
    }
    assert_ne!(screen_text(&draw(&mut app)), text);
    key(&mut app, 'g');
    let text = screen_text(&draw(&mut app));
    assert!(text.contains("\"service\": \"billing\""), "{text}");
}
