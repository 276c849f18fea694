//! The team store: PostgreSQL (Supabase-compatible). Queue operations call the `ops.*` SQL
//! functions of the migration, so psql, PostgREST and edge functions share exactly this queue.

mod access;
mod templates;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Transaction};

use super::shared::{
    conflict_as, decode, migration_states, minute_activity, payload, shown_json, status,
    status_counts, tally_rescue,
};
use super::{
    AuditEntry, ChangeWatcher, MigrationState, RunWaker, Store, StoreError, StoreKind,
    StoreOptions, StoreResult, redact_url,
};
use crate::domain::permission::Identity;
use crate::domain::project::{NewProject, Project};
use crate::domain::run::{
    CancelOutcome, ClaimedRun, Completion, HeartbeatAck, Hold, LogLevel, MinuteActivity,
    NewArtifact, NewLogLine, NewRun, RescueOutcome, Run, RunArtifact, RunEvent, RunFilter, RunLog,
    RunStatus, StatusCount,
};
use crate::domain::workflow::{NewWorkflow, Workflow, WorkflowType};
use crate::sql::{Backend, Db};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The schemas the store's statements find their tables in, ahead of the server's default.
const SEARCH_PATH: &str = "ops,osp_metadata,public";

/// The channel the runs trigger notifies, with the queue name as payload.
pub const RUNS_CHANNEL: &str = "ospdeck_runs";
/// Any change to runs, their logs or artifacts (the console listens).
pub const CHANGES_CHANNEL: &str = "ospdeck_changes";

macro_rules! run_select {
    () => {
        "SELECT r.id, r.project_id, p.workspace_key AS project, r.workflow_id, w.name AS workflow, r.queue,
                r.status, r.priority, r.payload::text AS payload, r.attempt, r.max_attempts, r.worker_id, r.lease_expires_at,
                r.run_after, r.cancel_requested, r.exit_code, r.error, r.retry_of, r.created_at,
                r.claimed_at, r.started_at, r.finished_at
         FROM ops.runs r JOIN ops.projects p ON p.id = r.project_id JOIN ops.workflows w ON w.id = r.workflow_id "
    };
}

macro_rules! workflow_select {
    () => {
        "SELECT w.id, w.project_id, p.workspace_key AS project, w.name, w.workflow_type, w.task_queue,
                w.command, w.timeout_secs, w.created_by, w.created_at
         FROM ops.workflows w JOIN ops.projects p ON p.id = w.project_id "
    };
}

pub struct PgStore {
    pool: PgPool,
    /// The same pool, for the flows written once for both backends.
    db: Db,
    /// How to connect without the store's search path: migrations keep their bookkeeping table
    /// where the first migration put it (`public`).
    migrate_with: PgConnectOptions,
    url: String,
    read_only: bool,
}

impl Backend for PgStore {
    fn db(&self) -> &Db {
        &self.db
    }
}

impl PgStore {
    pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Invalid(format!("bad PostgreSQL URL {}: {e}", redact_url(url)))
            })?
            .application_name("ospdeck");
        // Read-only is enforced by the server for every transaction of every connection, so a
        // write that slipped past the front end still fails.
        let connect = if options.read_only {
            connect.options([("default_transaction_read_only", "on")])
        } else {
            connect
        };
        let migrate_with = connect.clone();
        // Statements name tables as SQLite does (no schema): both backends share their text.
        let connect = connect.options([("search_path", SEARCH_PATH)]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await?;
        Ok(Self {
            db: Db::Pg(pool.clone()),
            migrate_with,
            pool,
            url: url.to_owned(),
            read_only: options.read_only,
        })
    }

    /// One connection with the server's default search path, for the migrator.
    async fn migrating_pool(&self) -> StoreResult<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(1)
            .connect_with(self.migrate_with.clone())
            .await?)
    }

    /// A connection for benchmarks and tests that need raw SQL beside the store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn lease_secs(lease: Duration) -> i32 {
    i32::try_from(lease.as_secs().max(1)).unwrap_or(i32::MAX)
}

#[derive(FromRow)]
struct ProjectRow {
    id: i64,
    workspace_key: String,
    slug: String,
    name: String,
    status: String,
    created_at: DateTime<Utc>,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: r.id,
            key: r.workspace_key,
            slug: r.slug,
            name: r.name,
            status: r.status,
            created_at: r.created_at,
        }
    }
}

