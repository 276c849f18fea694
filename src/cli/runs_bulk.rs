//! `run list` paged, streamed and watched; `run cancel` and `run retry` by ids or by filter.

use crate::domain::number::grouped;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{CliError, CliResult, ErrorKind};
use crate::domain::run::{Run, parse_run_id};
use crate::ops::{
    BulkAction, BulkItem, BulkOutcome, BulkRequest, BulkTally, Ops, RunQuery, RunTarget,
};
use crate::stdio::{StdoutBuffer, StdoutGone, stderr_line};

/// Runs read per store round trip while listing: a keyset page.
const PAGE: i64 = 1_000;

/// How often `run list --watch` looks for changes.
const WATCH_EVERY: Duration = Duration::from_millis(500);

pub const DEFAULT_LIMIT: i64 = 50;

/// The runs `run cancel` and `run retry` act on: ids, or a filter.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Run ids (one or more), or use --where
    #[arg(
        value_name = "ID",
        allow_negative_numbers = true,
        add = super::completions::runs(),
        required_unless_present = "filter",
        conflicts_with = "filter"
    )]
    pub ids: Vec<String>,
    /// Every run matching FILTER (the `run list --where` grammar); shows the count and asks first
    #[arg(long = "where", value_name = "FILTER")]
    pub filter: Option<String>,
    /// Act without asking (needed with --where when there is no terminal to ask on)
    #[arg(long)]
    pub yes: bool,
    /// Only report what would change; nothing is changed
    #[arg(long)]
    pub dry_run: bool,
}

/// `run list` beyond its filters: how many, from where, and whether to keep watching.
pub struct ListView<'a> {
    pub query: RunQuery<'a>,
    pub limit: Option<i64>,
    pub all: bool,
    pub after: Option<i64>,
    pub watch: bool,
}

fn json_row<T: serde::Serialize>(out: &mut StdoutBuffer, value: &T) -> Result<(), StdoutGone> {
    match out.push(|b| serde_json::to_writer(b, value)) {
        Ok(written) => written,
        Err(e) => {
            stderr_line(&format!("error: cannot encode JSON: {e}"));
            Err(StdoutGone)
        }
    }
}

/// Human rows a table at a time: the first chunk with its header, later ones without (their
/// columns sized to themselves), so that a list of any size never sits whole in memory.
struct HumanRows {
    chunk: Vec<Run>,
    header_done: bool,
}

impl HumanRows {
    fn push(&mut self, out: &mut StdoutBuffer, run: Run) -> Result<(), StdoutGone> {
        self.chunk.push(run);
        if self.chunk.len() as i64 >= PAGE {
            self.flush(out)?;
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut StdoutBuffer) -> Result<(), StdoutGone> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let table = super::queue::runs_table(&self.chunk);
        self.chunk.clear();
        let body = if self.header_done {
            table.split_once('\n').map_or("", |(_, rest)| rest)
        } else {
            &table
        };
        self.header_done = true;
        out.line(body)
    }
}

