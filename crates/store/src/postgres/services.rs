//! Services, manifests and the worker registry on PostgreSQL (schema osp_metadata).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Transaction};

use super::{PgStore, audit};
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
    created_at: DateTime<Utc>,
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
            created_at: r.created_at,
        }
    }
}

const SERVICE_SELECT: &str =
    "SELECT s.id, s.project_id, p.workspace_key AS project, s.name, s.schema_name,
        s.created_by, s.created_at
 FROM osp_metadata.services s JOIN ops.projects p ON p.id = s.project_id ";

#[derive(FromRow)]
struct ManifestRow {
    id: i64,
    service_id: i64,
    service_name: String,
    version: String,
    status: String,
    manifest_content: String,
    locked_fields: Vec<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
            locked_fields: self.locked_fields,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const MANIFEST_SELECT: &str =
    "SELECT id, service_id, service_name, version, status, manifest_content::text AS manifest_content,
        locked_fields, created_by, created_at, updated_at
 FROM osp_metadata.service_manifests ";

#[derive(FromRow)]
struct HeadRow {
    id: i64,
    service_id: i64,
    version: String,
    status: String,
    locked_fields: Vec<String>,
    created_by: String,
    created_at: DateTime<Utc>,
}

const HEAD_SELECT: &str =
    "SELECT id, service_id, version, status, locked_fields, created_by, created_at
 FROM osp_metadata.service_manifests ";

impl HeadRow {
    fn into_domain(self) -> StoreResult<ManifestHead> {
        Ok(ManifestHead {
            id: self.id,
            service_id: self.service_id,
            version: self.version,
            status: decode(&self.status)?,
            locked_fields: self.locked_fields,
            created_by: self.created_by,
            created_at: self.created_at,
        })
    }
}

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
    deployed_at: Option<DateTime<Utc>>,
    last_heartbeat: Option<DateTime<Utc>>,
    worker_id: Option<String>,
    worker_version: Option<String>,
    updated_at: DateTime<Utc>,
}

macro_rules! registry_columns {
    () => {
        "id, service_id, service_schema, manifest_id, manifest_path, deployment_status, attempts, logs,
         deployed_at, last_heartbeat, worker_id, worker_version, updated_at"
    };
}

const REGISTRY_SELECT: &str = concat!(
    "SELECT ",
    registry_columns!(),
    " FROM osp_metadata.worker_registry "
);

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
            deployed_at: self.deployed_at,
            last_heartbeat: self.last_heartbeat,
            worker_id: self.worker_id,
            worker_version: self.worker_version,
            updated_at: self.updated_at,
        })
    }
}

#[derive(FromRow)]
struct StepRow {
    attempt: i32,
    step: String,
    exit_code: Option<i32>,
    output: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
}

async fn set_actor(tx: &mut Transaction<'static, Postgres>, actor: &str) -> StoreResult<()> {
    sqlx::query("SELECT set_config('ospdeck.actor', $1, true)")
        .bind(actor)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Inserts a workflow, or brings the one of that name up to date when it is the same service's
/// (a newly activated manifest may change its command or queue). No `ON CONFLICT DO UPDATE`: that
/// needs UPDATE on the table even when nothing conflicts, and members have none; the update goes
/// through `ops.update_service_workflow`, which checks activate_manifest (audited by the database).
async fn insert_workflow(
    tx: &mut Transaction<'static, Postgres>,
    actor: &str,
    wf: &NewWorkflow,
    service_id: Option<i64>,
) -> StoreResult<i64> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO ops.workflows (project_id, name, workflow_type, task_queue, command, timeout_secs,
                                   created_by, service_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, name) DO NOTHING
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
    .await?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    let existing: Option<(i64, bool)> = sqlx::query_as(
        "SELECT id, (task_queue, command) IS NOT DISTINCT FROM ($3, $4) FROM ops.workflows
         WHERE project_id = $1 AND name = $2 AND service_id IS NOT DISTINCT FROM $5",
    )
    .bind(wf.project_id)
    .bind(&wf.name)
    .bind(&wf.queue)
    .bind(&wf.command)
    .bind(service_id)
    .fetch_optional(&mut **tx)
    .await?;
    match existing {
        Some((id, true)) => Ok(id),
        // Members hold no UPDATE on workflows: activation is the admin path that changes one.
        Some((id, false)) => Ok(sqlx::query_scalar(
            "SELECT ops.update_service_workflow($1, $2, $3)",
        )
        .bind(id)
        .bind(&wf.queue)
        .bind(&wf.command)
        .fetch_one(&mut **tx)
        .await?),
        None => Err(StoreError::Conflict(format!(
            "workflow {} already exists in this project and belongs to something else",
            wf.name
        ))),
    }
}

