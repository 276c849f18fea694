//! Runs as they are read (one run, lists, logs, artifacts, events, counts) and the operator's
//! flows on them (cancel, retry), written once for both backends. Claiming and finishing runs is
//! the queue's, per backend (PostgreSQL's SQL functions serve psql and PostgREST too).

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, Utc};

use crate::audit::AuditEntry;
use crate::domain::run::{
    CancelOutcome, ClaimedRun, LogLevel, LogMatches, MinuteActivity, Run, RunArtifact, RunColumn,
    RunCondition, RunEvent, RunFilter, RunLog, RunNumber, RunStatus, StatusCount,
};
use crate::domain::worker::QueueStat;
use crate::shared::{decode, payload, shown_json, status, status_counts};
use crate::sql::{Arg, Backend, Db, JsonText, Time, Tx, dialects, row, stmt};
use crate::{StoreError, StoreResult};

#[async_trait]
pub trait RunStore: Send + Sync {
    async fn run(&self, id: i64) -> StoreResult<Option<Run>>;
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>>;
    /// Log lines after `after_id`, oldest first; `search` is full-text (all words must match).
    async fn run_logs(
        &self,
        run_id: i64,
        after_id: i64,
        search: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RunLog>>;
    /// Up to `limit` log lines just before `before_id`, oldest first (the page above a window).
    async fn run_logs_before(
        &self,
        run_id: i64,
        before_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<RunLog>>;
    /// How many log lines the run has with an id below `below_id` (all of them when None): the
    /// 0-based line number of the line `below_id`. An index range count on (run_id, id).
    async fn count_run_logs(&self, run_id: i64, below_id: Option<i64>) -> StoreResult<i64>;
    /// The ids of the run's log lines matching `text` (full-text, every word), oldest first, at
    /// most `cap` of them, and how many match in all.
    async fn search_run_logs(&self, run_id: i64, text: &str, cap: i64) -> StoreResult<LogMatches>;
    /// The runs that retry `id` (their `retry_of` is it), oldest first.
    async fn retries_of(&self, id: i64) -> StoreResult<Vec<(i64, RunStatus)>>;
    async fn run_artifacts(&self, run_id: i64) -> StoreResult<Vec<RunArtifact>>;
    async fn run_events(&self, run_id: i64) -> StoreResult<Vec<RunEvent>>;
    /// Runs per status, exact, from the counters the runs' triggers keep (a read of a few
    /// hundred rows however many runs there are).
    async fn count_runs_by_status(&self) -> StoreResult<Vec<StatusCount>>;
    /// Succeeded and failed runs per minute over the last `minutes` minutes (only minutes with
    /// any), from the per-minute counters.
    async fn run_activity(&self, minutes: i64) -> StoreResult<Vec<MinuteActivity>>;
    /// Removes per-minute counters older than a day (a worker's rescue pass calls it).
    async fn prune_run_counts(&self) -> StoreResult<()>;
    /// Per queue: runs queued, claimed and running now, when the longest-waiting queued run became
    /// due, and runs succeeded and failed since `since`. Queues with none of these are left out.
    async fn queue_stats(&self, since: DateTime<Utc>) -> StoreResult<Vec<QueueStat>>;
    /// When deploy runs started since `since`, to the minute, oldest first (200 at most).
    async fn deploys_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<DateTime<Utc>>>;
    async fn cancel_run(&self, actor: &str, id: i64) -> StoreResult<Option<CancelOutcome>>;
    /// A new run pointing at a finished one; None when `id` is unknown or not finished.
    async fn retry_run(&self, actor: &str, id: i64) -> StoreResult<Option<i64>>;
    /// Runs in `project_id` (all when None) with `status` (any when None), exact, from the
    /// counters the runs' triggers keep.
    async fn count_runs(
        &self,
        project_id: Option<i64>,
        status: Option<RunStatus>,
    ) -> StoreResult<i64>;
    /// The runs `filter` selects (its limit and page ignored), counted per project, workflow,
    /// status and cancel request: what a bulk action plans with, in one aggregate statement.
    async fn count_runs_grouped(&self, filter: &RunFilter) -> StoreResult<Vec<RunGroup>>;
    /// In one transaction: the batch's queued and claimed runs canceled, its running ones asked
    /// to stop, and one audit row for the batch. Runs in other states are left alone.
    async fn cancel_runs(&self, actor: &str, batch: &RunBatch<'_>) -> StoreResult<BatchCanceled>;
    /// In one transaction: a new queued run for each finished run of the batch (`retry_of` set)
    /// and one audit row for the batch; answers (retried id, new id) pairs.
    async fn retry_runs(&self, actor: &str, batch: &RunBatch<'_>) -> StoreResult<Vec<(i64, i64)>>;
    /// The newest run event's id (0 when none): where a watcher starts.
    async fn last_run_event_id(&self) -> StoreResult<i64>;
    /// Runs with an event (created, moved, asked to stop) after event `after`, oldest event
    /// first, at most `limit` events: (event id, run id) pairs, a keyset read of run_events.
    async fn run_events_after(&self, after: i64, limit: i64) -> StoreResult<Vec<(i64, i64)>>;
}

/// Runs of one project that a bulk action changes in one transaction, and what selected them.
#[derive(Debug, Clone)]
pub struct RunBatch<'a> {
    pub project_id: i64,
    pub ids: &'a [i64],
    /// The `--where` filter text, recorded in the audit row (None for runs named by id).
    pub filter: Option<&'a str>,
}

/// What a batch cancel did: runs canceled at once, and running runs asked to stop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCanceled {
    pub canceled: Vec<i64>,
    pub requested: Vec<i64>,
}

/// How many selected runs share a project, workflow, status and cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunGroup {
    pub project_id: i64,
    pub workflow_id: i64,
    pub status: RunStatus,
    pub cancel_requested: bool,
    pub count: i64,
}

row! {
    struct RunRow {
        id: i64,
        project_id: i64,
        project: String,
        workflow_id: i64,
        workflow: String,
        queue: String,
        status: String,
        priority: i32,
        payload: JsonText,
        attempt: i32,
        max_attempts: i32,
        worker_id: Option<String>,
        lease_expires_at: Option<Time>,
        run_after: Time,
        cancel_requested: bool,
        exit_code: Option<i32>,
        error: Option<String>,
        retry_of: Option<i64>,
        created_at: Time,
        claimed_at: Option<Time>,
        started_at: Option<Time>,
        finished_at: Option<Time>,
    }
}

impl RunRow {
    fn into_domain(self) -> StoreResult<Run> {
        let (payload, payload_error) = payload(&self.payload.0);
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
            lease_expires_at: self.lease_expires_at.map(Into::into),
            run_after: self.run_after.into(),
            cancel_requested: self.cancel_requested,
            exit_code: self.exit_code,
            error: self.error,
            retry_of: self.retry_of,
            created_at: self.created_at.into(),
            claimed_at: self.claimed_at.map(Into::into),
            started_at: self.started_at.map(Into::into),
            finished_at: self.finished_at.map(Into::into),
        })
    }
}

