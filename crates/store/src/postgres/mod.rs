//! The team store: PostgreSQL (Supabase-compatible). Queue operations call the `ops.*` SQL
//! functions of the migration, so psql, PostgREST and edge functions share exactly this queue.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::types::Json;

use super::shared::{conflict_as, migration_states, tally_rescue};
use super::{
    ChangeWatcher, ClaimRequest, MigrationState, QueueProbe, RunWaker, Store, StoreError,
    StoreKind, StoreOptions, StoreResult, redact_url,
};
use crate::domain::permission::Identity;
use crate::domain::run::{
    ClaimedRun, Completion, HeartbeatAck, Hold, NewArtifact, NewLogLine, NewRun, RescueOutcome,
};
use crate::migrations;
use crate::runs::{ClaimRow, claimed_runs};
use crate::sql::{Backend, Db};

/// The schemas the store's statements find their tables in, ahead of the server's default.
const SEARCH_PATH: &str = "ops,osp_metadata,public";

/// The channel the runs trigger notifies, with the queue name as payload.
pub const RUNS_CHANNEL: &str = "ospdeck_runs";
/// Any change to runs, their logs or artifacts (the console listens).
pub const CHANGES_CHANNEL: &str = "ospdeck_changes";

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
        let connect = match &options.gateway_subject {
            // The startup packet's options are words split at spaces, with `\` escaping: a
            // name with a space stays one value (and cannot add a setting of its own).
            Some(subject) => {
                let escaped = subject.replace('\\', "\\\\").replace(' ', "\\ ");
                connect.options([("request.jwt.claim.sub", escaped.as_str())])
            }
            None => connect,
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

    /// Closes every connection of the pool (a database is copied only when nobody is connected).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One connection with the server's default search path, for the migrator.
    async fn migrating_pool(&self) -> StoreResult<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(1)
            .connect_with(self.migrate_with.clone())
            .await?)
    }
}

fn lease_secs(lease: Duration) -> i32 {
    i32::try_from(lease.as_secs().max(1)).unwrap_or(i32::MAX)
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
        migrations::POSTGRES
            .migrator()
            .await?
            .run(&migrating)
            .await?;
        migrating.close().await;
        let after = applied_versions(&self.pool).await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationState>> {
        let applied = applied_versions(&self.pool).await?;
        Ok(migration_states(
            &migrations::POSTGRES.migrator().await?,
            &applied,
        ))
    }

    async fn migrate_down(&self) -> StoreResult<Option<MigrationState>> {
        let applied = applied_versions(&self.pool).await?;
        let Some((&newest, rest)) = applied.split_last() else {
            return Ok(None);
        };
        let migrating = self.migrating_pool().await?;
        let migrator = migrations::POSTGRES.migrator().await?;
        migrator
            .undo(&migrating, rest.last().copied().unwrap_or(0))
            .await?;
        migrating.close().await;
        Ok(migration_states(&migrator, &applied)
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

    async fn claim_runs(&self, claim: &ClaimRequest<'_>) -> StoreResult<Vec<ClaimedRun>> {
        let sql = if claim.start {
            "SELECT id, attempt, project_id, workflow_id, queue, payload, priority
             FROM ops.claim_and_start_runs($1, $2, $3, $4, $5)"
        } else {
            "SELECT id, attempt, project_id, workflow_id, queue, payload, priority
             FROM ops.claim_runs($1, $2, $3, $4, $5)"
        };
        let rows: Vec<ClaimRow> = sqlx::query_as(sql)
            .bind(claim.worker)
            .bind((!claim.queues.is_empty()).then_some(claim.queues))
            .bind(i32::try_from(claim.limit).unwrap_or(i32::MAX))
            .bind(lease_secs(claim.lease))
            .bind(claim.projects)
            .fetch_all(&self.pool)
            .await?;
        Ok(claimed_runs(rows))
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

    async fn append_logs(&self, run_id: i64, lines: &[NewLogLine]) -> StoreResult<()> {
        let levels: Vec<&str> = lines.iter().map(|l| l.level.as_str()).collect();
        let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        let metadata: Vec<Json<&Value>> = lines.iter().map(|l| Json(&*l.metadata)).collect();
        sqlx::query("SELECT ops.append_run_logs($1, $2, $3, $4)")
            .bind(run_id)
            .bind(&levels)
            .bind(&messages)
            .bind(&metadata)
            .execute(&self.pool)
            .await?;
        Ok(())
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

    async fn run_waker(&self) -> StoreResult<Box<dyn RunWaker>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(RUNS_CHANNEL).await?;
        Ok(Box::new(PgWaker { listener }))
    }

    async fn change_watcher(&self) -> StoreResult<Box<dyn ChangeWatcher>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        let clock = runs_change_clock(&mut listener).await?;
        Ok(Box::new(PgChangeWatcher { listener, clock }))
    }
}

/// How often a change watcher reads the runs' change clock.
const RUNS_CLOCK_POLL: Duration = Duration::from_millis(200);

/// The runs' change clock: it moves with every run event (every transition, every cancel request).
async fn runs_change_clock(listener: &mut PgListener) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT ops.runs_change_clock()")
        .fetch_one(listener)
        .await?)
}

