use std::borrow::Cow;
use std::fmt;

/// Input that breaks a rule of the domain. The message is written for the operator: it names the
/// field and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput(pub String);

impl InvalidInput {
    /// Messages quote input (serde's "unknown field `…`" quotes a key as written), so they are
    /// made [`one_line`].
    pub fn new(message: impl Into<String>) -> Self {
        let message = message.into();
        match one_line(&message) {
            Cow::Borrowed(_) => Self(message),
            Cow::Owned(escaped) => Self(escaped),
        }
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): an error reaches the operator
/// as one line after `error: `, whatever input it quotes.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_debug());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// `^[a-z][a-z0-9_-]{min-1,max-1}$`-style identifiers, checked without a regex engine.
pub(crate) fn check_identifier(
    what: &str,
    value: &str,
    max_len: usize,
    extra: &[char],
) -> Result<(), InvalidInput> {
    let ok_first = value.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let ok_rest = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || extra.contains(&c));
    if value.is_empty() || value.len() > max_len || !ok_first || !ok_rest {
        let allowed: String = extra.iter().map(|c| format!(" '{c}'")).collect();
        return Err(InvalidInput::new(format!(
            "invalid {what} {value:?}: use 1 to {max_len} characters, a lower-case letter first, \
             then lower-case letters, digits, '_'{allowed}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_one_line_whatever_it_quotes() {
        assert_eq!(
            InvalidInput::new("unknown field `a\nb\r\u{1b}[31m`").0,
            r"unknown field `a\nb\r\u{1b}[31m`"
        );
        assert_eq!(InvalidInput::new("café ✓").0, "café ✓");
    }
}
