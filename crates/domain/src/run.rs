//! Runs: one execution of a workflow, and the state machine it moves through.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::error::InvalidInput;
use super::filter::{Cmp, Field, Filter, Value as FilterValue, before};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Claimed,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

use RunStatus::*;

/// Every legal move. The migrations seed the same pairs into `run_transitions`, which the database
/// triggers consult; a conformance test checks the two lists agree.
pub const LEGAL_TRANSITIONS: [(RunStatus, RunStatus); 10] = [
    (Queued, Claimed),
    (Queued, Canceled),
    (Claimed, Running),
    (Claimed, Canceled),
    // a lease ran out (or the worker gave the run back) and attempts remain …
    (Claimed, Queued),
    // … or they do not
    (Claimed, Failed),
    (Running, Succeeded),
    (Running, Failed),
    (Running, Canceled),
    (Running, Queued),
];

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [Queued, Claimed, Running, Succeeded, Failed, Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Queued => "queued",
            Claimed => "claimed",
            Running => "running",
            Succeeded => "succeeded",
            Failed => "failed",
            Canceled => "canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Succeeded | Failed | Canceled)
    }

    /// Held by a worker under a lease.
    pub fn is_held(self) -> bool {
        matches!(self, Claimed | Running)
    }

    /// Whether a run may move from `self` to `to`. Staying put is not a transition.
    pub fn can_become(self, to: RunStatus) -> bool {
        LEGAL_TRANSITIONS.contains(&(self, to))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            InvalidInput::new(format!(
                "unknown run status {s:?}: expected one of queued, claimed, running, succeeded, failed, canceled"
            ))
        })
    }
}

pub const PRIORITY_MIN: i32 = -1000;
pub const PRIORITY_MAX: i32 = 1000;
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
pub const MAX_ATTEMPTS_LIMIT: i32 = 100;
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// A run as operators and scripts see it. Field names are the stable `--json` contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub workflow_id: i64,
    pub workflow: String,
    pub queue: String,
    pub status: RunStatus,
    pub priority: i32,
    pub payload: Value,
    /// Set when the stored payload could not be decoded (then `payload` is null): such a run is
    /// failed with this reason instead of being executed.
    pub payload_error: Option<String>,
    pub attempt: i32,
    pub max_attempts: i32,
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub cancel_requested: bool,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub retry_of: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Where a run's time goes now, for a list's duration column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Queued and due since then.
    Waiting(DateTime<Utc>),
    /// Queued to run at this later time.
    Scheduled(DateTime<Utc>),
    /// Held (claimed or running) since then.
    Running(DateTime<Utc>),
    /// Finished: from when it was taken to when it finished.
    Took(DateTime<Utc>, DateTime<Utc>),
    /// Finished without ever being taken (canceled while queued): how long it waited.
    NeverRan(DateTime<Utc>, DateTime<Utc>),
}

impl Run {
    pub fn timing(&self, now: DateTime<Utc>) -> Timing {
        match (self.status, self.finished_at) {
            (RunStatus::Queued, _) if self.run_after > now => Timing::Scheduled(self.run_after),
            (RunStatus::Queued, _) => Timing::Waiting(self.run_after.max(self.created_at)),
            (_, Some(end)) => match self.started_at.or(self.claimed_at) {
                Some(taken) => Timing::Took(taken, end),
                None => Timing::NeverRan(self.created_at, end),
            },
            _ => Timing::Running(
                self.started_at
                    .or(self.claimed_at)
                    .unwrap_or(self.created_at),
            ),
        }
    }

    /// The service a run belongs to: a service workflow is named `<schema>.<name>`, and a
    /// deploy run names its service in the payload.
    pub fn service_schema(&self) -> Option<&str> {
        match self.workflow.split_once('.') {
            Some((schema, _)) => Some(schema),
            None => self.payload.get("service").and_then(Value::as_str),
        }
    }

    /// A held run whose lease ran out: its holder stopped renewing it, and it waits for a
    /// worker's rescue pass to go back to the queue.
    pub fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.status.is_held() && self.lease_expires_at.is_some_and(|t| t <= now)
    }

    /// The payload as text for a screen or a table, or why it could not be read.
    pub fn payload_text(&self) -> String {
        match &self.payload_error {
            Some(reason) => format!("(unreadable: {reason})"),
            None => self.payload.to_string(),
        }
    }
}

