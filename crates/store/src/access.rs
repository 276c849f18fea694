//! Project memberships and the audit trail.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::audit::AuditRow;
use crate::domain::permission::{Member, Role};

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
