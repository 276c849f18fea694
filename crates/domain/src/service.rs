//! Services: a name, a database schema of their own, and workflows described by a manifest.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::InvalidInput;

/// Schemas a service may never take: PostgreSQL's own, ospdeck's, and Supabase's.
pub const RESERVED_SCHEMAS: &[&str] = &[
    "public",
    "ops",
    "osp_metadata",
    "information_schema",
    "auth",
    "storage",
    "extensions",
    "graphql",
    "graphql_public",
    "realtime",
    "supabase_functions",
    "supabase_migrations",
    "vault",
    "pgsodium",
    "pgsodium_masks",
    "net",
    "cron",
];

/// `^[a-z][a-z0-9_]{1,62}$`, not `pg_…`, not reserved. The name becomes a PostgreSQL schema, so
/// this is the line between an operator's input and DDL.
pub fn check_schema_name(schema: &str) -> Result<(), InvalidInput> {
    let first_ok = schema
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = schema
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !(2..=63).contains(&schema.len()) || !first_ok || !rest_ok {
        return Err(InvalidInput::new(format!(
            "invalid schema {schema:?}: use 2 to 63 characters, a lower-case letter first, then \
             lower-case letters, digits and '_'"
        )));
    }
    if schema.starts_with("pg_") {
        return Err(InvalidInput::new(format!(
            "invalid schema {schema:?}: names starting with pg_ belong to PostgreSQL"
        )));
    }
    if RESERVED_SCHEMAS.contains(&schema) {
        return Err(InvalidInput::new(format!(
            "invalid schema {schema:?}: it is reserved"
        )));
    }
    Ok(())
}

/// Workflow and activity names in a manifest: `^[A-Za-z][A-Za-z0-9_]{0,62}$` (camelCase is the
/// norm there).
pub fn check_code_name(what: &str, name: &str) -> Result<(), InvalidInput> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() || name.len() > 63 || !first_ok || !rest_ok {
        return Err(InvalidInput::new(format!(
            "invalid {what} {name:?}: use 1 to 63 letters, digits or '_', a letter first"
        )));
    }
    Ok(())
}

pub fn check_service_name(name: &str) -> Result<(), InvalidInput> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(InvalidInput::new(format!(
            "invalid service name {name:?}: use 1 to 200 printable characters"
        )));
    }
    Ok(())
}

/// `--workflow processBilling:calculateCharges,sendInvoice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowSpec {
    pub name: String,
    pub activities: Vec<String>,
}

impl std::str::FromStr for WorkflowSpec {
    type Err = InvalidInput;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, activities) = text.split_once(':').unwrap_or((text, ""));
        check_code_name("workflow name", name.trim())?;
        let activities: Vec<String> = activities
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        for a in &activities {
            check_code_name("activity name", a)?;
        }
        Ok(Self {
            name: name.trim().to_owned(),
            activities,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub name: String,
    pub schema: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// What creating a service made: the service, its first manifest and its queued deploy run.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedService {
    pub service: Service,
    pub manifest: crate::manifest::Manifest,
    pub deploy_run_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_schema_names_are_refused() {
        for bad in [
            "",
            "a",
            "Telecom",
            "telecom billing",
            "x;drop",
            "a\"b",
            "a'b",
            "1abc",
            "_abc",
            "ab-c",
            "café",
            "pg_catalog",
            "pg_x",
            "public",
            "ops",
            "osp_metadata",
            "information_schema",
            &"a".repeat(64),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["ab", "telecom_billing", "svc_2", &"a".repeat(63)] {
            assert_eq!(check_schema_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn workflow_specs_parse_with_and_without_activities() {
        let spec: WorkflowSpec = "processBilling:calculateCharges, sendInvoice"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.name, "processBilling");
        assert_eq!(spec.activities, vec!["calculateCharges", "sendInvoice"]);
        let bare: Result<WorkflowSpec, _> = "nightly".parse();
        assert_eq!(bare.map(|s| s.activities.len()), Ok(0));
        assert!("bad name:x".parse::<WorkflowSpec>().is_err());
        assert!("ok:bad-activity".parse::<WorkflowSpec>().is_err());
    }
}