#[derive(FromRow)]
struct WorkflowRow {
    id: i64,
    project_id: i64,
    project: String,
    name: String,
    workflow_type: String,
    task_queue: String,
    command: String,
    timeout_secs: i32,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl WorkflowRow {
    fn into_domain(self) -> StoreResult<Workflow> {
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
            created_at: self.created_at,
        })
    }
}

#[derive(FromRow)]
struct RunRow {
    id: i64,
    project_id: i64,
    project: String,
    workflow_id: i64,
    workflow: String,
    queue: String,
    status: String,
    priority: i32,
    payload: String,
    attempt: i32,
    max_attempts: i32,
    worker_id: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    run_after: DateTime<Utc>,
    cancel_requested: bool,
    exit_code: Option<i32>,
    error: Option<String>,
    retry_of: Option<i64>,
    created_at: DateTime<Utc>,
    claimed_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl RunRow {
    fn into_domain(self) -> StoreResult<Run> {
        let (payload, payload_error) = payload(&self.payload);
        Ok(Run {
            id: self.id,
            project_id: self.project_id,
            project: self.project,
            workflow_id: self.workflow_id,
            workflow: self.workflow,
            queue: self.queue,
            status: status(&self.status)?,
            priority: self.priority,
            payload,
            payload_error,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            worker_id: self.worker_id,
            lease_expires_at: self.lease_expires_at,
            run_after: self.run_after,
            cancel_requested: self.cancel_requested,
            exit_code: self.exit_code,
            error: self.error,
            retry_of: self.retry_of,
            created_at: self.created_at,
            claimed_at: self.claimed_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

#[derive(FromRow)]
struct ClaimRow {
    id: i64,
    attempt: i32,
    project_id: i64,
    workflow_id: i64,
    queue: String,
    payload: String,
    priority: i32,
}

#[derive(FromRow)]
struct LogRow {
    id: i64,
    run_id: i64,
    level: String,
    message: String,
    metadata: String,
    created_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct EventRow {
    id: i64,
    run_id: i64,
    event_type: String,
    from_status: Option<String>,
    to_status: Option<String>,
    attempt: i32,
    actor: String,
    message: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct ArtifactRow {
    id: i64,
    run_id: i64,
    key: String,
    url: Option<String>,
    sha256: Option<String>,
    size_bytes: Option<i64>,
    content_type: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

async fn audit(tx: &mut Transaction<'static, Postgres>, entry: &AuditEntry<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ops.audit_log (actor, action, entity_type, entity_id, project_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.entity_type)
    .bind(&entry.entity_id)
    .bind(entry.project_id)
    .bind(entry.before.as_ref().map(Json))
    .bind(entry.after.as_ref().map(Json))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn split_holds(holds: &[Hold]) -> (Vec<i64>, Vec<i32>) {
    holds.iter().map(|h| (h.run_id, h.attempt)).unzip()
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }

    fn location(&self) -> String {
        redact_url(&self.url)
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let before = applied_versions(&self.pool).await?;
        let migrating = self.migrating_pool().await?;
        MIGRATOR.run(&migrating).await?;
        migrating.close().await;
        let after = applied_versions(&self.pool).await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationState>> {
        let applied = applied_versions(&self.pool).await?;
        Ok(migration_states(&MIGRATOR, &applied))
    }

    async fn migrate_down(&self) -> StoreResult<Option<MigrationState>> {
        let applied = applied_versions(&self.pool).await?;
        let Some((&newest, rest)) = applied.split_last() else {
            return Ok(None);
        };
        let migrating = self.migrating_pool().await?;
        MIGRATOR
            .undo(&migrating, rest.last().copied().unwrap_or(0))
            .await?;
        migrating.close().await;
        Ok(migration_states(&MIGRATOR, &applied)
            .into_iter()
            .find(|m| m.version == newest))
    }

    async fn identity(&self, as_user: Option<&str>) -> StoreResult<Identity> {
        if let Some(user) = as_user {
            return Err(StoreError::Invalid(format!(
                "--as {user}: PostgreSQL knows who you are (the role you connect as, or a \
                 gateway's JWT subject); connect as that role instead"
            )));
        }
        let (user, administrator): (String, bool) = match sqlx::query_as(
            "SELECT ops.current_user_id(), ops.is_administrator()",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::from)
        {
            Ok(row) => row,
            // Not migrated yet (doctor, db migrate): the role and whether it is a superuser.
            Err(StoreError::NotMigrated(_)) => sqlx::query_as(
                "SELECT session_user::text, rolsuper FROM pg_roles WHERE rolname = current_user",
            )
            .fetch_one(&self.pool)
            .await?,
            Err(e) => return Err(e),
        };
        Ok(Identity {
            user,
            administrator,
        })
    }

    async fn create_project(&self, actor: &str, project: &NewProject) -> StoreResult<Project> {
        let mut tx = self.pool.begin().await?;
        let row: ProjectRow = sqlx::query_as(
            // A trigger makes the creator its first owner (and, for a member, the creator is always
            // the session's own identity).
            "INSERT INTO ops.projects (workspace_key, slug, name, created_by) VALUES ($1, $1, $2, $3)
             RETURNING id, workspace_key, slug, name, status, created_at",
        )
        .bind(&project.key)
        .bind(&project.name)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_as(e, format!("project {} already exists", project.key)))?;
        let created = Project::from(row);
        audit(
            &mut tx,
            &AuditEntry::created(actor, "project", &created.key, Some(created.id), &created),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let rows: Vec<ProjectRow> = sqlx::query_as(
            "SELECT id, workspace_key, slug, name, status, created_at FROM ops.projects ORDER BY workspace_key",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Project::from).collect())
    }

    async fn find_project(&self, key: &str) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = sqlx::query_as(
            "SELECT id, workspace_key, slug, name, status, created_at FROM ops.projects WHERE workspace_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Project::from))
    }

    async fn create_workflow(&self, actor: &str, wf: &NewWorkflow) -> StoreResult<Workflow> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO ops.workflows (project_id, name, workflow_type, task_queue, command, timeout_secs, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(wf.project_id)
        .bind(&wf.name)
        .bind(wf.workflow_type.as_str())
        .bind(&wf.queue)
        .bind(&wf.command)
        .bind(wf.timeout_secs)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_as(e, format!("workflow {} already exists in this project", wf.name)))?;
        let row: WorkflowRow = sqlx::query_as(concat!(workflow_select!(), "WHERE w.id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let created = row.into_domain()?;
        audit(
            &mut tx,
            &AuditEntry::created(
                actor,
                "workflow",
                &id.to_string(),
                Some(wf.project_id),
                &created,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_workflows(&self, project_id: Option<i64>) -> StoreResult<Vec<Workflow>> {
        let rows: Vec<WorkflowRow> = sqlx::query_as(concat!(
            workflow_select!(),
            "WHERE ($1::bigint IS NULL OR w.project_id = $1) ORDER BY p.workspace_key, w.name"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(WorkflowRow::into_domain).collect()
    }

    async fn find_workflow(&self, project_id: i64, name: &str) -> StoreResult<Option<Workflow>> {
        let row: Option<WorkflowRow> = sqlx::query_as(concat!(
            workflow_select!(),
            "WHERE w.project_id = $1 AND w.name = $2"
        ))
        .bind(project_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(WorkflowRow::into_domain).transpose()
    }

    async fn workflow(&self, id: i64) -> StoreResult<Option<Workflow>> {
        let row: Option<WorkflowRow> =
            sqlx::query_as(concat!(workflow_select!(), "WHERE w.id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(WorkflowRow::into_domain).transpose()
    }

    async fn enqueue_runs(&self, actor: &str, runs: &[NewRun]) -> StoreResult<Vec<i64>> {
        let project_ids: Vec<i64> = runs.iter().map(|r| r.project_id).collect();
        let workflow_ids: Vec<i64> = runs.iter().map(|r| r.workflow_id).collect();
        let priorities: Vec<i32> = runs.iter().map(|r| r.priority).collect();
        let payloads: Vec<Json<&Value>> = runs.iter().map(|r| Json(&r.payload)).collect();
        let max_attempts: Vec<i32> = runs.iter().map(|r| r.max_attempts).collect();
        let run_after: Vec<Option<DateTime<Utc>>> = runs.iter().map(|r| r.run_after).collect();
        let mut tx = self.pool.begin().await?;
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT ops.enqueue_runs($1, $2, $3, $4, $5, $6, $7)")
                .bind(actor)
                .bind(&project_ids)
                .bind(&workflow_ids)
                .bind(&priorities)
                .bind(&payloads)
                .bind(&max_attempts)
                .bind(&run_after)
                .fetch_all(&mut *tx)
                .await?;
        if ids.len() != runs.len() {
            // Some workflow did not belong to its project: insert none of them.
            tx.rollback().await?;
            return Err(StoreError::NotFound(
                "a workflow was not found in its project".into(),
            ));
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn run(&self, id: i64) -> StoreResult<Option<Run>> {
        let row: Option<RunRow> = sqlx::query_as(concat!(run_select!(), "WHERE r.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(RunRow::into_domain).transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let rows: Vec<RunRow> = sqlx::query_as(concat!(
            run_select!(),
            "WHERE ($1::text IS NULL OR r.status = $1) AND ($2::bigint IS NULL OR r.project_id = $2)
               AND ($3::bigint IS NULL OR r.workflow_id = $3)
               AND ($5::text IS NULL OR r.id = $6
                    OR lower(p.workspace_key) LIKE $5 OR lower(w.name) LIKE $5 OR lower(r.queue) LIKE $5
                    OR lower(coalesce(r.worker_id, '')) LIKE $5 OR lower(coalesce(r.error, '')) LIKE $5)
             ORDER BY r.id DESC LIMIT $4"
        ))
        .bind(filter.status.map(RunStatus::as_str))
        .bind(filter.project_id)
        .bind(filter.workflow_id)
        .bind(filter.limit)
        .bind(filter.like_pattern())
        .bind(filter.text_id())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RunRow::into_domain).collect()
    }

    async fn claim_runs(
        &self,
        worker: &str,
        queues: &[String],
        projects: Option<&[i64]>,
        limit: u32,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedRun>> {
        let mut rows: Vec<ClaimRow> = sqlx::query_as(
            "SELECT id, attempt, project_id, workflow_id, queue, payload::text AS payload, priority
             FROM ops.claim_runs($1, $2, $3, $4, $5)",
        )
        .bind(worker)
        .bind((!queues.is_empty()).then_some(queues))
        .bind(i32::try_from(limit).unwrap_or(i32::MAX))
        .bind(lease_secs(lease))
        .bind(projects)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_by_key(|r| (-r.priority, r.id));
        Ok(rows
            .into_iter()
            .map(|r| {
                let (payload, payload_error) = payload(&r.payload);
                ClaimedRun {
                    id: r.id,
                    attempt: r.attempt,
                    project_id: r.project_id,
                    workflow_id: r.workflow_id,
                    queue: r.queue,
                    payload,
                    payload_error,
                }
            })
            .collect())
    }

    async fn start_runs(&self, worker: &str, holds: &[Hold]) -> StoreResult<Vec<i64>> {
        let (ids, attempts) = split_holds(holds);
        Ok(
            sqlx::query_scalar("SELECT ops.start_workflow_runs($1, $2, $3)")
                .bind(worker)
                .bind(&ids)
                .bind(&attempts)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn heartbeat(
        &self,
        worker: &str,
        holds: &[Hold],
        lease: Duration,
    ) -> StoreResult<Vec<HeartbeatAck>> {
        let (ids, attempts) = split_holds(holds);
        let rows: Vec<(i64, bool)> = sqlx::query_as(
            "SELECT run_id, cancel_requested FROM ops.heartbeat_runs($1, $2, $3, $4)",
        )
        .bind(worker)
        .bind(&ids)
        .bind(&attempts)
        .bind(lease_secs(lease))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(run_id, cancel_requested)| HeartbeatAck {
                run_id,
                cancel_requested,
            })
            .collect())
    }

    async fn complete_runs(&self, worker: &str, done: &[Completion]) -> StoreResult<Vec<i64>> {
        let ids: Vec<i64> = done.iter().map(|c| c.hold.run_id).collect();
        let attempts: Vec<Option<i32>> = done
            .iter()
            .map(|c| (c.hold.attempt > 0).then_some(c.hold.attempt))
            .collect();
        let exit_codes: Vec<Option<i32>> = done.iter().map(|c| c.exit_code).collect();
        let errors: Vec<Option<&str>> = done.iter().map(|c| c.error.as_deref()).collect();
        let canceled: Vec<bool> = done.iter().map(|c| c.canceled).collect();
        Ok(
            sqlx::query_scalar("SELECT ops.complete_workflow_runs($1, $2, $3, $4, $5, $6)")
                .bind(worker)
                .bind(&ids)
                .bind(&attempts)
                .bind(&exit_codes)
                .bind(&errors)
                .bind(&canceled)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn release_runs(&self, worker: &str, holds: &[Hold]) -> StoreResult<Vec<i64>> {
        let (ids, attempts) = split_holds(holds);
        Ok(sqlx::query_scalar("SELECT ops.release_runs($1, $2, $3)")
            .bind(worker)
            .bind(&ids)
            .bind(&attempts)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn rescue_expired(&self, actor: &str) -> StoreResult<RescueOutcome> {
        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT status FROM ops.rescue_expired_runs($1)")
                .bind(actor)
                .fetch_all(&self.pool)
                .await?;
        Ok(tally_rescue(statuses.iter().map(String::as_str)))
    }

    async fn cancel_run(&self, actor: &str, id: i64) -> StoreResult<Option<CancelOutcome>> {
        let mut tx = self.pool.begin().await?;
        let before: Option<(String, i64)> =
            sqlx::query_as("SELECT status, project_id FROM ops.runs WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((before, project_id)) = before else {
            return Ok(None);
        };
        let answer: Option<String> = sqlx::query_scalar("SELECT ops.cancel_run($1, $2)")
            .bind(id)
            .bind(actor)
            .fetch_one(&mut *tx)
            .await?;
        let outcome = match answer.as_deref() {
            Some("canceled") => CancelOutcome::Canceled,
            Some("requested") => CancelOutcome::Requested,
            Some(other) => match other.strip_prefix("finished:") {
                Some(done) => return Ok(Some(CancelOutcome::AlreadyFinished(status(done)?))),
                None => {
                    return Err(StoreError::Database(format!(
                        "unexpected answer from ops.cancel_run: {other}"
                    )));
                }
            },
            None => return Ok(None),
        };
        audit(
            &mut tx,
            &AuditEntry::run_canceled(actor, id, project_id, &before, outcome),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn retry_run(&self, actor: &str, id: i64) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let new_id: Option<i64> = sqlx::query_scalar("SELECT ops.retry_run($1, $2)")
            .bind(id)
            .bind(actor)
            .fetch_one(&mut *tx)
            .await?;
        let Some(new_id) = new_id else {
            return Ok(None);
        };
        let project_id: i64 = sqlx::query_scalar("SELECT project_id FROM ops.runs WHERE id = $1")
            .bind(new_id)
            .fetch_one(&mut *tx)
            .await?;
        audit(
            &mut tx,
            &AuditEntry::run_retried(actor, id, project_id, new_id),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(new_id))
    }

    async fn append_logs(&self, run_id: i64, lines: &[NewLogLine]) -> StoreResult<()> {
        let levels: Vec<&str> = lines.iter().map(|l| l.level.as_str()).collect();
        let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        let metadata: Vec<Json<&Value>> = lines.iter().map(|l| Json(&l.metadata)).collect();
        sqlx::query("SELECT ops.append_run_logs($1, $2, $3, $4)")
            .bind(run_id)
            .bind(&levels)
            .bind(&messages)
            .bind(&metadata)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn run_logs(
        &self,
        run_id: i64,
        after_id: i64,
        search: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RunLog>> {
        let rows: Vec<LogRow> = sqlx::query_as(
            "SELECT id, run_id, level, message, metadata::text AS metadata, created_at FROM ops.run_logs
             WHERE run_id = $1 AND id > $2 AND ($3::text IS NULL OR search @@ plainto_tsquery('simple', $3))
             ORDER BY id LIMIT $4",
        )
        .bind(run_id)
        .bind(after_id)
        .bind(search.filter(|s| !s.trim().is_empty()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RunLog {
                    id: r.id,
                    run_id: r.run_id,
                    level: decode::<LogLevel>(&r.level)?,
                    message: r.message,
                    metadata: shown_json(&r.metadata),
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    async fn add_artifact(&self, a: &NewArtifact) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT ops.add_run_artifact($1, $2, $3, $4, $5, $6, $7)")
            .bind(a.run_id)
            .bind(&a.key)
            .bind(a.url.as_deref())
            .bind(a.sha256.as_deref())
            .bind(a.size_bytes)
            .bind(a.content_type.as_deref())
            .bind(a.expires_at)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                conflict_as(
                    e,
                    format!("run {} already has an artifact {}", a.run_id, a.key),
                )
            })
    }

    async fn run_artifacts(&self, run_id: i64) -> StoreResult<Vec<RunArtifact>> {
        let rows: Vec<ArtifactRow> = sqlx::query_as(
            "SELECT id, run_id, key, url, sha256, size_bytes, content_type, expires_at, created_at
             FROM ops.run_artifacts WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RunArtifact {
                id: r.id,
                run_id: r.run_id,
                key: r.key,
                url: r.url,
                sha256: r.sha256,
                size_bytes: r.size_bytes,
                content_type: r.content_type,
                expires_at: r.expires_at,
                created_at: r.created_at,
            })
            .collect())
    }

    async fn run_events(&self, run_id: i64) -> StoreResult<Vec<RunEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, run_id, event_type, from_status, to_status, attempt, actor, message, created_at
             FROM ops.run_events WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RunEvent {
                    id: r.id,
                    run_id: r.run_id,
                    event_type: r.event_type,
                    from_status: r.from_status.as_deref().map(status).transpose()?,
                    to_status: r.to_status.as_deref().map(status).transpose()?,
                    attempt: r.attempt,
                    actor: r.actor,
                    message: r.message,
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    async fn raw_claim_complete_cycle(
        &self,
        worker: &str,
        queue: &str,
        batch: u32,
    ) -> StoreResult<usize> {
        let (ids, attempts): (Option<Vec<i64>>, Option<Vec<i32>>) = sqlx::query_as(
            "SELECT array_agg(id), array_agg(attempt) FROM ops.claim_runs($1, ARRAY[$2], $3, 60)",
        )
        .bind(worker)
        .bind(queue)
        .bind(i32::try_from(batch).unwrap_or(i32::MAX))
        .fetch_one(&self.pool)
        .await?;
        let (Some(ids), Some(attempts)) = (ids, attempts) else {
            return Ok(0);
        };
        sqlx::query("SELECT count(*) FROM ops.start_workflow_runs($1, $2, $3)")
            .bind(worker)
            .bind(&ids)
            .bind(&attempts)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "SELECT count(*) FROM ops.complete_workflow_runs($1, $2, $3,
                 array_fill(0, ARRAY[cardinality($2)]), array_fill(NULL::text, ARRAY[cardinality($2)]),
                 array_fill(false, ARRAY[cardinality($2)]))",
        )
        .bind(worker)
        .bind(&ids)
        .bind(&attempts)
        .execute(&self.pool)
        .await?;
        Ok(ids.len())
    }

    async fn run_waker(&self) -> StoreResult<Box<dyn RunWaker>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(RUNS_CHANNEL).await?;
        Ok(Box::new(PgWaker { listener }))
    }

    async fn count_runs_by_status(&self, cap: i64) -> StoreResult<Vec<StatusCount>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.status, (SELECT count(*) FROM (SELECT 1 FROM ops.runs r WHERE r.status = s.status
                                                      LIMIT $1 + 1) c)
             FROM unnest($2::text[]) AS s (status)",
        )
        .bind(cap)
        .bind(RunStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        status_counts(rows, cap)
    }

    async fn run_activity(&self, minutes: i64) -> StoreResult<Vec<MinuteActivity>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT floor(extract(epoch FROM now() - finished_at) / 60)::bigint AS minutes_ago,
                    count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')
             FROM ops.runs
             WHERE finished_at IS NOT NULL AND finished_at > now() - make_interval(mins => $1::int)
             GROUP BY 1 ORDER BY 1",
        )
        .bind(minutes)
        .fetch_all(&self.pool)
        .await?;
        Ok(minute_activity(rows))
    }

    async fn active_workers(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(DISTINCT worker_id) FROM ops.runs
             WHERE status IN ('claimed', 'running') AND lease_expires_at > now()",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn change_watcher(&self) -> StoreResult<Box<dyn ChangeWatcher>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Box::new(PgChangeWatcher { listener }))
    }
}

/// LISTEN/NOTIFY: the runs trigger sends one notification per statement and queue (PostgreSQL
/// folds duplicates within a transaction), so a batch of a thousand inserts wakes a worker once.
/// Wakes on `ospdeck_changes`, which the tables' statement triggers send (migration 0002).
struct PgChangeWatcher {
    listener: PgListener,
}

#[async_trait]
impl ChangeWatcher for PgChangeWatcher {
    async fn changed(&mut self, timeout: Duration) -> StoreResult<bool> {
        match tokio::time::timeout(timeout, self.listener.recv()).await {
            Err(_) => Ok(false),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(_)) => {
                while self.listener.next_buffered().is_some() {}
                Ok(true)
            }
        }
    }
}

struct PgWaker {
    listener: PgListener,
}

#[async_trait]
impl RunWaker for PgWaker {
    async fn wait(&mut self, queues: &[String], timeout: Duration) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.listener.recv()).await {
                Err(_) => return Ok(()),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(note)) => {
                    if queues.is_empty() || queues.iter().any(|q| q == note.payload()) {
                        // Debounce: fold whatever else is already buffered into this wake-up.
                        while self.listener.next_buffered().is_some() {}
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn applied_versions(pool: &PgPool) -> StoreResult<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?,
    )
}
