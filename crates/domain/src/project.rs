use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::{InvalidInput, check_identifier};

/// A workspace: runs and workflows belong to one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    pub id: i64,
    pub key: String,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    pub key: String,
    pub name: String,
}

impl NewProject {
    /// The key doubles as the slug, so it is held to URL- and identifier-safe characters.
    pub fn new(key: &str, name: Option<&str>) -> Result<Self, InvalidInput> {
        check_identifier("project key", key, 63, &['-'])?;
        let name = name.map(str::trim).unwrap_or(key);
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "invalid project name: use 1 to 200 printable characters",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(NewProject::new("acme", None).is_ok());
        assert!(NewProject::new("acme-prod_2", Some("Acme")).is_ok());
        for bad in ["", "Acme", "1acme", "ac me", "a;drop", "é", &"a".repeat(64)] {
            assert!(NewProject::new(bad, None).is_err(), "{bad:?} accepted");
        }
        assert!(NewProject::new("acme", Some("bad\nname")).is_err());
        assert_eq!(
            NewProject::new("acme", None).map(|p| p.name),
            Ok("acme".to_owned())
        );
    }
}
