//! Printing: `--json`, or aligned plain-text tables whose status cells are coloured on a terminal.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::Serialize;

use crate::domain::age;
use crate::stdio::{stderr_line, stdout_line};

/// Prints `value` as JSON when asked, else the human text `human` builds. JSON is never coloured.
pub fn emit<T: Serialize + ?Sized>(json: bool, value: &T, human: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(text) => {
                let _ = stdout_line(&text);
            }
            Err(e) => stderr_line(&format!("error: cannot encode JSON: {e}")),
        }
    } else {
        let text = human();
        if !text.is_empty() {
            let _ = stdout_line(&text);
        }
    }
}

/// `--color`: when human tables colour their status cells. (The values carry no doc comments:
/// described values would switch every command's `--help` to clap's long layout.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    // Only when stdout is a terminal and NO_COLOR is unset or empty.
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether to colour, given the choice, whether stdout is a terminal and the value of NO_COLOR
/// (<https://no-color.org>: any non-empty value turns colour off unless it is forced).
pub fn wants_color(choice: ColorChoice, stdout_is_terminal: bool, no_color: Option<&str>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(str::is_empty),
    }
}

static COLOR: AtomicBool = AtomicBool::new(false);

/// Decides colour for this process's human output from `--color`, stdout and NO_COLOR.
pub fn set_color(choice: ColorChoice) {
    use std::io::IsTerminal;
    let no_color = std::env::var("NO_COLOR").ok();
    let on = wants_color(choice, std::io::stdout().is_terminal(), no_color.as_deref());
    COLOR.store(on, Ordering::Relaxed);
}

fn color_on() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// Columns whose cells are a state worth a colour; other columns may hold the same words as
/// names (a workflow called `failed`), so only these are painted.
const STATE_COLUMNS: &[&str] = &[
    "STATUS",
    "HEARTBEAT",
    "HEALTH",
    "WORKER",
    "SEVERITY",
    "APPLIED",
    "✓/✗",
];

/// The SGR code of a state's first word: green done or well, red failed or gone, grey over,
/// cyan under way, yellow waiting or going stale, magenta frozen. None for anything else.
fn state_color(cell: &str) -> Option<&'static str> {
    let word = cell.split_whitespace().next()?;
    Some(match word {
        "succeeded" | "active" | "stable" | "deployed" | "alive" | "yes" | "✓" | "info" => "32",
        "failed" | "missing" | "NO" | "no" | "✗" | "critical" | "breaking" => "31",
        "canceled" | "superseded" | "deprecated" | "stopped" => "90",
        "running" | "deploying" => "36",
        "queued" | "claimed" | "pending" | "draft" | "stale" | "warning" => "33",
        "locked" => "35",
        _ => return None,
    })
}

fn paint(on: bool, text: &str) -> String {
    match state_color(text) {
        Some(code) if on => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text.to_owned(),
    }
}

/// The columns a text takes on a terminal: its characters, escape sequences not counted.
pub fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters… final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

pub fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows = fit_to(terminal_width(), headers, rows.collect());
    table_with(color_on(), headers, rows.into_iter())
}

/// The terminal's width when stdout is one; a pipe gets every cell whole.
fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    crossterm::terminal::size()
        .ok()
        .map(|(cols, _)| usize::from(cols))
}

/// The narrowest a cut column gets: enough to tell values apart.
const MIN_CUT_WIDTH: usize = 8;

/// Cuts the widest columns (never a state column: it is short and carries the colour) with `…`
/// until a row fits `width`, so a table on an 80-column terminal does not wrap every line.
fn fit_to(width: Option<usize>, headers: &[&str], mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let Some(width) = width else {
        return rows;
    };
    let mut widths: Vec<usize> = headers.iter().map(|h| visible_width(h)).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(visible_width(cell));
        }
    }
    let total =
        |widths: &[usize]| widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    let floor: Vec<usize> = headers
        .iter()
        .map(|h| visible_width(h).max(MIN_CUT_WIDTH))
        .collect();
    while total(&widths) > width {
        let widest = (0..widths.len())
            .filter(|&i| !STATE_COLUMNS.contains(&headers[i]) && widths[i] > floor[i])
            .max_by_key(|&i| widths[i]);
        let Some(i) = widest else { break };
        widths[i] -= 1;
    }
    for row in &mut rows {
        for (cell, &w) in row.iter_mut().zip(&widths) {
            if visible_width(cell) > w && !cell.contains('\x1b') {
                let mut cut: String = cell.chars().take(w.saturating_sub(1)).collect();
                cut.push('…');
                *cell = cut;
            }
        }
    }
    rows
}

fn table_with(color: bool, headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| visible_width(h)).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(visible_width(cell));
        }
    }
    let painted: Vec<bool> = headers
        .iter()
        .map(|h| color && STATE_COLUMNS.contains(h))
        .collect();
    let line = |cells: Vec<String>, paint_states: bool| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .zip(&painted)
            // Padded by hand: a format width above u16::MAX panics, and a cell (an audit
            // record's JSON, say) can be longer than that. The pad counts what shows, so a
            // coloured cell lines up with a plain one.
            .map(|((c, w), &on)| {
                let pad = w.saturating_sub(visible_width(c));
                let mut cell = paint(on && paint_states, c);
                cell.extend(std::iter::repeat_n(' ', pad));
                cell
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect(), false)];
    out.extend(rows.into_iter().map(|row| line(row, true)));
    out.join("\n")
}