/// A run with its project's key and workflow's name; the caller appends the WHERE clause.
const RUN_SELECT: &str =
    "SELECT r.id, r.project_id, p.workspace_key AS project, r.workflow_id, w.name AS workflow,
        r.queue, r.status, r.priority, r.payload, r.attempt, r.max_attempts, r.worker_id,
        r.lease_expires_at, r.run_after, r.cancel_requested, r.exit_code, r.error, r.retry_of,
        r.created_at, r.claimed_at, r.started_at, r.finished_at
 FROM runs r JOIN projects p ON p.id = r.project_id JOIN workflows w ON w.id = r.workflow_id ";

row! {
    struct LogRow {
        id: i64,
        run_id: i64,
        level: String,
        message: String,
        metadata: JsonText,
        created_at: Time,
    }
}

impl LogRow {
    fn into_domain(self) -> StoreResult<RunLog> {
        Ok(RunLog {
            id: self.id,
            run_id: self.run_id,
            level: decode::<LogLevel>(&self.level)?,
            message: self.message,
            metadata: shown_json(&self.metadata.0),
            created_at: self.created_at.into(),
        })
    }
}

row! {
    struct EventRow {
        id: i64,
        run_id: i64,
        event_type: String,
        from_status: Option<String>,
        to_status: Option<String>,
        attempt: i32,
        actor: String,
        message: Option<String>,
        created_at: Time,
    }
}

row! {
    struct ArtifactRow {
        id: i64,
        run_id: i64,
        key: String,
        url: Option<String>,
        sha256: Option<String>,
        size_bytes: Option<i64>,
        content_type: Option<String>,
        expires_at: Option<Time>,
        created_at: Time,
    }
}

row! {
    /// A claimed run as both backends' claim statements answer it.
    pub(crate) struct ClaimRow {
        pub id: i64,
        pub attempt: i32,
        pub project_id: i64,
        pub workflow_id: i64,
        pub queue: String,
        pub payload: JsonText,
        pub priority: i32,
    }
}

