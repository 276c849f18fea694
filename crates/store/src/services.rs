//! What services, manifests and the worker registry need from a database: a trait of its own
//! (every `Store` is one), written once for both backends. What stays per backend is PostgreSQL's
//! interface for psql and row-level security: the actor named in the session, the manifest insert
//! and run enqueue through their SQL functions, the service workflow update through its SECURITY
//! DEFINER function, and row locks (SQLite's write transaction holds the whole database).

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Value, json};

use crate::domain::deployment::{DeployAttempt, DeployStep, DeploymentStatus, WorkerDeployment};
use crate::domain::manifest::ManifestHead;
use crate::domain::manifest::{Manifest, ManifestStatus};
use crate::domain::run::NewRun;
use crate::domain::service::CreatedService;
use crate::domain::service::Service;
use crate::domain::workflow::NewWorkflow;
use crate::shared::{conflict_as, decode, shown_json};
use crate::sql::{Backend, JsonText, TextList, Time, Tx, dialects, row, stmt};
use crate::{AuditEntry, StoreError, StoreKind, StoreResult};

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
    /// New content for the draft `version` (only a draft's content may change; the database
    /// refuses it for any other status too), with an audit event holding before and after.
    async fn revise_draft(
        &self,
        actor: &str,
        service: &Service,
        version: &str,
        content: &Value,
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

row! {
    struct ServiceRow {
        id: i64,
        project_id: i64,
        project: String,
        name: String,
        schema_name: String,
        created_by: String,
        created_at: Time,
    }
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
            created_at: r.created_at.into(),
        }
    }
}

const SERVICE_SELECT: &str =
    "SELECT s.id, s.project_id, p.workspace_key AS project, s.name, s.schema_name,
        s.created_by, s.created_at
 FROM services s JOIN projects p ON p.id = s.project_id ";

row! {
    struct ManifestRow {
        id: i64,
        service_id: i64,
        service_name: String,
        version: String,
        status: String,
        manifest_content: JsonText,
        locked_fields: TextList,
        created_by: String,
        created_at: Time,
        updated_at: Time,
    }
}

impl ManifestRow {
    fn into_domain(self) -> StoreResult<Manifest> {
        Ok(Manifest {
            id: self.id,
            service_id: self.service_id,
            service_name: self.service_name,
            version: self.version,
            status: decode(&self.status)?,
            content: shown_json(&self.manifest_content.0),
            locked_fields: self.locked_fields.0,
            created_by: self.created_by,
            created_at: self.created_at.into(),
            updated_at: self.updated_at.into(),
        })
    }
}

const MANIFEST_SELECT: &str =
    "SELECT id, service_id, service_name, version, status, manifest_content,
        locked_fields, created_by, created_at, updated_at
 FROM service_manifests ";

row! {
    struct HeadRow {
        id: i64,
        service_id: i64,
        version: String,
        status: String,
        locked_fields: TextList,
        created_by: String,
        created_at: Time,
    }
}

impl HeadRow {
    fn into_domain(self) -> StoreResult<ManifestHead> {
        Ok(ManifestHead {
            id: self.id,
            service_id: self.service_id,
            version: self.version,
            status: decode(&self.status)?,
            locked_fields: self.locked_fields.0,
            created_by: self.created_by,
            created_at: self.created_at.into(),
        })
    }
}

const HEAD_SELECT: &str =
    "SELECT id, service_id, version, status, locked_fields, created_by, created_at
 FROM service_manifests ";

row! {
    struct RegistryRow {
        id: i64,
        service_id: i64,
        service_schema: String,
        manifest_id: Option<i64>,
        manifest_path: Option<String>,
        deployment_status: String,
        attempts: i32,
        logs: Option<String>,
        deployed_at: Option<Time>,
        last_heartbeat: Option<Time>,
        worker_id: Option<String>,
        worker_version: Option<String>,
        updated_at: Time,
    }
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
            deployed_at: self.deployed_at.map(Into::into),
            last_heartbeat: self.last_heartbeat.map(Into::into),
            worker_id: self.worker_id,
            worker_version: self.worker_version,
            updated_at: self.updated_at.into(),
        })
    }
}

