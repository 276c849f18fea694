//! Small pieces both stores share: decoding and tallying that does not depend on the SQL dialect.

use std::str::FromStr;

use serde_json::Value;

use super::{MigrationState, StoreError, StoreResult};
use crate::domain::run::{RescueOutcome, RunStatus, StatusCount};

/// An UPDATE or DELETE of a row the transaction has just read must have touched it; when it did
/// not, row-level security kept the row out of the statement (PostgreSQL filters silently).
pub(super) fn require_changed(rows: u64, what: impl FnOnce() -> String) -> StoreResult<()> {
    if rows == 0 {
        Err(StoreError::Forbidden(format!(
            "{} is not allowed for this role",
            what()
        )))
    } else {
        Ok(())
    }
}

/// An enum stored as text (status, type, level, role…), back into its domain type. A value the
/// domain does not know means the database holds something no writer of ours put there.
pub(super) fn decode<T>(text: &str) -> StoreResult<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    T::from_str(text).map_err(|e| StoreError::Database(e.to_string()))
}

/// JSON text as the database holds it. Text that cannot be decoded (nested beyond serde_json's
/// limit, written by another tool before the database bounded nesting) must not fail the query it
/// is part of: one such row used to stop every worker that claimed it, the run list and the console.
pub(super) fn stored_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("stored JSON cannot be decoded: {e}"))
}

/// JSON that is only shown (log metadata, audit before/after, manifest content): an undecodable
/// value becomes an object saying so, rather than failing the read or passing for null.
pub(super) fn shown_json(text: &str) -> Value {
    stored_json(text).unwrap_or_else(|e| serde_json::json!({ "undecodable": e }))
}

/// A run's payload, or null and the reason it could not be decoded (the run then fails alone).
pub(super) fn payload(text: &str) -> (Value, Option<String>) {
    match stored_json(text) {
        Ok(value) => (value, None),
        Err(e) => (Value::Null, Some(e)),
    }
}

pub(super) fn status(text: &str) -> StoreResult<RunStatus> {
    decode(text)
}

pub(super) fn migration_states(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Vec<MigrationState> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationState {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains(&m.version),
        })
        .collect()
}

pub(super) fn tally_rescue<'a>(statuses: impl Iterator<Item = &'a str>) -> RescueOutcome {
    let mut out = RescueOutcome::default();
    for s in statuses {
        match s {
            "queued" => out.requeued += 1,
            "failed" => out.failed += 1,
            _ => out.canceled += 1,
        }
    }
    out
}

/// A unique-key violation becomes a sentence naming the thing that already exists.
pub(super) fn conflict_as(err: impl Into<StoreError>, message: String) -> StoreError {
    match err.into() {
        StoreError::Conflict(_) => StoreError::Conflict(message),
        other => other,
    }
}

/// Rows of (status, count) become a count for every status, in RunStatus::ALL order.
pub(super) fn status_counts(rows: Vec<(String, i64)>) -> StoreResult<Vec<StatusCount>> {
    let mut counts: Vec<StatusCount> = RunStatus::ALL
        .iter()
        .map(|&status| StatusCount { status, count: 0 })
        .collect();
    for (s, n) in rows {
        let s = status(&s)?;
        if let Some(c) = counts.iter_mut().find(|c| c.status == s) {
            c.count += n;
        }
    }
    Ok(counts)
}
