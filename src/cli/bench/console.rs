//! `ospdeck bench console`: the console against a large store. Time to first frame, refresh
//! query time, frame render time, peak memory, and what an idle console writes to its terminal.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::{Figure, bench_workflow, counter, figures_table, p50_p99, spinner};
use crate::cli::output::Unit;
use crate::cli::{Cli, CliError, CliResult, open_store, resolve_config};
use crate::domain::run::{ClaimedRun, Completion, Hold, NewRun};
use crate::ops::{Ops, RunQuery};
use crate::store::StoreOptions;
use crate::tui::app::{App, Data, Effect, RUN_PAGE, TYPED_SCAN};
use crate::tui::keymap::Keymap;
use crate::tui::view::{self, Theme};
use indicatif::ProgressBar;

#[derive(Debug, Clone, Args)]
pub struct ConsoleBenchArgs {
    /// Runs to add to the store before measuring (most finished, some queued)
    #[arg(long, default_value_t = 100_000)]
    pub runs: usize,
    /// Services to add (each with its manifest, workflows and registry entry)
    #[arg(long, default_value_t = 1_000)]
    pub services: usize,
    /// Template versions to publish (small bundles)
    #[arg(long, default_value_t = 200)]
    pub template_versions: usize,
    /// Frames to render for the render-time figures
    #[arg(long, default_value_t = 300)]
    pub frames: usize,
    /// Refreshes (run page + counts + activity) for the query-time figures
    #[arg(long, default_value_t = 50)]
    pub refreshes: usize,
    /// Seconds to leave the console idle (80×24, the run list with its ages on screen) while
    /// counting the bytes it writes
    #[arg(long, default_value_t = 60)]
    pub idle_secs: u64,
    /// Log lines of the run whose log is searched
    #[arg(long, default_value_t = 100_000)]
    pub log_lines: usize,
    /// Log searches for the search-time figures
    #[arg(long, default_value_t = 40)]
    pub log_searches: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    runs_added: usize,
    screen: &'static str,
    time_to_first_frame_ms: f64,
    refresh_p50_ms: f64,
    refresh_p99_ms: f64,
    overview_p50_ms: f64,
    overview_p99_ms: f64,
    board_p50_ms: f64,
    board_p99_ms: f64,
    services_added: usize,
    services_refresh_p50_ms: f64,
    services_refresh_p99_ms: f64,
    services_render_p50_ms: f64,
    services_render_p99_ms: f64,
    template_versions_added: usize,
    templates_refresh_p50_ms: f64,
    templates_refresh_p99_ms: f64,
    templates_render_p50_ms: f64,
    templates_render_p99_ms: f64,
    render_p50_ms: f64,
    render_p99_ms: f64,
    peak_rss_mib: Option<f64>,
    idle_secs: u64,
    idle_bytes_written: u64,
    idle_bytes_per_minute: f64,
    /// Frames the idle console drew (input, data or the clock); most write nothing.
    idle_frames: u64,
    /// Written after one run changed state (a cancel), once the console caught up.
    bytes_for_one_change: u64,
    /// A keystroke on the run list's filter line to the screen redrawn with its answer (each
    /// keystroke on its own; the console's loader would skip the ones typed faster than that).
    filter_keystrokes: usize,
    filter_key_p50_ms: f64,
    filter_key_p99_ms: f64,
    /// The same for a filter nothing matches, which the store must scan every run to answer.
    filter_no_match_p50_ms: f64,
    filter_no_match_p99_ms: f64,
    /// Enter after typing: the same filter over every run of the store.
    filter_enter_ms: f64,
    filter_no_match_enter_ms: f64,
    log_lines: usize,
    /// The server-side search: matching ids (up to the cap) and their count, in the app.
    log_search_p50_ms: f64,
    log_search_p99_ms: f64,
    /// Enter to the first match's lines on screen: the search plus the window around the match.
    log_search_to_match_p50_ms: f64,
    log_search_to_match_p99_ms: f64,
}

