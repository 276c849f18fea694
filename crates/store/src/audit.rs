//! The audit trail's writing side: one row per change, in the transaction of the change.

use serde::Serialize;

use crate::StoreResult;
use crate::domain::run::CancelOutcome;
use crate::sql::{JsonText, Tx, stmt};

/// One row of the audit trail, written in the transaction of the change it records.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'static str,
    pub entity_type: &'static str,
    pub entity_id: String,
    pub project_id: Option<i64>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl<'a> AuditEntry<'a> {
    pub(crate) fn created(
        actor: &'a str,
        entity_type: &'static str,
        entity_id: &str,
        project_id: Option<i64>,
        after: &impl Serialize,
    ) -> Self {
        Self {
            actor,
            action: "create",
            entity_type,
            entity_id: entity_id.to_owned(),
            project_id,
            before: None,
            after: serde_json::to_value(after).ok(),
        }
    }

    pub(crate) fn run_canceled(
        actor: &'a str,
        run_id: i64,
        project_id: i64,
        before: &str,
        outcome: CancelOutcome,
    ) -> Self {
        Self {
            actor,
            action: "cancel",
            entity_type: "run",
            entity_id: run_id.to_string(),
            project_id: Some(project_id),
            before: Some(serde_json::json!({ "status": before })),
            after: Some(serde_json::json!({ "outcome": outcome })),
        }
    }

    pub(crate) fn run_retried(
        actor: &'a str,
        run_id: i64,
        project_id: i64,
        new_run_id: i64,
    ) -> Self {
        Self {
            actor,
            action: "retry",
            entity_type: "run",
            entity_id: run_id.to_string(),
            project_id: Some(project_id),
            before: None,
            after: Some(serde_json::json!({ "retry_run_id": new_run_id })),
        }
    }
}

impl AuditEntry<'_> {
    /// Writes the entry in `tx`, the transaction of the change it records.
    pub(crate) async fn record(&self, tx: &mut Tx) -> StoreResult<()> {
        tx.execute(
            stmt(
                "INSERT INTO audit_log (actor, action, entity_type, entity_id, project_id, before, after)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(self.actor)
            .bind(self.action)
            .bind(self.entity_type)
            .bind(&self.entity_id)
            .bind(self.project_id)
            .bind(self.before.as_ref().map(JsonText::of))
            .bind(self.after.as_ref().map(JsonText::of)),
        )
        .await?;
        Ok(())
    }
}
