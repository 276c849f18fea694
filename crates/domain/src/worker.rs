//! Workers as the store sees them: every worker process says where it runs and what it serves,
//! and each queue's load is judged against the workers serving it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::deployment::{Liveness, liveness};

/// One worker process, general or service, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerPresence {
    pub worker_id: String,
    pub host: String,
    pub pid: i64,
    /// The queues it claims from; empty means every queue.
    pub queues: Vec<String>,
    pub concurrency: i32,
    pub version: String,
    /// The service whose worker it is, for service workers.
    pub service: Option<String>,
    pub runs_held: i32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl WorkerPresence {
    pub fn liveness(&self, now: DateTime<Utc>) -> Liveness {
        liveness(now, Some(self.heartbeat_at))
    }

    pub fn serves(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.iter().any(|q| q == queue)
    }
}

/// A worker beats this often; `deployment::STALE_AFTER_SECS` and `MISSING_AFTER_SECS` judge it.
pub const PRESENCE_EVERY_SECS: i64 = crate::deployment::HEARTBEAT_EVERY_SECS;
/// Rows whose last beat is older than this are removed by the next worker to register.
pub const PRESENCE_KEPT_SECS: i64 = 86_400;

/// One queue's load now and over the last hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStat {
    pub queue: String,
    pub queued: i64,
    pub claimed: i64,
    pub running: i64,
    /// When the longest-waiting queued run became due.
    pub oldest_due: Option<DateTime<Utc>>,
    pub succeeded_last_hour: i64,
    pub failed_last_hour: i64,
}

/// How a queue fares against the workers serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueHealth {
    /// Nothing waiting, nothing held.
    Idle,
    /// Work waiting or running, and live workers serving it.
    Flowing,
    /// Work waiting and no live worker serving it: nothing will take it.
    Stalled,
    /// Every slot of the live workers serving it is busy and work waits.
    Saturated,
}

impl QueueHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Flowing => "flowing",
            Self::Stalled => "stalled",
            Self::Saturated => "saturated",
        }
    }
}

impl QueueStat {
    /// Slots of the workers alive at `now` that claim from this queue.
    pub fn capacity(&self, workers: &[WorkerPresence], now: DateTime<Utc>) -> i64 {
        workers
            .iter()
            .filter(|w| w.liveness(now) == Liveness::Alive && w.serves(&self.queue))
            .map(|w| i64::from(w.concurrency))
            .sum()
    }

    pub fn health(&self, workers: &[WorkerPresence], now: DateTime<Utc>) -> QueueHealth {
        let capacity = self.capacity(workers, now);
        let held = self.claimed + self.running;
        let waiting = self.oldest_due.is_some_and(|t| t <= now);
        match (waiting, held) {
            (false, 0) => QueueHealth::Idle,
            (true, _) if capacity == 0 => QueueHealth::Stalled,
            (true, held) if held >= capacity => QueueHealth::Saturated,
            _ => QueueHealth::Flowing,
        }
    }

    /// Failed among finished in the last hour, in percent; None when nothing finished.
    pub fn failure_percent(&self) -> Option<i64> {
        let finished = self.succeeded_last_hour + self.failed_last_hour;
        (finished > 0).then(|| (self.failed_last_hour * 100 + finished / 2) / finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn worker(queues: &[&str], concurrency: i32, beat: DateTime<Utc>) -> WorkerPresence {
        WorkerPresence {
            worker_id: "w1".into(),
            host: "h".into(),
            pid: 1,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            concurrency,
            version: "0".into(),
            service: None,
            runs_held: 0,
            started_at: beat,
            heartbeat_at: beat,
        }
    }

    #[test]
    fn a_queue_with_work_and_no_live_worker_is_stalled() {
        let now = Utc::now();
        let stat = QueueStat {
            queue: "build".into(),
            queued: 3,
            oldest_due: Some(now - Duration::seconds(90)),
            ..Default::default()
        };
        assert_eq!(stat.health(&[], now), QueueHealth::Stalled);
        // A worker of another queue does not serve it; a worker of every queue does.
        assert_eq!(
            stat.health(&[worker(&["test"], 4, now)], now),
            QueueHealth::Stalled
        );
        assert_eq!(
            stat.health(&[worker(&[], 4, now)], now),
            QueueHealth::Flowing
        );
        // A worker that stopped beating no longer counts.
        let gone = worker(&["build"], 4, now - Duration::seconds(40));
        assert_eq!(stat.health(&[gone], now), QueueHealth::Stalled);
    }

    #[test]
    fn saturation_idle_and_scheduled_runs() {
        let now = Utc::now();
        let busy = QueueStat {
            queue: "q".into(),
            queued: 1,
            running: 2,
            oldest_due: Some(now),
            ..Default::default()
        };
        assert_eq!(
            busy.health(&[worker(&["q"], 2, now)], now),
            QueueHealth::Saturated
        );
        assert_eq!(busy.capacity(&[worker(&["q"], 2, now)], now), 2);
        let later = QueueStat {
            queue: "q".into(),
            queued: 1,
            oldest_due: Some(now + Duration::seconds(60)),
            ..Default::default()
        };
        assert_eq!(later.health(&[], now), QueueHealth::Idle);
    }

    #[test]
    fn failure_percent_rounds_and_needs_finished_runs() {
        let mut stat = QueueStat::default();
        assert_eq!(stat.failure_percent(), None);
        stat.succeeded_last_hour = 2;
        stat.failed_last_hour = 1;
        assert_eq!(stat.failure_percent(), Some(33));
    }
}
