//! Worker presence: every worker process registers, beats and leaves. Written once for both
//! backends. Presence is telemetry, like a lease renewal, not a change anyone made: it has no
//! audit events (a worker's start and stop are in its own log), and a member's worker may write
//! it without any project role.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::StoreResult;
use crate::domain::worker::{PRESENCE_KEPT_SECS, WorkerPresence};
use crate::sql::{Backend, TextList, Time, row, stmt};

#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// Records a worker as present (again, if its row expired), and removes rows a day old.
    async fn register_worker(&self, worker: &WorkerPresence) -> StoreResult<()>;
    /// A beat: answers false when the worker has no row (it expired, or was removed), so the
    /// worker registers again.
    async fn beat_worker(&self, worker_id: &str, runs_held: i32) -> StoreResult<bool>;
    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()>;
    /// Workers whose last beat is at or after `since`, by id.
    async fn worker_presence(&self, since: DateTime<Utc>) -> StoreResult<Vec<WorkerPresence>>;
}

row! {
    struct PresenceRow {
        worker_id: String,
        host: String,
        pid: i64,
        queues: TextList,
        concurrency: i32,
        version: String,
        service: Option<String>,
        runs_held: i32,
        started_at: Time,
        heartbeat_at: Time,
    }
}

impl From<PresenceRow> for WorkerPresence {
    fn from(r: PresenceRow) -> Self {
        WorkerPresence {
            worker_id: r.worker_id,
            host: r.host,
            pid: r.pid,
            queues: r.queues.0,
            concurrency: r.concurrency,
            version: r.version,
            service: r.service,
            runs_held: r.runs_held,
            started_at: r.started_at.into(),
            heartbeat_at: r.heartbeat_at.into(),
        }
    }
}

#[async_trait]
impl<B: Backend> PresenceStore for B {
    async fn register_worker(&self, w: &WorkerPresence) -> StoreResult<()> {
        let mut tx = self.db().begin().await?;
        tx.execute(
            stmt("DELETE FROM worker_presence WHERE heartbeat_at < $1")
                .bind(Utc::now() - Duration::seconds(PRESENCE_KEPT_SECS)),
        )
        .await?;
        tx.execute(
            stmt(
                "INSERT INTO worker_presence
                     (worker_id, host, pid, queues, concurrency, version, service, runs_held,
                      started_at, heartbeat_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (worker_id) DO UPDATE SET
                     host = excluded.host, pid = excluded.pid, queues = excluded.queues,
                     concurrency = excluded.concurrency, version = excluded.version,
                     service = excluded.service, runs_held = excluded.runs_held,
                     started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
            )
            .bind(&w.worker_id)
            .bind(&w.host)
            .bind(w.pid)
            .bind(w.queues.as_slice())
            .bind(w.concurrency)
            .bind(&w.version)
            .bind(w.service.clone())
            .bind(w.runs_held)
            .bind(w.started_at)
            .bind(w.heartbeat_at),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn beat_worker(&self, worker_id: &str, runs_held: i32) -> StoreResult<bool> {
        let n = self
            .db()
            .execute(
                stmt(
                    "UPDATE worker_presence SET heartbeat_at = $1, runs_held = $2
                     WHERE worker_id = $3",
                )
                .bind(Utc::now())
                .bind(runs_held)
                .bind(worker_id),
            )
            .await?;
        Ok(n > 0)
    }

    async fn deregister_worker(&self, worker_id: &str) -> StoreResult<()> {
        self.db()
            .execute(stmt("DELETE FROM worker_presence WHERE worker_id = $1").bind(worker_id))
            .await?;
        Ok(())
    }

    async fn worker_presence(&self, since: DateTime<Utc>) -> StoreResult<Vec<WorkerPresence>> {
        let rows: Vec<PresenceRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT worker_id, host, pid, queues, concurrency, version, service, runs_held,
                            started_at, heartbeat_at
                     FROM worker_presence WHERE heartbeat_at >= $1 ORDER BY worker_id",
                )
                .bind(since),
            )
            .await?;
        Ok(rows.into_iter().map(WorkerPresence::from).collect())
    }
}
