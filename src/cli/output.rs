//! Printing: `--json` or an aligned plain-text table.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::stdio::{stderr_line, stdout_line};

/// Prints `value` as JSON when asked, else the human text `human` builds.
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

pub fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            // Padded by hand: a format width above u16::MAX panics, and a cell (an audit
            // record's JSON, say) can be longer than that.
            .map(|(c, w)| {
                let pad = w.saturating_sub(c.chars().count());
                let mut cell = String::with_capacity(c.len() + pad);
                cell.push_str(c);
                cell.extend(std::iter::repeat_n(' ', pad));
                cell
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn a_cell_longer_than_a_format_width_is_printed_whole() {
        let long = "x".repeat(70_000);
        let out = table(
            &["ID", "AFTER"],
            [
                vec!["1".to_owned(), long.clone()],
                vec!["22".to_owned(), "y".to_owned()],
            ]
            .into_iter(),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ID  AFTER");
        assert_eq!(lines[1], format!("1   {long}"));
        assert_eq!(lines[2], "22  y");
    }
}
