//! The filter grammar every list shares, the console's and the CLI's: free words and
//! `field:value` terms, all of which must hold.
//!
//! ```text
//! status:failed workflow:test queue:demo worker:w1 age:>10m disk full
//! ```
//!
//! - A word matches a row when one of its text fields contains it (case-insensitive).
//! - `field:a,b` matches either value; text fields match by substring, choice fields (a status)
//!   exactly, by a unique prefix (`status:fa` is `failed`), so typing narrows as it goes.
//! - Numbers and ages compare with `>`, `>=`, `<`, `<=` or `=` (`try:>1`, `age:>10m`:
//!   older than ten minutes; ages in s, m, h, d).
//! - `"two words"` is one word or value.
//!
//! Each list names its fields; a term for another field is an error that lists them.

use std::cmp::Ordering;

use chrono::{DateTime, TimeDelta, Utc};

use crate::error::InvalidInput;

/// What a field holds, which decides how a term compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Matched by substring, case-insensitive.
    Text,
    /// One of these words, named exactly or by a unique prefix.
    Choice(&'static [&'static str]),
    Number,
    /// A point in time, compared as an age against the clock.
    Age,
}

/// One field a list can be filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

impl Field {
    pub const fn text(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Text,
        }
    }

    pub const fn number(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Number,
        }
    }

    pub const fn age(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Age,
        }
    }

    pub const fn choice(name: &'static str, words: &'static [&'static str]) -> Self {
        Self {
            name,
            kind: Kind::Choice(words),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    /// The comparison seen from the other side (`a > b` is `b < a`).
    pub fn reversed(self) -> Cmp {
        match self {
            Cmp::Eq => Cmp::Eq,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
        }
    }

    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Cmp::Eq => ord == Ordering::Equal,
            Cmp::Gt => ord == Ordering::Greater,
            Cmp::Ge => ord != Ordering::Less,
            Cmp::Lt => ord == Ordering::Less,
            Cmp::Le => ord != Ordering::Greater,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Any of these (lowercase; a choice field's values are its full words).
    Any(Vec<String>),
    Number(Cmp, i64),
    /// An age in whole seconds.
    Age(Cmp, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub field: &'static str,
    pub value: Value,
}

/// A parsed filter: every term and every word must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub terms: Vec<Term>,
    /// Free words, lowercase.
    pub words: Vec<String>,
}

/// What a row offers a filter: its fields by name, and the text fields words are looked for in.
pub enum FieldValue<'a> {
    Text(&'a str),
    /// Several texts (a worker's queues): a value matches when one of them contains it.
    Texts(Vec<&'a str>),
    Number(i64),
    Time(DateTime<Utc>),
    /// The row has no value here (a run no worker has held): no term on it matches.
    None,
}

pub trait Filterable {
    fn field(&self, name: &str) -> FieldValue<'_>;
    /// The fields a free word is looked for in.
    fn words(&self) -> Vec<&str>;
}

impl Filter {
    /// Parses `text` for a list with `fields`. An empty text is the empty filter.
    pub fn parse(text: &str, fields: &[Field]) -> Result<Filter, InvalidInput> {
        let mut filter = Filter::default();
        for token in tokens(text)? {
            match split_term(&token) {
                Some((name, value)) => {
                    let field = fields
                        .iter()
                        .find(|f| f.name.eq_ignore_ascii_case(name))
                        .ok_or_else(|| {
                            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                            InvalidInput::new(format!(
                                "unknown field `{name}`: filter on {}",
                                names.join(", ")
                            ))
                        })?;
                    filter.terms.push(Term {
                        field: field.name,
                        value: parse_value(field, value)?,
                    });
                }
                None => filter.words.push(token.to_lowercase()),
            }
        }
        Ok(filter)
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.words.is_empty()
    }

    /// The values of the terms on `field`, if any (for a store that filters on them itself).
    pub fn term(&self, field: &str) -> Option<&Value> {
        self.terms
            .iter()
            .find(|t| t.field == field)
            .map(|t| &t.value)
    }

    /// Whether `row` passes, ages judged against `now`.
    pub fn matches(&self, row: &impl Filterable, now: DateTime<Utc>) -> bool {
        let words = row.words();
        let word_found = |w: &str| words.iter().any(|t| contains_folded(t, w));
        self.words.iter().all(|w| word_found(w))
            && self.terms.iter().all(|t| term_matches(t, row, now))
    }
}

fn term_matches(term: &Term, row: &impl Filterable, now: DateTime<Utc>) -> bool {
    match (&term.value, row.field(term.field)) {
        (Value::Any(values), FieldValue::Text(text)) => {
            values.iter().any(|v| contains_folded(text, v))
        }
        (Value::Any(values), FieldValue::Texts(texts)) => values
            .iter()
            .any(|v| texts.iter().any(|t| contains_folded(t, v))),
        (Value::Any(values), FieldValue::Number(n)) => {
            values.iter().any(|v| v.parse::<i64>() == Ok(n))
        }
        (Value::Number(cmp, want), FieldValue::Number(n)) => cmp.holds(n.cmp(want)),
        (Value::Age(cmp, secs), FieldValue::Time(t)) => {
            cmp.holds((now - t).num_seconds().cmp(secs))
        }
        _ => false,
    }
}

/// Case-insensitive substring, without allocating for the common ASCII case.
fn contains_folded(haystack: &str, lower_needle: &str) -> bool {
    if lower_needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() && lower_needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), lower_needle.as_bytes());
        return h
            .windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b));
    }
    haystack.to_lowercase().contains(lower_needle)
}

