//! What a dashboard shows at a glance: counts per status, recent activity, workers at work.

use serde::Serialize;

use super::{Ops, OpsResult};
use crate::domain::run::{MinuteActivity, StatusCount};
use ospdeck_store::ChangeWatcher;

/// Counts stop here; a screen shows "10k+" rather than paying for an exact count of millions.
pub const COUNT_CAP: i64 = 10_000;
/// The sparkline's window.
pub const ACTIVITY_MINUTES: i64 = 60;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueOverview {
    pub counts: Vec<StatusCount>,
    pub activity: Vec<MinuteActivity>,
    pub active_workers: i64,
}

impl QueueOverview {
    /// Queued runs (capped), the queue depth of the status bar.
    pub fn depth(&self) -> Option<StatusCount> {
        self.counts
            .iter()
            .find(|c| c.status == crate::domain::run::RunStatus::Queued)
            .copied()
    }
}

/// The part of the overview that changes with every run: counts and workers at work.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueCounts {
    pub counts: Vec<StatusCount>,
    pub active_workers: i64,
}

impl Ops {
    pub async fn queue_overview(&self) -> OpsResult<QueueOverview> {
        let QueueCounts {
            counts,
            active_workers,
        } = self.queue_counts().await?;
        Ok(QueueOverview {
            counts,
            activity: self.store.run_activity(ACTIVITY_MINUTES).await?,
            active_workers,
        })
    }

    /// Counts without the per-minute activity, which only needs refreshing every few seconds.
    pub async fn queue_counts(&self) -> OpsResult<QueueCounts> {
        Ok(QueueCounts {
            counts: self.store.count_runs_by_status(COUNT_CAP).await?,
            active_workers: self.store.active_workers().await?,
        })
    }

    pub async fn change_watcher(&self) -> OpsResult<Box<dyn ChangeWatcher>> {
        Ok(self.store.change_watcher().await?)
    }
}