/// A validated request to queue a run; ids are already resolved from names by `ops`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub project_id: i64,
    pub workflow_id: i64,
    pub priority: i32,
    pub payload: Value,
    pub max_attempts: i32,
    pub run_after: Option<DateTime<Utc>>,
}

/// What a caller may ask of a new run, as given (unchecked); what is unset takes its default:
/// priority 0, payload `{}`, the default attempts, due at once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunOptions<'a> {
    pub priority: Option<i64>,
    /// JSON text.
    pub payload: Option<&'a str>,
    pub max_attempts: Option<i64>,
    pub run_after: Option<DateTime<Utc>>,
}

impl NewRun {
    /// A run of the workflow with `options` checked against the domain's limits.
    pub fn new(
        project_id: i64,
        workflow_id: i64,
        options: &RunOptions<'_>,
    ) -> Result<Self, InvalidInput> {
        let RunOptions {
            priority,
            payload,
            max_attempts,
            run_after,
        } = *options;
        let priority = checked_i32(
            "priority",
            priority.unwrap_or(0),
            PRIORITY_MIN,
            PRIORITY_MAX,
        )?;
        let max_attempts = checked_i32(
            "max attempts",
            max_attempts.unwrap_or(i64::from(DEFAULT_MAX_ATTEMPTS)),
            1,
            MAX_ATTEMPTS_LIMIT,
        )?;
        let payload = match payload {
            None => Value::Object(Default::default()),
            Some(text) => parse_payload(text)?,
        };
        Ok(Self {
            priority,
            max_attempts,
            run_after,
            ..Self::with_payload(project_id, workflow_id, payload)
        })
    }

    /// A run of the workflow with a payload already built (by ospdeck itself, so unchecked) and
    /// every other field at its default; set fields over it with `..`.
    pub fn with_payload(project_id: i64, workflow_id: i64, payload: Value) -> Self {
        Self {
            project_id,
            workflow_id,
            priority: 0,
            payload,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_after: None,
        }
    }
}

fn checked_i32(what: &str, value: i64, min: i32, max: i32) -> Result<i32, InvalidInput> {
    i32::try_from(value)
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| InvalidInput::new(format!("invalid {what} {value}: use {min} to {max}")))
}

/// The size limit is checked on the text before parsing, so an oversized payload costs no parse.
pub fn parse_payload(text: &str) -> Result<Value, InvalidInput> {
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(InvalidInput::new(format!(
            "payload too large: {} bytes, the limit is {MAX_PAYLOAD_BYTES} bytes (1 MiB)",
            text.len()
        )));
    }
    let value = crate::json::parse_bounded("payload", text)?;
    // Stored compactly; re-check in case whitespace was all that kept it under the limit.
    let compact = value.to_string();
    if compact.len() > MAX_PAYLOAD_BYTES {
        return Err(InvalidInput::new("payload too large: over 1 MiB"));
    }
    if crate::json::contains_nul(&value) {
        return Err(InvalidInput::new("payload may not contain NUL characters"));
    }
    Ok(value)
}

/// Run ids are positive integers; anything else is refused before it reaches a store.
pub fn parse_run_id(text: &str) -> Result<i64, InvalidInput> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            InvalidInput::new(format!(
                "invalid run id {text:?}: expected a positive integer"
            ))
        })
}

/// What a worker needs to execute a run it just claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    pub id: i64,
    pub attempt: i32,
    pub project_id: i64,
    pub workflow_id: i64,
    pub queue: String,
    pub payload: Value,
    /// Why the stored payload could not be decoded, if it could not: the worker fails the run
    /// with this reason and goes on with the rest of its batch.
    pub payload_error: Option<String>,
}

impl ClaimedRun {
    /// The fencing token for this claim.
    pub fn hold(&self) -> Hold {
        Hold {
            run_id: self.id,
            attempt: self.attempt,
        }
    }
}

/// The worker's proof that it holds a run: fencing token for every later write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hold {
    pub run_id: i64,
    pub attempt: i32,
}

/// How a held run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub hold: Hold,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// The worker stopped it because a cancel was requested.
    pub canceled: bool,
}