async fn manifest_in(tx: &mut Transaction<'static, Postgres>, id: i64) -> StoreResult<Manifest> {
    let row: ManifestRow = sqlx::query_as(&format!("{MANIFEST_SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    row.into_domain()
}

async fn governing_in(
    tx: &mut Transaction<'static, Postgres>,
    service_id: i64,
) -> StoreResult<Option<(i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, status FROM osp_metadata.service_manifests
         WHERE service_id = $1 AND status IN ('active', 'locked') FOR UPDATE",
    )
    .bind(service_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The deployment status of the service's registry row, locked for the rest of the transaction.
async fn registry_status_in(
    tx: &mut Transaction<'static, Postgres>,
    service: &Service,
) -> StoreResult<String> {
    let status: Option<String> = sqlx::query_scalar(
        "SELECT deployment_status FROM osp_metadata.worker_registry WHERE service_id = $1 FOR UPDATE",
    )
    .bind(service.id)
    .fetch_optional(&mut **tx)
    .await?;
    status.ok_or_else(|| {
        StoreError::NotFound(format!("{} has no worker registry entry", service.schema))
    })
}

#[async_trait]
impl ServiceStore for PgStore {
    async fn create_service(
        &self,
        actor: &str,
        new: &NewServiceRecord,
    ) -> StoreResult<CreatedService> {
        let mut tx = self.pool.begin().await?;
        set_actor(&mut tx, actor).await?;
        let service_id: i64 = sqlx::query_scalar(
            "INSERT INTO osp_metadata.services (project_id, name, schema_name, created_by)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(new.project_id)
        .bind(&new.name)
        .bind(&new.schema)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await
        // The insert's trigger creates the service's schema (so a member needs no CREATE on the
        // database); a schema of that name already there fails it.
        .map_err(|e| {
            let schema_taken =
                matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("42P06"));
            let what = if schema_taken {
                format!("schema {} already exists in the database", new.schema)
            } else {
                format!("service {} already exists", new.schema)
            };
            conflict_as(e, what)
        })?;
        // Seed 000's function, so that the rules for every writer are the same.
        let manifest_id: i64 = sqlx::query_scalar(
            "SELECT manifest_id FROM osp_metadata.insert_service_manifest($1, $2, $3, $4, 'active', $5)",
        )
        .bind(service_id)
        .bind(&new.name)
        .bind(&new.version)
        .bind(Json(&new.content))
        .bind(&new.locked_fields)
        .fetch_one(&mut *tx)
        .await?;
        for wf in &new.workflows {
            insert_workflow(&mut tx, actor, wf, Some(service_id)).await?;
        }
        sqlx::query(
            "INSERT INTO osp_metadata.worker_registry (service_id, service_schema, manifest_id)
             VALUES ($1, $2, $3)",
        )
        .bind(service_id)
        .bind(&new.schema)
        .bind(manifest_id)
        .execute(&mut *tx)
        .await?;
        let deploy_wf = insert_workflow(&mut tx, actor, &new.deploy_workflow, None).await?;
        let run = &new.deploy_run;
        let deploy_run_id: i64 = sqlx::query_scalar(
            "SELECT ops.enqueue_runs($1, ARRAY[$2::bigint], ARRAY[$3::bigint], ARRAY[$4::int],
                                     ARRAY[$5::jsonb], ARRAY[$6::int], ARRAY[NULL::timestamptz])",
        )
        .bind(actor)
        .bind(new.project_id)
        .bind(deploy_wf)
        .bind(run.priority)
        .bind(Json(&run.payload))
        .bind(run.max_attempts)
        .fetch_one(&mut *tx)
        .await?;
        let service: Service =
            sqlx::query_as::<_, ServiceRow>(&format!("{SERVICE_SELECT} WHERE s.id = $1"))
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
            sqlx::query_as(&format!("{SERVICE_SELECT} WHERE s.schema_name = $1"))
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
            sqlx::query_as(&format!("{HEAD_SELECT} WHERE service_id = $1 ORDER BY id"))
                .bind(service_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(HeadRow::into_domain).collect()
    }

    async fn manifest(&self, service_id: i64, version: &str) -> StoreResult<Option<Manifest>> {
        let row: Option<ManifestRow> = sqlx::query_as(&format!(
            "{MANIFEST_SELECT} WHERE service_id = $1 AND version = $2"
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
        let mut tx = self.pool.begin().await?;
        set_actor(&mut tx, actor).await?;
        let id: i64 = sqlx::query_scalar(
            "SELECT manifest_id FROM osp_metadata.insert_service_manifest($1, $2, $3, $4, 'draft', $5)",
        )
        .bind(service.id)
        .bind(&service.name)
        .bind(version)
        .bind(Json(content))
        .bind(locked_fields)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            conflict_as(
                e,
                format!("{} already has a version {version}", service.schema),
            )
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
        let mut tx = self.pool.begin().await?;
        set_actor(&mut tx, actor).await?;
        let previous = governing_in(&mut tx, service.id).await?;
        if let Some((id, _)) = &previous {
            sqlx::query(
                "UPDATE osp_metadata.service_manifests SET status = 'superseded' WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE osp_metadata.service_manifests SET status = 'active'
             WHERE service_id = $1 AND version = $2 RETURNING id",
        )
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
            Some((id, _)) => Some(manifest_audit(&manifest_in(&mut tx, id).await?)),
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
        let mut tx = self.pool.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE osp_metadata.service_manifests SET status = $3
             WHERE service_id = $1 AND status = $2 RETURNING id",
        )
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
            sqlx::query_as(&format!("{REGISTRY_SELECT} WHERE service_id = $1"))
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
        let mut tx = self.pool.begin().await?;
        let before = registry_status_in(&mut tx, service).await?;
        let starting = update.status == DeploymentStatus::Deploying;
        let row: RegistryRow = sqlx::query_as(&format!(
            "UPDATE osp_metadata.worker_registry
                SET deployment_status = $2,
                    manifest_id = coalesce($3, manifest_id),
                    manifest_path = coalesce($4, manifest_path),
                    logs = coalesce($5, logs),
                    attempts = CASE WHEN $6 THEN 0 ELSE attempts END,
                    deployed_at = CASE WHEN $2 = 'deployed' THEN now() ELSE deployed_at END,
                    updated_at = now()
              WHERE service_id = $1
             RETURNING {}",
            registry_columns!()
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO osp_metadata.worker_deploy_attempts
                 (registry_id, attempt, step, exit_code, output, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(registry_id)
        .bind(step.attempt)
        .bind(step.step.as_str())
        .bind(step.exit_code)
        .bind(&step.output)
        .bind(step.started_at)
        .bind(step.finished_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE osp_metadata.worker_registry SET attempts = greatest(attempts, $2), updated_at = now()
             WHERE id = $1",
        )
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
             FROM osp_metadata.worker_deploy_attempts WHERE registry_id = $1 ORDER BY id",
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
                    started_at: r.started_at,
                    finished_at: r.finished_at,
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
        let mut tx = self.pool.begin().await?;
        let before = registry_status_in(&mut tx, service).await?;
        let becomes_deployed = before == "pending";
        let row: RegistryRow = sqlx::query_as(&format!(
            "UPDATE osp_metadata.worker_registry
                SET last_heartbeat = now(), worker_id = $2, worker_version = $3,
                    deployment_status = CASE WHEN $4 THEN 'deployed' ELSE deployment_status END,
                    deployed_at = CASE WHEN $4 THEN now() ELSE deployed_at END,
                    updated_at = now()
              WHERE service_id = $1
             RETURNING {}",
            registry_columns!()
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
