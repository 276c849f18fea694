//! What a dashboard shows at a glance: counts per status, recent activity, workers at work.

use serde::Serialize;

use chrono::{DateTime, Duration, Utc};

use super::{Ops, OpsResult};
use crate::domain::deployment::Liveness;
use crate::domain::run::{MinuteActivity, StatusCount};
use crate::domain::worker::{QueueStat, WorkerPresence};
use ospdeck_store::ChangeWatcher;

/// Workers whose last beat is older than this are no longer listed (a killed worker shows as
/// missing until then; a worker that stops cleanly removes itself).
pub const PRESENCE_SHOWN_SECS: i64 = 3_600;

/// The sparkline's window.
pub const ACTIVITY_MINUTES: i64 = 60;

/// Exact counts per status and the last hour per minute (the Runs pane's header); who is at work
/// is `worker_presence`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueOverview {
    pub counts: Vec<StatusCount>,
    pub activity: Vec<MinuteActivity>,
}

impl QueueOverview {
    /// Queued runs, the queue depth of the status bar.
    pub fn depth(&self) -> Option<StatusCount> {
        self.counts
            .iter()
            .find(|c| c.status == crate::domain::run::RunStatus::Queued)
            .copied()
    }
}

/// What the Overview pane shows: each queue's load, every worker, the last hour's activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueBoard {
    pub queues: Vec<QueueStat>,
    pub workers: Vec<WorkerPresence>,
    pub activity: Vec<MinuteActivity>,
    /// When deploy runs of the last hour started, for markers on the time axis.
    pub deploys: Vec<DateTime<Utc>>,
}

impl QueueBoard {
    /// Workers alive at `now`.
    pub fn live_workers(&self, now: DateTime<Utc>) -> usize {
        self.workers
            .iter()
            .filter(|w| w.liveness(now) == Liveness::Alive)
            .count()
    }
}

impl Ops {
    /// Every worker process that has beaten within the last hour, by id.
    pub async fn worker_presence(&self) -> OpsResult<Vec<WorkerPresence>> {
        let since = Utc::now() - Duration::seconds(PRESENCE_SHOWN_SECS);
        Ok(self.store.worker_presence(since).await?)
    }

    /// Queues, workers, the last hour and its deploys: counters and small indexed reads, the
    /// same cost on a store of millions.
    pub async fn queue_board(&self) -> OpsResult<QueueBoard> {
        let hour_ago = Utc::now() - Duration::minutes(ACTIVITY_MINUTES);
        Ok(QueueBoard {
            queues: self.store.queue_stats(hour_ago).await?,
            workers: self.worker_presence().await?,
            activity: self.store.run_activity(ACTIVITY_MINUTES).await?,
            deploys: self.store.deploys_since(hour_ago).await?,
        })
    }

    /// A worker process arrives (or comes back after its row expired).
    pub async fn register_worker(&self, worker: &WorkerPresence) -> OpsResult<()> {
        Ok(self.store.register_worker(worker).await?)
    }

    /// A worker's beat; false when it must register again.
    pub async fn beat_worker(&self, worker_id: &str, runs_held: i32) -> OpsResult<bool> {
        Ok(self.store.beat_worker(worker_id, runs_held).await?)
    }

    pub async fn deregister_worker(&self, worker_id: &str) -> OpsResult<()> {
        Ok(self.store.deregister_worker(worker_id).await?)
    }

    /// Both from the counters the runs' triggers keep: a few hundred rows on any store.
    pub async fn queue_overview(&self) -> OpsResult<QueueOverview> {
        Ok(QueueOverview {
            counts: self.store.count_runs_by_status().await?,
            activity: self.store.run_activity(ACTIVITY_MINUTES).await?,
        })
    }

    pub async fn change_watcher(&self) -> OpsResult<Box<dyn ChangeWatcher>> {
        Ok(self.store.change_watcher().await?)
    }
}