impl Completion {
    pub fn outcome(&self) -> RunStatus {
        if self.canceled {
            Canceled
        } else if self.exit_code == Some(0) && self.error.is_none() {
            Succeeded
        } else {
            Failed
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatAck {
    pub run_id: i64,
    pub cancel_requested: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CancelOutcome {
    /// It was queued or claimed and is canceled now.
    Canceled,
    /// It is running; its worker has been asked to stop it.
    Requested,
    /// It had already finished with this status.
    AlreadyFinished(RunStatus),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RescueOutcome {
    pub requeued: u64,
    pub failed: u64,
    pub canceled: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub project_id: Option<i64>,
    pub workflow_id: Option<i64>,
    /// Substring of the project, workflow, queue, worker or error (case-insensitive), or a run id.
    pub text: Option<String>,
    /// The terms of a structured filter (`status:failed workflow:test age:>10m`), all of which
    /// must hold.
    pub conditions: Vec<RunCondition>,
    pub limit: i64,
    pub page: Page,
    /// Only among the newest this many runs: what a filter typed a key at a time searches, so a
    /// word no run holds costs a bounded scan instead of one over the whole store.
    pub newest: Option<i64>,
}

/// The fields a run list filters on, in the grammar of [`crate::filter`]: the console's `/` and
/// `ospdeck run list --where` read the same words.
pub const RUN_FIELDS: &[Field] = &[
    Field::choice(
        "status",
        &[
            "queued",
            "claimed",
            "running",
            "succeeded",
            "failed",
            "canceled",
        ],
    ),
    Field::text("workflow"),
    Field::text("project"),
    Field::text("queue"),
    Field::text("worker"),
    Field::text("error"),
    Field::number("id"),
    Field::number("try"),
    Field::number("priority"),
    Field::age("age"),
];

/// A run column matched by substring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunColumn {
    Project,
    Workflow,
    Queue,
    Worker,
    Error,
}

/// A run column compared as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNumber {
    Id,
    Attempt,
    Priority,
}

/// One condition on runs that the store turns into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCondition {
    Status(Vec<RunStatus>),
    /// The column contains any of these (lowercase).
    Contains(RunColumn, Vec<String>),
    Number(RunNumber, Cmp, i64),
    /// Any of these numbers.
    NumberIn(RunNumber, Vec<i64>),
    /// Created before/after this instant (`age:>10m` is created before ten minutes ago).
    Created(Cmp, DateTime<Utc>),
    /// A free word: some column contains it, or it is the run's id.
    Word(String),
}

impl RunCondition {
    /// The conditions of a parsed filter, ages judged against `now`.
    pub fn from_filter(filter: &Filter, now: DateTime<Utc>) -> Vec<RunCondition> {
        let mut out: Vec<RunCondition> = filter.words.iter().cloned().map(Self::Word).collect();
        for term in &filter.terms {
            let column = match term.field {
                "project" => Some(RunColumn::Project),
                "workflow" => Some(RunColumn::Workflow),
                "queue" => Some(RunColumn::Queue),
                "worker" => Some(RunColumn::Worker),
                "error" => Some(RunColumn::Error),
                _ => None,
            };
            let number = match term.field {
                "id" => Some(RunNumber::Id),
                "try" => Some(RunNumber::Attempt),
                "priority" => Some(RunNumber::Priority),
                _ => None,
            };
            let condition = match (&term.value, column, number) {
                (FilterValue::Any(values), _, _) if term.field == "status" => {
                    Self::Status(values.iter().filter_map(|v| v.parse().ok()).collect())
                }
                (FilterValue::Any(values), Some(column), _) => {
                    Self::Contains(column, values.clone())
                }
                (FilterValue::Any(values), None, Some(number)) => Self::NumberIn(
                    number,
                    values.iter().filter_map(|v| v.parse().ok()).collect(),
                ),
                (FilterValue::Number(cmp, n), _, Some(number)) => Self::Number(number, *cmp, *n),
                // Older than ten minutes is created before ten minutes ago: the comparison turns.
                (FilterValue::Age(cmp, secs), ..) => {
                    Self::Created(cmp.reversed(), before(now, *secs))
                }
                _ => continue,
            };
            out.push(condition);
        }
        out
    }
}

/// Which slice of a run list, by id: keyset pagination, so the oldest page of a store of millions
/// costs what the newest does (no OFFSET). Every page is answered newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Page {
    #[default]
    Newest,
    /// The runs just older than this id.
    OlderThan(i64),
    /// The runs just newer than this id.
    NewerThan(i64),
    Oldest,
}

impl Page {
    /// The store reads ascending ids for these (then turns them around).
    pub fn ascending(self) -> bool {
        matches!(self, Page::NewerThan(_) | Page::Oldest)
    }

