//! Waiting out a store that is down: capped exponential backoff with jitter, and one shared
//! record of whether the store is reachable, so a worker or a console reports each outage once
//! when it starts and once when it ends instead of once per failed call.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use tokio::time::Instant;

use super::OpsError;

/// Delays between retries: doubling from `FIRST` up to `CAP`, each one randomised between half
/// and all of its nominal value so that many workers coming back at once do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    nominal: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const CAP: Duration = Duration::from_secs(8);

    pub fn new() -> Self {
        Self {
            nominal: Self::FIRST,
        }
    }

    pub fn reset(&mut self) {
        self.nominal = Self::FIRST;
    }

    /// The next delay; each call doubles the one after it, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal;
        self.nominal = (nominal * 2).min(Self::CAP);
        let half = nominal / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone)]
struct Down {
    since: DateTime<Utc>,
    started: Instant,
    first_error: String,
}

/// Whether the store answered the last time anyone in this worker asked. Shared by the worker's
/// loop and its execution tasks; cheap to clone.
#[derive(Clone)]
pub struct StoreHealth {
    /// Who reports (a worker id), at the start of every line.
    worker: String,
    down: Arc<Mutex<Option<Down>>>,
    /// Also tells someone of each state change, beside the log (a worker process of its own
    /// prints it on stderr; a worker inside the console must not scribble on its screen).
    announce: Option<Announce>,
}

/// Where a front end wants the outage lines (the worker: its stderr).
pub type Announce = Arc<dyn Fn(&str) + Send + Sync>;

impl StoreHealth {
    pub fn new(worker: &str, announce: Option<Announce>) -> Self {
        Self {
            worker: worker.to_owned(),
            down: Arc::new(Mutex::new(None)),
            announce,
        }
    }

    /// Records a failed store call made while `doing` something. Answers whether the error is an
    /// outage to wait out (true) or an answer to act on (false).
    pub fn failed(&self, doing: &str, error: &OpsError) -> bool {
        if !error.is_transient() {
            return false;
        }
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if down.is_none() {
            let since = Utc::now();
            let line = format!(
                "worker {}: store unreachable since {} ({doing}: {error}); retrying",
                self.worker,
                since.with_timezone(&Local).format("%H:%M:%S"),
            );
            tracing::warn!(worker = %self.worker, error = %error, doing, "store unreachable; retrying");
            self.say(&line);
            *down = Some(Down {
                since,
                started: Instant::now(),
                first_error: error.to_string(),
            });
        }
        true
    }

    /// Records a store call that worked; ends an outage if there was one.
    pub fn ok(&self) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(outage) = down.take() {
            let lasted = outage.started.elapsed().as_secs_f64();
            let line = format!(
                "worker {}: store reachable again after {lasted:.1}s (unreachable since {})",
                self.worker,
                outage.since.with_timezone(&Local).format("%H:%M:%S"),
            );
            tracing::info!(worker = %self.worker, seconds = lasted, first_error = %outage.first_error, "store reachable again");
            self.say(&line);
        }
    }

    pub fn is_down(&self) -> bool {
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn say(&self, line: &str) {
        if let Some(announce) = &self.announce {
            announce(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ospdeck_store::StoreError;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_between_half_and_all() {
        let mut b = Backoff::new();
        let mut nominal = Backoff::FIRST;
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            nominal = (nominal * 2).min(Backoff::CAP);
        }
        assert_eq!(nominal, Backoff::CAP);
        b.reset();
        assert!(b.next_delay() <= Backoff::FIRST);
    }

    #[test]
    fn only_outages_count_and_each_is_recorded_once() {
        let health = StoreHealth::new("w1", None);
        let refused = OpsError::Forbidden("no".into());
        assert!(!health.failed("claiming", &refused));
        assert!(!health.is_down());
        let outage = OpsError::Store(StoreError::Unavailable("connection refused".into()));
        assert!(health.failed("claiming", &outage));
        assert!(health.failed("heartbeat", &outage));
        assert!(health.is_down());
        health.ok();
        assert!(!health.is_down());
    }
}
