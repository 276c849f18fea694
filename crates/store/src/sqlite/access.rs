//! Memberships and the audit trail on SQLite (times in milliseconds, JSON as text).

use async_trait::async_trait;
use serde_json::json;
use sqlx::FromRow;

use super::{SqliteStore, audit, ts};
use crate::access::{AccessStore, AuditFilter};
use crate::domain::audit::AuditRow;
use crate::domain::permission::Member;
use crate::domain::permission::Role;
use crate::shared::decode;
use crate::shared::shown_json;
use crate::{AuditEntry, StoreResult};

#[derive(FromRow)]
struct MemberRow {
    project: String,
    user_id: String,
    role: String,
    created_at: i64,
}

impl MemberRow {
    fn into_domain(self) -> StoreResult<Member> {
        Ok(Member {
            project: self.project,
            user: self.user_id,
            role: decode::<Role>(&self.role)?,
            created_at: ts(self.created_at),
        })
    }
}

#[derive(FromRow)]
struct AuditDbRow {
    id: i64,
    actor: String,
    action: String,
    entity_type: String,
    entity_id: String,
    project_id: Option<i64>,
    before: Option<String>,
    after: Option<String>,
    at: i64,
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn set_member(
        &self,
        actor: &str,
        project_id: i64,
        user: &str,
        role: Role,
        // SQLite has no users of its own to create.
        _login_role: bool,
    ) -> StoreResult<Member> {
        let mut tx = self.write_tx().await?;
        let before: Option<String> = sqlx::query_scalar(
            "SELECT role FROM project_memberships WHERE project_id = ?1 AND user_id = ?2",
        )
        .bind(project_id)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO project_memberships (project_id, user_id, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(project_id)
        .bind(user)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
        let row: MemberRow = sqlx::query_as(
            "SELECT p.workspace_key AS project, m.user_id, m.role, m.created_at
             FROM project_memberships m JOIN projects p ON p.id = m.project_id
             WHERE m.project_id = ?1 AND m.user_id = ?2",
        )
        .bind(project_id)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &AuditEntry {
                actor,
                action: "member",
                entity_type: "membership",
                entity_id: user.to_owned(),
                project_id: Some(project_id),
                before: before.map(|r| json!({ "role": r })),
                after: Some(json!({ "role": role })),
            },
        )
        .await?;
        tx.commit().await?;
        row.into_domain()
    }

    async fn remove_member(&self, actor: &str, project_id: i64, user: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let before: Option<String> = sqlx::query_scalar(
            "DELETE FROM project_memberships WHERE project_id = ?1 AND user_id = ?2 RETURNING role",
        )
        .bind(project_id)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        if before.is_some() {
            audit(
                &mut tx,
                &AuditEntry {
                    actor,
                    action: "remove_member",
                    entity_type: "membership",
                    entity_id: user.to_owned(),
                    project_id: Some(project_id),
                    before: before.as_ref().map(|r| json!({ "role": r })),
                    after: None,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(before.is_some())
    }

    async fn member_role(&self, project_id: i64, user: &str) -> StoreResult<Option<Role>> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM project_memberships WHERE project_id = ?1 AND user_id = ?2",
        )
        .bind(project_id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        role.as_deref().map(decode::<Role>).transpose()
    }

    async fn memberships_of(&self, user: &str) -> StoreResult<Vec<(i64, Role)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT project_id, role FROM project_memberships WHERE user_id = ?1 ORDER BY project_id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, role)| Ok((id, decode::<Role>(&role)?)))
            .collect()
    }

    async fn members(&self, project_id: i64) -> StoreResult<Vec<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT p.workspace_key AS project, m.user_id, m.role, m.created_at
             FROM project_memberships m JOIN projects p ON p.id = m.project_id
             WHERE m.project_id = ?1 ORDER BY m.user_id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(MemberRow::into_domain).collect()
    }

    async fn audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        let rows: Vec<AuditDbRow> = sqlx::query_as(
            "SELECT id, actor, action, entity_type, entity_id, project_id, before, after, at
             FROM audit_log
             WHERE (?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR entity_type = ?2)
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(filter.project_id)
        .bind(&filter.entity_type)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRow {
                id: r.id,
                actor: r.actor,
                action: r.action,
                entity_type: r.entity_type,
                entity_id: r.entity_id,
                project_id: r.project_id,
                before: r.before.as_deref().map(shown_json),
                after: r.after.as_deref().map(shown_json),
                at: ts(r.at),
            })
            .collect())
    }
}