    /// (ids below, ids above) the page is bounded by.
    pub fn bounds(self) -> (Option<i64>, Option<i64>) {
        match self {
            Page::OlderThan(id) => (Some(id), None),
            Page::NewerThan(id) => (None, Some(id)),
            Page::Newest | Page::Oldest => (None, None),
        }
    }
}

/// How many runs are in a status: exact, from the counters the runs' triggers keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub status: RunStatus,
    pub count: i64,
}

/// Runs finished in one minute, `minutes_ago` minutes before now (0 = the current minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinuteActivity {
    pub minutes_ago: i64,
    pub succeeded: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

impl FromStr for LogLevel {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            _ => Err(InvalidInput::new(format!(
                "unknown log level {s:?}: expected debug, info, warn or error"
            ))),
        }
    }
}

/// One log line is capped so a runaway child cannot fill the store with one line.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct NewLogLine {
    pub level: LogLevel,
    pub message: String,
    /// Shared: a command's lines all carry the same few metadata objects (`{"stream": …}`), and
    /// a copy per line would weigh more than the line.
    pub metadata: Arc<Value>,
}

impl NewLogLine {
    pub fn new(level: LogLevel, message: &str, metadata: Value) -> Self {
        Self::with_shared(level, message, Arc::new(metadata))
    }

