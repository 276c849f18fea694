//! Projects and their workflows, written once for both backends.

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::domain::project::{NewProject, Project};
use crate::domain::workflow::{NewWorkflow, Workflow, WorkflowType};
use crate::services::insert_workflow;
use crate::shared::{conflict_as, decode};
use crate::sql::{Backend, Time, Tx, row, stmt};
use crate::{StoreError, StoreKind, StoreResult};

#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// The project, with `actor` as its first owner.
    async fn create_project(&self, actor: &str, project: &NewProject) -> StoreResult<Project>;
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    async fn find_project(&self, key: &str) -> StoreResult<Option<Project>>;

    async fn create_workflow(&self, actor: &str, workflow: &NewWorkflow) -> StoreResult<Workflow>;
    async fn list_workflows(&self, project_id: Option<i64>) -> StoreResult<Vec<Workflow>>;
    async fn find_workflow(&self, project_id: i64, name: &str) -> StoreResult<Option<Workflow>>;
    async fn workflow(&self, id: i64) -> StoreResult<Option<Workflow>>;
}

row! {
    struct ProjectRow {
        id: i64,
        workspace_key: String,
        slug: String,
        name: String,
        status: String,
        created_at: Time,
    }
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: r.id,
            key: r.workspace_key,
            slug: r.slug,
            name: r.name,
            status: r.status,
            created_at: r.created_at.into(),
        }
    }
}

const PROJECT_COLUMNS: &str = "id, workspace_key, slug, name, status, created_at";

row! {
    pub(crate) struct WorkflowRow {
        id: i64,
        project_id: i64,
        project: String,
        name: String,
        workflow_type: String,
        task_queue: String,
        command: String,
        timeout_secs: i32,
        created_by: String,
        created_at: Time,
    }
}

impl WorkflowRow {
    pub(crate) fn into_domain(self) -> StoreResult<Workflow> {
        Ok(Workflow {
            id: self.id,
            project_id: self.project_id,
            project: self.project,
            name: self.name,
            workflow_type: decode::<WorkflowType>(&self.workflow_type)?,
            queue: self.task_queue,
            command: self.command,
            timeout_secs: self.timeout_secs,
            created_by: self.created_by,
            created_at: self.created_at.into(),
        })
    }
}

/// A workflow with its project's key; the caller appends the WHERE clause.
pub(crate) const WORKFLOW_SELECT: &str =
    "SELECT w.id, w.project_id, p.workspace_key AS project, w.name, w.workflow_type,
        w.task_queue, w.command, w.timeout_secs, w.created_by, w.created_at
 FROM workflows w JOIN projects p ON p.id = w.project_id ";

/// One workflow by id, inside a transaction (after an insert or change).
pub(crate) async fn workflow_in(tx: &mut Tx, id: i64) -> StoreResult<Workflow> {
    let row: WorkflowRow = tx
        .fetch_one(stmt(format!("{WORKFLOW_SELECT}WHERE w.id = $1")).bind(id))
        .await?;
    row.into_domain()
}

#[async_trait]
impl<B: Backend> CatalogStore for B {
    async fn create_project(&self, actor: &str, project: &NewProject) -> StoreResult<Project> {
        let mut tx = self.db().begin().await?;
        let row: ProjectRow = tx
            .fetch_one(
                stmt(format!(
                    "INSERT INTO projects (workspace_key, slug, name, created_by) VALUES ($1, $1, $2, $3)
                     RETURNING {PROJECT_COLUMNS}"
                ))
                .bind(&project.key)
                .bind(&project.name)
                .bind(actor),
            )
            .await
            .map_err(|e| conflict_as(e, format!("project {} already exists", project.key)))?;
        let created = Project::from(row);
        // On PostgreSQL a trigger makes the creator the first owner (for a member, the creator is
        // always the session's own identity); SQLite has no session, so the store does it.
        if tx.kind() == StoreKind::Sqlite {
            tx.execute(
                stmt("INSERT INTO project_memberships (project_id, user_id, role) VALUES ($1, $2, 'owner')")
                    .bind(created.id)
                    .bind(actor),
            )
            .await?;
        }
        AuditEntry::created(actor, "project", &created.key, Some(created.id), &created)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let rows: Vec<ProjectRow> = self
            .db()
            .fetch_all(stmt(format!(
                "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY workspace_key"
            )))
            .await?;
        Ok(rows.into_iter().map(Project::from).collect())
    }

    async fn find_project(&self, key: &str) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = self
            .db()
            .fetch_optional(
                stmt(format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects WHERE workspace_key = $1"
                ))
                .bind(key),
            )
            .await?;
        Ok(row.map(Project::from))
    }

    async fn create_workflow(&self, actor: &str, wf: &NewWorkflow) -> StoreResult<Workflow> {
        let mut tx = self.db().begin().await?;
        let id = insert_workflow(&mut tx, actor, wf, None)
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "workflow {} already exists in this project",
                    wf.name
                ))
            })?;
        let created = workflow_in(&mut tx, id).await?;
        AuditEntry::created(
            actor,
            "workflow",
            &id.to_string(),
            Some(wf.project_id),
            &created,
        )
        .record(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_workflows(&self, project_id: Option<i64>) -> StoreResult<Vec<Workflow>> {
        let rows: Vec<WorkflowRow> = self
            .db()
            .fetch_all(
                stmt(format!(
                    "{WORKFLOW_SELECT}WHERE (CAST($1 AS BIGINT) IS NULL OR w.project_id = $1)
                     ORDER BY p.workspace_key, w.name"
                ))
                .bind(project_id),
            )
            .await?;
        rows.into_iter().map(WorkflowRow::into_domain).collect()
    }

    async fn find_workflow(&self, project_id: i64, name: &str) -> StoreResult<Option<Workflow>> {
        let row: Option<WorkflowRow> = self
            .db()
            .fetch_optional(
                stmt(format!(
                    "{WORKFLOW_SELECT}WHERE w.project_id = $1 AND w.name = $2"
                ))
                .bind(project_id)
                .bind(name),
            )
            .await?;
        row.map(WorkflowRow::into_domain).transpose()
    }

    async fn workflow(&self, id: i64) -> StoreResult<Option<Workflow>> {
        let row: Option<WorkflowRow> = self
            .db()
            .fetch_optional(stmt(format!("{WORKFLOW_SELECT}WHERE w.id = $1")).bind(id))
            .await?;
        row.map(WorkflowRow::into_domain).transpose()
    }
}