macro_rules! registry_columns {
    () => {
        "id, service_id, service_schema, manifest_id, manifest_path, deployment_status, attempts, logs,
         deployed_at, last_heartbeat, worker_id, worker_version, updated_at"
    };
}

const REGISTRY_SELECT: &str = concat!("SELECT ", registry_columns!(), " FROM worker_registry ");

row! {
    struct StepRow {
        attempt: i32,
        step: String,
        exit_code: Option<i32>,
        output: String,
        started_at: Time,
        finished_at: Time,
    }
}

impl StepRow {
    fn into_domain(self) -> StoreResult<DeployAttempt> {
        Ok(DeployAttempt {
            attempt: self.attempt,
            step: decode::<DeployStep>(&self.step)?,
            exit_code: self.exit_code,
            output: self.output,
            started_at: self.started_at.into(),
            finished_at: self.finished_at.into(),
        })
    }
}

/// Inserts a workflow unless its project already has one of that name; answers the new id, or
/// `None` when the name is taken. `service_id` is the service it belongs to (`None`: the
/// project's own). No `ON CONFLICT DO UPDATE`: on PostgreSQL that needs UPDATE on the table even
/// when nothing conflicts, and members have none.
pub(crate) async fn insert_workflow(
    tx: &mut Tx,
    actor: &str,
    wf: &NewWorkflow,
    service_id: Option<i64>,
) -> StoreResult<Option<i64>> {
    let row: Option<(i64,)> = tx
        .fetch_optional(
            stmt(
                "INSERT INTO workflows (project_id, name, workflow_type, task_queue, command,
                                        timeout_secs, created_by, service_id)
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
            .bind(service_id),
        )
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Inserts a service's workflow, or brings the one of that name up to date when it is the same
/// service's (a newly activated manifest may change its command or queue). On PostgreSQL the
/// update goes through `ops.update_service_workflow`, which checks activate_manifest for the
/// caller (members hold no UPDATE on workflows) and is audited by the database.
async fn put_service_workflow(
    tx: &mut Tx,
    actor: &str,
    wf: &NewWorkflow,
    service_id: Option<i64>,
) -> StoreResult<i64> {
    if let Some(id) = insert_workflow(tx, actor, wf, service_id).await? {
        return Ok(id);
    }
    let existing: Option<(i64, String, String, Option<i64>)> = tx
        .fetch_optional(
            stmt(
                "SELECT id, task_queue, command, service_id FROM workflows
                 WHERE project_id = $1 AND name = $2",
            )
            .bind(wf.project_id)
            .bind(&wf.name),
        )
        .await?;
    match existing {
        Some((id, queue, command, owner)) if owner == service_id => {
            if queue == wf.queue && command == wf.command {
                return Ok(id);
            }
            let (id,): (i64,) = tx
                .fetch_one(
                    dialects(
                        "SELECT ops.update_service_workflow($1, $2, $3)",
                        "UPDATE workflows SET task_queue = $2, command = $3 WHERE id = $1
                         RETURNING id",
                    )
                    .bind(id)
                    .bind(&wf.queue)
                    .bind(&wf.command),
                )
                .await?;
            Ok(id)
        }
        _ => Err(StoreError::Conflict(format!(
            "workflow {} already exists in this project and belongs to something else",
            wf.name
        ))),
    }
}

/// PostgreSQL's triggers and functions name the change's actor from the session (an
/// administrator's rows carry it; a member's carry the member). SQLite's writers pass it.
async fn name_actor(tx: &mut Tx, actor: &str) -> StoreResult<()> {
    if tx.kind() == StoreKind::Postgres {
        tx.execute(stmt("SELECT set_config('ospdeck.actor', $1, true)").bind(actor))
            .await?;
    }
    Ok(())
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

/// On PostgreSQL through seed 000's function, so that the rules for every writer are the same
/// (it names the session's actor as the creator); SQLite inserts the row.
async fn insert_manifest(tx: &mut Tx, actor: &str, m: &ManifestInsert<'_>) -> StoreResult<i64> {
    let s = match tx.kind() {
        StoreKind::Postgres => stmt(
            "SELECT manifest_id FROM osp_metadata.insert_service_manifest($1, $2, $3, $4, $5, $6)",
        ),
        StoreKind::Sqlite => stmt(
            "INSERT INTO service_manifests
                 (service_id, service_name, version, manifest_content, status, locked_fields, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        ),
    }
    .bind(m.service_id)
    .bind(m.service_name)
    .bind(m.version)
    .bind(m.content)
    .bind(m.status.as_str())
    .bind(m.locked_fields);
    let s = match tx.kind() {
        StoreKind::Postgres => s,
        StoreKind::Sqlite => s.bind(actor),
    };
    let (id,): (i64,) = tx.fetch_one(s).await?;
    Ok(id)
}

/// The service's deploy run. PostgreSQL queues it through `ops.enqueue_runs`, as psql does.
async fn enqueue_deploy_run(
    tx: &mut Tx,
    actor: &str,
    project_id: i64,
    workflow_id: i64,
    run: &NewRun,
) -> StoreResult<i64> {
    let (id,): (i64,) = tx
        .fetch_one(
            dialects(
                "SELECT ops.enqueue_runs($1, ARRAY[CAST($2 AS bigint)], ARRAY[CAST($3 AS bigint)],
                                         ARRAY[CAST($4 AS int)], ARRAY[CAST($5 AS jsonb)],
                                         ARRAY[CAST($6 AS int)], ARRAY[CAST(NULL AS timestamptz)])",
                "INSERT INTO runs (project_id, workflow_id, queue, priority, payload, max_attempts,
                                   run_after, changed_by)
                 SELECT w.project_id, w.id, w.task_queue, $4, $5, $6,
                        CAST(unixepoch('subsec') * 1000 AS INTEGER), $1
                   FROM workflows w WHERE w.id = $3 AND w.project_id = $2
                 RETURNING id",
            )
            .bind(actor)
            .bind(project_id)
            .bind(workflow_id)
            .bind(run.priority)
            .bind(&run.payload)
            .bind(run.max_attempts),
        )
        .await?;
    Ok(id)
}

async fn manifest_in(tx: &mut Tx, id: i64) -> StoreResult<Manifest> {
    let row: ManifestRow = tx
        .fetch_one(stmt(format!("{MANIFEST_SELECT} WHERE id = $1")).bind(id))
        .await?;
    row.into_domain()
}

/// The id of the service's governing (active or locked) version, locked for the rest of the
/// transaction (SQLite's write transaction already excludes every other writer).
async fn governing_in(tx: &mut Tx, service_id: i64) -> StoreResult<Option<i64>> {
    const SQL: &str = "SELECT id FROM service_manifests
         WHERE service_id = $1 AND status IN ('active', 'locked')";
    let row: Option<(i64,)> = tx
        .fetch_optional(dialects(format!("{SQL} FOR UPDATE"), SQL).bind(service_id))
        .await?;
    Ok(row.map(|(id,)| id))
}

/// The deployment status of the service's registry row, locked for the rest of the transaction.
async fn registry_status_in(tx: &mut Tx, service: &Service) -> StoreResult<String> {
    const SQL: &str = "SELECT deployment_status FROM worker_registry WHERE service_id = $1";
    let row: Option<(String,)> = tx
        .fetch_optional(dialects(format!("{SQL} FOR UPDATE"), SQL).bind(service.id))
        .await?;
    row.map(|(status,)| status).ok_or_else(|| {
        StoreError::NotFound(format!("{} has no worker registry entry", service.schema))
    })
}

#[async_trait]
impl<B: Backend> ServiceStore for B {
    async fn create_service(
        &self,
        actor: &str,
        new: &NewServiceRecord,
    ) -> StoreResult<CreatedService> {
        let mut tx = self.db().begin().await?;
        name_actor(&mut tx, actor).await?;
        // A service of that schema is answered by DO NOTHING; a conflict left is PostgreSQL's
        // insert trigger, which creates the service's schema (so a member needs no CREATE on the
        // database), finding a schema of that name already there.
        let inserted: Option<(i64,)> = tx
            .fetch_optional(
                stmt(
                    "INSERT INTO services (project_id, name, schema_name, created_by)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (schema_name) DO NOTHING RETURNING id",
                )
                .bind(new.project_id)
                .bind(&new.name)
                .bind(&new.schema)
                .bind(actor),
            )
            .await
            .map_err(|e| {
                conflict_as(
                    e,
                    format!("schema {} already exists in the database", new.schema),
                )
            })?;
        let (service_id,) = inserted.ok_or_else(|| {
            StoreError::Conflict(format!("service {} already exists", new.schema))
        })?;
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
            put_service_workflow(&mut tx, actor, wf, Some(service_id)).await?;
        }
        tx.execute(
            stmt(
                "INSERT INTO worker_registry (service_id, service_schema, manifest_id)
                 VALUES ($1, $2, $3)",
            )
            .bind(service_id)
            .bind(&new.schema)
            .bind(manifest_id),
        )
        .await?;
        let deploy_wf = put_service_workflow(&mut tx, actor, &new.deploy_workflow, None).await?;
        let deploy_run_id =
            enqueue_deploy_run(&mut tx, actor, new.project_id, deploy_wf, &new.deploy_run).await?;
        let service: Service = tx
            .fetch_one::<ServiceRow>(
                stmt(format!("{SERVICE_SELECT} WHERE s.id = $1")).bind(service_id),
            )
            .await?
            .into();
        let manifest = manifest_in(&mut tx, manifest_id).await?;
        service_created(actor, new, &service, &manifest, deploy_run_id)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(CreatedService {
            service,
            manifest,
            deploy_run_id,
        })
    }

    async fn list_services(&self) -> StoreResult<Vec<Service>> {
        let rows: Vec<ServiceRow> = self
            .db()
            .fetch_all(stmt(format!("{SERVICE_SELECT} ORDER BY s.schema_name")))
            .await?;
        Ok(rows.into_iter().map(Service::from).collect())
    }

    async fn find_service(&self, schema: &str) -> StoreResult<Option<Service>> {
        let row: Option<ServiceRow> = self
            .db()
            .fetch_optional(stmt(format!("{SERVICE_SELECT} WHERE s.schema_name = $1")).bind(schema))
            .await?;
        Ok(row.map(Service::from))
    }

    async fn governing_manifests(&self) -> StoreResult<Vec<ManifestHead>> {
        let rows: Vec<HeadRow> = self
            .db()
            .fetch_all(stmt(format!(
                "{HEAD_SELECT} WHERE status IN ('active', 'locked') ORDER BY service_id"
            )))
            .await?;
        rows.into_iter().map(HeadRow::into_domain).collect()
    }

    async fn manifest_history(&self, service_id: i64) -> StoreResult<Vec<ManifestHead>> {
        let rows: Vec<HeadRow> = self
            .db()
            .fetch_all(
                stmt(format!("{HEAD_SELECT} WHERE service_id = $1 ORDER BY id")).bind(service_id),
            )
            .await?;
        rows.into_iter().map(HeadRow::into_domain).collect()
    }

    async fn manifest(&self, service_id: i64, version: &str) -> StoreResult<Option<Manifest>> {
        let row: Option<ManifestRow> = self
            .db()
            .fetch_optional(
                stmt(format!(
                    "{MANIFEST_SELECT} WHERE service_id = $1 AND version = $2"
                ))
                .bind(service_id)
                .bind(version),
            )
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
        let mut tx = self.db().begin().await?;
        name_actor(&mut tx, actor).await?;
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
        .map_err(|e| {
            conflict_as(
                e,
                format!("{} already has a version {version}", service.schema),
            )
        })?;
        let manifest = manifest_in(&mut tx, id).await?;
        manifest_proposed(actor, service, &manifest, content)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(manifest)
    }

    async fn revise_draft(
        &self,
        actor: &str,
        service: &Service,
        version: &str,
        content: &Value,
    ) -> StoreResult<Manifest> {
        let mut tx = self.db().begin().await?;
        name_actor(&mut tx, actor).await?;
        let before: Option<ManifestRow> = tx
            .fetch_optional(
                stmt(format!(
                    "{MANIFEST_SELECT} WHERE service_id = $1 AND version = $2"
                ))
                .bind(service.id)
                .bind(version),
            )
            .await?;
        let Some(before) = before.map(ManifestRow::into_domain).transpose()? else {
            return Err(StoreError::NotFound(format!(
                "{} has no manifest version {version}",
                service.schema
            )));
        };
        let changed = tx
            .execute(
                stmt(
                    "UPDATE service_manifests SET manifest_content = $1, updated_at = $2
                     WHERE id = $3 AND status = 'draft'",
                )
                .bind(content)
                .bind(Utc::now())
                .bind(before.id),
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::Conflict(format!(
                "{} {version} is {}: only a draft's content can change",
                service.schema, before.status
            )));
        }
        let manifest = manifest_in(&mut tx, before.id).await?;
        AuditEntry {
            before: Some(json!({ "content": before.content })),
            after: Some(json!({ "manifest": manifest_audit(&manifest), "content": content })),
            ..manifest_entry(actor, "revise", service, &manifest)
        }
        .record(&mut tx)
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
        let mut tx = self.db().begin().await?;
        name_actor(&mut tx, actor).await?;
        let now = Utc::now();
        let previous = governing_in(&mut tx, service.id).await?;
        if let Some(id) = previous {
            tx.execute(
                stmt("UPDATE service_manifests SET status = 'superseded', updated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now),
            )
            .await?;
        }
        let id: Option<(i64,)> = tx
            .fetch_optional(
                stmt(
                    "UPDATE service_manifests SET status = 'active', updated_at = $3
                     WHERE service_id = $1 AND version = $2 AND status = 'draft' RETURNING id",
                )
                .bind(service.id)
                .bind(version)
                .bind(now),
            )
            .await?;
        // Only a draft becomes active: a caller that raced another activation of the same
        // version finds it active here (its read of the governing one saw nothing to supersede).
        let Some((id,)) = id else {
            let status: Option<(String,)> = tx
                .fetch_optional(
                    stmt("SELECT status FROM service_manifests WHERE service_id = $1 AND version = $2")
                        .bind(service.id)
                        .bind(version),
                )
                .await?;
            return Err(match status {
                None => {
                    StoreError::NotFound(format!("{} has no version {version}", service.schema))
                }
                Some((status,)) if status != "draft" => StoreError::Conflict(format!(
                    "{} {version} is {status}, no longer a draft",
                    service.schema
                )),
                // Visible, a draft, and still not updated: row-level security said no.
                Some(_) => StoreError::Forbidden(format!(
                    "activating {} {version} is not allowed for this role",
                    service.schema
                )),
            });
        };
        for wf in workflows {
            put_service_workflow(&mut tx, actor, wf, Some(service.id)).await?;
        }
        let manifest = manifest_in(&mut tx, id).await?;
        let before = match previous {
            Some(id) => Some(manifest_audit(&manifest_in(&mut tx, id).await?)),
            None => None,
        };
        manifest_activated(actor, service, &manifest, before)
            .record(&mut tx)
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
        let mut tx = self.db().begin().await?;
        let id: Option<(i64,)> = tx
            .fetch_optional(
                stmt(
                    "UPDATE service_manifests SET status = $3, updated_at = $4
                     WHERE service_id = $1 AND status = $2 RETURNING id",
                )
                .bind(service.id)
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(Utc::now()),
            )
            .await?;
        let (id,) = id.ok_or_else(|| {
            StoreError::NotFound(format!("{} has no {from} manifest", service.schema))
        })?;
        let manifest = manifest_in(&mut tx, id).await?;
        manifest_lock_changed(actor, service, &manifest, from, to)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(manifest)
    }

    async fn worker_registry(&self) -> StoreResult<Vec<WorkerDeployment>> {
        let rows: Vec<RegistryRow> = self
            .db()
            .fetch_all(stmt(format!("{REGISTRY_SELECT} ORDER BY service_schema")))
            .await?;
        rows.into_iter().map(RegistryRow::into_domain).collect()
    }

    async fn deployment(&self, service_id: i64) -> StoreResult<Option<WorkerDeployment>> {
        let row: Option<RegistryRow> = self
            .db()
            .fetch_optional(
                stmt(format!("{REGISTRY_SELECT} WHERE service_id = $1")).bind(service_id),
            )
            .await?;
        row.map(RegistryRow::into_domain).transpose()
    }

    async fn update_deployment(
        &self,
        actor: &str,
        service: &Service,
        update: &DeploymentUpdate,
    ) -> StoreResult<WorkerDeployment> {
        let mut tx = self.db().begin().await?;
        let before = registry_status_in(&mut tx, service).await?;
        let starting = update.status == DeploymentStatus::Deploying;
        let row: RegistryRow = tx
            .fetch_one(
                stmt(concat!(
                    "UPDATE worker_registry
                        SET deployment_status = $2,
                            manifest_id = coalesce($3, manifest_id),
                            manifest_path = coalesce($4, manifest_path),
                            logs = coalesce($5, logs),
                            attempts = CASE WHEN $6 THEN 0 ELSE attempts END,
                            deployed_at = CASE WHEN $2 = 'deployed' THEN $7 ELSE deployed_at END,
                            updated_at = $7
                      WHERE service_id = $1
                     RETURNING ",
                    registry_columns!()
                ))
                .bind(service.id)
                .bind(update.status.as_str())
                .bind(update.manifest_id)
                .bind(update.manifest_path.as_deref())
                .bind(update.logs.as_deref())
                .bind(starting)
                .bind(Utc::now()),
            )
            .await?;
        deployment_changed(
            actor,
            service,
            &before,
            json!({ "status": update.status, "manifest_id": update.manifest_id }),
        )
        .record(&mut tx)
        .await?;
        tx.commit().await?;
        row.into_domain()
    }

    async fn record_deploy_step(&self, registry_id: i64, step: &DeployAttempt) -> StoreResult<()> {
        let mut tx = self.db().begin().await?;
        tx.execute(
            stmt(
                "INSERT INTO worker_deploy_attempts
                     (registry_id, attempt, step, exit_code, output, started_at, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(registry_id)
            .bind(step.attempt)
            .bind(step.step.as_str())
            .bind(step.exit_code)
            .bind(&step.output)
            .bind(step.started_at)
            .bind(step.finished_at),
        )
        .await?;
        tx.execute(
            stmt(
                "UPDATE worker_registry
                    SET attempts = CASE WHEN attempts > $2 THEN attempts ELSE $2 END, updated_at = $3
                  WHERE id = $1",
            )
            .bind(registry_id)
            .bind(step.attempt)
            .bind(Utc::now()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn deploy_steps(&self, registry_id: i64) -> StoreResult<Vec<DeployAttempt>> {
        let rows: Vec<StepRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT attempt, step, exit_code, output, started_at, finished_at
                     FROM worker_deploy_attempts WHERE registry_id = $1 ORDER BY id",
                )
                .bind(registry_id),
            )
            .await?;
        rows.into_iter().map(StepRow::into_domain).collect()
    }

    async fn worker_heartbeat(
        &self,
        service: &Service,
        worker_id: &str,
        worker_version: &str,
    ) -> StoreResult<WorkerDeployment> {
        let mut tx = self.db().begin().await?;
        let before = registry_status_in(&mut tx, service).await?;
        let becomes_deployed = before == "pending";
        let row: RegistryRow = tx
            .fetch_one(
                stmt(concat!(
                    "UPDATE worker_registry
                        SET last_heartbeat = $5, worker_id = $2, worker_version = $3,
                            deployment_status = CASE WHEN $4 THEN 'deployed' ELSE deployment_status END,
                            deployed_at = CASE WHEN $4 THEN $5 ELSE deployed_at END,
                            updated_at = $5
                      WHERE service_id = $1
                     RETURNING ",
                    registry_columns!()
                ))
                .bind(service.id)
                .bind(worker_id)
                .bind(worker_version)
                .bind(becomes_deployed)
                .bind(Utc::now()),
            )
            .await?;
        if becomes_deployed {
            deployment_changed(
                worker_id,
                service,
                &before,
                json!({ "status": "deployed", "worker_id": worker_id }),
            )
            .record(&mut tx)
            .await?;
        }
        tx.commit().await?;
        row.into_domain()
    }
}

// The audit rows of these changes, the same on both stores.

/// What a manifest's audit rows record of it (its content is recorded where it is proposed).
fn manifest_audit(m: &Manifest) -> Value {
    json!({ "version": m.version, "status": m.status, "locked_fields": m.locked_fields })
}

fn service_created<'a>(
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

fn manifest_proposed<'a>(
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

fn manifest_activated<'a>(
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

fn manifest_lock_changed<'a>(
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

fn deployment_changed<'a>(
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