    pub fn with_shared(level: LogLevel, message: &str, metadata: Arc<Value>) -> Self {
        let mut message = if message.contains('\0') {
            message.chars().filter(|c| *c != '\0').collect()
        } else {
            message.to_owned()
        };
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …[truncated]");
        }
        Self {
            level,
            message,
            metadata,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunLog {
    pub id: i64,
    pub run_id: i64,
    pub level: LogLevel,
    pub message: String,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEvent {
    pub id: i64,
    pub run_id: i64,
    pub event_type: String,
    pub from_status: Option<RunStatus>,
    pub to_status: Option<RunStatus>,
    pub attempt: i32,
    pub actor: String,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewArtifact {
    pub run_id: i64,
    pub key: String,
    pub url: Option<String>,
    pub sha256: Option<String>,
    pub size_bytes: Option<i64>,
    pub content_type: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewArtifact {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.key.is_empty() || self.key.len() > 1024 || self.key.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "invalid artifact key: use 1 to 1024 printable characters",
            ));
        }
        if let Some(sha) = &self.sha256
            && (sha.len() != 64
                || !sha
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(InvalidInput::new(format!(
                "invalid sha256 {sha:?}: expected 64 lower-case hex digits"
            )));
        }
        if self.size_bytes.is_some_and(|s| s < 0) {
            return Err(InvalidInput::new(
                "invalid artifact size: it cannot be negative",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunArtifact {
    pub id: i64,
    pub run_id: i64,
    pub key: String,
    pub url: Option<String>,
    pub sha256: Option<String>,
    pub size_bytes: Option<i64>,
    pub content_type: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The lines of one run that match a log search: their ids, oldest first, up to the cap the
/// store was asked for, and how many match in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogMatches {
    pub ids: Vec<i64>,
    pub total: i64,
}

impl LogMatches {
    /// Matches beyond the cap: counted, not listed.
    pub fn unlisted(&self) -> i64 {
        (self.total - self.ids.len() as i64).max(0)
    }
}

/// One attempt at a run, as its events tell it: who claimed it, when it started and ended, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub number: i32,
    pub worker: String,
    pub claimed_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Where the attempt ended: succeeded, failed, canceled, or queued again (released, or its
    /// lease ran out); None while it lasts.
    pub outcome: Option<RunStatus>,
    /// Who ended it (the worker itself, a rescuer, an operator).
    pub ended_by: Option<String>,
    pub error: Option<String>,
    /// Events do not carry exit codes: only the run's last attempt has one (the run's own).
    pub exit_code: Option<i32>,
}

/// The attempts of `run` from its events (oldest first): an attempt begins with a claim and ends
/// with the next change out of claimed or running.
pub fn attempts(run: &Run, events: &[RunEvent]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    for e in events.iter().filter(|e| e.event_type == "state_change") {
        let Some(to) = e.to_status else { continue };
        let open = out.last_mut().filter(|a| a.outcome.is_none());
        match (e.from_status, to, open) {
            (_, Claimed, _) => out.push(Attempt {
                number: e.attempt,
                worker: e.actor.clone(),
                claimed_at: e.created_at,
                started_at: None,
                finished_at: None,
                outcome: None,
                ended_by: None,
                error: None,
                exit_code: None,
            }),
            (Some(Claimed), Running, Some(a)) => a.started_at = Some(e.created_at),
            (Some(Claimed | Running), to, Some(a)) if to != Running => {
                a.finished_at = Some(e.created_at);
                a.outcome = Some(to);
                a.ended_by = Some(e.actor.clone());
                a.error = e.message.clone();
            }
            _ => {}
        }
    }
    if let Some(last) = out.last_mut()
        && last.number == run.attempt
        && run.status.is_terminal()
    {
        last.exit_code = run.exit_code;
        if last.error.is_none() {
            last.error = run.error.clone();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_come_from_the_events_and_the_last_has_the_exit_code() {
        let t = Utc::now();
        let at = |s: i64| t + chrono::Duration::seconds(s);
        let ev = |n: i64,
                  from: Option<RunStatus>,
                  to: RunStatus,
                  attempt,
                  actor: &str,
                  msg: Option<&str>| RunEvent {
            id: n,
            run_id: 1,
            event_type: "state_change".into(),
            from_status: from,
            to_status: Some(to),
            attempt,
            actor: actor.into(),
            message: msg.map(str::to_owned),
            created_at: at(n),
        };
        let events = vec![
            ev(1, None, Queued, 0, "ana", None),
            ev(2, Some(Queued), Claimed, 1, "w1", None),
            ev(3, Some(Claimed), Running, 1, "w1", None),
            ev(
                4,
                Some(Running),
                Queued,
                1,
                "rescuer",
                Some("lease expired"),
            ),
            RunEvent {
                event_type: "cancel_requested".into(),
                ..ev(5, Some(Queued), Queued, 1, "ana", None)
            },
            ev(6, Some(Queued), Claimed, 2, "w2", None),
            ev(7, Some(Claimed), Running, 2, "w2", None),
            ev(8, Some(Running), Failed, 2, "w2", Some("exit code 3")),
        ];
        let run = Run {
            id: 1,
            project_id: 1,
            project: "p".into(),
            workflow_id: 1,
            workflow: "build".into(),
            queue: "q".into(),
            status: Failed,
            priority: 0,
            payload: Value::Null,
            payload_error: None,
            attempt: 2,
            max_attempts: 3,
            worker_id: Some("w2".into()),
            lease_expires_at: None,
            run_after: t,
            cancel_requested: false,
            exit_code: Some(3),
            error: Some("exit code 3".into()),
            retry_of: None,
            created_at: t,
            claimed_at: Some(at(6)),
            started_at: Some(at(7)),
            finished_at: Some(at(8)),
        };
        let tries = attempts(&run, &events);
        assert_eq!(tries.len(), 2);
        assert_eq!(
            (tries[0].number, tries[0].worker.as_str(), tries[0].outcome),
            (1, "w1", Some(Queued))
        );
        assert_eq!(tries[0].started_at, Some(at(3)));
        assert_eq!(tries[0].finished_at, Some(at(4)));
        assert_eq!(tries[0].ended_by.as_deref(), Some("rescuer"));
        assert_eq!(tries[0].error.as_deref(), Some("lease expired"));
        assert_eq!(tries[0].exit_code, None);
        assert_eq!((tries[1].number, tries[1].outcome), (2, Some(Failed)));
        assert_eq!(tries[1].exit_code, Some(3));
        // A run still held has an open last attempt and no exit code yet.
        let running = Run {
            status: Running,
            exit_code: None,
            ..run
        };
        let tries = attempts(&running, &events[..7]);
        assert_eq!(tries[1].outcome, None);
        assert_eq!(tries[1].finished_at, None);
        assert_eq!(tries[1].exit_code, None);
    }

    #[test]
    fn only_a_held_run_past_its_lease_has_expired() {
        let now = Utc::now();
        let mut run = Run {
            id: 1,
            project_id: 1,
            project: "p".into(),
            workflow_id: 1,
            workflow: "w".into(),
            queue: "q".into(),
            status: Running,
            priority: 0,
            payload: Value::Null,
            payload_error: None,
            attempt: 1,
            max_attempts: 3,
            worker_id: Some("w1".into()),
            lease_expires_at: Some(now),
            run_after: now,
            cancel_requested: false,
            exit_code: None,
            error: None,
            retry_of: None,
            created_at: now,
            claimed_at: Some(now),
            started_at: Some(now),
            finished_at: None,
        };
        assert!(run.lease_expired(now));
        assert!(!run.lease_expired(now - chrono::Duration::seconds(1)));
        run.status = Succeeded;
        assert!(!run.lease_expired(now), "a finished run holds no lease");
        assert!(Claimed.is_held() && !Queued.is_held());
    }

    #[test]
    fn every_pair_of_states_is_legal_or_not_as_designed() {
        let legal = [
            "queued->claimed",
            "queued->canceled",
            "claimed->running",
            "claimed->canceled",
            "claimed->queued",
            "claimed->failed",
            "running->succeeded",
            "running->failed",
            "running->canceled",
            "running->queued",
        ];
        let mut checked = 0;
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                let name = format!("{from}->{to}");
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&name.as_str()),
                    "{name}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 36);
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in RunStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(
                RunStatus::ALL.into_iter().all(|to| !from.can_become(to)),
                "{from}"
            );
        }
        assert!(!Queued.is_terminal() && !Claimed.is_terminal() && !Running.is_terminal());
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(s));
        }
        assert!("done".parse::<RunStatus>().is_err());
    }

    #[test]
    fn new_run_checks_ranges_and_payload() {
        let ok = NewRun::new(
            1,
            2,
            &RunOptions {
                priority: Some(5),
                payload: Some(r#"{"a":1}"#),
                max_attempts: Some(4),
                ..Default::default()
            },
        );
        assert_eq!(ok.map(|r| (r.priority, r.max_attempts)), Ok((5, 4)));
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    priority: Some(1001),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    priority: Some(-1001),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    priority: Some(i64::MIN),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    max_attempts: Some(0),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    max_attempts: Some(101),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    payload: Some("{"),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    payload: Some(r#"{"a":"\u0000"}"#),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            NewRun::new(
                1,
                2,
                &RunOptions {
                    payload: Some(r#"{"\u0000":1}"#),
                    ..Default::default()
                }
            )
            .is_err()
        );
        // An escaped backslash followed by "u0000" is text, not a NUL.
        let text = NewRun::new(
            1,
            2,
            &RunOptions {
                payload: Some(r#"{"a":"\\u0000"}"#),
                ..Default::default()
            },
        );
        assert_eq!(
            text.map(|r| r.payload["a"].clone()),
            Ok(Value::from("\\u0000"))
        );
    }

    #[test]
    fn payload_limit_is_one_mebibyte() {
        let fits = format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES - 2));
        assert!(parse_payload(&fits).is_ok());
        let over = format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES - 1));
        let err = parse_payload(&over)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn run_ids_must_be_positive_integers() {
        assert_eq!(parse_run_id("42"), Ok(42));
        for bad in ["0", "-1", "abc", "1.5", "", "99999999999999999999"] {
            assert!(parse_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn completion_outcome_follows_exit_code_error_and_cancel() {
        let hold = Hold {
            run_id: 1,
            attempt: 1,
        };
        let c = |exit_code, error: Option<&str>, canceled| Completion {
            hold,
            exit_code,
            error: error.map(str::to_owned),
            canceled,
        };
        assert_eq!(c(Some(0), None, false).outcome(), Succeeded);
        assert_eq!(c(Some(1), None, false).outcome(), Failed);
        assert_eq!(c(Some(0), Some("timed out"), false).outcome(), Failed);
        assert_eq!(c(None, None, false).outcome(), Failed);
        assert_eq!(c(Some(0), None, true).outcome(), Canceled);
    }

    #[test]
    fn log_lines_are_bounded_and_nul_free() {
        let line = NewLogLine::new(LogLevel::Info, &"é".repeat(MAX_LOG_LINE_BYTES), Value::Null);
        assert!(line.message.len() <= MAX_LOG_LINE_BYTES + 20);
        assert!(line.message.ends_with("[truncated]"));
        assert_eq!(
            NewLogLine::new(LogLevel::Info, "a\0b", Value::Null).message,
            "ab"
        );
    }

    #[test]
    fn artifacts_need_a_key_and_a_real_sha256() {
        let mut a = NewArtifact {
            run_id: 1,
            key: "build.tar".into(),
            url: None,
            sha256: Some("a".repeat(64)),
            size_bytes: Some(10),
            content_type: None,
            expires_at: None,
        };
        assert!(a.validate().is_ok());
        a.sha256 = Some("A".repeat(64));
        assert!(a.validate().is_err());
        a.sha256 = None;
        a.key = String::new();
        assert!(a.validate().is_err());
    }
}
