//! The log pager's search in `ospdeck bench console`: one run with many lines, searched the way the
//! console does it (the loader's own reads), from Enter to the match's window in the app.

use std::time::Instant;

use chrono::Utc;

use super::{bench_workflow, p50_p99};
use crate::cli::CliResult;
use crate::domain::run::{LogLevel, NewLogLine};
use crate::ops::{EnqueueRequest, Ops};
use crate::tui::app::{App, Data, Effect};

/// Words searched, in turn: rare, common (past the cap of listed matches), in every line, absent.
const QUERIES: [&str; 4] = [
    "checksum mismatch",
    "layer 7",
    "copying",
    "nothing-like-this",
];

/// One run with `lines` log lines, written in the store's batched append as a worker does.
pub(super) async fn seed_log_run(ops: &Ops, lines: usize) -> CliResult<i64> {
    let wf = bench_workflow(ops, "bench-logs", "log search benchmark").await?;
    let id = ops
        .enqueue_run(&EnqueueRequest {
            project: &wf.project,
            workflow: &wf.name,
            ..Default::default()
        })
        .await?;
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..lines {
        // Never in the last screen: a search from the end has to travel to its match.
        let text = if i % 1_000 == 500 {
            format!("step {i}: checksum mismatch in layer {}", i % 13)
        } else {
            format!("step {i}: copying layer {} of image {}", i % 13, i % 101)
        };
        batch.push(NewLogLine::new(
            LogLevel::Info,
            &text,
            serde_json::json!({}),
        ));
        if batch.len() == 1_000 || i + 1 == lines {
            ops.append_logs(id, &batch).await?;
            batch.clear();
        }
    }
    Ok(id)
}

/// Milliseconds of each search: the store's answer (matching ids and their count) in the app,
/// and from Enter to the first match's lines in the app (the search, then the window around
/// the match with its line numbers), as the loader answers both.
pub(super) async fn search_times(
    ops: &Ops,
    app: &mut App,
    run_id: i64,
    searches: usize,
) -> CliResult<(Vec<f64>, Vec<f64>)> {
    let mut searched = Vec::with_capacity(searches);
    let mut times = Vec::with_capacity(searches);
    app.runs.open_run(run_id);
    // An empty search shows the Logs tab, where G goes to the end of the log.
    app.runs.apply_filter("");
    for i in 0..searches {
        // Each search starts from the end of the log, as after opening a finished run.
        let to_end = app.on_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char('G'),
        ));
        answer(ops, app, to_end, &mut None).await?;
        let text = QUERIES[i % QUERIES.len()];
        let t = Instant::now();
        let effects = app.runs.apply_filter(text);
        let mut search_done = Some((t, &mut searched));
        answer(ops, app, effects, &mut search_done).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((searched, times))
}

/// Answers the app's loads as the loader does, until it asks for nothing more; the time the
/// search's own answer took goes into `search_done`.
async fn answer(
    ops: &Ops,
    app: &mut App,
    mut effects: Vec<Effect>,
    search_done: &mut Option<(Instant, &mut Vec<f64>)>,
) -> CliResult {
    while let Some(effect) = effects.pop() {
        let data = match effect {
            Effect::SearchLogs { run_id, text } => {
                let data = crate::tui::log_search(ops, run_id, text).await?;
                if let Some((t, times)) = search_done.as_mut() {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                data
            }
            Effect::LoadLogs { run_id, request } => Data::LogWindow(Box::new(
                crate::tui::log_window(ops, run_id, request).await?,
            )),
            _ => continue,
        };
        effects.extend(app.on_data(data, Utc::now()));
    }
    Ok(())
}

/// p50 and p99 of the searches.
pub(super) fn figures(mut times: Vec<f64>) -> (f64, f64) {
    p50_p99(&mut times)
}
