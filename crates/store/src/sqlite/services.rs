//! Services, manifests and the worker registry on SQLite. Same rules as PostgreSQL (the triggers
//! of migration 0003); no per-service schema, since SQLite has none to give.

use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::{FromRow, Sqlite, Transaction};

use super::{SqliteStore, audit, opt_ts, ts};
use crate::domain::deployment::{DeployAttempt, DeployStep, DeploymentStatus, WorkerDeployment};
use crate::domain::manifest::ManifestHead;
use crate::domain::manifest::{Manifest, ManifestStatus};
use crate::domain::service::CreatedService;
use crate::domain::service::Service;
use crate::domain::workflow::NewWorkflow;
use crate::services::{
    DeploymentUpdate, NewServiceRecord, ServiceStore, deployment_changed, manifest_activated,
    manifest_audit, manifest_lock_changed, manifest_proposed, service_created,
};
use crate::shared::shown_json;
use crate::shared::{conflict_as, decode};
use crate::{StoreError, StoreResult};

#[derive(FromRow)]
struct ServiceRow {
    id: i64,
    project_id: i64,
    project: String,
    name: String,
    schema_name: String,
    created_by: String,
    created_at: i64,
}

impl From<ServiceRow> for Service {
    fn from(r: ServiceRow) -> Self {
        Service {
            id: r.id,
            project_id: r.project_id,
            project: r.project,
            name: r.name,
            schema: r.schema_name,
            created_by: r.created_by,
            created_at: ts(r.created_at),
        }
    }
}

const SERVICE_SELECT: &str =
    "SELECT s.id, s.project_id, p.workspace_key AS project, s.name, s.schema_name,
        s.created_by, s.created_at
 FROM services s JOIN projects p ON p.id = s.project_id ";

