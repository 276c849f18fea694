//! Projects and workflows.

use super::{Ops, OpsError, OpsResult, Scoped};
use crate::domain::permission::Permission;
use crate::domain::project::{NewProject, Project};
use crate::domain::workflow::{NewWorkflow, Workflow, WorkflowType};

/// A workflow to create. Its queue and timeout take the defaults of its type when unset:
/// `WorkflowRequest { queue: Some("q"), ..WorkflowRequest::new("acme", "build", Build, "make") }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkflowRequest<'a> {
    /// The project's key.
    pub project: &'a str,
    pub name: &'a str,
    pub workflow_type: WorkflowType,
    pub command: &'a str,
    pub queue: Option<&'a str>,
    pub timeout_secs: Option<i64>,
}

impl<'a> WorkflowRequest<'a> {
    pub fn new(
        project: &'a str,
        name: &'a str,
        workflow_type: WorkflowType,
        command: &'a str,
    ) -> Self {
        Self {
            project,
            name,
            workflow_type,
            command,
            queue: None,
            timeout_secs: None,
        }
    }
}

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

    pub async fn create_workflow(&self, request: &WorkflowRequest<'_>) -> OpsResult<Workflow> {
        let WorkflowRequest {
            project,
            name,
            workflow_type,
            command,
            queue,
            timeout_secs,
        } = *request;
        let project = self.project(project).await?;
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
