//! The audit trail as it is read back: who did what to which entity, with the before and after.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::filter::{Field, FieldValue, Filterable};

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

/// What the audit trail can be filtered on (`actor:alice action:activate entity:manifest age:<1h`);
/// a free word is looked for in the actor, the action and the entity's type and id.
pub const AUDIT_FIELDS: &[Field] = &[
    Field::text("actor"),
    Field::text("action"),
    Field::text("entity"),
    Field::age("age"),
];

impl Filterable for AuditRow {
    fn field(&self, name: &str) -> FieldValue<'_> {
        match name {
            "actor" => FieldValue::Text(&self.actor),
            "action" => FieldValue::Text(&self.action),
            "entity" => FieldValue::Text(&self.entity_type),
            "age" => FieldValue::Time(self.at),
            _ => FieldValue::None,
        }
    }

    fn words(&self) -> Vec<&str> {
        vec![
            &self.actor,
            &self.action,
            &self.entity_type,
            &self.entity_id,
        ]
    }
}

impl AuditRow {
    /// The top-level keys whose value differs between before and after (both objects), in
    /// order; empty when either side is not an object.
    pub fn changed_keys(&self) -> Vec<&str> {
        let (Some(Value::Object(before)), Some(Value::Object(after))) = (&self.before, &self.after)
        else {
            return Vec::new();
        };
        let mut keys: Vec<&str> = before
            .keys()
            .chain(after.keys())
            .map(String::as_str)
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use chrono::TimeZone;

    fn row(actor: &str, action: &str, entity: &str, minutes_ago: i64) -> AuditRow {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 22, 9, 30, 0)
            .single()
            .expect("time");
        AuditRow {
            id: 1,
            actor: actor.into(),
            action: action.into(),
            entity_type: entity.into(),
            entity_id: "telecom_billing@1.1.0".into(),
            project_id: None,
            before: Some(serde_json::json!({ "status": "draft", "by": "alice" })),
            after: Some(serde_json::json!({ "status": "active", "by": "alice", "at": 1 })),
            at: now - chrono::TimeDelta::minutes(minutes_ago),
        }
    }

    #[test]
    fn audit_rows_filter_on_their_fields_and_words() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 22, 9, 30, 0)
            .single()
            .expect("time");
        let r = row("alice", "activate", "manifest", 5);
        let hit = |text: &str| {
            Filter::parse(text, AUDIT_FIELDS)
                .expect(text)
                .matches(&r, now)
        };
        assert!(hit("actor:ali action:act entity:manifest age:<10m"));
        assert!(hit("billing"));
        assert!(!hit("actor:bob"));
        assert!(!hit("age:>1h"));
        assert!(Filter::parse("worker:w1", AUDIT_FIELDS).is_err());
    }

    #[test]
    fn changed_keys_name_what_differs() {
        assert_eq!(row("a", "b", "c", 0).changed_keys(), vec!["at", "status"]);
    }
}
