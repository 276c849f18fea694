//! The embedded store: one SQLite file, WAL, foreign keys on, a busy timeout. Writes that read
//! first take the write lock up front (`BEGIN IMMEDIATE`), so a claim never races another writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, FromRow, Sqlite, Transaction};

use super::shared::{
    conflict_as, decode, migration_states, minute_activity, payload, shown_json, status,
    status_counts, tally_rescue,
};
use super::{
    AuditEntry, ChangeWatcher, MigrationState, RunWaker, Store, StoreError, StoreKind,
    StoreOptions, StoreResult,
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
use read_only::WriterFollower;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Milliseconds since the epoch, as the schema stores time.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

macro_rules! run_select {
    () => {
        "SELECT r.id, r.project_id, p.workspace_key AS project, r.workflow_id, w.name AS workflow, r.queue,
                r.status, r.priority, r.payload, r.attempt, r.max_attempts, r.worker_id, r.lease_expires_at,
                r.run_after, r.cancel_requested, r.exit_code, r.error, r.retry_of, r.created_at,
                r.claimed_at, r.started_at, r.finished_at
         FROM runs r JOIN projects p ON p.id = r.project_id JOIN workflows w ON w.id = r.workflow_id "
    };
}

macro_rules! workflow_select {
    () => {
        "SELECT w.id, w.project_id, p.workspace_key AS project, w.name, w.workflow_type, w.task_queue,
                w.command, w.timeout_secs, w.created_by, w.created_at
         FROM workflows w JOIN projects p ON p.id = w.project_id "
    };
}

// After the macros above, which it uses.
mod access;
mod read_only;
mod templates;

const CLAIM_ALL_SQL: &str =
    concat!(
    "UPDATE runs SET status = 'claimed', worker_id = ?1, changed_by = ?1, attempt = attempt + 1,
            claimed_at = ", now_ms!(), ", lease_expires_at = ", now_ms!(), " + ?2
     WHERE id IN (SELECT id FROM runs WHERE status = 'queued' AND run_after <= ", now_ms!(), "
                    AND (?5 IS NULL OR project_id IN (SELECT value FROM json_each(?5)))
                  ORDER BY priority DESC, id LIMIT ?3)
     RETURNING id, attempt, project_id, workflow_id, queue, payload, priority"
);
const CLAIM_SOME_SQL: &str =
    concat!(
    "UPDATE runs SET status = 'claimed', worker_id = ?1, changed_by = ?1, attempt = attempt + 1,
            claimed_at = ", now_ms!(), ", lease_expires_at = ", now_ms!(), " + ?2
     WHERE id IN (SELECT id FROM runs WHERE status = 'queued' AND run_after <= ", now_ms!(), "
                    AND queue IN (SELECT value FROM json_each(?4))
                    AND (?5 IS NULL OR project_id IN (SELECT value FROM json_each(?5)))
                  ORDER BY priority DESC, id LIMIT ?3)
     RETURNING id, attempt, project_id, workflow_id, queue, payload, priority"
);
const START_SQL: &str = concat!(
    "UPDATE runs SET status = 'running', started_at = ",
    now_ms!(),
    ", changed_by = ?2
     WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND status = 'claimed' RETURNING id"
);
const COMPLETE_SQL: &str = concat!(
    "UPDATE runs SET status = ?4, exit_code = ?5, error = ?6, finished_at = ",
    now_ms!(),
    ",
            lease_expires_at = NULL, changed_by = ?2
     WHERE id = ?1 AND status = 'running' AND worker_id = ?2 AND (?3 IS NULL OR attempt = ?3)
     RETURNING id"
);

pub struct SqliteStore {
    pool: SqlitePool,
    /// The same pool, for the flows written once for both backends.
    db: Db,
    path: String,
    read_only: bool,
    /// Present when a WAL database is opened read-only: see [`read_only`].
    follower: Option<Arc<WriterFollower>>,
}

impl Backend for SqliteStore {
    fn db(&self) -> &Db {
        &self.db
    }
}

impl SqliteStore {
    pub async fn open(path: &str, options: &StoreOptions) -> StoreResult<Self> {
        if path.is_empty() {
            return Err(StoreError::Invalid("empty SQLite path".into()));
        }
        if options.read_only && !Path::new(path).exists() {
            return Err(StoreError::Unavailable(format!(
                "no database at {path} (read-only mode creates none)"
            )));
        }
        let mut connect = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .read_only(options.read_only)
            .create_if_missing(!options.read_only);
        if !options.read_only {
            connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
        let mut pool_options = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            // SQLite rolls a transaction back by itself when the disk fills (SQLITE_FULL); sqlx's
            // own ROLLBACK then fails and the connection keeps believing it is in a transaction,
            // refusing every later BEGIN. Such a connection is closed instead of going back to
            // the pool. The ping first lets a rollback queued by a dropped transaction finish.
            .after_release(|conn, _meta| {
                Box::pin(async move {
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            });
        let mut follower = None;
        if options.read_only && read_only::is_wal_database(Path::new(path)) {
            let reader = Arc::new(WriterFollower::new(path, connect.clone()));
            if !reader.observe().await?.is_live() {
                connect = reader.immutable_options();
                pool_options = reader.pool_options(pool_options);
            }
            follower = Some(reader);
        }
        let pool = pool_options.connect_with(connect).await?;
        if let Some(follower) = &follower {
            follower.attach(&pool);
        }
        Ok(Self {
            db: Db::Sqlite(pool.clone()),
            pool,
            path: path.to_owned(),
            read_only: options.read_only,
            follower,
        })
    }

    /// Every write takes the write lock up front: a deferred transaction that reads first (a
    /// foreign-key check is enough) fails at once with BUSY_SNAPSHOT instead of waiting its turn.
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn ts(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn opt_ts(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(ts)
}

#[derive(FromRow)]
struct ProjectRow {
    id: i64,
    workspace_key: String,
    slug: String,
    name: String,
    status: String,
    created_at: i64,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: r.id,
            key: r.workspace_key,
            slug: r.slug,
            name: r.name,
            status: r.status,
            created_at: ts(r.created_at),
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
    created_at: i64,
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
            created_at: ts(self.created_at),
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
    lease_expires_at: Option<i64>,
    run_after: i64,
    cancel_requested: bool,
    exit_code: Option<i32>,
    error: Option<String>,
    retry_of: Option<i64>,
    created_at: i64,
    claimed_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
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
            lease_expires_at: opt_ts(self.lease_expires_at),
            run_after: ts(self.run_after),
            cancel_requested: self.cancel_requested,
            exit_code: self.exit_code,
            error: self.error,
            retry_of: self.retry_of,
            created_at: ts(self.created_at),
            claimed_at: opt_ts(self.claimed_at),
            started_at: opt_ts(self.started_at),
            finished_at: opt_ts(self.finished_at),
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
    created_at: i64,
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
    created_at: i64,
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
    expires_at: Option<i64>,
    created_at: i64,
}

async fn audit(tx: &mut Transaction<'static, Sqlite>, entry: &AuditEntry<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, project_id, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.entity_type)
    .bind(&entry.entity_id)
    .bind(entry.project_id)
    .bind(entry.before.as_ref().map(Value::to_string))
    .bind(entry.after.as_ref().map(Value::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// FTS5 query from free text: every word quoted, so operators in user text are plain words.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Sqlite
    }

    fn location(&self) -> String {
        format!("sqlite://{}", self.path)
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let before: Vec<i64> = applied_versions(&self.pool).await?;
        MIGRATOR.run(&self.pool).await?;
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
        MIGRATOR
            .undo(&self.pool, rest.last().copied().unwrap_or(0))
            .await?;
        Ok(migration_states(&MIGRATOR, &applied)
            .into_iter()
            .find(|m| m.version == newest))
    }

    async fn identity(&self, as_user: Option<&str>) -> StoreResult<Identity> {
        let owner = file_owner(&self.path);
        Ok(match as_user {
            Some(user) => Identity {
                user: user.to_owned(),
                administrator: owner
                    .as_ref()
                    .is_some_and(|(_, name)| name.as_deref() == Some(user)),
            },
            None => {
                // SAFETY: geteuid has no preconditions and cannot fail.
                let euid = unsafe { libc::geteuid() };
                Identity {
                    user: whoami::username(),
                    administrator: euid == 0 || owner.is_some_and(|(uid, _)| uid == euid),
                }
            }
        })
    }

    async fn create_project(&self, actor: &str, project: &NewProject) -> StoreResult<Project> {
        let mut tx = self.write_tx().await?;
        let row: ProjectRow = sqlx::query_as(
            "INSERT INTO projects (workspace_key, slug, name, created_by) VALUES (?1, ?1, ?2, ?3)
             RETURNING id, workspace_key, slug, name, status, created_at",
        )
        .bind(&project.key)
        .bind(&project.name)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_as(e, format!("project {} already exists", project.key)))?;
        let created = Project::from(row);
        sqlx::query(
            "INSERT INTO project_memberships (project_id, user_id, role) VALUES (?1, ?2, 'owner')",
        )
        .bind(created.id)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
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
            "SELECT id, workspace_key, slug, name, status, created_at FROM projects ORDER BY workspace_key",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Project::from).collect())
    }

    async fn find_project(&self, key: &str) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = sqlx::query_as(
            "SELECT id, workspace_key, slug, name, status, created_at FROM projects WHERE workspace_key = ?1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Project::from))
    }

    async fn create_workflow(&self, actor: &str, wf: &NewWorkflow) -> StoreResult<Workflow> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO workflows (project_id, name, workflow_type, task_queue, command, timeout_secs, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
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
        let row: WorkflowRow = sqlx::query_as(concat!(workflow_select!(), "WHERE w.id = ?1"))
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
            "WHERE (?1 IS NULL OR w.project_id = ?1) ORDER BY p.workspace_key, w.name"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(WorkflowRow::into_domain).collect()
    }

    async fn find_workflow(&self, project_id: i64, name: &str) -> StoreResult<Option<Workflow>> {
        let row: Option<WorkflowRow> = sqlx::query_as(concat!(
            workflow_select!(),
            "WHERE w.project_id = ?1 AND w.name = ?2"
        ))
        .bind(project_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(WorkflowRow::into_domain).transpose()
    }

    async fn workflow(&self, id: i64) -> StoreResult<Option<Workflow>> {
        let row: Option<WorkflowRow> =
            sqlx::query_as(concat!(workflow_select!(), "WHERE w.id = ?1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(WorkflowRow::into_domain).transpose()
    }

    async fn enqueue_runs(&self, actor: &str, runs: &[NewRun]) -> StoreResult<Vec<i64>> {
        let mut tx = self.write_tx().await?;
        let mut ids = Vec::with_capacity(runs.len());
        for run in runs {
            let id: Option<i64> = sqlx::query_scalar(concat!(
                "INSERT INTO runs (project_id, workflow_id, queue, priority, payload, max_attempts, run_after, changed_by)
                 SELECT w.project_id, w.id, w.task_queue, ?3, ?4, ?5, coalesce(?6, ", now_ms!(), "), ?7
                 FROM workflows w WHERE w.id = ?2 AND w.project_id = ?1
                 RETURNING id"
            ))
            .bind(run.project_id)
            .bind(run.workflow_id)
            .bind(run.priority)
            .bind(run.payload.to_string())
            .bind(run.max_attempts)
            .bind(run.run_after.map(|t| t.timestamp_millis()))
            .bind(actor)
            .fetch_optional(&mut *tx)
            .await?;
            ids.push(id.ok_or_else(|| {
                StoreError::NotFound(format!(
                    "workflow {} not found in project {}",
                    run.workflow_id, run.project_id
                ))
            })?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn run(&self, id: i64) -> StoreResult<Option<Run>> {
        let row: Option<RunRow> = sqlx::query_as(concat!(run_select!(), "WHERE r.id = ?1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(RunRow::into_domain).transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let rows: Vec<RunRow> = sqlx::query_as(concat!(
            run_select!(),
            "WHERE (?1 IS NULL OR r.status = ?1) AND (?2 IS NULL OR r.project_id = ?2)
               AND (?3 IS NULL OR r.workflow_id = ?3)
               AND (?5 IS NULL OR r.id = ?6
                    OR lower(p.workspace_key) LIKE ?5 ESCAPE '\\' OR lower(w.name) LIKE ?5 ESCAPE '\\'
                    OR lower(r.queue) LIKE ?5 ESCAPE '\\'
                    OR lower(coalesce(r.worker_id, '')) LIKE ?5 ESCAPE '\\'
                    OR lower(coalesce(r.error, '')) LIKE ?5 ESCAPE '\\')
             ORDER BY r.id DESC LIMIT ?4"
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
        // Two statements rather than one with `OR`, so each can use the partial claim index.
        let sql = if queues.is_empty() {
            CLAIM_ALL_SQL
        } else {
            CLAIM_SOME_SQL
        };
        let mut tx = self.write_tx().await?;
        let mut rows: Vec<ClaimRow> = sqlx::query_as(sql)
            .bind(worker)
            .bind(lease_ms(lease))
            .bind(i64::from(limit))
            .bind(serde_json::to_string(queues).unwrap_or_default())
            .bind(projects.map(|p| serde_json::to_string(p).unwrap_or_default()))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
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
        let mut tx = self.write_tx().await?;
        let mut started = Vec::with_capacity(holds.len());
        for hold in holds {
            let id: Option<i64> = sqlx::query_scalar(START_SQL)
                .bind(hold.run_id)
                .bind(worker)
                .bind(hold.attempt)
                .fetch_optional(&mut *tx)
                .await?;
            started.extend(id);
        }
        tx.commit().await?;
        Ok(started)
    }

    async fn heartbeat(
        &self,
        worker: &str,
        holds: &[Hold],
        lease: Duration,
    ) -> StoreResult<Vec<HeartbeatAck>> {
        let mut tx = self.write_tx().await?;
        let mut acks = Vec::with_capacity(holds.len());
        for hold in holds {
            let row: Option<(i64, bool)> = sqlx::query_as(concat!(
                "UPDATE runs SET lease_expires_at = ", now_ms!(), " + ?4
                 WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND status IN ('claimed', 'running')
                 RETURNING id, cancel_requested"
            ))
            .bind(hold.run_id)
            .bind(worker)
            .bind(hold.attempt)
            .bind(lease_ms(lease))
            .fetch_optional(&mut *tx)
            .await?;
            acks.extend(row.map(|(run_id, cancel_requested)| HeartbeatAck {
                run_id,
                cancel_requested,
            }));
        }
        tx.commit().await?;
        Ok(acks)
    }

    async fn complete_runs(&self, worker: &str, done: &[Completion]) -> StoreResult<Vec<i64>> {
        let mut tx = self.write_tx().await?;
        let mut finished = Vec::with_capacity(done.len());
        for c in done {
            let id: Option<i64> = sqlx::query_scalar(COMPLETE_SQL)
                .bind(c.hold.run_id)
                .bind(worker)
                .bind((c.hold.attempt > 0).then_some(c.hold.attempt))
                .bind(c.outcome().as_str())
                .bind(c.exit_code)
                .bind(c.error.as_deref())
                .fetch_optional(&mut *tx)
                .await?;
            finished.extend(id);
        }
        tx.commit().await?;
        Ok(finished)
    }

    async fn release_runs(&self, worker: &str, holds: &[Hold]) -> StoreResult<Vec<i64>> {
        let mut tx = self.write_tx().await?;
        let mut released = Vec::with_capacity(holds.len());
        for hold in holds {
            let id: Option<i64> = sqlx::query_scalar(concat!(
                "UPDATE runs
                    SET status = CASE WHEN cancel_requested THEN 'canceled' ELSE 'queued' END,
                        attempt = CASE WHEN cancel_requested THEN attempt ELSE attempt - 1 END,
                        worker_id = NULL, lease_expires_at = NULL, claimed_at = NULL, started_at = NULL,
                        error = 'released by worker ' || ?2, changed_by = ?2,
                        finished_at = CASE WHEN cancel_requested THEN ", now_ms!(), " END
                  WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND status IN ('claimed', 'running')
                  RETURNING id"
            ))
            .bind(hold.run_id)
            .bind(worker)
            .bind(hold.attempt)
            .fetch_optional(&mut *tx)
            .await?;
            released.extend(id);
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn rescue_expired(&self, actor: &str) -> StoreResult<RescueOutcome> {
        let mut tx = self.write_tx().await?;
        let statuses: Vec<String> = sqlx::query_scalar(concat!(
            "UPDATE runs
                SET status = CASE WHEN cancel_requested THEN 'canceled'
                                  WHEN attempt < max_attempts THEN 'queued' ELSE 'failed' END,
                    error = 'lease expired on attempt ' || attempt || ' (worker ' || coalesce(worker_id, '?') || ')',
                    worker_id = CASE WHEN cancel_requested OR attempt >= max_attempts THEN worker_id END,
                    lease_expires_at = NULL, changed_by = ?1,
                    finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts THEN ", now_ms!(), " END
              WHERE status IN ('claimed', 'running') AND lease_expires_at < ", now_ms!(), "
              RETURNING status"
        ))
        .bind(actor)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(tally_rescue(statuses.iter().map(String::as_str)))
    }

    async fn cancel_run(&self, actor: &str, id: i64) -> StoreResult<Option<CancelOutcome>> {
        let mut tx = self.write_tx().await?;
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT status, project_id FROM runs WHERE id = ?1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((current, project_id)) = current else {
            return Ok(None);
        };
        let outcome = match status(&current)? {
            RunStatus::Queued | RunStatus::Claimed => {
                sqlx::query(concat!(
                    "UPDATE runs SET status = 'canceled', finished_at = ",
                    now_ms!(),
                    ", lease_expires_at = NULL,
                            error = 'canceled by ' || ?2, changed_by = ?2 WHERE id = ?1"
                ))
                .bind(id)
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                CancelOutcome::Canceled
            }
            RunStatus::Running => {
                sqlx::query("UPDATE runs SET cancel_requested = 1, changed_by = ?2 WHERE id = ?1 AND NOT cancel_requested")
                    .bind(id)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await?;
                CancelOutcome::Requested
            }
            done => return Ok(Some(CancelOutcome::AlreadyFinished(done))),
        };
        audit(
            &mut tx,
            &AuditEntry::run_canceled(actor, id, project_id, &current, outcome),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn retry_run(&self, actor: &str, id: i64) -> StoreResult<Option<i64>> {
        let mut tx = self.write_tx().await?;
        let new_id: Option<(i64, i64)> = sqlx::query_as(
            "INSERT INTO runs (project_id, workflow_id, queue, priority, payload, max_attempts, retry_of, changed_by)
             SELECT r.project_id, r.workflow_id, w.task_queue, r.priority, r.payload, r.max_attempts, r.id, ?2
             FROM runs r JOIN workflows w ON w.id = r.workflow_id
             WHERE r.id = ?1 AND r.status IN ('succeeded', 'failed', 'canceled')
             RETURNING id, project_id",
        )
        .bind(id)
        .bind(actor)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((new_id, project_id)) = new_id else {
            return Ok(None);
        };
        audit(
            &mut tx,
            &AuditEntry::run_retried(actor, id, project_id, new_id),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(new_id))
    }

    async fn append_logs(&self, run_id: i64, lines: &[NewLogLine]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for line in lines {
            sqlx::query(
                "INSERT INTO run_logs (run_id, level, message, metadata) VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(run_id)
            .bind(line.level.as_str())
            .bind(&line.message)
            .bind(line.metadata.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
            "SELECT id, run_id, level, message, metadata, created_at FROM run_logs
             WHERE run_id = ?1 AND id > ?2
               AND (?3 IS NULL OR id IN (SELECT rowid FROM run_logs_fts WHERE run_logs_fts MATCH ?3))
             ORDER BY id LIMIT ?4",
        )
        .bind(run_id)
        .bind(after_id)
        .bind(search.and_then(fts_query))
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
                    created_at: ts(r.created_at),
                })
            })
            .collect()
    }

    async fn add_artifact(&self, a: &NewArtifact) -> StoreResult<i64> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO run_artifacts (run_id, key, url, sha256, size_bytes, content_type, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )
        .bind(a.run_id)
        .bind(&a.key)
        .bind(a.url.as_deref())
        .bind(a.sha256.as_deref())
        .bind(a.size_bytes)
        .bind(a.content_type.as_deref())
        .bind(a.expires_at.map(|t| t.timestamp_millis()))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_as(e, format!("run {} already has an artifact {}", a.run_id, a.key)))?;
        tx.commit().await?;
        Ok(id)
    }

    async fn run_artifacts(&self, run_id: i64) -> StoreResult<Vec<RunArtifact>> {
        let rows: Vec<ArtifactRow> = sqlx::query_as(
            "SELECT id, run_id, key, url, sha256, size_bytes, content_type, expires_at, created_at
             FROM run_artifacts WHERE run_id = ?1 ORDER BY id",
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
                expires_at: opt_ts(r.expires_at),
                created_at: ts(r.created_at),
            })
            .collect())
    }

    async fn run_events(&self, run_id: i64) -> StoreResult<Vec<RunEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, run_id, event_type, from_status, to_status, attempt, actor, message, created_at
             FROM run_events WHERE run_id = ?1 ORDER BY id",
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
                    created_at: ts(r.created_at),
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
        let queues = serde_json::to_string(&[queue]).unwrap_or_default();
        let mut tx = self.write_tx().await?;
        let claimed: Vec<(i64, i32)> = sqlx::query_as(CLAIM_SOME_SQL)
            .bind(worker)
            .bind(60_000_i64)
            .bind(i64::from(batch))
            .bind(&queues)
            .bind(None::<String>)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r: ClaimRow| (r.id, r.attempt))
            .collect();
        tx.commit().await?;
        let mut tx = self.write_tx().await?;
        for (id, attempt) in &claimed {
            sqlx::query(START_SQL)
                .bind(id)
                .bind(worker)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let mut tx = self.write_tx().await?;
        for (id, attempt) in &claimed {
            sqlx::query(COMPLETE_SQL)
                .bind(id)
                .bind(worker)
                .bind(attempt)
                .bind("succeeded")
                .bind(0)
                .bind(None::<String>)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(claimed.len())
    }

    async fn run_waker(&self) -> StoreResult<Box<dyn RunWaker>> {
        Ok(Box::new(SqliteWaker {
            pool: self.pool.clone(),
            last_version: None,
        }))
    }

    async fn count_runs_by_status(&self, cap: i64) -> StoreResult<Vec<StatusCount>> {
        let mut rows = Vec::with_capacity(RunStatus::ALL.len());
        let mut conn = self.pool.acquire().await?;
        for s in RunStatus::ALL {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM runs WHERE status = ?1 LIMIT ?2 + 1)",
            )
            .bind(s.as_str())
            .bind(cap)
            .fetch_one(&mut *conn)
            .await?;
            rows.push((s.as_str().to_owned(), n));
        }
        status_counts(rows, cap)
    }

    async fn run_activity(&self, minutes: i64) -> StoreResult<Vec<MinuteActivity>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(concat!(
            "SELECT (",
            now_ms!(),
            " - finished_at) / 60000 AS minutes_ago,
                    sum(status = 'succeeded'), sum(status = 'failed')
             FROM runs
             WHERE finished_at IS NOT NULL AND finished_at > ",
            now_ms!(),
            " - ?1 * 60000
             GROUP BY 1 ORDER BY 1"
        ))
        .bind(minutes)
        .fetch_all(&self.pool)
        .await?;
        Ok(minute_activity(rows))
    }

    async fn active_workers(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT count(DISTINCT worker_id) FROM runs
             WHERE status IN ('claimed', 'running') AND lease_expires_at > ",
            now_ms!()
        ))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn change_watcher(&self) -> StoreResult<Box<dyn ChangeWatcher>> {
        // A connection of its own: data_version counts commits by *other* connections, per connection.
        let conn = self.pool.acquire().await?.detach();
        let mut immutable = None;
        if let Some(follower) = &self.follower {
            let state = follower.observe().await?;
            if !state.is_live() {
                immutable = Some((follower.clone(), state.generation));
            }
        }
        Ok(Box::new(SqliteChangeWatcher {
            conn,
            last_version: None,
            immutable,
        }))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(follower) = &self.follower {
            follower.detach();
        }
    }
}

/// Polls `PRAGMA data_version` on its own connection: a few microseconds per poll, five polls a
/// second, so an idle console costs next to nothing.
struct SqliteChangeWatcher {
    conn: sqlx::SqliteConnection,
    last_version: Option<i64>,
    /// Set while the store reads `immutable`, whose data_version never moves: the watcher looks
    /// at the files instead (the follower and the generation last reported), until reads go live
    /// and it polls a live connection.
    immutable: Option<(Arc<WriterFollower>, u64)>,
}

const CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(200);

#[async_trait]
impl ChangeWatcher for SqliteChangeWatcher {
    async fn changed(&mut self, timeout: Duration) -> StoreResult<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((follower, reported)) = &mut self.immutable {
                let state = follower.observe().await?;
                if state.generation != *reported {
                    *reported = state.generation;
                    if state.is_live() {
                        let mut conn = follower.live_connection().await?;
                        // Counted before the change is reported: the reload that follows reads
                        // at least this far, and any later commit moves the counter.
                        let version: i64 = sqlx::query_scalar("PRAGMA data_version")
                            .fetch_one(&mut conn)
                            .await?;
                        self.conn = conn;
                        self.last_version = Some(version);
                        self.immutable = None;
                    }
                    return Ok(true);
                }
            }
            let version: i64 = sqlx::query_scalar("PRAGMA data_version")
                .fetch_one(&mut self.conn)
                .await?;
            let first = self.last_version.is_none();
            if self.last_version.replace(version) != Some(version) && !first {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(CHANGE_POLL_INTERVAL.min(deadline - now)).await;
        }
    }
}

/// Cheap polling: `PRAGMA data_version` changes only when another connection commits, and only
/// then is the queue itself looked at.
struct SqliteWaker {
    pool: SqlitePool,
    last_version: Option<i64>,
}

const POLL_INTERVAL: Duration = Duration::from_millis(10);

#[async_trait]
impl RunWaker for SqliteWaker {
    async fn wait(&mut self, queues: &[String], timeout: Duration) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut conn = self.pool.acquire().await?;
        let queues_json = serde_json::to_string(queues).unwrap_or_default();
        loop {
            let version: i64 = sqlx::query_scalar("PRAGMA data_version")
                .fetch_one(&mut *conn)
                .await?;
            if self.last_version != Some(version) {
                self.last_version = Some(version);
                let waiting: bool = sqlx::query_scalar(concat!(
                    "SELECT EXISTS (SELECT 1 FROM runs WHERE status = 'queued' AND run_after <= ",
                    now_ms!(),
                    "
                       AND (?1 = '[]' OR queue IN (SELECT value FROM json_each(?1))))"
                ))
                .bind(&queues_json)
                .fetch_one(&mut *conn)
                .await?;
                if waiting {
                    return Ok(());
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }
}

async fn applied_versions(pool: &SqlitePool) -> StoreResult<Vec<i64>> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
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

/// The uid that owns the database file, and its user name where the system knows one.
fn file_owner(path: &str) -> Option<(u32, Option<String>)> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(path).ok()?.uid();
    Some((uid, user_name(uid)))
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain old data; getpwuid_r fills it with pointers into `buf`, which
    // outlives every read below, and `result` is null unless an entry was found.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || entry.pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(entry.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}
