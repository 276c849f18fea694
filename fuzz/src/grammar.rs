//! Reference checks written from the documented grammars, with explicit character sets rather than
//! `is_ascii_*` calls, so that a validator and its reference do not share a mistake.

use std::ops::RangeInclusive;

use serde_json::Value;

pub const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
pub const DIGITS: &str = "0123456789";
pub const ALPHA: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `^[first][rest]*$` with a length in bytes within `len`.
pub fn matches(s: &str, first: &str, rest: &str, len: RangeInclusive<usize>) -> bool {
    let mut chars = s.chars();
    len.contains(&s.len())
        && chars.next().is_some_and(|c| first.contains(c))
        && chars.all(|c| rest.contains(c))
}

/// Workflow and activity names in a manifest: `^[A-Za-z][A-Za-z0-9_]{0,62}$`.
pub fn is_code_name(s: &str) -> bool {
    matches(s, ALPHA, &format!("{ALNUM}_"), 1..=63)
}

/// Queue names: `^[a-z][a-z0-9_.-]{0,62}$`.
pub fn is_queue_name(s: &str) -> bool {
    matches(s, LOWER, &format!("{LOWER}{DIGITS}_.-"), 1..=63)
}

/// Nesting depth by plain recursion (a scalar is 0, `[]` is 1). Only called on values serde_json
/// parsed, which are at most 128 deep.
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Whether a NUL character is in any string or key (PostgreSQL's jsonb cannot hold one).
pub fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_matcher_reads_like_the_grammar() {
        assert!(is_queue_name("billing-tasks"));
        assert!(!is_queue_name("Billing"));
        assert!(!is_queue_name(""));
        assert!(is_queue_name(&"a".repeat(63)));
        assert!(!is_queue_name(&"a".repeat(64)));
        assert!(is_code_name("processBilling"));
        assert!(!is_code_name("process-billing"));
        // Byte length, not characters: a non-ASCII letter is refused by the class anyway.
        assert!(!matches("é", LOWER, LOWER, 1..=63));
    }

    #[test]
    fn depth_and_nul_walk_everything() {
        let v: Value = serde_json::from_str(r#"{"a":[1,{"b":[]}],"c\u0000":0}"#).unwrap();
        assert_eq!(depth(&v), 4);
        assert!(contains_nul(&v));
        assert!(!contains_nul(&serde_json::json!({"a": "\\u0000"})));
    }
}
