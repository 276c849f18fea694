//! Memberships and the audit trail. (Roles are recorded and listed here; enforcing the matrix of
//! `domain::permission` in every use case and in PostgreSQL policies is not built yet.)

use super::{Ops, OpsError, OpsResult};
use crate::domain::InvalidInput;
use crate::domain::permission::Role;
use crate::store::access::{AuditFilter, AuditRow, Member};

pub const DEFAULT_AUDIT_LIMIT: i64 = 100;

fn check_user(user: &str) -> OpsResult<()> {
    if user.trim().is_empty() || user.len() > 128 || user.chars().any(|c| c.is_control()) {
        return Err(OpsError::Invalid(InvalidInput::new(format!(
            "invalid user {user:?}: 1 to 128 printable characters"
        ))));
    }
    Ok(())
}

impl Ops {
    pub async fn set_member(&self, project: &str, user: &str, role: Role) -> OpsResult<Member> {
        check_user(user)?;
        let p = self.project(project).await?;
        Ok(self.store.set_member(&self.actor, p.id, user, role).await?)
    }

    pub async fn remove_member(&self, project: &str, user: &str) -> OpsResult<()> {
        check_user(user)?;
        let p = self.project(project).await?;
        if self.store.remove_member(&self.actor, p.id, user).await? {
            Ok(())
        } else {
            Err(OpsError::NotFound(format!(
                "{user} is not a member of {project}"
            )))
        }
    }

    pub async fn members(&self, project: &str) -> OpsResult<Vec<Member>> {
        let p = self.project(project).await?;
        Ok(self.store.members(p.id).await?)
    }

    pub async fn audit_trail(
        &self,
        project: Option<&str>,
        entity_type: Option<&str>,
        limit: Option<i64>,
    ) -> OpsResult<Vec<AuditRow>> {
        let limit = limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
        if !(1..=10_000).contains(&limit) {
            return Err(OpsError::Invalid(InvalidInput::new(format!(
                "invalid limit {limit}: use 1 to 10000"
            ))));
        }
        let project_id = match project {
            Some(key) => Some(self.project(key).await?.id),
            None => None,
        };
        Ok(self
            .store
            .audit(&AuditFilter {
                project_id,
                entity_type: entity_type.map(str::to_owned),
                limit,
            })
            .await?)
    }
}