#[derive(FromRow)]
struct ManifestRow {
    id: i64,
    service_id: i64,
    service_name: String,
    version: String,
    status: String,
    manifest_content: String,
    locked_fields: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

fn fields(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl ManifestRow {
    fn into_domain(self) -> StoreResult<Manifest> {
        Ok(Manifest {
            id: self.id,
            service_id: self.service_id,
            service_name: self.service_name,
            version: self.version,
            status: decode(&self.status)?,
            content: shown_json(&self.manifest_content),
            locked_fields: fields(&self.locked_fields),
            created_by: self.created_by,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

const MANIFEST_SELECT: &str =
    "SELECT id, service_id, service_name, version, status, manifest_content,
        locked_fields, created_by, created_at, updated_at
 FROM service_manifests ";

#[derive(FromRow)]
struct HeadRow {
    id: i64,
    service_id: i64,
    version: String,
    status: String,
    locked_fields: String,
    created_by: String,
    created_at: i64,
}

impl HeadRow {
    fn into_domain(self) -> StoreResult<ManifestHead> {
        Ok(ManifestHead {
            id: self.id,
            service_id: self.service_id,
            version: self.version,
            status: decode(&self.status)?,
            locked_fields: fields(&self.locked_fields),
            created_by: self.created_by,
            created_at: ts(self.created_at),
        })
    }
}

const HEAD_SELECT: &str =
    "SELECT id, service_id, version, status, locked_fields, created_by, created_at
 FROM service_manifests ";

macro_rules! registry_columns {
    () => {
        "id, service_id, service_schema, manifest_id, manifest_path, deployment_status, attempts, logs,
         deployed_at, last_heartbeat, worker_id, worker_version, updated_at"
    };
}

const REGISTRY_SELECT: &str = concat!("SELECT ", registry_columns!(), " FROM worker_registry ");

#[derive(FromRow)]
struct RegistryRow {
    id: i64,
    service_id: i64,
    service_schema: String,
    manifest_id: Option<i64>,
    manifest_path: Option<String>,
    deployment_status: String,
    attempts: i32,
    logs: Option<String>,
    deployed_at: Option<i64>,
    last_heartbeat: Option<i64>,
    worker_id: Option<String>,
    worker_version: Option<String>,
    updated_at: i64,
}

impl RegistryRow {
    fn into_domain(self) -> StoreResult<WorkerDeployment> {
        Ok(WorkerDeployment {
            id: self.id,
            service_id: self.service_id,
            service_schema: self.service_schema,
            manifest_id: self.manifest_id,
            manifest_path: self.manifest_path,
            status: decode::<DeploymentStatus>(&self.deployment_status)?,
            attempts: self.attempts,
            logs: self.logs,
            deployed_at: opt_ts(self.deployed_at),
            last_heartbeat: opt_ts(self.last_heartbeat),
            worker_id: self.worker_id,
            worker_version: self.worker_version,
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(FromRow)]
struct StepRow {
    attempt: i32,
    step: String,
    exit_code: Option<i32>,
    output: String,
    started_at: i64,
    finished_at: i64,
}

fn to_json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

async fn insert_workflow(
    tx: &mut Transaction<'static, Sqlite>,
    actor: &str,
    wf: &NewWorkflow,
    service_id: Option<i64>,
) -> StoreResult<i64> {
    sqlx::query_scalar(
        "INSERT INTO workflows (project_id, name, workflow_type, task_queue, command, timeout_secs,
                               created_by, service_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (project_id, name) DO UPDATE
            SET task_queue = excluded.task_queue, command = excluded.command
          WHERE workflows.service_id IS excluded.service_id
         RETURNING id",
    )
    .bind(wf.project_id)
    .bind(&wf.name)
    .bind(wf.workflow_type.as_str())
    .bind(&wf.queue)
    .bind(&wf.command)
    .bind(wf.timeout_secs)
    .bind(actor)
    .bind(service_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| {
        StoreError::Conflict(format!(
            "workflow {} already exists in this project and belongs to something else",
            wf.name
        ))
    })
}

async fn manifest_in(tx: &mut Transaction<'static, Sqlite>, id: i64) -> StoreResult<Manifest> {
    let row: ManifestRow = sqlx::query_as(&format!("{MANIFEST_SELECT} WHERE id = ?1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    row.into_domain()
}

/// One manifest version as it is inserted.
struct ManifestInsert<'a> {
    service_id: i64,
    service_name: &'a str,
    version: &'a str,
    content: &'a Value,
    status: ManifestStatus,
    locked_fields: &'a [String],
}

async fn insert_manifest(
    tx: &mut Transaction<'static, Sqlite>,
    actor: &str,
    m: &ManifestInsert<'_>,
) -> StoreResult<i64> {
    let ManifestInsert {
        service_id,
        service_name,
        version,
        content,
        status,
        locked_fields,
    } = *m;
    Ok(sqlx::query_scalar(
        "INSERT INTO service_manifests
             (service_id, service_name, version, manifest_content, status, locked_fields, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
    )
    .bind(service_id)
    .bind(service_name)
    .bind(version)
    .bind(content.to_string())
    .bind(status.as_str())
    .bind(to_json_text(&locked_fields))
    .bind(actor)
    .fetch_one(&mut **tx)
    .await?)
}

/// The deployment status of the service's registry row, locked for the rest of the transaction.
async fn registry_status_in(
    tx: &mut Transaction<'static, Sqlite>,
    service: &Service,
) -> StoreResult<String> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT deployment_status FROM worker_registry WHERE service_id = ?1")
            .bind(service.id)
            .fetch_optional(&mut **tx)
            .await?;
    status.ok_or_else(|| {
        StoreError::NotFound(format!("{} has no worker registry entry", service.schema))
    })
}

#[async_trait]
impl ServiceStore for SqliteStore {
    async fn create_service(
        &self,
        actor: &str,
        new: &NewServiceRecord,
    ) -> StoreResult<CreatedService> {
        let mut tx = self.write_tx().await?;
        let service_id: i64 = sqlx::query_scalar(
            "INSERT INTO services (project_id, name, schema_name, created_by)
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(new.project_id)
        .bind(&new.name)
        .bind(&new.schema)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_as(e, format!("service {} already exists", new.schema)))?;
        let manifest_id = insert_manifest(
            &mut tx,
            actor,
            &ManifestInsert {
                service_id,
                service_name: &new.name,
                version: &new.version,
                content: &new.content,
                status: ManifestStatus::Active,
                locked_fields: &new.locked_fields,
            },
        )
        .await?;
        for wf in &new.workflows {
            insert_workflow(&mut tx, actor, wf, Some(service_id)).await?;
        }
        sqlx::query(
            "INSERT INTO worker_registry (service_id, service_schema, manifest_id) VALUES (?1, ?2, ?3)",
        )
        .bind(service_id)
        .bind(&new.schema)
        .bind(manifest_id)
        .execute(&mut *tx)
        .await?;
        let deploy_wf = insert_workflow(&mut tx, actor, &new.deploy_workflow, None).await?;
        let run = &new.deploy_run;
        let deploy_run_id: i64 = sqlx::query_scalar(concat!(
            "INSERT INTO runs (project_id, workflow_id, queue, priority, payload, max_attempts, run_after, changed_by)
             SELECT w.project_id, w.id, w.task_queue, ?2, ?3, ?4, ",
            now_ms!(),
            ", ?5 FROM workflows w WHERE w.id = ?1 RETURNING id"
        ))
        .bind(deploy_wf)
        .bind(run.priority)
        .bind(run.payload.to_string())
        .bind(run.max_attempts)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?;
        let service: Service =
            sqlx::query_as::<_, ServiceRow>(&format!("{SERVICE_SELECT} WHERE s.id = ?1"))
                .bind(service_id)
                .fetch_one(&mut *tx)
                .await?
                .into();
        let manifest = manifest_in(&mut tx, manifest_id).await?;
        audit(
            &mut tx,
            &service_created(actor, new, &service, &manifest, deploy_run_id),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedService {
            service,
            manifest,
            deploy_run_id,
        })
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        let rows: Vec<ServiceRow> =
            sqlx::query_as(&format!("{SERVICE_SELECT} ORDER BY s.schema_name"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(Service::from).collect())
    }

    async fn find_service(&self, schema: &str) -> StoreResult<Option<Service>> {
        let row: Option<ServiceRow> =
            sqlx::query_as(&format!("{SERVICE_SELECT} WHERE s.schema_name = ?1"))
                .bind(schema)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(Service::from))
    }

    async fn governing_manifests(&self) -> StoreResult<Vec<ManifestHead>> {
        let rows: Vec<HeadRow> = sqlx::query_as(&format!(
            "{HEAD_SELECT} WHERE status IN ('active', 'locked') ORDER BY service_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(HeadRow::into_domain).collect()
    }

    async fn manifest_history(&self, service_id: i64) -> StoreResult<Vec<ManifestHead>> {
        let rows: Vec<HeadRow> =
            sqlx::query_as(&format!("{HEAD_SELECT} WHERE service_id = ?1 ORDER BY id"))
                .bind(service_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(HeadRow::into_domain).collect()
    }

    async fn manifest(&self, service_id: i64, version: &str) -> StoreResult<Option<Manifest>> {
        let row: Option<ManifestRow> = sqlx::query_as(&format!(
            "{MANIFEST_SELECT} WHERE service_id = ?1 AND version = ?2"
        ))
        .bind(service_id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(ManifestRow::into_domain).transpose()
    }

    async fn insert_draft(
        &self,
        actor: &str,
        service: &Service,
        version: &str,
        content: &Value,
        locked_fields: &[String],
    ) -> StoreResult<Manifest> {
        let mut tx = self.write_tx().await?;
        let id = insert_manifest(
            &mut tx,
            actor,
            &ManifestInsert {
                service_id: service.id,
                service_name: &service.name,
                version,
                content,
                status: ManifestStatus::Draft,
                locked_fields,
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "{} already has a version {version}",
                service.schema
            )),
            other => other,
        })?;
        let manifest = manifest_in(&mut tx, id).await?;
        audit(
            &mut tx,
            &manifest_proposed(actor, service, &manifest, content),
        )
        .await?;
        tx.commit().await?;
        Ok(manifest)
    }

    async fn activate_manifest(
        &self,
        actor: &str,
        service: &Service,
        version: &str,
        workflows: &[NewWorkflow],
    ) -> StoreResult<Manifest> {
        let mut tx = self.write_tx().await?;
        let previous: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM service_manifests WHERE service_id = ?1 AND status IN ('active', 'locked')",
        )
        .bind(service.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = previous {
            sqlx::query(concat!(
                "UPDATE service_manifests SET status = 'superseded', updated_at = ",
                now_ms!(),
                " WHERE id = ?1"
            ))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let id: Option<i64> = sqlx::query_scalar(concat!(
            "UPDATE service_manifests SET status = 'active', updated_at = ",
            now_ms!(),
            " WHERE service_id = ?1 AND version = ?2 RETURNING id"
        ))
        .bind(service.id)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let id = id.ok_or_else(|| {
            StoreError::NotFound(format!("{} has no version {version}", service.schema))
        })?;
        for wf in workflows {
            insert_workflow(&mut tx, actor, wf, Some(service.id)).await?;
        }
        let manifest = manifest_in(&mut tx, id).await?;
        let before = match previous {
            Some(id) => Some(manifest_audit(&manifest_in(&mut tx, id).await?)),
            None => None,
        };
        audit(
            &mut tx,
            &manifest_activated(actor, service, &manifest, before),
        )
        .await?;
        tx.commit().await?;
        Ok(manifest)
    }

    async fn set_manifest_lock(
        &self,
        actor: &str,
        service: &Service,
        from: ManifestStatus,
        to: ManifestStatus,
    ) -> StoreResult<Manifest> {
        let mut tx = self.write_tx().await?;
        let id: Option<i64> = sqlx::query_scalar(concat!(
            "UPDATE service_manifests SET status = ?3, updated_at = ",
            now_ms!(),
            " WHERE service_id = ?1 AND status = ?2 RETURNING id"
        ))
        .bind(service.id)
        .bind(from.as_str())
        .bind(to.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let id = id.ok_or_else(|| {
            StoreError::NotFound(format!("{} has no {from} manifest", service.schema))
        })?;
        let manifest = manifest_in(&mut tx, id).await?;
        audit(
            &mut tx,
            &manifest_lock_changed(actor, service, &manifest, from, to),
        )
        .await?;
        tx.commit().await?;
        Ok(manifest)
    }

    async fn worker_registry(&self) -> StoreResult<Vec<WorkerDeployment>> {
        let rows: Vec<RegistryRow> =
            sqlx::query_as(&format!("{REGISTRY_SELECT} ORDER BY service_schema"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(RegistryRow::into_domain).collect()
    }

    async fn deployment(&self, service_id: i64) -> StoreResult<Option<WorkerDeployment>> {
        let row: Option<RegistryRow> =
            sqlx::query_as(&format!("{REGISTRY_SELECT} WHERE service_id = ?1"))
                .bind(service_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(RegistryRow::into_domain).transpose()
    }

    async fn update_deployment(
        &self,
        actor: &str,
        service: &Service,
        update: &DeploymentUpdate,
    ) -> StoreResult<WorkerDeployment> {
        let mut tx = self.write_tx().await?;
        let before = registry_status_in(&mut tx, service).await?;
        let starting = update.status == DeploymentStatus::Deploying;
        let row: RegistryRow = sqlx::query_as(&format!(
            "UPDATE worker_registry
                SET deployment_status = ?2,
                    manifest_id = coalesce(?3, manifest_id),
                    manifest_path = coalesce(?4, manifest_path),
                    logs = coalesce(?5, logs),
                    attempts = CASE WHEN ?6 THEN 0 ELSE attempts END,
                    deployed_at = CASE WHEN ?2 = 'deployed' THEN {now} ELSE deployed_at END,
                    updated_at = {now}
              WHERE service_id = ?1
             RETURNING {}",
            registry_columns!(),
            now = now_ms!()
        ))
        .bind(service.id)
        .bind(update.status.as_str())
        .bind(update.manifest_id)
        .bind(&update.manifest_path)
        .bind(&update.logs)
        .bind(starting)
        .fetch_one(&mut *tx)
        .await?;
        audit(
            &mut tx,
            &deployment_changed(
                actor,
                service,
                &before,
                json!({ "status": update.status, "manifest_id": update.manifest_id }),
            ),
        )
        .await?;
        tx.commit().await?;
        row.into_domain()
    }

    async fn record_deploy_step(&self, registry_id: i64, step: &DeployAttempt) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO worker_deploy_attempts
                 (registry_id, attempt, step, exit_code, output, started_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(registry_id)
        .bind(step.attempt)
        .bind(step.step.as_str())
        .bind(step.exit_code)
        .bind(&step.output)
        .bind(step.started_at.timestamp_millis())
        .bind(step.finished_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query(concat!(
            "UPDATE worker_registry SET attempts = max(attempts, ?2), updated_at = ",
            now_ms!(),
            " WHERE id = ?1"
        ))
        .bind(registry_id)
        .bind(step.attempt)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn deploy_steps(&self, registry_id: i64) -> StoreResult<Vec<DeployAttempt>> {
        let rows: Vec<StepRow> = sqlx::query_as(
            "SELECT attempt, step, exit_code, output, started_at, finished_at
             FROM worker_deploy_attempts WHERE registry_id = ?1 ORDER BY id",
        )
        .bind(registry_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(DeployAttempt {
                    attempt: r.attempt,
                    step: decode::<DeployStep>(&r.step)?,
                    exit_code: r.exit_code,
                    output: r.output,
                    started_at: ts(r.started_at),
                    finished_at: ts(r.finished_at),
                })
            })
            .collect()
    }

    async fn worker_heartbeat(
        &self,
        service: &Service,
        worker_id: &str,
        worker_version: &str,
    ) -> StoreResult<WorkerDeployment> {
        let mut tx = self.write_tx().await?;
        let before = registry_status_in(&mut tx, service).await?;
        let becomes_deployed = before == "pending";
        let row: RegistryRow = sqlx::query_as(&format!(
            "UPDATE worker_registry
                SET last_heartbeat = {now}, worker_id = ?2, worker_version = ?3,
                    deployment_status = CASE WHEN ?4 THEN 'deployed' ELSE deployment_status END,
                    deployed_at = CASE WHEN ?4 THEN {now} ELSE deployed_at END,
                    updated_at = {now}
              WHERE service_id = ?1
             RETURNING {}",
            registry_columns!(),
            now = now_ms!()
        ))
        .bind(service.id)
        .bind(worker_id)
        .bind(worker_version)
        .bind(becomes_deployed)
        .fetch_one(&mut *tx)
        .await?;
        if becomes_deployed {
            audit(
                &mut tx,
                &deployment_changed(
                    worker_id,
                    service,
                    &before,
                    json!({ "status": "deployed", "worker_id": worker_id }),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        row.into_domain()
    }
}
