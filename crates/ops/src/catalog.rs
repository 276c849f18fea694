//! Projects and workflows.

use super::{Ops, OpsError, OpsResult, Scoped};
use crate::domain::permission::Permission;
use crate::domain::project::{NewProject, Project};
use crate::domain::workflow::{NewWorkflow, Workflow, WorkflowType};

impl Ops {
    /// Anyone who can sign in may create a project and becomes its first owner.
    pub async fn create_project(&self, key: &str, name: Option<&str>) -> OpsResult<Project> {
        let new = NewProject::new(key, name)?;
        Ok(self.store.create_project(self.actor(), &new).await?)
    }

    pub async fn list_projects(&self) -> OpsResult<Vec<Project>> {
        Ok(self.store.list_projects().await?)
    }

    pub async fn project(&self, key: &str) -> OpsResult<Project> {
        self.store.find_project(key).await?.ok_or_else(|| {
            OpsError::NotFound(format!(
                "unknown project {key:?} (see `ospdeck project list`)"
            ))
        })
    }

    pub async fn create_workflow(
        &self,
        project_key: &str,
        name: &str,
        workflow_type: WorkflowType,
        command: &str,
        queue: Option<&str>,
        timeout_secs: Option<i64>,
    ) -> OpsResult<Workflow> {
        let project = self.project(project_key).await?;
        self.authorize(
            project.scope(),
            &super::queue::needs_for_command(command, Permission::CreateWorkflow),
            &format!("creating workflow {name}"),
        )
        .await?;
        let new = NewWorkflow::new(
            project.id,
            name,
            workflow_type,
            command,
            queue,
            timeout_secs,
        )?;
        Ok(self.store.create_workflow(self.actor(), &new).await?)
    }

    pub async fn list_workflows(&self, project_key: Option<&str>) -> OpsResult<Vec<Workflow>> {
        let project_id = match project_key {
            Some(key) => Some(self.project(key).await?.id),
            None => None,
        };
        Ok(self.store.list_workflows(project_id).await?)
    }

    pub async fn workflow(&self, project_key: &str, name: &str) -> OpsResult<Workflow> {
        let project = self.project(project_key).await?;
        self.store.find_workflow(project.id, name).await?.ok_or_else(|| {
            OpsError::NotFound(format!(
                "unknown workflow {name:?} in project {project_key} (see `ospdeck workflow list`)"
            ))
        })
    }
}
