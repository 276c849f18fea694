//! The audit trail as it is read back: who did what to which entity, with the before and after.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub project_id: Option<i64>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub at: DateTime<Utc>,
}
