//! JSON that arrives from users (payloads, manifests) and from the database. Deeply nested JSON is
//! how a 401-byte payload stopped every worker that decoded it, so nesting is bounded everywhere
//! it is accepted, and measured without recursion.

use serde_json::Value;

use super::error::InvalidInput;

/// The deepest nesting of arrays and objects accepted in a payload or a manifest. The databases
/// refuse deeper values too (a CHECK on PostgreSQL, a trigger on SQLite), and serde_json's own
/// decoder stops at 128, so anything stored can always be decoded.
pub const MAX_JSON_DEPTH: usize = 64;

/// How many arrays and objects are nested at the deepest point (a scalar is 0, `[]` is 1).
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    deepest
}

/// Whether any string or key holds a NUL character, which PostgreSQL's jsonb cannot store. Asked of
/// the value, not its text: the text `"\\u0000"` is a backslash and five characters, no NUL.
pub fn contains_nul(value: &Value) -> bool {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.contains('\0') => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    false
}

/// Refuses `value` when it is nested deeper than [`MAX_JSON_DEPTH`]; `what` names it ("payload").
pub fn check_json_depth(what: &str, value: &Value) -> Result<(), InvalidInput> {
    let depth = json_depth(value);
    if depth > MAX_JSON_DEPTH {
        return Err(InvalidInput::new(format!(
            "{what} is nested {depth} levels deep; the limit is {MAX_JSON_DEPTH}"
        )));
    }
    Ok(())
}

/// Parses JSON text with the nesting bound applied. serde_json refuses text nested beyond 128
/// levels before building anything; that is reported as the same rule.
pub fn parse_bounded(what: &str, text: &str) -> Result<Value, InvalidInput> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            InvalidInput::new(format!(
                "{what} is nested more than 128 levels deep; the limit is {MAX_JSON_DEPTH}"
            ))
        } else {
            InvalidInput::new(format!("{what} is not valid JSON: {e}"))
        }
    })?;
    check_json_depth(what, &value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!([])), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": {}}]})), 4);
        assert_eq!(json_depth(&json!([[], [[[]]], 3])), 4);
    }

    #[test]
    fn the_limit_is_inclusive_and_deeper_text_is_refused_either_way() {
        assert!(parse_bounded("payload", &nested(MAX_JSON_DEPTH)).is_ok());
        let over = parse_bounded("payload", &nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert!(over.0.contains("nested 65 levels"), "{over}");
        // Beyond serde_json's own limit the message names the same rule.
        let far = parse_bounded("payload", &nested(200)).unwrap_err();
        assert!(far.0.contains("more than 128 levels"), "{far}");
        let bad = parse_bounded("payload", "{").unwrap_err();
        assert!(bad.0.starts_with("payload is not valid JSON"), "{bad}");
    }

    #[test]
    fn nul_is_found_in_strings_and_keys_but_not_in_escaped_text() {
        assert!(contains_nul(&json!({"a": [1, "x\u{0}y"]})));
        assert!(contains_nul(&json!({"k\u{0}": 1})));
        assert!(!contains_nul(&json!({"path": "C:\\u0000"})));
        assert!(!contains_nul(&json!([null, 1.5, {"a": "b"}])));
    }

    #[test]
    fn measuring_a_very_deep_value_does_not_recurse() {
        // Built by hand: serde_json could not parse this, but a Value can still be constructed.
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(json_depth(&v), 100_000);
        // Dropping a Value this deep recurses in serde_json; leak it instead of overflowing.
        std::mem::forget(v);
    }
}
