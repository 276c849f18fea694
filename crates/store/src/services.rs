//! What services, manifests and the worker registry need from a database: a trait of its own
//! (every `Store` is one), implemented beside each backend's queue.

use async_trait::async_trait;
use serde_json::Value;

use serde_json::json;

use super::{AuditEntry, StoreResult};
use crate::domain::deployment::{DeployAttempt, DeploymentStatus, WorkerDeployment};
use crate::domain::manifest::ManifestHead;
use crate::domain::manifest::{Manifest, ManifestStatus};
use crate::domain::run::NewRun;
use crate::domain::service::CreatedService;
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

// The audit rows of these changes, the same on both stores.

/// What a manifest's audit rows record of it (its content is recorded where it is proposed).
pub(super) fn manifest_audit(m: &Manifest) -> Value {
    json!({ "version": m.version, "status": m.status, "locked_fields": m.locked_fields })
}

pub(super) fn service_created<'a>(
    actor: &'a str,
    new: &NewServiceRecord,
    service: &Service,
    manifest: &Manifest,
    deploy_run_id: i64,
) -> AuditEntry<'a> {
    AuditEntry {
        actor,
        action: "create",
        entity_type: "service",
        entity_id: new.schema.clone(),
        project_id: Some(new.project_id),
        before: None,
        after: Some(json!({
            "service": service,
            "manifest": manifest_audit(manifest),
            "workflows": new.workflows.iter().map(|w| &w.name).collect::<Vec<_>>(),
            "deploy_run": deploy_run_id,
        })),
    }
}

fn manifest_entry<'a>(
    actor: &'a str,
    action: &'static str,
    service: &Service,
    manifest: &Manifest,
) -> AuditEntry<'a> {
    AuditEntry {
        actor,
        action,
        entity_type: "manifest",
        entity_id: format!("{}@{}", service.schema, manifest.version),
        project_id: Some(service.project_id),
        before: None,
        after: None,
    }
}

pub(super) fn manifest_proposed<'a>(
    actor: &'a str,
    service: &Service,
    manifest: &Manifest,
    content: &Value,
) -> AuditEntry<'a> {
    AuditEntry {
        after: Some(json!({ "manifest": manifest_audit(manifest), "content": content })),
        ..manifest_entry(actor, "propose", service, manifest)
    }
}

pub(super) fn manifest_activated<'a>(
    actor: &'a str,
    service: &Service,
    manifest: &Manifest,
    before: Option<Value>,
) -> AuditEntry<'a> {
    AuditEntry {
        before,
        after: Some(manifest_audit(manifest)),
        ..manifest_entry(actor, "activate", service, manifest)
    }
}

pub(super) fn manifest_lock_changed<'a>(
    actor: &'a str,
    service: &Service,
    manifest: &Manifest,
    from: ManifestStatus,
    to: ManifestStatus,
) -> AuditEntry<'a> {
    let action = if to == ManifestStatus::Locked {
        "lock"
    } else {
        "unlock"
    };
    AuditEntry {
        before: Some(json!({ "status": from })),
        after: Some(json!({ "status": to })),
        ..manifest_entry(actor, action, service, manifest)
    }
}

pub(super) fn deployment_changed<'a>(
    actor: &'a str,
    service: &Service,
    before: &str,
    after: Value,
) -> AuditEntry<'a> {
    AuditEntry {
        actor,
        action: "deployment",
        entity_type: "worker",
        entity_id: service.schema.clone(),
        project_id: Some(service.project_id),
        before: Some(json!({ "status": before })),
        after: Some(after),
    }
}