/// Typed into the run list's filter line, a key at a time.
const FILTER_TYPED: &str = "status:failed workflow:bench-console";
const FILTER_NO_MATCH: &str = "error:no-such-error";

const WIDTH: u16 = 160;
const HEIGHT: u16 = 48;

pub async fn console(cli: &Cli, args: &ConsoleBenchArgs) -> CliResult {
    let resolved = resolve_config(cli)?;
    let store = open_store(&resolved, &StoreOptions::default(), true).await?;
    let ops = Ops::connect_as(store.clone(), cli.as_user.as_deref()).await?;
    let show = !cli.json && std::io::stderr().is_terminal();

    let bar = counter(show, "adding runs", args.runs, Unit::Items("runs"));
    seed(&ops, args.runs, &bar).await?;
    bar.finish_and_clear();
    let bar = counter(
        show,
        "adding services",
        args.services,
        Unit::Items("services"),
    );
    seed_services(&ops, args.services, &bar).await?;
    bar.finish_and_clear();
    let bar = counter(
        show,
        "publishing template versions",
        args.template_versions,
        Unit::Items("versions"),
    );
    let bundles = tempfile::tempdir().map_err(|e| CliError::failed(e.to_string()))?;
    seed_templates(&ops, bundles.path(), args.template_versions, &bar).await?;
    bar.finish_and_clear();
    let bar = spinner(
        show,
        &format!("adding a run with {} log lines", args.log_lines),
    );
    let log_run = super::logs::seed_log_run(&ops, args.log_lines).await?;
    bar.finish_and_clear();
    // From here on only what the console itself holds: its own connections, as it opens them.
    let location = store.location();
    drop(ops);
    drop(store);
    reset_peak_rss();

    // Time to first frame, as the console gets there: a fresh connection, the first page of runs
    // (the loader sends it before the counts), one frame drawn.
    let bar = counter(
        show,
        "first frame, refreshes, frames, searches",
        4 * args.refreshes + 3 * args.frames + args.log_searches,
        Unit::Items("steps"),
    );
    let t = Instant::now();
    let fresh = open_store(
        &resolved,
        &super::super::console::store_options(false),
        true,
    )
    .await?;
    let fresh_ops = Ops::connect_as(fresh, cli.as_user.as_deref()).await?;
    let mut app = new_app(&fresh_ops)?;
    let page = fresh_ops
        .list_runs(&RunQuery {
            limit: Some(RUN_PAGE),
            ..Default::default()
        })
        .await?;
    app.on_data(Data::Runs(app.runs.query.clone(), page), Utc::now());
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT))
        .map_err(|e| CliError::failed(e.to_string()))?;
    draw(&mut terminal, &mut app)?;
    let first_frame = t.elapsed();
    app.on_data(
        Data::Overview(fresh_ops.queue_overview().await?),
        Utc::now(),
    );

    let mut refresh_ms = Vec::with_capacity(args.refreshes);
    for _ in 0..args.refreshes {
        let t = Instant::now();
        refresh(&fresh_ops, &mut app).await?;
        refresh_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    let mut services_ms = Vec::with_capacity(args.refreshes);
    for _ in 0..args.refreshes {
        let t = Instant::now();
        let services = fresh_ops.list_services().await?;
        app.on_data(Data::Services(services), Utc::now());
        services_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    let mut services_render_ms = Vec::with_capacity(args.frames);
    app.on_key(key('1'));
    for _ in 0..args.frames {
        app.on_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Down,
        ));
        let t = Instant::now();
        draw(&mut terminal, &mut app)?;
        services_render_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    let mut templates_ms = Vec::with_capacity(args.refreshes);
    for _ in 0..args.refreshes {
        let t = Instant::now();
        let rows = fresh_ops.version_rows().await?;
        app.on_data(Data::Templates(rows), Utc::now());
        templates_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    app.on_key(key('3'));
    let mut templates_render_ms = Vec::with_capacity(args.frames);
    for _ in 0..args.frames {
        app.on_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Down,
        ));
        let t = Instant::now();
        draw(&mut terminal, &mut app)?;
        templates_render_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    app.on_key(key('4'));
    let mut activity_ms = Vec::with_capacity(args.refreshes);
    for _ in 0..args.refreshes {
        let t = Instant::now();
        fresh_ops.queue_overview().await?;
        activity_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    let mut board_ms = Vec::with_capacity(args.refreshes);
    for _ in 0..args.refreshes {
        let t = Instant::now();
        let board = fresh_ops.queue_board().await?;
        app.on_data(Data::Board(board), Utc::now());
        board_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    // Each frame moves the selection, so every draw has a real diff to compute and write.
    let mut render_ms = Vec::with_capacity(args.frames);
    let down = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Down);
    let top = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Home);
    for i in 0..args.frames {
        app.on_key(if i % 100 == 99 { top } else { down });
        let t = Instant::now();
        draw(&mut terminal, &mut app)?;
        render_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    let (mut filter_ms, filter_enter_ms) =
        type_filter(&fresh_ops, &mut app, &mut terminal, FILTER_TYPED).await?;
    let (mut no_match_ms, no_match_enter_ms) =
        type_filter(&fresh_ops, &mut app, &mut terminal, FILTER_NO_MATCH).await?;
    let search_ms =
        super::logs::search_times(&fresh_ops, &mut app, log_run, args.log_searches).await?;
    bar.inc(args.log_searches as u64);
    bar.finish_and_clear();

    let bar = spinner(show, &format!("idle console for {} s", args.idle_secs));
    let idle = idle_bytes(&fresh_ops, args.idle_secs).await?;
    bar.finish_and_clear();

    let filter_keystrokes = filter_ms.len();
    let (filter_p50, filter_p99) = p50_p99(&mut filter_ms);
    let (no_match_p50, no_match_p99) = p50_p99(&mut no_match_ms);
    let log_search = super::logs::figures(search_ms.0);
    let log_to_match = super::logs::figures(search_ms.1);
    let (refresh_p50, refresh_p99) = p50_p99(&mut refresh_ms);
    let (render_p50, render_p99) = p50_p99(&mut render_ms);
    let (overview_p50, overview_p99) = p50_p99(&mut activity_ms);
    let (board_p50, board_p99) = p50_p99(&mut board_ms);
    let (services_p50, services_p99) = p50_p99(&mut services_ms);
    let (services_render_p50, services_render_p99) = p50_p99(&mut services_render_ms);
    let (templates_p50, templates_p99) = p50_p99(&mut templates_ms);
    let (templates_render_p50, templates_render_p99) = p50_p99(&mut templates_render_ms);
    let report = Report {
        store: location,
        runs_added: args.runs,
        screen: "160x48",
        time_to_first_frame_ms: first_frame.as_secs_f64() * 1e3,
        refresh_p50_ms: refresh_p50,
        refresh_p99_ms: refresh_p99,
        overview_p50_ms: overview_p50,
        overview_p99_ms: overview_p99,
        board_p50_ms: board_p50,
        board_p99_ms: board_p99,
        services_added: args.services,
        services_refresh_p50_ms: services_p50,
        services_refresh_p99_ms: services_p99,
        services_render_p50_ms: services_render_p50,
        services_render_p99_ms: services_render_p99,
        template_versions_added: args.template_versions,
        templates_refresh_p50_ms: templates_p50,
        templates_refresh_p99_ms: templates_p99,
        templates_render_p50_ms: templates_render_p50,
        templates_render_p99_ms: templates_render_p99,
        render_p50_ms: render_p50,
        render_p99_ms: render_p99,
        peak_rss_mib: peak_rss_mib(),
        idle_secs: args.idle_secs,
        idle_bytes_written: idle.bytes,
        idle_bytes_per_minute: idle.bytes as f64 * 60.0 / args.idle_secs.max(1) as f64,
        idle_frames: idle.frames,
        bytes_for_one_change: idle.change_bytes,
        filter_keystrokes,
        filter_key_p50_ms: filter_p50,
        filter_key_p99_ms: filter_p99,
        filter_no_match_p50_ms: no_match_p50,
        filter_no_match_p99_ms: no_match_p99,
        filter_enter_ms,
        filter_no_match_enter_ms: no_match_enter_ms,
        log_lines: args.log_lines,
        log_search_p50_ms: log_search.0,
        log_search_p99_ms: log_search.1,
        log_search_to_match_p50_ms: log_to_match.0,
        log_search_to_match_p99_ms: log_to_match.1,
    };
    crate::cli::emit_report(cli.json, &report, || render(&report));
    Ok(())
}

/// The console's aims: first frame ≤ 100 ms, a refresh and the Overview's queries p99 ≤ 20 ms, a
/// frame p99 ≤ 4 ms, a filter keystroke p99 ≤ 50 ms, peak RSS ≤ 40 MiB, an idle console ≤ 1 KiB a
/// minute, a log search p99 ≤ 100 ms.
fn render(r: &Report) -> String {
    let ms =
        |p50: f64, p99: f64, digits: usize| format!("p50 {p50:.digits$} ms, p99 {p99:.digits$} ms");
    let figures = [
        Figure::new(
            "time to first frame (connect, runs page, draw)",
            format!("{:.1} ms", r.time_to_first_frame_ms),
        )
        .at_most(r.time_to_first_frame_ms, 100.0, "ms"),
        Figure::new(
            format!("refresh on change (page of {RUN_PAGE} + counts)"),
            ms(r.refresh_p50_ms, r.refresh_p99_ms, 1),
        )
        .at_most(r.refresh_p99_ms, 20.0, "ms p99"),
        Figure::new(
            "overview queues, workers, deploys",
            ms(r.board_p50_ms, r.board_p99_ms, 1),
        )
        .at_most(r.board_p99_ms, 20.0, "ms p99"),
        Figure::new(
            "counts and last-hour activity",
            ms(r.overview_p50_ms, r.overview_p99_ms, 1),
        ),
        Figure::new(
            format!("services list ({} services)", r.services_added),
            ms(r.services_refresh_p50_ms, r.services_refresh_p99_ms, 1),
        ),
        Figure::new(
            "services pane render",
            ms(r.services_render_p50_ms, r.services_render_p99_ms, 2),
        ),
        Figure::new(
            format!(
                "template versions list ({} versions)",
                r.template_versions_added
            ),
            ms(r.templates_refresh_p50_ms, r.templates_refresh_p99_ms, 1),
        ),
        Figure::new(
            "templates pane render",
            ms(r.templates_render_p50_ms, r.templates_render_p99_ms, 2),
        ),
        Figure::new(
            format!("frame render at {}", r.screen),
            ms(r.render_p50_ms, r.render_p99_ms, 2),
        )
        .at_most(r.render_p99_ms, 4.0, "ms p99"),
        Figure::new(
            format!(
                "filter keystroke to redrawn runs ({} keys, newest {TYPED_SCAN} runs)",
                r.filter_keystrokes
            ),
            ms(r.filter_key_p50_ms, r.filter_key_p99_ms, 1),
        )
        .at_most(r.filter_key_p99_ms, 50.0, "ms p99"),
        Figure::new(
            "the same, a filter nothing matches",
            ms(r.filter_no_match_p50_ms, r.filter_no_match_p99_ms, 1),
        )
        .at_most(r.filter_no_match_p99_ms, 50.0, "ms p99"),
        Figure::new(
            "Enter: the same filters over every run",
            format!(
                "{:.1} ms, {:.1} ms (no match)",
                r.filter_enter_ms, r.filter_no_match_enter_ms
            ),
        ),
        match r.peak_rss_mib {
            Some(m) => Figure::new("peak RSS while measuring", format!("{m:.1} MiB"))
                .at_most(m, 40.0, "MiB"),
            None => Figure::new("peak RSS while measuring", "unknown (no /proc)")
                .aim("≤ 40 MiB".into(), None),
        },
        Figure::new(
            format!(
                "idle at 80x24, ages on screen, {} s ({} frames)",
                r.idle_secs, r.idle_frames
            ),
            format!(
                "{} bytes ({:.0} bytes/minute)",
                r.idle_bytes_written, r.idle_bytes_per_minute
            ),
        )
        .at_most(r.idle_bytes_per_minute, 1024.0, "bytes/minute"),
        Figure::new(
            "one run changing state",
            format!("{} bytes written", r.bytes_for_one_change),
        ),
        Figure::new(
            format!("log search over {} lines", r.log_lines),
            ms(r.log_search_p50_ms, r.log_search_p99_ms, 1),
        )
        .at_most(r.log_search_p99_ms, 100.0, "ms p99"),
        Figure::new(
            "log search to the match on screen",
            ms(
                r.log_search_to_match_p50_ms,
                r.log_search_to_match_p99_ms,
                1,
            ),
        ),
    ];
    format!(
        "store {}\nruns added {}, screen {}\nfilters typed: `{FILTER_TYPED}`, and `{FILTER_NO_MATCH}` \
         (matches nothing)\n\n{}",
        r.store,
        r.runs_added,
        r.screen,
        figures_table(&figures)
    )
}

fn key(c: char) -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c))
}

