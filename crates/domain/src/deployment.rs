//! A service's worker deployment (seed 001's worker registry) and how alive its worker looks.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::error::InvalidInput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    Pending,
    Deploying,
    Deployed,
    Failed,
    Stopped,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 5] = [
        Self::Pending,
        Self::Deploying,
        Self::Deployed,
        Self::Failed,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Deploying => "deploying",
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeploymentStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| InvalidInput::new(format!("unknown deployment status {s:?}")))
    }
}

/// How a worker's heartbeat looks from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Alive,
    Stale,
    Missing,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Stale => "stale",
            Liveness::Missing => "missing",
        }
    }
}

/// A service worker heartbeats this often; three missed beats make it stale.
pub const HEARTBEAT_EVERY_SECS: i64 = 10;
pub const STALE_AFTER_SECS: i64 = 3 * HEARTBEAT_EVERY_SECS;
/// Twelve missed beats: the worker is gone, not just slow.
pub const MISSING_AFTER_SECS: i64 = 12 * HEARTBEAT_EVERY_SECS;

/// Alive while heartbeats arrive, stale after three missed beats, missing after twelve (or when
/// none ever arrived). A function of the clock, so a screen can flip it with no new data.
pub fn liveness(now: DateTime<Utc>, last_heartbeat: Option<DateTime<Utc>>) -> Liveness {
    match last_heartbeat {
        None => Liveness::Missing,
        Some(t) if now - t <= Duration::seconds(STALE_AFTER_SECS) => Liveness::Alive,
        Some(t) if now - t <= Duration::seconds(MISSING_AFTER_SECS) => Liveness::Stale,
        Some(_) => Liveness::Missing,
    }
}

/// When `liveness(now, last_heartbeat)` next changes with no new heartbeat; None once missing.
pub fn liveness_changes_at(
    now: DateTime<Utc>,
    last_heartbeat: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let t = last_heartbeat?;
    [STALE_AFTER_SECS, MISSING_AFTER_SECS]
        .into_iter()
        // `liveness` keeps the older state up to and including the limit.
        .map(|secs| t + Duration::seconds(secs) + Duration::milliseconds(1))
        .find(|at| *at > now)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerDeployment {
    pub id: i64,
    pub service_id: i64,
    pub service_schema: String,
    pub manifest_id: Option<i64>,
    pub manifest_path: Option<String>,
    pub status: DeploymentStatus,
    pub attempts: i32,
    pub logs: Option<String>,
    pub deployed_at: Option<DateTime<Utc>>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    pub worker_version: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One step of one deployment attempt, with its (bounded) output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployAttempt {
    pub attempt: i32,
    pub step: DeployStep,
    pub exit_code: Option<i32>,
    pub output: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployStep {
    Create,
    Deploy,
    Rollback,
}

impl DeployStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Deploy => "deploy",
            Self::Rollback => "rollback",
        }
    }
}

impl FromStr for DeployStep {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Create, Self::Deploy, Self::Rollback]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| InvalidInput::new(format!("unknown deploy step {s:?}")))
    }
}

/// Output kept per step: the tail, where the error usually is.
pub const MAX_STEP_OUTPUT: usize = 64 * 1024;

/// The last `MAX_STEP_OUTPUT` bytes of `text`, cut at a character boundary.
pub fn bounded_output(text: &str) -> String {
    if text.len() <= MAX_STEP_OUTPUT {
        return text.to_owned();
    }
    let marker = "[… earlier output cut]\n";
    let mut start = text.len() - (MAX_STEP_OUTPUT - marker.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{marker}{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_follows_heartbeat_age() {
        let now = Utc::now();
        assert_eq!(liveness(now, None), Liveness::Missing);
        assert_eq!(
            liveness(now, Some(now - Duration::seconds(5))),
            Liveness::Alive
        );
        assert_eq!(
            liveness(now, Some(now - Duration::seconds(STALE_AFTER_SECS + 1))),
            Liveness::Stale
        );
        assert_eq!(
            liveness(now, Some(now - Duration::seconds(MISSING_AFTER_SECS + 1))),
            Liveness::Missing
        );
    }

    #[test]
    fn liveness_changes_when_the_clock_crosses_a_limit() {
        let beat = Utc::now();
        let mut now = beat;
        let mut seen = vec![liveness(now, Some(beat))];
        while let Some(at) = liveness_changes_at(now, Some(beat)) {
            assert_eq!(
                liveness(at - Duration::milliseconds(1), Some(beat)),
                *seen.last().unwrap_or(&Liveness::Alive)
            );
            now = at;
            seen.push(liveness(now, Some(beat)));
        }
        assert_eq!(seen, [Liveness::Alive, Liveness::Stale, Liveness::Missing]);
        assert_eq!(liveness_changes_at(beat, None), None);
    }

    #[test]
    fn output_is_bounded_to_its_tail() {
        let long = format!("{}é{}", "a".repeat(MAX_STEP_OUTPUT), "the error");
        let kept = bounded_output(&long);
        assert!(kept.len() <= MAX_STEP_OUTPUT);
        assert!(kept.ends_with("the error"));
        assert!(kept.starts_with("[… earlier output cut]"));
        assert_eq!(bounded_output("short"), "short");
    }
}