/// `name:value` when the token is a term (a name of letters, then a colon).
fn split_term(token: &str) -> Option<(&str, &str)> {
    let (name, value) = token.split_once(':')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
        .then_some((name, value))
}

/// Splits on whitespace; double quotes keep a phrase together (`error:"disk full"`).
fn tokens(text: &str) -> Result<Vec<String>, InvalidInput> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(InvalidInput::new("a quote is not closed"));
    }
    if any {
        out.push(current);
    }
    Ok(out)
}

fn parse_value(field: &Field, value: &str) -> Result<Value, InvalidInput> {
    let name = field.name;
    if value.is_empty() {
        return Err(InvalidInput::new(format!("`{name}:` needs a value")));
    }
    match field.kind {
        Kind::Text => Ok(Value::Any(
            value
                .split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_lowercase)
                .collect(),
        )),
        Kind::Choice(words) => {
            let mut chosen = Vec::new();
            for v in value.split(',').filter(|v| !v.is_empty()) {
                let v = v.to_lowercase();
                let hits: Vec<&str> = match words.iter().find(|w| **w == v) {
                    Some(exact) => vec![*exact],
                    None => words
                        .iter()
                        .copied()
                        .filter(|w| w.starts_with(&v))
                        .collect(),
                };
                match hits.as_slice() {
                    [one] => chosen.push((*one).to_owned()),
                    [] => {
                        return Err(InvalidInput::new(format!(
                            "unknown {name} `{v}`: one of {}",
                            words.join(", ")
                        )));
                    }
                    many => {
                        return Err(InvalidInput::new(format!(
                            "`{name}:{v}` could be {}",
                            many.join(" or ")
                        )));
                    }
                }
            }
            Ok(Value::Any(chosen))
        }
        Kind::Number => {
            let (cmp, rest) = comparison(value);
            rest.parse::<i64>()
                .map(|n| Value::Number(cmp, n))
                .map_err(|_| {
                    InvalidInput::new(format!("`{name}:{value}`: a number, as in {name}:>2"))
                })
        }
        Kind::Age => {
            let (cmp, rest) = comparison(value);
            match parse_duration(rest) {
                Some(secs) if cmp != Cmp::Eq => Ok(Value::Age(cmp, secs)),
                _ => Err(InvalidInput::new(format!(
                    "`{name}:{value}`: say older or newer than, as in {name}:>10m or {name}:<2h"
                ))),
            }
        }
    }
}

fn comparison(value: &str) -> (Cmp, &str) {
    for (prefix, cmp) in [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
        ("=", Cmp::Eq),
    ] {
        if let Some(rest) = value.strip_prefix(prefix) {
            return (cmp, rest);
        }
    }
    (Cmp::Eq, value)
}

/// `90s`, `10m`, `2h`, `3d`, or seconds alone; None for anything else.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// How long ago `secs` seconds is, as a bound on a creation time.
pub fn before(now: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    now - TimeDelta::seconds(secs)
}

