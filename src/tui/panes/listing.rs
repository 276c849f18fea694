//! A list a pane shows: the rows as loaded, the ones the filter lets through in the chosen order,
//! and the cursor over them. Filtering and sorting happen here, on the loaded rows, so every
//! keystroke of `/` redraws at once; the run list, which pages over the whole store, filters in
//! the store instead.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::Cursor;
use crate::domain::filter::{Field, FieldValue, Filter, Filterable, natural_cmp};

/// What a row of a [`Listing`] offers: filter fields, sortable columns and an identity.
pub trait ListRow {
    /// The fields `/` filters on, in the grammar of `domain::filter`.
    const FIELDS: &'static [Field];
    /// Columns `o` cycles through and `:sort` names, the first being the natural order.
    const COLUMNS: &'static [&'static str];
    type Key: PartialEq;

    fn key(&self) -> Self::Key;
    fn field(&self, name: &str) -> FieldValue<'_>;
    /// The fields a free word is looked for in.
    fn words(&self) -> Vec<&str>;
    fn sort_key(&self, column: &str) -> SortKey<'_>;
}

/// A column's value for sorting: names sort naturally (`svc_2` before `svc_10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey<'a> {
    Text(&'a str),
    Number(i64),
    /// Missing times sort last.
    Time(Option<DateTime<Utc>>),
}

impl SortKey<'_> {
    fn compare(&self, other: &SortKey<'_>) -> Ordering {
        match (self, other) {
            (SortKey::Text(a), SortKey::Text(b)) => natural_cmp(a, b),
            (SortKey::Number(a), SortKey::Number(b)) => a.cmp(b),
            (SortKey::Time(a), SortKey::Time(b)) => match (a, b) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            _ => Ordering::Equal,
        }
    }
}

/// The rows on a pane's list, filtered and sorted.
#[derive(Debug)]
pub struct Listing<T> {
    items: Vec<T>,
    /// Indices into `items` of the rows shown, in their order.
    shown: Vec<usize>,
    pub cursor: Cursor,
    filter_text: String,
    filter: Filter,
    /// The column sorted on (an index into `T::COLUMNS`) and whether descending.
    sort: (usize, bool),
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            shown: Vec::new(),
            cursor: Cursor::default(),
            filter_text: String::new(),
            filter: Filter::default(),
            sort: (0, false),
        }
    }
}

struct Row<'a, T>(&'a T);

impl<T: ListRow> Filterable for Row<'_, T> {
    fn field(&self, name: &str) -> FieldValue<'_> {
        self.0.field(name)
    }
    fn words(&self) -> Vec<&str> {
        self.0.words()
    }
}

impl<T: ListRow> Listing<T> {
    /// New rows from the store: the selection stays on its row, at its screen line.
    pub fn set_items(&mut self, items: Vec<T>, now: DateTime<Utc>, rows: usize) {
        let keep = self.selected().map(T::key);
        self.items = items;
        self.refresh(now);
        let shown: Vec<&T> = self.shown.iter().map(|&i| &self.items[i]).collect();
        self.cursor.follow(&shown, keep, |r| r.key(), rows);
    }

    /// A new filter text; an error leaves the filter as it was and says what is wrong.
    pub fn set_filter(&mut self, text: &str, now: DateTime<Utc>) -> Result<(), String> {
        if text == self.filter_text {
            return Ok(());
        }
        let filter = Filter::parse(text, T::FIELDS).map_err(|e| e.0)?;
        self.filter = filter;
        self.filter_text = text.to_owned();
        self.refresh(now);
        self.cursor = Cursor::default();
        Ok(())
    }

    /// `o`: the next column; `O` turns the order around. Answers what is sorted on now.
    pub fn cycle_sort(&mut self, reverse: bool, rows: usize) -> String {
        let keep = self.selected().map(T::key);
        self.sort = if reverse {
            (self.sort.0, !self.sort.1)
        } else {
            ((self.sort.0 + 1) % T::COLUMNS.len().max(1), false)
        };
        self.resort(keep, rows);
        self.sort_label()
    }

    /// `:sort COL [desc]`.
    pub fn sort_by(&mut self, column: &str, descending: bool, rows: usize) -> Result<(), String> {
        let i = T::COLUMNS
            .iter()
            .position(|c| c.eq_ignore_ascii_case(column))
            .ok_or_else(|| {
                format!(
                    "no column `{column}` here: sort by {}",
                    T::COLUMNS.join(", ")
                )
            })?;
        let keep = self.selected().map(T::key);
        self.sort = (i, descending);
        self.resort(keep, rows);
        Ok(())
    }

    pub fn sort_label(&self) -> String {
        let name = T::COLUMNS.get(self.sort.0).copied().unwrap_or("");
        format!("{name}{}", if self.sort.1 { "↓" } else { "↑" })
    }