/// A progress bar on stderr, or a hidden one (`show` false: piped, or `--json`). Counted items
/// show `done/total unit` and their rate; bytes show sizes and throughput.
pub fn progress(show: bool, label: &str, total: u64, unit: Unit) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let template = match unit {
        Unit::Bytes => {
            "{spinner} {msg} {bytes}/{total_bytes} ({binary_bytes_per_sec}) {elapsed}".to_owned()
        }
        Unit::Items(name) => {
            format!("{{spinner}} {{msg}} {{pos}}/{{len}} {name} ({{rate}}) {{elapsed}}")
        }
    };
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        );
    let bar = ProgressBar::new(total).with_message(label.to_owned());
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// What a progress bar counts.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Bytes,
    /// Items with this name: "runs", "files".
    Items(&'static str),
}

pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// "3m ago": how long ago, in the console's one-unit form.
pub fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    format!("{} ago", age::age(now, then))
}

pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_table_on_a_narrow_terminal_cuts_its_widest_column_and_never_a_state() {
        let headers = ["ID", "WORKFLOW", "STATUS", "ERROR"];
        let rows = vec![vec![
            "20".to_owned(),
            "telecom_billing.processBilling".to_owned(),
            "failed".to_owned(),
            "x".repeat(60),
        ]];
        let fitted = super::fit_to(Some(60), &headers, rows.clone());
        let out = super::table_with(false, &headers, fitted.into_iter());
        assert!(out.lines().all(|l| super::visible_width(l) <= 60), "{out}");
        assert!(out.contains("failed") && out.contains('…'), "{out}");
        // The two wide columns gave way alike, and each still tells its values apart.
        assert!(out.contains("telecom_billing.proces…"), "{out}");
        // A pipe gets every cell whole.
        assert_eq!(super::fit_to(None, &headers, rows.clone()), rows);
    }

    use super::{ColorChoice, table_with, visible_width, wants_color};

    fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
        table_with(false, headers, rows.into_iter())
    }

    #[test]
    fn a_cell_longer_than_a_format_width_is_printed_whole() {
        let long = "x".repeat(70_000);
        let out = table(
            &["ID", "AFTER"],
            vec![
                vec!["1".to_owned(), long.clone()],
                vec!["22".to_owned(), "y".to_owned()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ID  AFTER");
        assert_eq!(lines[1], format!("1   {long}"));
        assert_eq!(lines[2], "22  y");
    }

    #[test]
    fn colour_follows_the_choice_the_terminal_and_no_color() {
        use ColorChoice::*;
        let cases = [
            // (choice, terminal, NO_COLOR, colour)
            (Auto, true, None, true),
            (Auto, true, Some(""), true),
            (Auto, true, Some("1"), false),
            (Auto, false, None, false),
            (Auto, false, Some("1"), false),
            (Always, false, None, true),
            (Always, true, Some("1"), true),
            (Always, false, Some("1"), true),
            (Never, true, None, false),
            (Never, false, None, false),
            (Never, true, Some("1"), false),
        ];
        for (choice, terminal, no_color, want) in cases {
            assert_eq!(
                wants_color(choice, terminal, no_color),
                want,
                "{choice:?} terminal={terminal} NO_COLOR={no_color:?}"
            );
        }
    }

    #[test]
    fn padding_counts_what_shows_not_escape_codes() {
        assert_eq!(visible_width("\x1b[32msucceeded\x1b[0m"), 9);
        assert_eq!(visible_width("✓"), 1);
        let rows = || {
            vec![
                vec!["1".to_owned(), "succeeded".to_owned(), "a".to_owned()],
                vec!["2".to_owned(), "failed".to_owned(), "b".to_owned()],
                vec!["3".to_owned(), "weird".to_owned(), "c".to_owned()],
            ]
        };
        let plain = table_with(false, &["ID", "STATUS", "X"], rows().into_iter());
        let coloured = table_with(true, &["ID", "STATUS", "X"], rows().into_iter());
        assert!(!plain.contains('\x1b'));
        assert!(coloured.contains("\x1b[32msucceeded\x1b[0m"));
        assert!(coloured.contains("\x1b[31mfailed\x1b[0m"));
        // An unknown state stays plain; every line shows the same text in the same columns.
        assert!(coloured.contains("3   weird"));
        let shown: Vec<String> = coloured.lines().map(strip).collect();
        assert_eq!(shown, plain.lines().collect::<Vec<_>>());
        for (c, p) in coloured.lines().zip(plain.lines()) {
            assert_eq!(visible_width(c), p.chars().count());
        }
        // A cell that arrives coloured is padded by what shows, too.
        let pre = table(
            &["A", "B"],
            vec![
                vec!["\x1b[31mxx\x1b[0m".to_owned(), "1".to_owned()],
                vec!["yyyy".to_owned(), "2".to_owned()],
            ],
        );
        assert_eq!(strip(pre.lines().nth(1).unwrap_or_default()), "xx    1");
    }

    #[test]
    fn only_state_columns_are_painted() {
        let out = table_with(
            true,
            &["WORKFLOW", "STATUS"],
            [vec!["failed".to_owned(), "failed".to_owned()]].into_iter(),
        );
        assert!(out.contains("failed    \x1b[31mfailed"), "{out:?}");
    }

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut in_escape = false;
        for c in s.chars() {
            match c {
                '\x1b' => in_escape = true,
                c if in_escape => in_escape = !c.is_ascii_alphabetic(),
                c => out.push(c),
            }
        }
        out
    }
}