/// Claimed rows in the order a worker should start them: highest priority, then oldest.
pub(crate) fn claimed_runs(mut rows: Vec<ClaimRow>) -> Vec<ClaimedRun> {
    rows.sort_by_key(|r| (-r.priority, r.id));
    rows.into_iter()
        .map(|r| {
            let (payload, payload_error) = payload(&r.payload.0);
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
        .collect()
}

/// Every status's count, each stopping at cap + 1, in one statement.
/// FTS5 query from free text: every word quoted, so operators in user text are plain words.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[async_trait]
impl<B: Backend> RunStore for B {
    async fn run(&self, id: i64) -> StoreResult<Option<Run>> {
        let row: Option<RunRow> = self
            .db()
            .fetch_optional(stmt(format!("{RUN_SELECT}WHERE r.id = $1")).bind(id))
            .await?;
        row.map(RunRow::into_domain).transpose()
    }

    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let order = if filter.page.ascending() {
            "ASC"
        } else {
            "DESC"
        };
        let mut query = run_where(self.db(), filter).await?;
        let limit = query.arg(filter.limit);
        let (clause, args) = query.finish();
        let mut statement = stmt(format!(
            "{RUN_SELECT}WHERE {clause} ORDER BY r.id {order} LIMIT {limit}"
        ));
        for arg in args {
            statement = statement.bind(arg);
        }
        let mut rows: Vec<RunRow> = self.db().fetch_all(statement).await?;
        if filter.page.ascending() {
            rows.reverse();
        }
        rows.into_iter().map(RunRow::into_domain).collect()
    }

    async fn run_logs(
        &self,
        run_id: i64,
        after_id: i64,
        search: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<RunLog>> {
        let db = self.db();
        // Full-text search is each backend's own: a tsvector column, an FTS5 table.
        let (select, search) = match db.kind() {
            crate::StoreKind::Postgres => (
                "SELECT id, run_id, level, message, metadata, created_at FROM run_logs
                 WHERE run_id = $1 AND id > $2
                   AND (CAST($3 AS TEXT) IS NULL OR search @@ plainto_tsquery('simple', $3))
                 ORDER BY id LIMIT $4",
                search.filter(|s| !s.trim().is_empty()).map(str::to_owned),
            ),
            crate::StoreKind::Sqlite => (
                "SELECT id, run_id, level, message, metadata, created_at FROM run_logs
                 WHERE run_id = $1 AND id > $2
                   AND ($3 IS NULL OR id IN (SELECT rowid FROM run_logs_fts WHERE run_logs_fts MATCH $3))
                 ORDER BY id LIMIT $4",
                search.and_then(fts_query),
            ),
        };
        let rows: Vec<LogRow> = db
            .fetch_all(
                stmt(select)
                    .bind(run_id)
                    .bind(after_id)
                    .bind(search)
                    .bind(limit),
            )
            .await?;
        rows.into_iter().map(LogRow::into_domain).collect()
    }

    async fn run_logs_before(
        &self,
        run_id: i64,
        before_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<RunLog>> {
        let mut rows: Vec<LogRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT id, run_id, level, message, metadata, created_at FROM run_logs
                     WHERE run_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                )
                .bind(run_id)
                .bind(before_id)
                .bind(limit),
            )
            .await?;
        rows.reverse();
        rows.into_iter().map(LogRow::into_domain).collect()
    }

    async fn count_run_logs(&self, run_id: i64, below_id: Option<i64>) -> StoreResult<i64> {
        let (n,): (i64,) = self
            .db()
            .fetch_one(
                stmt(
                    "SELECT count(*) FROM run_logs
                     WHERE run_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR id < $2)",
                )
                .bind(run_id)
                .bind(below_id),
            )
            .await?;
        Ok(n)
    }

    async fn search_run_logs(&self, run_id: i64, text: &str, cap: i64) -> StoreResult<LogMatches> {
        let db = self.db();
        // The same full-text match as `run_logs`: a tsvector column, an FTS5 table. The ids and
        // the count are two statements over one predicate; lines appended between them only
        // make the count run ahead, which the next search corrects.
        let (list, count, query) = match db.kind() {
            crate::StoreKind::Postgres => (
                "SELECT id FROM run_logs
                 WHERE run_id = $1 AND search @@ plainto_tsquery('simple', $2)
                 ORDER BY id LIMIT $3",
                "SELECT count(*) FROM run_logs
                 WHERE run_id = $1 AND search @@ plainto_tsquery('simple', $2)",
                Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
            ),
            // Listing walks the FTS index in rowid order (CROSS JOIN keeps it the outer loop)
            // and stops at the cap: a word in every line costs the cap, not the log. Counting
            // needs every match, and the IN form does that without a lookup per row.
            crate::StoreKind::Sqlite => (
                "SELECT f.rowid FROM run_logs_fts f CROSS JOIN run_logs l ON l.id = f.rowid
                 WHERE run_logs_fts MATCH $2 AND l.run_id = $1
                 ORDER BY f.rowid LIMIT $3",
                "SELECT count(*) FROM run_logs
                 WHERE run_id = $1
                   AND id IN (SELECT rowid FROM run_logs_fts WHERE run_logs_fts MATCH $2)",
                fts_query(text),
            ),
        };
        let Some(query) = query else {
            return Ok(LogMatches::default());
        };
        let ids: Vec<(i64,)> = db
            .fetch_all(stmt(list).bind(run_id).bind(&query).bind(cap))
            .await?;
        let total = if (ids.len() as i64) < cap {
            ids.len() as i64
        } else {
            let (n,): (i64,) = db.fetch_one(stmt(count).bind(run_id).bind(&query)).await?;
            n
        };
        Ok(LogMatches {
            ids: ids.into_iter().map(|(id,)| id).collect(),
            total,
        })
    }

    async fn retries_of(&self, id: i64) -> StoreResult<Vec<(i64, RunStatus)>> {
        let rows: Vec<(i64, String)> = self
            .db()
            .fetch_all(stmt("SELECT id, status FROM runs WHERE retry_of = $1 ORDER BY id").bind(id))
            .await?;
        rows.into_iter()
            .map(|(id, s)| Ok((id, status(&s)?)))
            .collect()
    }

    async fn run_artifacts(&self, run_id: i64) -> StoreResult<Vec<RunArtifact>> {
        let rows: Vec<ArtifactRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT id, run_id, key, url, sha256, size_bytes, content_type, expires_at, created_at
                     FROM run_artifacts WHERE run_id = $1 ORDER BY id",
                )
                .bind(run_id),
            )
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
                expires_at: r.expires_at.map(Into::into),
                created_at: r.created_at.into(),
            })
            .collect())
    }

    async fn run_events(&self, run_id: i64) -> StoreResult<Vec<RunEvent>> {
        let rows: Vec<EventRow> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT id, run_id, event_type, from_status, to_status, attempt, actor, message, created_at
                     FROM run_events WHERE run_id = $1 ORDER BY id",
                )
                .bind(run_id),
            )
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
                    created_at: r.created_at.into(),
                })
            })
            .collect()
    }

    async fn count_runs_by_status(&self) -> StoreResult<Vec<StatusCount>> {
        let rows: Vec<(String, i64)> = self
            .db()
            .fetch_all(stmt(
                "SELECT status, CAST(sum(n) AS BIGINT) FROM run_counts GROUP BY status",
            ))
            .await?;
        status_counts(rows)
    }

    async fn run_activity(&self, minutes: i64) -> StoreResult<Vec<MinuteActivity>> {
        let now = Utc::now();
        let rows: Vec<(Time, String, i64)> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT minute, event, CAST(sum(n) AS BIGINT) FROM run_minute_counts
                     WHERE minute > $1 AND event IN ('succeeded', 'failed')
                     GROUP BY minute, event",
                )
                .bind(now - chrono::Duration::minutes(minutes)),
            )
            .await?;
        let mut by_minute: std::collections::BTreeMap<i64, MinuteActivity> = Default::default();
        for (minute, state, n) in rows {
            let minutes_ago = (now - DateTime::<Utc>::from(minute)).num_minutes().max(0);
            let m = by_minute.entry(minutes_ago).or_insert(MinuteActivity {
                minutes_ago,
                succeeded: 0,
                failed: 0,
            });
            match status(&state)? {
                RunStatus::Succeeded => m.succeeded += n,
                _ => m.failed += n,
            }
        }
        Ok(by_minute.into_values().collect())
    }

    async fn prune_run_counts(&self) -> StoreResult<()> {
        self.db()
            .execute(dialects(
                "SELECT ops.prune_run_counts()",
                "DELETE FROM run_minute_counts
                     WHERE minute < CAST(unixepoch('subsec') * 1000 AS INTEGER) - 86400000",
            ))
            .await?;
        Ok(())
    }

    async fn queue_stats(&self, since: DateTime<Utc>) -> StoreResult<Vec<QueueStat>> {
        // Counters, not scans: a store of millions reads a few hundred counter rows, plus one
        // index probe (runs_due_idx) per queue with work waiting.
        let active: Vec<(String, String, i64, Option<Time>)> = self
            .db()
            .fetch_all(stmt(
                "SELECT c.queue, c.status, CAST(sum(c.n) AS BIGINT),
                        CASE WHEN c.status = 'queued' THEN
                            (SELECT min(r.run_after) FROM runs r
                             WHERE r.status = 'queued' AND r.queue = c.queue) END
                 FROM run_counts c
                 WHERE c.status IN ('queued', 'claimed', 'running')
                 GROUP BY c.queue, c.status HAVING sum(c.n) <> 0",
            ))
            .await?;
        let finished: Vec<(String, String, i64)> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT queue, event, CAST(sum(n) AS BIGINT) FROM run_minute_counts
                     WHERE minute >= $1 AND event IN ('succeeded', 'failed')
                     GROUP BY queue, event",
                )
                .bind(since),
            )
            .await?;
        let mut stats: std::collections::BTreeMap<String, QueueStat> = Default::default();
        fn entry(
            stats: &mut std::collections::BTreeMap<String, QueueStat>,
            queue: String,
        ) -> &mut QueueStat {
            stats.entry(queue.clone()).or_insert_with(|| QueueStat {
                queue,
                ..Default::default()
            })
        }
        for (queue, state, n, oldest) in active {
            let stat = entry(&mut stats, queue);
            match status(&state)? {
                RunStatus::Queued => {
                    stat.queued = n;
                    stat.oldest_due = oldest.map(Into::into);
                }
                RunStatus::Claimed => stat.claimed = n,
                _ => stat.running = n,
            }
        }
        for (queue, state, n) in finished {
            let stat = entry(&mut stats, queue);
            match status(&state)? {
                RunStatus::Succeeded => stat.succeeded_last_hour = n,
                _ => stat.failed_last_hour = n,
            }
        }
        Ok(stats.into_values().collect())
    }

    async fn deploys_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<DateTime<Utc>>> {
        // From the per-minute counters: a deploy shows at the minute it started, whatever the
        // size of the store.
        let rows: Vec<(Time, i64)> = self
            .db()
            .fetch_all(
                stmt(
                    "SELECT minute, CAST(sum(n) AS BIGINT) FROM run_minute_counts
                     WHERE minute >= $1 AND event = 'deploy_started'
                     GROUP BY minute ORDER BY minute",
                )
                .bind(
                    since
                        .duration_trunc(chrono::TimeDelta::minutes(1))
                        .unwrap_or(since),
                ),
            )
            .await?;
        Ok(rows
            .into_iter()
            .flat_map(|(minute, n)| {
                std::iter::repeat_n(
                    DateTime::<Utc>::from(minute),
                    usize::try_from(n).unwrap_or(0),
                )
            })
            .take(200)
            .collect())
    }

    async fn cancel_run(&self, actor: &str, id: i64) -> StoreResult<Option<CancelOutcome>> {
        let mut tx = self.db().begin().await?;
        let before: Option<(String, i64)> = tx
            .fetch_optional(
                // SQLite's write transaction holds the database lock already.
                dialects(
                    "SELECT status, project_id FROM runs WHERE id = $1 FOR UPDATE",
                    "SELECT status, project_id FROM runs WHERE id = $1",
                )
                .bind(id),
            )
            .await?;
        let Some((before, project_id)) = before else {
            return Ok(None);
        };
        let outcome = match &tx {
            Tx::Pg(_) => cancel_by_function(&mut tx, id, actor).await?,
            Tx::Sqlite(_) => cancel_by_status(&mut tx, id, actor, status(&before)?).await?,
        };
        let Some(outcome) = outcome else {
            return Ok(None);
        };
        if let CancelOutcome::AlreadyFinished(_) = outcome {
            return Ok(Some(outcome));
        }
        AuditEntry::run_canceled(actor, id, project_id, &before, outcome)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn retry_run(&self, actor: &str, id: i64) -> StoreResult<Option<i64>> {
        let mut tx = self.db().begin().await?;
        let retried: Option<(i64, i64)> = match &tx {
            // ops.retry_run is the interface psql and PostgREST use too.
            Tx::Pg(_) => {
                let (new_id,): (Option<i64>,) = tx
                    .fetch_one(stmt("SELECT ops.retry_run($1, $2)").bind(id).bind(actor))
                    .await?;
                match new_id {
                    Some(new_id) => {
                        let (project_id,): (i64,) = tx
                            .fetch_one(
                                stmt("SELECT project_id FROM runs WHERE id = $1").bind(new_id),
                            )
                            .await?;
                        Some((new_id, project_id))
                    }
                    None => None,
                }
            }
            Tx::Sqlite(_) => {
                tx.fetch_optional(
                    stmt(
                        "INSERT INTO runs (project_id, workflow_id, queue, priority, payload, max_attempts, retry_of, changed_by)
                         SELECT r.project_id, r.workflow_id, w.task_queue, r.priority, r.payload, r.max_attempts, r.id, $2
                         FROM runs r JOIN workflows w ON w.id = r.workflow_id
                         WHERE r.id = $1 AND r.status IN ('succeeded', 'failed', 'canceled')
                         RETURNING id, project_id",
                    )
                    .bind(id)
                    .bind(actor),
                )
                .await?
            }
        };
        let Some((new_id, project_id)) = retried else {
            return Ok(None);
        };
        AuditEntry::run_retried(actor, id, project_id, new_id)
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(Some(new_id))
    }

    async fn count_runs(
        &self,
        project_id: Option<i64>,
        status: Option<RunStatus>,
    ) -> StoreResult<i64> {
        let (n,): (i64,) = self
            .db()
            .fetch_one(
                stmt(
                    "SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM run_counts
                     WHERE (CAST($1 AS BIGINT) IS NULL OR project_id = $1)
                       AND (CAST($2 AS TEXT) IS NULL OR status = $2)",
                )
                .bind(project_id)
                .bind(status.map(RunStatus::as_str)),
            )
            .await?;
        Ok(n)
    }

    async fn count_runs_grouped(&self, filter: &RunFilter) -> StoreResult<Vec<RunGroup>> {
        let (clause, args) = run_where(self.db(), filter).await?.finish();
        let mut statement = stmt(format!(
            "SELECT r.project_id, r.workflow_id, r.status, r.cancel_requested, count(*)
             FROM runs r JOIN projects p ON p.id = r.project_id JOIN workflows w ON w.id = r.workflow_id
             WHERE {clause}
             GROUP BY r.project_id, r.workflow_id, r.status, r.cancel_requested"
        ));
        for arg in args {
            statement = statement.bind(arg);
        }
        let rows: Vec<(i64, i64, String, bool, i64)> = self.db().fetch_all(statement).await?;
        rows.into_iter()
            .map(|(project_id, workflow_id, s, cancel_requested, count)| {
                Ok(RunGroup {
                    project_id,
                    workflow_id,
                    status: status(&s)?,
                    cancel_requested,
                    count,
                })
            })
            .collect()
    }

    async fn cancel_runs(&self, actor: &str, batch: &RunBatch<'_>) -> StoreResult<BatchCanceled> {
        let mut tx = self.db().begin().await?;
        act_as(&mut tx, actor).await?;
        let ids = JsonText::of(&serde_json::json!(batch.ids));
        // SQLite's triggers name the actor from the row (changed_by); PostgreSQL's from the
        // session (ospdeck.actor, or the member's own role).
        let canceled: Vec<(i64,)> = tx
            .fetch_all(
                with_ids(
                    "UPDATE runs SET status = 'canceled', finished_at = $3, lease_expires_at = NULL,
                            error = 'canceled by ' || ops.current_actor()
                     WHERE id IN {ids} AND status IN ('queued', 'claimed')
                     RETURNING id",
                    "UPDATE runs SET status = 'canceled', finished_at = $3, lease_expires_at = NULL,
                            error = 'canceled by ' || $2, changed_by = $2
                     WHERE id IN {ids} AND status IN ('queued', 'claimed')
                     RETURNING id",
                )
                .bind(ids.clone())
                .bind(actor)
                .bind(Utc::now()),
            )
            .await?;
        let requested: Vec<(i64,)> = tx
            .fetch_all(
                with_ids(
                    "UPDATE runs SET cancel_requested = TRUE
                     WHERE id IN {ids} AND status = 'running' RETURNING id",
                    "UPDATE runs SET cancel_requested = TRUE, changed_by = $2
                     WHERE id IN {ids} AND status = 'running' RETURNING id",
                )
                .bind(ids)
                .bind(actor),
            )
            .await?;
        let done = BatchCanceled {
            canceled: sorted(canceled),
            requested: sorted(requested),
        };
        batch_audit(
            actor,
            "cancel",
            batch,
            serde_json::json!({ "canceled": done.canceled, "requested": done.requested }),
        )
        .record(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn retry_runs(&self, actor: &str, batch: &RunBatch<'_>) -> StoreResult<Vec<(i64, i64)>> {
        let mut tx = self.db().begin().await?;
        act_as(&mut tx, actor).await?;
        let rows: Vec<(i64, i64)> = tx
            .fetch_all(
                with_ids(
                    "INSERT INTO runs (project_id, workflow_id, queue, priority, payload, max_attempts, retry_of)
                     SELECT r.project_id, r.workflow_id, w.task_queue, r.priority, r.payload, r.max_attempts, r.id
                     FROM runs r JOIN workflows w ON w.id = r.workflow_id
                     WHERE r.id IN {ids} AND r.status IN ('succeeded', 'failed', 'canceled')
                     ORDER BY r.id
                     RETURNING retry_of, id",
                    "INSERT INTO runs (project_id, workflow_id, queue, priority, payload, max_attempts, retry_of, changed_by)
                     SELECT r.project_id, r.workflow_id, w.task_queue, r.priority, r.payload, r.max_attempts, r.id, $2
                     FROM runs r JOIN workflows w ON w.id = r.workflow_id
                     WHERE r.id IN {ids} AND r.status IN ('succeeded', 'failed', 'canceled')
                     ORDER BY r.id
                     RETURNING retry_of, id",
                )
                .bind(JsonText::of(&serde_json::json!(batch.ids)))
                .bind(actor),
            )
            .await?;
        let mut pairs = rows;
        pairs.sort_unstable();
        batch_audit(
            actor,
            "retry",
            batch,
            serde_json::json!({ "retries": pairs }),
        )
        .record(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(pairs)
    }

    async fn last_run_event_id(&self) -> StoreResult<i64> {
        let (id,): (Option<i64>,) = self
            .db()
            .fetch_one(stmt("SELECT max(id) FROM run_events"))
            .await?;
        Ok(id.unwrap_or(0))
    }

    async fn run_events_after(&self, after: i64, limit: i64) -> StoreResult<Vec<(i64, i64)>> {
        Ok(self
            .db()
            .fetch_all(
                stmt("SELECT id, run_id FROM run_events WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(limit),
            )
            .await?)
    }
}

/// The WHERE clause a run filter makes (its page and limit are the caller's).
async fn run_where(db: &Db, filter: &RunFilter) -> StoreResult<RunWhere> {
    {
        let (below, above) = filter.page.bounds();
        let mut query = RunWhere::default();
        if let Some(status) = filter.status {
            query.push("r.status = ?", status.as_str());
        }
        if let Some(id) = filter.project_id {
            query.push("r.project_id = ?", id);
        }
        if let Some(id) = filter.workflow_id {
            query.push("r.workflow_id = ?", id);
        }
        if let Some(text) = filter.text.as_deref() {
            query.word(text);
        }
        for condition in &filter.conditions {
            query.condition(condition);
        }
        if let Some(n) = filter.newest {
            // A constant bound, read first: PostgreSQL plans a bound it cannot see (a subquery)
            // as a scan of a third of the table.
            let (newest,): (Option<i64>,) = db.fetch_one(stmt("SELECT max(id) FROM runs")).await?;
            query.push("r.id > ?", newest.unwrap_or(0) - n);
        }
        if let Some(id) = below {
            query.push("r.id < ?", id);
        }
        if let Some(id) = above {
            query.push("r.id > ?", id);
        }
        Ok(query)
    }
}

/// A statement over a list of run ids bound as one JSON array (`$1`): `{ids}` in the text
/// becomes each dialect's way to read it, an indexable `IN (…)` on both.
fn with_ids(pg: &str, sqlite: &str) -> crate::sql::Stmt {
    dialects(
        pg.replace(
            "{ids}",
            "(SELECT CAST(jsonb_array_elements_text($1) AS BIGINT))",
        ),
        sqlite.replace("{ids}", "(SELECT value FROM json_each($1))"),
    )
}

/// PostgreSQL's triggers and functions name the actor from the session.
async fn act_as(tx: &mut Tx, actor: &str) -> StoreResult<()> {
    if let Tx::Pg(_) = tx {
        tx.execute(stmt("SELECT set_config('ospdeck.actor', $1, true)").bind(actor))
            .await?;
    }
    Ok(())
}

fn sorted(rows: Vec<(i64,)>) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.into_iter().map(|(id,)| id).collect();
    ids.sort_unstable();
    ids
}

/// One audit row for a whole batch: the filter that chose it, its runs, and what became of them.
fn batch_audit<'a>(
    actor: &'a str,
    action: &'static str,
    batch: &RunBatch<'_>,
    after: serde_json::Value,
) -> AuditEntry<'a> {
    let first = batch.ids.iter().min().copied().unwrap_or(0);
    let last = batch.ids.iter().max().copied().unwrap_or(0);
    AuditEntry {
        actor,
        action,
        entity_type: "run",
        entity_id: if first == last {
            first.to_string()
        } else {
            format!("{first}..{last}")
        },
        project_id: Some(batch.project_id),
        before: Some(serde_json::json!({
            "filter": batch.filter,
            "count": batch.ids.len(),
            "runs": batch.ids,
        })),
        after: Some(after),
    }
}

/// PostgreSQL: ops.cancel_run, the function psql and PostgREST call too, decides and answers.
async fn cancel_by_function(
    tx: &mut Tx,
    id: i64,
    actor: &str,
) -> StoreResult<Option<CancelOutcome>> {
    let (answer,): (Option<String>,) = tx
        .fetch_one(stmt("SELECT ops.cancel_run($1, $2)").bind(id).bind(actor))
        .await?;
    Ok(match answer.as_deref() {
        None => None,
        Some("canceled") => Some(CancelOutcome::Canceled),
        Some("requested") => Some(CancelOutcome::Requested),
        Some(other) => match other.strip_prefix("finished:") {
            Some(done) => Some(CancelOutcome::AlreadyFinished(status(done)?)),
            None => {
                return Err(StoreError::Database(format!(
                    "unexpected answer from ops.cancel_run: {other}"
                )));
            }
        },
    })
}

/// SQLite: a run not yet started is canceled at once; a running one is asked to stop.
async fn cancel_by_status(
    tx: &mut Tx,
    id: i64,
    actor: &str,
    current: RunStatus,
) -> StoreResult<Option<CancelOutcome>> {
    Ok(Some(match current {
        RunStatus::Queued | RunStatus::Claimed => {
            tx.execute(
                stmt(
                    "UPDATE runs SET status = 'canceled', finished_at = $3, lease_expires_at = NULL,
                            error = 'canceled by ' || $2, changed_by = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(actor)
                .bind(Utc::now()),
            )
            .await?;
            CancelOutcome::Canceled
        }
        RunStatus::Running => {
            tx.execute(
                stmt(
                    "UPDATE runs SET cancel_requested = TRUE, changed_by = $2
                     WHERE id = $1 AND NOT cancel_requested",
                )
                .bind(id)
                .bind(actor),
            )
            .await?;
            CancelOutcome::Requested
        }
        done => CancelOutcome::AlreadyFinished(done),
    }))
}

/// A run list's WHERE clause, built from the filter's conditions: each condition is SQL text that
/// both dialects read alike, every value a bound argument (`?` in the pieces becomes `$n`).
#[derive(Default)]
struct RunWhere {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl RunWhere {
    /// Binds `value`, answering its placeholder.
    fn arg(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// `sql` with its one `?` bound to `value`.
    fn push(&mut self, sql: &str, value: impl Into<Arg>) {
        let placeholder = self.arg(value);
        self.clauses.push(sql.replacen('?', &placeholder, 1));
    }

    /// Any of `values` holds for `sql(placeholder)`.
    fn any<T: Into<Arg> + Clone>(&mut self, values: &[T], sql: impl Fn(&str) -> String) {
        if values.is_empty() {
            self.clauses.push("1 = 0".into());
            return;
        }
        let alternatives: Vec<String> = values
            .iter()
            .map(|v| {
                let placeholder = self.arg(v.clone());
                sql(&placeholder)
            })
            .collect();
        self.clauses
            .push(format!("({})", alternatives.join(" OR ")));
    }

    /// A free word: some column contains it, or it is the run's id.
    fn word(&mut self, word: &str) {
        let pattern = self.arg(like_pattern(word));
        let id = self.arg(word.trim().parse::<i64>().ok());
        self.clauses.push(format!(
            "(r.id = {id} OR lower(p.workspace_key) LIKE {pattern} ESCAPE '\\'
              OR lower(w.name) LIKE {pattern} ESCAPE '\\' OR lower(r.queue) LIKE {pattern} ESCAPE '\\'
              OR lower(coalesce(r.worker_id, '')) LIKE {pattern} ESCAPE '\\'
              OR lower(coalesce(r.error, '')) LIKE {pattern} ESCAPE '\\')"
        ));
    }

    fn condition(&mut self, condition: &RunCondition) {
        match condition {
            RunCondition::Status(statuses) => {
                let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
                self.any(&names, |p| format!("r.status = {p}"));
            }
            RunCondition::Contains(column, values) => {
                let column = match column {
                    RunColumn::Project => "lower(p.workspace_key)",
                    RunColumn::Workflow => "lower(w.name)",
                    RunColumn::Queue => "lower(r.queue)",
                    RunColumn::Worker => "lower(coalesce(r.worker_id, ''))",
                    RunColumn::Error => "lower(coalesce(r.error, ''))",
                };
                let patterns: Vec<String> = values.iter().map(|v| like_pattern(v)).collect();
                self.any(&patterns, |p| format!("{column} LIKE {p} ESCAPE '\\'"));
            }
            RunCondition::Number(number, cmp, n) => {
                let sql = format!("{} {} ?", number_column(*number), cmp.sql());
                self.push(&sql, *n);
            }
            RunCondition::NumberIn(number, values) => {
                // An IN list, not an OR chain: a thousand ids (a bulk batch) would pass
                // SQLite's expression depth limit of 1 000 as ORs.
                let column = number_column(*number);
                if values.is_empty() {
                    self.clauses.push("1 = 0".into());
                } else {
                    let placeholders: Vec<String> = values.iter().map(|v| self.arg(*v)).collect();
                    self.clauses
                        .push(format!("{column} IN ({})", placeholders.join(", ")));
                }
            }
            RunCondition::Created(cmp, at) => {
                self.push(&format!("r.created_at {} ?", cmp.sql()), *at);
            }
            RunCondition::Word(word) => self.word(word),
        }
    }

    fn finish(self) -> (String, Vec<Arg>) {
        let clause = if self.clauses.is_empty() {
            "1 = 1".to_owned()
        } else {
            self.clauses.join(" AND ")
        };
        (clause, self.args)
    }
}

fn number_column(number: RunNumber) -> &'static str {
    match number {
        RunNumber::Id => "r.id",
        RunNumber::Attempt => "r.attempt",
        RunNumber::Priority => "r.priority",
    }
}

/// `text` as a case-insensitive LIKE pattern with its own wildcards escaped (escape `\`).
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}