fn new_app(ops: &Ops) -> CliResult<App> {
    let keymap = Keymap::new(&BTreeMap::new(), false).map_err(CliError::failed)?;
    Ok(App::new(
        ops.store_location(),
        ops.actor().to_owned(),
        keymap,
        false,
    ))
}

/// What the loader does on a change: the first page of runs plus the counts and the last hour.
async fn refresh(ops: &Ops, app: &mut App) -> CliResult {
    let runs = ops
        .list_runs(&RunQuery {
            limit: Some(RUN_PAGE),
            ..Default::default()
        })
        .await?;
    app.on_data(Data::Runs(app.runs.query.clone(), runs), Utc::now());
    app.on_data(Data::Overview(ops.queue_overview().await?), Utc::now());
    Ok(())
}

/// Types `text` into the run list's filter line a key at a time; for each key, the time until
/// the screen is redrawn with the store's answer to the query it asked (as the loader would
/// fetch it: the newest runs only), then the time Enter takes to search every run. Leaves the
/// filter cleared.
async fn type_filter(
    ops: &Ops,
    app: &mut App,
    terminal: &mut Terminal<TestBackend>,
    text: &str,
) -> CliResult<(Vec<f64>, f64)> {
    let mut times = Vec::with_capacity(text.len());
    app.on_key(key('/'));
    for c in text.chars() {
        let t = Instant::now();
        for effect in app.on_key(key(c)) {
            if let Effect::LoadRuns(query) = effect {
                let runs = ops
                    .list_runs(&RunQuery {
                        status: query.status,
                        filter: Some(&query.text),
                        newest: query.typed.then_some(TYPED_SCAN),
                        limit: Some(RUN_PAGE),
                        page: query.page,
                        ..Default::default()
                    })
                    .await?;
                app.on_data(Data::Runs(query, runs), Utc::now());
            }
        }
        draw(terminal, app)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // Enter: the same filter over every run of the store.
    let t = Instant::now();
    let enter = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Enter);
    for effect in app.on_key(enter) {
        if let Effect::LoadRuns(query) = effect {
            let runs = ops
                .list_runs(&RunQuery {
                    status: query.status,
                    filter: Some(&query.text),
                    limit: Some(RUN_PAGE),
                    page: query.page,
                    ..Default::default()
                })
                .await?;
            app.on_data(Data::Runs(query, runs), Utc::now());
        }
    }
    draw(terminal, app)?;
    let whole = t.elapsed().as_secs_f64() * 1e3;
    app.on_key(key('/'));
    app.on_key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::Esc,
    ));
    app.on_key(crossterm::event::KeyEvent::from(
        crossterm::event::KeyCode::Esc,
    ));
    Ok((times, whole))
}

