//! Tools (image registry rows) and upgrade advisories: warnings between two versions of a tool.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::{InvalidInput, check_identifier};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    pub id: i64,
    pub name: String,
    pub version: String,
    pub image: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Breaking,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Breaking => "breaking",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Info, Self::Warning, Self::Breaking]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(format!("unknown severity {s:?}: info, warning or breaking"))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    pub id: i64,
    pub tool_name: String,
    pub from_version: String,
    pub to_version: String,
    pub severity: Severity,
    pub title: String,
    pub guide_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAdvisory {
    pub tool_name: String,
    pub from_version: String,
    pub to_version: String,
    pub severity: Severity,
    pub title: String,
    pub guide_url: Option<String>,
}

pub fn check_tool_name(name: &str) -> Result<(), InvalidInput> {
    check_identifier("tool name", name, 63, &['-', '.'])
}

/// Tool versions are not always semver ("16.0", "2024.1"): dot-separated, numbers compared as
/// numbers, anything else as text.
pub fn check_tool_version(version: &str) -> Result<(), InvalidInput> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "invalid version {version:?}: use up to 64 letters, digits, '.', '-', '+', '_'"
        )))
    }
}

/// Orders tool versions part by part (split at '.', '-', '+'; a missing part sorts first):
/// numeric parts as numbers of any length (no parsing into a fixed-size integer that a long part
/// would overflow), and before any part with other characters (as semver orders pre-release
/// identifiers), which compare as text. Mixing number and text order within one comparison made it
/// cyclic (2 < 10, "10" < "1a", "1a" < "2"), so whether an advisory applied depended on the pair.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn key(part: &str) -> (bool, usize, &str) {
        match digits(part) {
            Some(d) => (false, d.len(), d),
            None => (true, 0, part),
        }
    }
    a.split(['.', '-', '+'])
        .map(key)
        .cmp(b.split(['.', '-', '+']).map(key))
}

/// A part made of digits only, without its leading zeros (so that length orders it first).
fn digits(part: &str) -> Option<&str> {
    (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| part.trim_start_matches('0'))
}

impl NewAdvisory {
    pub fn new(
        tool_name: &str,
        from_version: &str,
        to_version: &str,
        severity: Severity,
        title: &str,
        guide_url: Option<&str>,
    ) -> Result<Self, InvalidInput> {
        check_tool_name(tool_name)?;
        check_tool_version(from_version)?;
        check_tool_version(to_version)?;
        if compare_versions(from_version, to_version) != Ordering::Less {
            return Err(InvalidInput::new(format!(
                "an advisory goes from an older to a newer version ({from_version} → {to_version})"
            )));
        }
        let title = title.trim();
        if title.is_empty() || title.len() > 500 || title.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "an advisory needs a one-line title (up to 500 bytes)",
            ));
        }
        if let Some(url) = guide_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| InvalidInput::new(format!("invalid guide URL {url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(InvalidInput::new(format!(
                    "invalid guide URL {url:?}: use http or https"
                )));
            }
        }
        Ok(Self {
            tool_name: tool_name.to_owned(),
            from_version: from_version.to_owned(),
            to_version: to_version.to_owned(),
            severity,
            title: title.to_owned(),
            guide_url: guide_url.map(str::to_owned),
        })
    }
}

impl Advisory {
    /// `odoo 16.0→17.0: title (guide)`, as CLI notes and refusals name it.
    pub fn describe(&self) -> String {
        format!(
            "{} {}→{}: {}{}",
            self.tool_name,
            self.from_version,
            self.to_version,
            self.title,
            self.guide_url
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default()
        )
    }

    /// Whether an upgrade from `from` to `to` crosses this advisory's step.
    pub fn applies_to(&self, from: &str, to: &str) -> bool {
        compare_versions(&self.from_version, from) != Ordering::Less
            && compare_versions(&self.to_version, to) != Ordering::Greater
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_by_part() {
        assert_eq!(compare_versions("16.0", "17.0"), Ordering::Less);
        assert_eq!(compare_versions("9.0", "10.0"), Ordering::Less);
        assert_eq!(compare_versions("17.0", "17.0.1"), Ordering::Less);
        assert_eq!(compare_versions("17.0", "17.0"), Ordering::Equal);
        assert_eq!(compare_versions("17.00", "17.0"), Ordering::Equal);
        // Parts beyond u64 still compare as numbers, with each other and with short ones.
        let huge = "100000000000000000000"; // u64::MAX is 18446744073709551615
        assert_eq!(
            compare_versions("99999999999999999999", huge),
            Ordering::Less
        );
        assert_eq!(
            compare_versions("5.0", &format!("{huge}.0")),
            Ordering::Less
        );
        assert_eq!(
            compare_versions(&format!("1.{huge}"), "1.7"),
            Ordering::Greater
        );
    }

    #[test]
    fn version_order_is_total_with_text_parts() {
        // A numeric part sorts before a part with letters, so 2 < 10 < 1a and 2 < 1a.
        assert_eq!(compare_versions("2", "10"), Ordering::Less);
        assert_eq!(compare_versions("10", "1a"), Ordering::Less);
        assert_eq!(compare_versions("2", "1a"), Ordering::Less);
        assert_eq!(compare_versions("17.0", "17.0a"), Ordering::Less);
        assert_eq!(compare_versions("17.0-rc", "17.0"), Ordering::Greater);
        assert_eq!(compare_versions("a", "b"), Ordering::Less);
    }

    #[test]
    fn an_advisory_applies_to_upgrades_that_cross_it() -> Result<(), InvalidInput> {
        let new = NewAdvisory::new("odoo", "16.0", "17.0", Severity::Breaking, "x", None)?;
        let a = Advisory {
            id: 1,
            tool_name: new.tool_name,
            from_version: new.from_version,
            to_version: new.to_version,
            severity: new.severity,
            title: new.title,
            guide_url: None,
            created_at: Utc::now(),
        };
        assert!(a.applies_to("15.0", "17.0"));
        assert!(a.applies_to("16.0", "17.0"));
        assert!(!a.applies_to("17.0", "18.0"));
        assert!(!a.applies_to("15.0", "16.0"));
        assert!(NewAdvisory::new("odoo", "17.0", "16.0", Severity::Info, "x", None).is_err());
        assert!(NewAdvisory::new("odoo", "1", "2", Severity::Info, "x", Some("ftp://x")).is_err());
        assert!(NewAdvisory::new("Odoo", "1", "2", Severity::Info, "x", None).is_err());
        Ok(())
    }
}
