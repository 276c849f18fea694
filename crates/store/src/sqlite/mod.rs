//! The embedded store: one SQLite file, WAL, foreign keys on, a busy timeout. Writes that read
//! first take the write lock up front (`BEGIN IMMEDIATE`), so a claim never races another writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, Transaction};

use super::shared::{conflict_as, migration_states, tally_rescue};
use super::{
    ChangeWatcher, ClaimRequest, MigrationState, QueueProbe, RunWaker, Store, StoreError,
    StoreKind, StoreOptions, StoreResult,
};
use crate::domain::permission::Identity;
use crate::domain::run::{
    ClaimedRun, Completion, HeartbeatAck, Hold, NewArtifact, NewLogLine, NewRun, RescueOutcome,
};
use crate::migrations;
use crate::runs::{ClaimRow, claimed_runs};
use crate::sql::{Backend, Db};
use read_only::WriterFollower;

/// Milliseconds since the epoch, as the schema stores time.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

// After the macros above, which it uses.
mod read_only;

/// A claim of up to ?3 queued runs for worker ?1, leased for ?2 ms, only of the projects in the
/// JSON array ?5 when given; with ?6 the runs are started in the same write (queued → claimed →
/// running, both moves recorded by runs_transition_event). `$queues` narrows it to named queues.
macro_rules! claim_sql {
    ($queues:literal) => {
        concat!(
            "UPDATE runs SET status = CASE WHEN ?6 THEN 'running' ELSE 'claimed' END,
                    worker_id = ?1, changed_by = ?1, attempt = attempt + 1,
                    claimed_at = ",
            now_ms!(),
            ",
                    started_at = CASE WHEN ?6 THEN ",
            now_ms!(),
            " END,
                    lease_expires_at = ",
            now_ms!(),
            " + ?2
             WHERE id IN (SELECT id FROM runs WHERE status = 'queued' AND run_after <= ",
            now_ms!(),
            "
                            ",
            $queues,
            "
                            AND (?5 IS NULL OR project_id IN (SELECT value FROM json_each(?5)))
                          ORDER BY priority DESC, id LIMIT ?3)
             RETURNING id, attempt, project_id, workflow_id, queue, payload, priority"
        )
    };
}
const CLAIM_ALL_SQL: &str = claim_sql!("");
const CLAIM_SOME_SQL: &str = claim_sql!("AND queue IN (SELECT value FROM json_each(?4))");
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
        if let Some(kib) = options.sqlite_cache_kib {
            // A negative cache_size is a size in KiB rather than in pages.
            connect = connect.pragma("cache_size", format!("-{kib}"));
        }
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
        migrations::SQLITE.migrator().await?.run(&self.pool).await?;
        let after = applied_versions(&self.pool).await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationState>> {
        let applied = applied_versions(&self.pool).await?;
        Ok(migration_states(
            &migrations::SQLITE.migrator().await?,
            &applied,
        ))
    }

    async fn migrate_down(&self) -> StoreResult<Option<MigrationState>> {
        let applied = applied_versions(&self.pool).await?;
        let Some((&newest, rest)) = applied.split_last() else {
            return Ok(None);
        };
        let migrator = migrations::SQLITE.migrator().await?;
        migrator
            .undo(&self.pool, rest.last().copied().unwrap_or(0))
            .await?;
        Ok(migration_states(&migrator, &applied)
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

    async fn claim_runs(&self, claim: &ClaimRequest<'_>) -> StoreResult<Vec<ClaimedRun>> {
        // Two statements rather than one with `OR`, so each can use the partial claim index.
        let sql = if claim.queues.is_empty() {
            CLAIM_ALL_SQL
        } else {
            CLAIM_SOME_SQL
        };
        let mut tx = self.write_tx().await?;
        let rows: Vec<ClaimRow> = sqlx::query_as(sql)
            .bind(claim.worker)
            .bind(lease_ms(claim.lease))
            .bind(i64::from(claim.limit))
            .bind(serde_json::to_string(claim.queues).unwrap_or_default())
            .bind(
                claim
                    .projects
                    .map(|p| serde_json::to_string(p).unwrap_or_default()),
            )
            .bind(claim.start)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(claimed_runs(rows))
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

    async fn append_logs(&self, run_id: i64, lines: &[NewLogLine]) -> StoreResult<()> {
        // The whole batch is one statement over one JSON array: a statement per line would
        // cost a round trip to sqlx's connection thread each, which is most of a line's cost.
        // `->` keeps the metadata as the JSON text the single-line form stored.
        let rows: Vec<(&str, &str, &serde_json::Value)> = lines
            .iter()
            .map(|l| (l.level.as_str(), l.message.as_str(), &*l.metadata))
            .collect();
        let batch = serde_json::to_string(&rows)
            .map_err(|e| StoreError::Invalid(format!("log lines as JSON: {e}")))?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO run_logs (run_id, level, message, metadata)
             SELECT ?1, j.value ->> 0, j.value ->> 1, j.value -> 2
             FROM json_each(?2) j ORDER BY j.key",
        )
        .bind(run_id)
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
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

    async fn run_waker(&self) -> StoreResult<Box<dyn RunWaker>> {
        Ok(Box::new(SqliteWaker {
            pool: self.pool.clone(),
            last_version: None,
        }))
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

#[async_trait]
impl QueueProbe for SqliteStore {
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
            .bind(true)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r: ClaimRow| (r.id, r.attempt))
            .collect();
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

    async fn minimal_fill(&self, runs: usize) -> StoreResult<()> {
        let table = crate::minimal_table();
        let create = [
            format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" (
                     id        INTEGER PRIMARY KEY,
                     queue     TEXT NOT NULL,
                     status    TEXT NOT NULL DEFAULT 'queued',
                     priority  INTEGER NOT NULL DEFAULT 0,
                     attempt   INTEGER NOT NULL DEFAULT 0,
                     worker_id TEXT,
                     run_after INTEGER NOT NULL DEFAULT 0)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_claim\" ON \"{table}\" (queue, priority DESC, id)
                 WHERE status = 'queued'"
            ),
        ];
        let fill = format!(
            "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO \"{table}\" (queue) SELECT 'minimal' FROM n"
        );
        let mut tx = self.write_tx().await?;
        for statement in &create {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query(&fill)
            .bind(i64::try_from(runs).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn minimal_cycle(&self, worker: &str, batch: u32) -> StoreResult<usize> {
        let table = crate::minimal_table();
        let claim = format!(
            concat!(
                "UPDATE \"{table}\" SET status = 'running', worker_id = ?1, attempt = attempt + 1
                 WHERE id IN (SELECT id FROM \"{table}\"
                              WHERE status = 'queued' AND queue = 'minimal' AND run_after <= ",
                now_ms!(),
                " ORDER BY priority DESC, id LIMIT ?2)
                 RETURNING id, attempt"
            ),
            table = table
        );
        let mut tx = self.write_tx().await?;
        let claimed: Vec<(i64, i32)> = sqlx::query_as(&claim)
            .bind(worker)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut tx = self.write_tx().await?;
        let complete = format!(
            "UPDATE \"{table}\" SET status = 'succeeded'
             WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND status = 'running'"
        );
        for (id, attempt) in &claimed {
            sqlx::query(&complete)
                .bind(id)
                .bind(worker)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(claimed.len())
    }

    async fn minimal_drop(&self) -> StoreResult<()> {
        let table = crate::minimal_table();
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{table}\""))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// SQLite has no dead rows to clear: a freed page is reused by the next write.
    async fn settle(&self) -> StoreResult<()> {
        Ok(())
    }
}