fn draw(terminal: &mut Terminal<TestBackend>, app: &mut App) -> CliResult {
    terminal
        .draw(|f| view::render(f, app, Theme::default()))
        .map(|_| ())
        .map_err(|e| CliError::failed(e.to_string()))
}

/// Adds `n` runs in a project of its own: 80% finished (a tenth of those failed), 10% running,
/// 10% queued.
async fn seed(ops: &Ops, n: usize, bar: &ProgressBar) -> CliResult {
    let wf = bench_workflow(ops, "bench-console", "console benchmark").await?;
    let tag = wf.project.clone();
    let runs: Vec<NewRun> = (0..n)
        .map(|i| NewRun {
            priority: (i % 7) as i32,
            max_attempts: 3,
            ..NewRun::with_payload(wf.project_id, wf.id, serde_json::json!({ "i": i }))
        })
        .collect();
    // Each run counts once queued, and once more if it is then started or finished.
    bar.set_length((n + n * 8 / 10 + n / 10) as u64);
    for chunk in runs.chunks(1_000) {
        ops.enqueue_runs(chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    let queues = vec![tag.clone()];
    let to_finish = n * 8 / 10;
    let to_run = n / 10;
    let worker = format!("{tag}-w");
    let mut moved = 0;
    while moved < to_finish + to_run {
        let want = (to_finish + to_run - moved).min(500) as u32;
        let claimed = ops
            .claim_runs(&worker, &queues, want, Duration::from_secs(3_600))
            .await?;
        if claimed.is_empty() {
            break;
        }
        let holds: Vec<Hold> = claimed.iter().map(ClaimedRun::hold).collect();
        ops.start_runs(&worker, &holds).await?;
        let done: Vec<Completion> = holds
            .iter()
            .enumerate()
            .filter(|(i, _)| moved + i < to_finish)
            .map(|(i, &hold)| {
                let failed = (moved + i) % 10 == 0;
                Completion {
                    hold,
                    exit_code: Some(i32::from(failed)),
                    error: failed.then(|| "exit code 1".to_owned()),
                    canceled: false,
                }
            })
            .collect();
        ops.complete_runs(&worker, &done).await?;
        moved += holds.len();
        bar.inc(holds.len() as u64);
    }
    Ok(())
}

/// Adds `n` services in a project of their own, each one whole (manifest, workflows, registry).
async fn seed_services(ops: &Ops, n: usize, bar: &ProgressBar) -> CliResult {
    let stamp = Utc::now().format("%m%d%H%M%S%3f").to_string();
    let project = format!("bench-console-svc-{stamp}");
    ops.create_project(&project, Some("console benchmark services"))
        .await?;
    let workflows: Vec<crate::domain::service::WorkflowSpec> = ["process:a,b"]
        .iter()
        .filter_map(|w| w.parse().ok())
        .collect();
    for i in 0..n {
        ops.create_service(&crate::ops::CreateService {
            project: &project,
            name: Some("Bench service"),
            schema: Some(&format!("c{stamp}_{i}")),
            workflows: workflows.clone(),
            manifest: None,
        })
        .await?;
        bar.inc(1);
    }
    Ok(())
}

/// Publishes `n` versions of a two-file bundle as one template (stable, the first as default).
async fn seed_templates(
    ops: &Ops,
    dir: &std::path::Path,
    n: usize,
    bar: &ProgressBar,
) -> CliResult {
    let io = |e: std::io::Error| CliError::failed(format!("bench bundle: {e}"));
    let store: std::sync::Arc<dyn crate::artifacts::ArtifactStore> =
        std::sync::Arc::new(crate::artifacts::FsArtifactStore::new(dir.join("store")));
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(io)?;
    std::fs::write(
        bundle.join("manifest.json"),
        r#"{"artifacts": [
            {"kind": "master_prompt", "locale": "fr", "path": "fr.md", "content_type": "text/markdown"},
            {"kind": "json_config", "path": "config.json", "content_type": "application/json"}]}"#,
    )
    .map_err(io)?;
    let name = format!("bench-console-{}", Utc::now().format("%m%d%H%M%S%3f"));
    for i in 0..n {
        std::fs::write(bundle.join("fr.md"), format!("version {i}")).map_err(io)?;
        std::fs::write(bundle.join("config.json"), "{}").map_err(io)?;
        ops.publish_bundle(
            &bundle,
            &crate::ops::PublishRequest {
                template: &name,
                version: &format!("1.{i}.0"),
                status: Some(crate::domain::template::VersionStatus::Stable),
                set_default: i == 0,
                ..Default::default()
            },
            store.clone(),
            &|_, _| {},
        )
        .await?;
        bar.inc(1);
    }
    Ok(())
}