/// LISTEN/NOTIFY for the tables whose statement triggers send `ospdeck_changes` (migration 0002),
/// and a read of the runs' change clock every 200 ms for the runs themselves: a NOTIFY from every
/// claim and completion would serialize the commits of every worker (PostgreSQL takes one
/// database-wide lock to commit a transaction that notified; measured: 40% of the queue's
/// throughput at 16 workers), so since migration 0011 run updates send none.
struct PgChangeWatcher {
    listener: PgListener,
    clock: i64,
}

#[async_trait]
impl ChangeWatcher for PgChangeWatcher {
    async fn changed(&mut self, timeout: Duration) -> StoreResult<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let wait = RUNS_CLOCK_POLL
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, self.listener.recv()).await {
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(_)) => {
                    while self.listener.next_buffered().is_some() {}
                    return Ok(true);
                }
                Err(_) => {
                    let clock = runs_change_clock(&mut self.listener).await?;
                    if clock != self.clock {
                        self.clock = clock;
                        return Ok(true);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

/// LISTEN/NOTIFY on `ospdeck_runs`: the runs triggers send one notification per statement and queue
/// when runs become queued (PostgreSQL folds duplicates within a transaction), so a batch of a
/// thousand inserts wakes a worker once.
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

#[async_trait]
impl QueueProbe for PgStore {
    async fn raw_claim_complete_cycle(
        &self,
        worker: &str,
        queue: &str,
        batch: u32,
    ) -> StoreResult<usize> {
        let (ids, attempts): (Option<Vec<i64>>, Option<Vec<i32>>) = sqlx::query_as(
            "SELECT array_agg(id), array_agg(attempt)
             FROM ops.claim_and_start_runs($1, ARRAY[$2], $3, 60)",
        )
        .bind(worker)
        .bind(queue)
        .bind(i32::try_from(batch).unwrap_or(i32::MAX))
        .fetch_one(&self.pool)
        .await?;
        let (Some(ids), Some(attempts)) = (ids, attempts) else {
            return Ok(0);
        };
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

    async fn minimal_fill(&self, runs: usize) -> StoreResult<()> {
        let table = crate::minimal_table();
        sqlx::raw_sql(&format!(
            "CREATE TABLE IF NOT EXISTS public.\"{table}\" (
                 id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 queue     text NOT NULL,
                 status    text NOT NULL DEFAULT 'queued',
                 priority  integer NOT NULL DEFAULT 0,
                 attempt   integer NOT NULL DEFAULT 0,
                 worker_id text,
                 run_after timestamptz NOT NULL DEFAULT now());
             CREATE INDEX IF NOT EXISTS \"{table}_claim\" ON public.\"{table}\" (queue, priority DESC, id)
                 WHERE status = 'queued';"
        ))
        .execute(&self.pool)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO public.\"{table}\" (queue) SELECT 'minimal' FROM generate_series(1, $1)"
        ))
        .bind(i64::try_from(runs).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn minimal_cycle(&self, worker: &str, batch: u32) -> StoreResult<usize> {
        let table = crate::minimal_table();
        let (ids, attempts): (Option<Vec<i64>>, Option<Vec<i32>>) = sqlx::query_as(&format!(
            "WITH picked AS (
                 SELECT id FROM public.\"{table}\"
                 WHERE status = 'queued' AND queue = 'minimal' AND run_after <= now()
                 ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED),
             taken AS (
                 UPDATE public.\"{table}\" t SET status = 'running', worker_id = $1, attempt = t.attempt + 1
                 FROM picked WHERE t.id = picked.id RETURNING t.id, t.attempt)
             SELECT array_agg(id), array_agg(attempt) FROM taken"
        ))
        .bind(worker)
        .bind(i32::try_from(batch).unwrap_or(i32::MAX))
        .fetch_one(&self.pool)
        .await?;
        let (Some(ids), Some(attempts)) = (ids, attempts) else {
            return Ok(0);
        };
        sqlx::query(&format!(
            "UPDATE public.\"{table}\" t SET status = 'succeeded'
             FROM unnest($2::bigint[], $3::integer[]) AS h (id, attempt)
             WHERE t.id = h.id AND t.worker_id = $1 AND t.attempt = h.attempt AND t.status = 'running'"
        ))
        .bind(worker)
        .bind(&ids)
        .bind(&attempts)
        .execute(&self.pool)
        .await?;
        Ok(ids.len())
    }

    async fn minimal_drop(&self) -> StoreResult<()> {
        let table = crate::minimal_table();
        sqlx::raw_sql(&format!("DROP TABLE IF EXISTS public.\"{table}\""))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn settle(&self) -> StoreResult<()> {
        let table = crate::minimal_table();
        let minimal: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("public.\"{table}\""))
            .fetch_one(&self.pool)
            .await?;
        let mut tables =
            String::from("ops.runs, ops.run_events, ops.run_counts, ops.run_minute_counts");
        if minimal {
            tables.push_str(&format!(", public.\"{table}\""));
        }
        sqlx::raw_sql(&format!("VACUUM (ANALYZE) {tables}"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
