//! Project memberships and the audit trail.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::StoreResult;
use crate::domain::permission::Role;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub project: String,
    pub user: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

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

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub project_id: Option<i64>,
    pub entity_type: Option<String>,
    pub limit: i64,
}

#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Adds or changes a member's role, with an audit event. With `login_role` (PostgreSQL, an
    /// administrator's call) the member also gets a database login role in group ospdeck_member.
    async fn set_member(
        &self,
        actor: &str,
        project_id: i64,
        user: &str,
        role: Role,
        login_role: bool,
    ) -> StoreResult<Member>;
    /// The user's role in the project, if a member.
    async fn member_role(&self, project_id: i64, user: &str) -> StoreResult<Option<Role>>;
    /// Every project the user is a member of, with the role held there.
    async fn memberships_of(&self, user: &str) -> StoreResult<Vec<(i64, Role)>>;
    /// Answers whether there was such a member.
    async fn remove_member(&self, actor: &str, project_id: i64, user: &str) -> StoreResult<bool>;
    async fn members(&self, project_id: i64) -> StoreResult<Vec<Member>>;
    /// Newest first.
    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>>;
}
