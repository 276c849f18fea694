//! Project memberships and the audit trail. Written once for both backends; only PostgreSQL's
//! login roles (a database has users of its own there) are one backend's.

use async_trait::async_trait;
use serde_json::json;

use super::{StoreKind, StoreResult};
use crate::audit::AuditEntry;
use crate::domain::audit::AuditRow;
use crate::domain::permission::{Member, Role};
use crate::shared::{decode, shown_json};
use crate::sql::{Backend, JsonText, Time, Tx, row, stmt};

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

row! {
    struct MemberRow {
        project: String,
        user_id: String,
        role: String,
        created_at: Time,
    }
}

impl MemberRow {
    fn into_domain(self) -> StoreResult<Member> {
        Ok(Member {
            project: self.project,
            user: self.user_id,
            role: decode::<Role>(&self.role)?,
            created_at: self.created_at.into(),
        })
    }
}

row! {
    struct AuditDbRow {
        id: i64,
        actor: String,
        action: String,
        entity_type: String,
        entity_id: String,
        project_id: Option<i64>,
        before: Option<JsonText>,
        after: Option<JsonText>,
        at: Time,
    }
}

impl From<AuditDbRow> for AuditRow {
    fn from(r: AuditDbRow) -> Self {
        AuditRow {
            id: r.id,
            actor: r.actor,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            project_id: r.project_id,
            before: r.before.map(|j| shown_json(&j.0)),
            after: r.after.map(|j| shown_json(&j.0)),
            at: r.at.into(),
        }
    }
}

fn role_json(role: impl serde::Serialize) -> serde_json::Value {
    json!({ "role": role })
}

/// PostgreSQL only: a database login role for the member, in group ospdeck_member. CREATE ROLE
/// needs CREATEROLE: an administrator's call (ops decides when to ask). SQLite has no users of its
/// own to create.
async fn ensure_login_role(tx: &mut Tx, user: &str) -> StoreResult<()> {
    if tx.kind() != StoreKind::Postgres {
        return Ok(());
    }
    let (created,): (bool,) = tx
        .fetch_one(stmt("SELECT ops.ensure_member_login($1)").bind(user))
        .await?;
    if created {
        tracing::info!(%user, "created database login role in ospdeck_member");
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> AccessStore for B {
    async fn set_member(
        &self,
        actor: &str,
        project_id: i64,
        user: &str,
        role: Role,
        login_role: bool,
    ) -> StoreResult<Member> {
        let mut tx = self.db().begin().await?;
        if login_role {
            ensure_login_role(&mut tx, user).await?;
        }
        let before: Option<(String,)> = tx
            .fetch_optional(
                stmt("SELECT role FROM project_memberships WHERE project_id = $1 AND user_id = $2")
                    .bind(project_id)
                    .bind(user),
            )
            .await?;
        let (user_id, stored_role, created_at): (String, String, Time) = tx
            .fetch_one(
                stmt(
                    "INSERT INTO project_memberships (project_id, user_id, role) VALUES ($1, $2, $3)
                     ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role
                     RETURNING user_id, role, created_at",
                )
                .bind(project_id)
                .bind(user)
                .bind(role.as_str()),
            )
            .await?;
        let (project,): (String,) = tx
            .fetch_one(stmt("SELECT workspace_key FROM projects WHERE id = $1").bind(project_id))
            .await?;
        AuditEntry {
            actor,
            action: "member",
            entity_type: "membership",
            entity_id: user.to_owned(),
            project_id: Some(project_id),
            before: before.map(|(r,)| role_json(r)),
            after: Some(role_json(role)),
        }
        .record(&mut tx)
        .await?;
        tx.commit().await?;
        MemberRow {
            project,
            user_id,
            role: stored_role,
            created_at,
        }
        .into_domain()
    }

    async fn remove_member(&self, actor: &str, project_id: i64, user: &str) -> StoreResult<bool> {
        let mut tx = self.db().begin().await?;
        // Row-level security (PostgreSQL) filters a member the caller may not remove: not found.
        let before: Option<(String,)> = tx
            .fetch_optional(
                stmt(
                    "DELETE FROM project_memberships WHERE project_id = $1 AND user_id = $2
                     RETURNING role",
                )
                .bind(project_id)
                .bind(user),
            )
            .await?;
        if let Some((role,)) = &before {
            AuditEntry {
                actor,
                action: "remove_member",
                entity_type: "membership",
                entity_id: user.to_owned(),
                project_id: Some(project_id),
                before: Some(role_json(role)),
                after: None,
            }
            .record(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(before.is_some())
    }

    async fn member_role(&self, project_id: i64, user: &str) -> StoreResult<Option<Role>> {
        let role: Option<(String,)> = self
            .db()
            .fetch_optional(
                stmt("SELECT role FROM project_memberships WHERE project_id = $1 AND user_id = $2")
                    .bind(project_id)
                    .bind(user),
            )
            .await?;
        role.map(|(r,)| decode::<Role>(&r)).transpose()
    }

    async fn memberships_of(&self, user: &str) -> StoreResult<Vec<(i64, Role)>> {
        let rows: Vec<(i64, String)> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT project_id, role FROM project_memberships WHERE user_id = $1
                     ORDER BY project_id",
                )
                .bind(user),
            )
            .await?;
        rows.into_iter()
            .map(|(id, role)| Ok((id, decode::<Role>(&role)?)))
            .collect()
    }

    async fn members(&self, project_id: i64) -> StoreResult<Vec<Member>> {
        let rows: Vec<MemberRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT p.workspace_key AS project, m.user_id, m.role, m.created_at
                     FROM project_memberships m JOIN projects p ON p.id = m.project_id
                     WHERE m.project_id = $1 ORDER BY m.user_id",
                )
                .bind(project_id),
            )
            .await?;
        rows.into_iter().map(MemberRow::into_domain).collect()
    }

    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        let rows: Vec<AuditDbRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT id, actor, action, entity_type, entity_id, project_id, before, after, at
                     FROM audit_log
                     WHERE (CAST($1 AS BIGINT) IS NULL OR project_id = $1)
                       AND (CAST($2 AS TEXT) IS NULL OR entity_type = $2)
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(filter.project_id)
                .bind(filter.entity_type.as_deref())
                .bind(filter.limit),
            )
            .await?;
        Ok(rows.into_iter().map(AuditRow::from).collect())
    }
}