pub async fn list(ops: &Ops, json: bool, view: &ListView<'_>) -> CliResult<ExitCode> {
    let limit = match (view.all, view.limit) {
        (true, _) | (false, Some(0)) => None,
        (false, None) => Some(DEFAULT_LIMIT),
        (false, Some(n)) if n > 0 => Some(n),
        (false, Some(n)) => {
            return Err(CliError::validation(format!(
                "invalid limit {n}: use 0 (or --all) for every run, or a positive number"
            )));
        }
    };
    let selection = ops.run_selection(&view.query).await?;
    // Read before the list, so that a change made while it is printed is shown, not lost.
    let watch_from = if view.watch {
        Some(ops.run_watch_start().await?)
    } else {
        None
    };
    let mut out = StdoutBuffer::new();
    let ndjson = json && view.watch;
    let mut human = HumanRows {
        chunk: Vec::new(),
        header_done: false,
    };
    let mut printed: i64 = 0;
    let mut cursor = view.after;
    let mut more = false;
    if json && !ndjson && out.text("[").is_err() {
        return Ok(ExitCode::SUCCESS);
    }
    'pages: loop {
        // One more than is left to print: the probe that tells whether more exist.
        let want = limit.map_or(PAGE, |l| (l - printed).saturating_add(1).min(PAGE));
        let page = ops.runs_page(&selection, cursor, want).await?;
        let exhausted = (page.len() as i64) < want;
        for run in page {
            if limit.is_some_and(|l| printed == l) {
                more = true;
                break 'pages;
            }
            cursor = Some(run.id);
            let written = if ndjson {
                json_row(&mut out, &run).and_then(|()| out.text("\n"))
            } else if json {
                let sep = if printed == 0 { "\n" } else { ",\n" };
                out.text(sep).and_then(|()| json_row(&mut out, &run))
            } else {
                human.push(&mut out, run)
            };
            if written.is_err() {
                return Ok(ExitCode::SUCCESS);
            }
            printed += 1;
        }
        if exhausted {
            break;
        }
    }
    let closed = if json && !ndjson {
        out.text(if printed == 0 { "]\n" } else { "\n]\n" })
    } else if json {
        Ok(())
    } else {
        human.flush(&mut out)
    };
    if closed.is_err() {
        return Ok(ExitCode::SUCCESS);
    }
    if more && !json && std::io::stdout().is_terminal() {
        let shown = grouped(printed);
        let next = cursor
            .map(|id| format!(" or --after {id}"))
            .unwrap_or_default();
        let line = match view
            .after
            .is_none()
            .then_some(())
            .and(ops.count_selected_runs(&selection).await)
        {
            Some(total) => format!(
                "{shown} of {} runs; --limit N{next} for more",
                grouped(total)
            ),
            None => format!("{shown} runs shown and more exist; --limit N{next} for more"),
        };
        let _ = out.line(&line);
    }
    if out.flush().is_err() {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(from) = watch_from {
        drop(out);
        return watch(ops, json, &selection, from).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints each run of the selection that appears or changes, until interrupted (Ctrl-C ends
/// it quietly with status 0) or until nobody reads stdout any more.
async fn watch(
    ops: &Ops,
    json: bool,
    selection: &crate::domain::run::RunFilter,
    mut from: i64,
) -> CliResult<ExitCode> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut out = StdoutBuffer::new();
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        loop {
            let (runs, next) = ops.run_changes(selection, from).await?;
            let caught_up = next == from;
            from = next;
            for run in &runs {
                let written = if json {
                    json_row(&mut out, run).and_then(|()| out.text("\n"))
                } else {
                    out.line(&format!(
                        "{}  run {}  {}/{}  {}",
                        super::output::time(&chrono::Utc::now()),
                        run.id,
                        run.project,
                        run.workflow,
                        run.status
                    ))
                };
                if written.is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            if out.flush().is_err() {
                return Ok(ExitCode::SUCCESS);
            }
            if caught_up {
                break;
            }
        }
    }
}

fn verb(action: BulkAction) -> (&'static str, &'static str) {
    match action {
        BulkAction::Cancel => ("Cancel", "cancel"),
        BulkAction::Retry => ("Retry", "retry"),
    }
}

/// The plan in words, a line each, for stderr.
fn describe(action: BulkAction, tally: &BulkTally, filter: &str, done: bool) -> Vec<String> {
    let (matched, will) = if done {
        ("matched", "")
    } else {
        ("match", "to be ")
    };
    let mut lines = vec![format!(
        "{} runs {matched} {filter}",
        grouped(tally.matched)
    )];
    let mut part = |n: i64, text: &str| {
        if n > 0 {
            lines.push(format!("  {} {text}", grouped(n)));
        }
    };
    match action {
        BulkAction::Cancel => {
            part(
                tally.canceled,
                &format!("queued or claimed: {will}canceled"),
            );
            part(
                tally.requested,
                &format!("running: their workers {will}asked to stop"),
            );
            part(tally.already_canceled, "already canceled: left as they are");
            part(
                tally.not_applicable,
                "already finished: skipped (a finished run is not canceled)",
            );
        }
        BulkAction::Retry => {
            part(
                tally.retried,
                &format!("finished: {will}retried (a new queued run each)"),
            );
            part(
                tally.not_applicable,
                "not finished: skipped (only a finished run is retried)",
            );
        }
    }
    if tally.forbidden > 0 {
        lines.push(format!(
            "  {} skipped: you lack the role in project {}",
            grouped(tally.forbidden),
            tally.forbidden_projects.join(", ")
        ));
    }
    if tally.changed_meanwhile > 0 {
        lines.push(format!(
            "  {} skipped: changed meanwhile",
            grouped(tally.changed_meanwhile)
        ));
    }
    lines
}

/// Asks on the terminal; true for yes.
fn confirm(question: &str) -> bool {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// One run's answer in words.
fn item_line(action: BulkAction, item: &BulkItem) -> String {
    let id = item.run.id;
    match item.outcome {
        BulkOutcome::Canceled => format!("run {id} canceled"),
        BulkOutcome::Requested => format!("run {id} is running: its worker was asked to stop it"),
        BulkOutcome::AlreadyCanceled => format!("run {id} was already canceled"),
        BulkOutcome::Retried => format!(
            "run {} retried as run {id}",
            item.run.retry_of.unwrap_or_default()
        ),
        BulkOutcome::WouldCancel => format!("run {id} would be canceled"),
        BulkOutcome::WouldRequestStop => {
            format!("run {id} is running: its worker would be asked to stop it")
        }
        BulkOutcome::WouldRetry => format!("run {id} would be retried"),
        BulkOutcome::Skipped => format!(
            "run {id} skipped: {}",
            item.reason.as_deref().unwrap_or(verb(action).1)
        ),
    }
}

pub async fn bulk(
    ops: &Ops,
    json: bool,
    action: BulkAction,
    args: &BulkArgs,
) -> CliResult<ExitCode> {
    let ids: Vec<i64> = args
        .ids
        .iter()
        .map(|t| parse_run_id(t))
        .collect::<Result<_, _>>()?;
    let target = match args.filter.as_deref() {
        Some(text) => RunTarget::Where(text),
        None => RunTarget::Ids(&ids),
    };
    let single = args.filter.is_none() && ids.len() == 1;
    if let RunTarget::Where(text) = target
        && !args.dry_run
    {
        let plan = ops.plan_bulk(action, target).await?;
        if plan.acting() > 0 && !args.yes {
            if !std::io::stdin().is_terminal() {
                return Err(CliError::usage(format!(
                    "{} {} runs without asking? There is no terminal to ask on: add --yes to go ahead, or --dry-run to only see them",
                    verb(action).0,
                    grouped(plan.acting())
                )));
            }
            for line in describe(action, &plan, text, false) {
                stderr_line(&line);
            }
            if !confirm(&format!(
                "{} {} runs?",
                verb(action).0,
                grouped(plan.acting())
            )) {
                return Err(CliError::failed("nothing was changed"));
            }
        }
    }
    let request = BulkRequest {
        action,
        target,
        dry_run: args.dry_run,
        // The new run's id, for a retry's answer line, comes from reading it.
        fresh: json || (action == BulkAction::Retry && args.filter.is_none()),
    };
    let mut out = StdoutBuffer::new();
    let mut first: Option<BulkItem> = None;
    let mut count: u64 = 0;
    let by_filter = args.filter.is_some();
    if json && !single && out.text("[").is_err() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut sink = |items: Vec<BulkItem>| -> bool {
        for item in items {
            let written = if single {
                first = Some(item);
                Ok(())
            } else if json {
                let sep = if count == 0 { "\n" } else { ",\n" };
                out.text(sep).and_then(|()| json_row(&mut out, &item))
            } else if !by_filter || args.dry_run {
                out.line(&item_line(action, &item))
            } else {
                Ok(())
            };
            count += 1;
            if written.is_err() {
                return false;
            }
        }
        out.flush().is_ok()
    };
    let tally = ops.bulk_runs(&request, &mut sink).await?;
    if single {
        let Some(item) = first else {
            return Err(CliError::failed("the store answered nothing"));
        };
        if item.outcome == BulkOutcome::Skipped {
            return Err(CliError::new(
                ErrorKind::Conflict,
                format!(
                    "run {}: {}",
                    item.run.id,
                    item.reason.as_deref().unwrap_or("skipped")
                ),
            ));
        }
        super::output::emit(json, &item, || match (action, item.outcome) {
            // The new run's id alone, as scripts read it.
            (BulkAction::Retry, BulkOutcome::Retried) => item.run.id.to_string(),
            _ => item_line(action, &item),
        });
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        let _ = out.text(if count == 0 { "]\n" } else { "\n]\n" });
    } else if by_filter {
        let what = args.filter.as_deref().unwrap_or_default();
        for line in describe(action, &tally, what, !args.dry_run) {
            let _ = out.line(&line);
        }
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}
