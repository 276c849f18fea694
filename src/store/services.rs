//! What services, manifests and the worker registry need from a database: a trait of its own
//! (every `Store` is one), implemented beside each backend's queue.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::StoreResult;
use crate::domain::deployment::{DeployAttempt, DeploymentStatus, WorkerDeployment};
pub use crate::domain::manifest::ManifestHead;
use crate::domain::manifest::{Manifest, ManifestStatus};
use crate::domain::run::NewRun;
use crate::domain::service::Service;
use crate::domain::workflow::NewWorkflow;

/// Everything a new service is made of; the store writes all of it in one transaction.
#[derive(Debug, Clone)]
pub struct NewServiceRecord {
    pub project_id: i64,
    pub name: String,
    pub schema: String,
    pub version: String,
    pub content: Value,
    pub locked_fields: Vec<String>,
    /// The service's own workflows (type service, its task queue).
    pub workflows: Vec<NewWorkflow>,
    /// The project's deploy workflow, created if the project has none yet.
    pub deploy_workflow: NewWorkflow,
    /// The queued deploy run; its workflow id is filled in by the store.
    pub deploy_run: NewRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedService {
    pub service: Service,
    pub manifest: Manifest,
    pub deploy_run_id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentUpdate {
    pub status: DeploymentStatus,
    pub manifest_id: Option<i64>,
    pub manifest_path: Option<String>,
    pub logs: Option<String>,
}

#[async_trait]
pub trait ServiceStore: Send + Sync {
    async fn create_service(
        &self,
        actor: &str,
        new: &NewServiceRecord,
    ) -> StoreResult<CreatedService>;
    async fn list_services(&self) -> StoreResult<Vec<Service>>;
    async fn find_service(&self, schema: &str) -> StoreResult<Option<Service>>;

    /// The active or locked version of every service that has one.
    async fn governing_manifests(&self) -> StoreResult<Vec<ManifestHead>>;
    async fn manifest_history(&self, service_id: i64) -> StoreResult<Vec<ManifestHead>>;
    async fn manifest(&self, service_id: i64, version: &str) -> StoreResult<Option<Manifest>>;
    /// A new draft version; refused (by the database too) if it changes a locked field.
    async fn insert_draft(
        &self,
        actor: &str,
        service: &Service,
        version: &str,
        content: &Value,
        locked_fields: &[String],
    ) -> StoreResult<Manifest>;
    /// One transaction: the governing version becomes superseded, `version` active, and the
    /// service's workflows follow its content (added or updated).
    async fn activate_manifest(
        &self,
        actor: &str,
        service: &Service,
        version: &str,
        workflows: &[NewWorkflow],
    ) -> StoreResult<Manifest>;
    /// Moves the governing version between active and locked.
    async fn set_manifest_lock(
        &self,
        actor: &str,
        service: &Service,
        from: ManifestStatus,
        to: ManifestStatus,
    ) -> StoreResult<Manifest>;

    async fn worker_registry(&self) -> StoreResult<Vec<WorkerDeployment>>;
    async fn deployment(&self, service_id: i64) -> StoreResult<Option<WorkerDeployment>>;
    /// Sets the registry row's status (and what else is given), with an audit event.
    async fn update_deployment(
        &self,
        actor: &str,
        service: &Service,
        update: &DeploymentUpdate,
    ) -> StoreResult<WorkerDeployment>;
    /// Keeps one step's output and counts the attempt.
    async fn record_deploy_step(&self, registry_id: i64, step: &DeployAttempt) -> StoreResult<()>;
    async fn deploy_steps(&self, registry_id: i64) -> StoreResult<Vec<DeployAttempt>>;
    /// A service worker says it is alive; a pending deployment becomes deployed.
    async fn worker_heartbeat(
        &self,
        service: &Service,
        worker_id: &str,
        worker_version: &str,
    ) -> StoreResult<WorkerDeployment>;
}