    fn resort(&mut self, keep: Option<T::Key>, rows: usize) {
        self.sort_shown();
        let shown: Vec<&T> = self.shown.iter().map(|&i| &self.items[i]).collect();
        self.cursor.follow(&shown, keep, |r| r.key(), rows);
    }

    fn refresh(&mut self, now: DateTime<Utc>) {
        self.shown = (0..self.items.len())
            .filter(|&i| self.filter.matches(&Row(&self.items[i]), now))
            .collect();
        self.sort_shown();
    }

    fn sort_shown(&mut self) {
        let Some(column) = T::COLUMNS.get(self.sort.0) else {
            return;
        };
        let items = &self.items;
        let descending = self.sort.1;
        self.shown.sort_by(|&a, &b| {
            let ord = items[a]
                .sort_key(column)
                .compare(&items[b].sort_key(column));
            if descending { ord.reverse() } else { ord }
        });
    }

    /// Puts the cursor on the row with `key`, if it is shown.
    pub fn select(&mut self, key: &T::Key) {
        if let Some(i) = self.shown.iter().position(|&i| self.items[i].key() == *key) {
            self.cursor.selected = i;
        }
    }

    pub fn move_by(&mut self, delta: i64, rows: usize) {
        self.cursor.move_by(delta, self.shown.len(), rows);
    }

    pub fn selected(&self) -> Option<&T> {
        self.shown
            .get(self.cursor.selected)
            .and_then(|&i| self.items.get(i))
    }

    /// The rows shown, in order.
    pub fn shown(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        self.shown.iter().map(|&i| &self.items[i])
    }

    /// Every row loaded, whatever the filter.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// No rows (the filter and the order stay for the next ones).
    pub fn clear(&mut self) {
        self.items.clear();
        self.shown.clear();
        self.cursor = Cursor::default();
    }

    pub fn len(&self) -> usize {
        self.shown.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    pub fn filter_text(&self) -> &str {
        &self.filter_text
    }

    /// For a list's title: `12 of 1000 /text` when filtered, `1000` when not.
    pub fn count_label(&self) -> String {
        if self.filter_text.is_empty() {
            self.items.len().to_string()
        } else {
            format!(
                "{} of {} /{}",
                self.shown.len(),
                self.items.len(),
                self.filter_text
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Svc(&'static str, i64);

    impl ListRow for Svc {
        const FIELDS: &'static [Field] = &[Field::text("name"), Field::number("runs")];
        const COLUMNS: &'static [&'static str] = &["name", "runs"];
        type Key = &'static str;
        fn key(&self) -> &'static str {
            self.0
        }
        fn field(&self, name: &str) -> FieldValue<'_> {
            match name {
                "name" => FieldValue::Text(self.0),
                "runs" => FieldValue::Number(self.1),
                _ => FieldValue::None,
            }
        }
        fn words(&self) -> Vec<&str> {
            vec![self.0]
        }
        fn sort_key(&self, column: &str) -> SortKey<'_> {
            match column {
                "runs" => SortKey::Number(self.1),
                _ => SortKey::Text(self.0),
            }
        }
    }

    fn names(l: &Listing<Svc>) -> Vec<&'static str> {
        l.shown().map(|s| s.0).collect()
    }

    #[test]
    fn filters_sort_naturally_and_keep_the_selection() {
        let now = Utc::now();
        let mut l = Listing::default();
        l.set_items(
            vec![Svc("svc_10", 1), Svc("svc_2", 5), Svc("db_1", 3)],
            now,
            10,
        );
        assert_eq!(names(&l), vec!["db_1", "svc_2", "svc_10"]);
        l.set_filter("svc", now).expect("filter");
        assert_eq!(names(&l), vec!["svc_2", "svc_10"]);
        assert_eq!(l.count_label(), "2 of 3 /svc");
        assert!(l.set_filter("colour:red", now).is_err());
        assert_eq!(
            names(&l),
            vec!["svc_2", "svc_10"],
            "a bad filter keeps the last"
        );
        l.move_by(1, 10);
        assert_eq!(l.selected().map(|s| s.0), Some("svc_10"));
        assert_eq!(l.cycle_sort(false, 10), "runs↑");
        assert_eq!(names(&l), vec!["svc_10", "svc_2"]);
        assert_eq!(
            l.selected().map(|s| s.0),
            Some("svc_10"),
            "selection follows"
        );
        l.cycle_sort(true, 10);
        assert_eq!(names(&l), vec!["svc_2", "svc_10"]);
        l.set_filter("runs:>2", now).expect("filter");
        assert_eq!(names(&l), vec!["svc_2", "db_1"]);
        assert!(l.sort_by("nope", false, 10).is_err());
        l.set_items(vec![Svc("svc_3", 9), Svc("svc_2", 5)], now, 10);
        assert_eq!(
            names(&l),
            vec!["svc_3", "svc_2"],
            "new rows pass the same filter"
        );
    }
}