/// A terminal that counts what it is sent: bytes, and flushes (one per frame drawn).
#[derive(Clone, Default)]
struct CountingWriter {
    bytes: Arc<AtomicU64>,
    flushes: Arc<AtomicU64>,
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct Idle {
    bytes: u64,
    frames: u64,
    change_bytes: u64,
}

/// Runs the real render loop (loader, change watcher, clock and all) at 80×24 on the run list,
/// whose ages are on screen, on a terminal that counts bytes; after the first frames settle,
/// nothing happens for `secs` seconds but the clock. Then one queued run is canceled.
async fn idle_bytes(ops: &Ops, secs: u64) -> CliResult<Idle> {
    let counter = CountingWriter::default();
    let bytes = counter.bytes.clone();
    let flushes = counter.flushes.clone();
    let mut terminal = Terminal::with_options(
        crate::tui::quiet::QuietBackend::new(CrosstermBackend::new(counter)),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, 80, 24)),
        },
    )
    .map_err(|e| CliError::failed(e.to_string()))?;
    let mut app = new_app(ops)?;
    let (input_tx, input_rx) = mpsc::channel(8);
    let _ = input_tx.try_send(crossterm::event::Event::Key(key('4')));
    let (stop_tx, stop_rx) = watch::channel(false);
    let victim = ops
        .list_runs(&RunQuery {
            status: Some(crate::domain::run::RunStatus::Queued),
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .first()
        .map(|r| r.id);
    let changer = ops.clone();
    let ops = ops.clone();
    // Ages under a minute tick every second (a true change on screen, one frame a second); an
    // idle store's ages are minutes, so the minute measured starts once the newest run on
    // screen is a minute old.
    let newest = ops
        .list_runs(&RunQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .first()
        .map(|r| r.created_at);
    let young_for = newest.map_or(Duration::ZERO, |t| {
        (t + chrono::Duration::seconds(61) - Utc::now())
            .to_std()
            .unwrap_or_default()
    });
    let settle = young_for.max(Duration::from_secs(2));
    let measure = async {
        tokio::time::sleep(settle).await;
        let before = bytes.load(Ordering::Relaxed);
        let frames_before = flushes.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let after = bytes.load(Ordering::Relaxed);
        let frames = flushes.load(Ordering::Relaxed) - frames_before;
        if let Some(id) = victim
            && let Err(e) = changer.cancel_run(id).await
        {
            tracing::warn!(error = %e, "bench could not cancel a run");
        }
        // Long enough for the change watcher, the refresh gap and the redraw.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let changed = bytes.load(Ordering::Relaxed);
        let _ = stop_tx.send(true);
        Idle {
            bytes: after - before,
            frames,
            change_bytes: changed - after,
        }
    };
    let (looped, idle) = tokio::join!(
        crate::tui::drive(
            &mut terminal,
            &mut app,
            ops,
            crate::tui::LoaderSettings::default(),
            crate::tui::ConsoleIo::without_clipboard(input_rx, stop_rx),
        ),
        measure
    );
    looped.map_err(CliError::failed)?;
    Ok(idle)
}

/// Linux: hand the seeding's freed heap back to the system, then reset the peak RSS (writing 5 to
/// clear_refs), so the figure covers the console, not the seeding before it.
fn reset_peak_rss() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of glibc's heaps; it touches no
    // live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> Option<f64> {
    super::status_kib("/proc/self/status", "VmHWM:").map(|kib| kib as f64 / 1024.0)
}