/// Natural order for names: digit runs compare as numbers (`svc_2` before `svc_10`), the rest
/// case-insensitively, and ties by the exact text so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let n = take_digits(&mut x);
                let m = take_digits(&mut y);
                // Compare by magnitude without parsing (runs of any length): strip leading
                // zeros, then the longer is larger, then digit by digit.
                let (n0, m0) = (n.trim_start_matches('0'), m.trim_start_matches('0'));
                let ord = n0.len().cmp(&m0.len()).then_with(|| n0.cmp(m0));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            (Some(c), Some(d)) => {
                let ord = c.to_lowercase().cmp(d.to_lowercase());
                if ord != Ordering::Equal {
                    return ord;
                }
                x.next();
                y.next();
            }
        }
    }
}

fn take_digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut s = String::new();
    while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
        s.push(c);
        chars.next();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[Field] = &[
        Field::choice(
            "status",
            &["queued", "claimed", "running", "failed", "canceled"],
        ),
        Field::text("workflow"),
        Field::number("try"),
        Field::age("age"),
    ];

    struct Row {
        status: &'static str,
        workflow: &'static str,
        attempt: i64,
        created: DateTime<Utc>,
    }

    impl Filterable for Row {
        fn field(&self, name: &str) -> FieldValue<'_> {
            match name {
                "status" => FieldValue::Text(self.status),
                "workflow" => FieldValue::Text(self.workflow),
                "try" => FieldValue::Number(self.attempt),
                "age" => FieldValue::Time(self.created),
                _ => FieldValue::None,
            }
        }
        fn words(&self) -> Vec<&str> {
            vec![self.status, self.workflow]
        }
    }

    #[test]
    fn terms_and_words_parse_with_prefixes_lists_comparisons_and_quotes() {
        let f = Filter::parse(
            r#"status:fa,run workflow:Nightly try:>=2 age:>10m "disk full""#,
            FIELDS,
        )
        .expect("parses");
        assert_eq!(
            f.terms,
            vec![
                Term {
                    field: "status",
                    value: Value::Any(vec!["failed".into(), "running".into()])
                },
                Term {
                    field: "workflow",
                    value: Value::Any(vec!["nightly".into()])
                },
                Term {
                    field: "try",
                    value: Value::Number(Cmp::Ge, 2)
                },
                Term {
                    field: "age",
                    value: Value::Age(Cmp::Gt, 600)
                },
            ]
        );
        assert_eq!(f.words, vec!["disk full".to_owned()]);
        assert!(Filter::parse("  ", FIELDS).expect("empty").is_empty());
    }

    #[test]
    fn bad_terms_say_what_would_do() {
        let err = |t: &str| Filter::parse(t, FIELDS).expect_err(t).0;
        assert_eq!(
            err("colour:red"),
            "unknown field `colour`: filter on status, workflow, try, age"
        );
        assert_eq!(err("status:c"), "`status:c` could be claimed or canceled");
        assert!(err("status:done").starts_with("unknown status `done`: one of queued"));
        assert_eq!(err("workflow:"), "`workflow:` needs a value");
        assert!(err("age:10m").contains("age:>10m"));
        assert!(err("try:lots").contains("a number"));
        assert_eq!(err("\"open"), "a quote is not closed");
    }

    #[test]
    fn rows_match_every_term_and_word() {
        let now = Utc::now();
        let row = Row {
            status: "failed",
            workflow: "nightly-test",
            attempt: 2,
            created: now - TimeDelta::minutes(30),
        };
        let yes = |t: &str| Filter::parse(t, FIELDS).expect(t).matches(&row, now);
        assert!(yes(""));
        assert!(yes("status:failed workflow:test"));
        assert!(yes("NIGHTLY"));
        assert!(yes("age:>10m try:2"));
        assert!(!yes("age:<10m"));
        assert!(!yes("status:queued,running"));
        assert!(!yes("nightly deploy"));
        assert!(!yes("try:>2"));
    }

    #[test]
    fn durations_read_units() {
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("2h"), Some(7_200));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("m"), None);
    }

    #[test]
    fn names_sort_naturally() {
        let mut names = vec!["svc_10", "svc_2", "Svc_1", "svc_02", "alpha", "svc_"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec!["alpha", "svc_", "Svc_1", "svc_02", "svc_2", "svc_10"]
        );
    }
}
