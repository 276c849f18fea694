//! The run queue: enqueue, claim, start, heartbeat, complete, cancel, retry, logs, artifacts, rescue.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Ops, OpsError, OpsResult, Scoped};
use crate::domain::filter::Filter;
use crate::domain::permission::Permission;
use crate::domain::run::{
    CancelOutcome, ClaimedRun, Completion, HeartbeatAck, Hold, LogMatches, NewArtifact, NewLogLine,
    NewRun, Page, RUN_FIELDS, RescueOutcome, Run, RunArtifact, RunCondition, RunEvent, RunFilter,
    RunLog, RunNumber, RunOptions, RunStatus,
};
use crate::domain::workflow::Workflow;
use ospdeck_store::runs::{RunBatch, RunGroup};
use ospdeck_store::{ClaimRequest, RunWaker};

/// An enqueue request as a user gives it: names, not ids; text, not parsed JSON.
#[derive(Debug, Clone, Default)]
pub struct EnqueueRequest<'a> {
    pub project: &'a str,
    pub workflow: &'a str,
    pub priority: Option<i64>,
    pub payload: Option<&'a str>,
    pub max_attempts: Option<i64>,
    pub run_after: Option<DateTime<Utc>>,
    /// An upgrade across a breaking advisory is queued only when this is set.
    pub acknowledge: bool,
}

/// A run with its history, for `run show` and the console's detail view.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    pub events: Vec<RunEvent>,
    pub artifacts: Vec<RunArtifact>,
    /// The runs that retry this one (`retry_of` points here), oldest first.
    pub retried_by: Vec<RunLink>,
}

/// Another run, named by id with its status (for "retried as 812 (running)").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunLink {
    pub id: i64,
    pub status: RunStatus,
}

/// Most matching line ids one log search answers; the rest are counted.
pub const MAX_LOG_MATCHES: i64 = 5_000;

#[derive(Debug, Clone, Default)]
pub struct RunQuery<'a> {
    pub status: Option<RunStatus>,
    pub project: Option<&'a str>,
    pub workflow: Option<&'a str>,
    /// Substring of project, workflow, queue, worker or error, or a run id.
    pub text: Option<&'a str>,
    /// A structured filter (`status:failed workflow:test age:>10m`, the grammar of
    /// `domain::filter` with `RUN_FIELDS`), on top of the rest.
    pub filter: Option<&'a str>,
    /// Search only the newest this many runs (a filter being typed).
    pub newest: Option<i64>,
    pub limit: Option<i64>,
    pub page: Page,
}

pub const DEFAULT_LIST_LIMIT: i64 = 50;
pub const MAX_LIST_LIMIT: i64 = 10_000;

/// Runs a bulk cancel or retry changes in one transaction (one audit row each).
pub const BULK_BATCH: i64 = 1_000;

/// Most run events one watch poll reads.
const WATCH_EVENTS: i64 = 1_000;

impl Ops {
    pub async fn enqueue_run(&self, req: &EnqueueRequest<'_>) -> OpsResult<i64> {
        Ok(self.enqueue_run_with_advisories(req).await?.0)
    }

    /// Queues a run and answers the upgrade advisories it crosses (empty unless the workflow is
    /// an upgrade whose payload names tool, from_version and to_version).
    pub async fn enqueue_run_with_advisories(
        &self,
        req: &EnqueueRequest<'_>,
    ) -> OpsResult<(i64, Vec<crate::domain::tool::Advisory>)> {
        let workflow = self.workflow(req.project, req.workflow).await?;
        self.authorize(
            workflow.scope(),
            &needs_for_command(&workflow.command, Permission::EnqueueRun),
            &format!("queuing a run of {}", workflow.name),
        )
        .await?;
        let run = NewRun::new(
            workflow.project_id,
            workflow.id,
            &RunOptions {
                priority: req.priority,
                payload: req.payload,
                max_attempts: req.max_attempts,
                run_after: req.run_after,
            },
        )?;
        let advisories = if workflow.workflow_type == crate::domain::workflow::WorkflowType::Upgrade
        {
            let advisories = self.advisories_for_upgrade(&run.payload).await?;
            super::require_acknowledged(&advisories, req.acknowledge)?;
            advisories
        } else {
            Vec::new()
        };
        let ids = self
            .store
            .enqueue_runs(self.actor(), std::slice::from_ref(&run))
            .await?;
        let id = ids
            .first()
            .copied()
            .ok_or_else(|| OpsError::Refused("the store queued nothing".into()))?;
        Ok((id, advisories))
    }

    /// Queues many validated runs in one transaction (all or none).
    pub async fn enqueue_runs(&self, runs: &[NewRun]) -> OpsResult<Vec<i64>> {
        if !self.identity().administrator {
            let mut workflows: Vec<i64> = runs.iter().map(|r| r.workflow_id).collect();
            workflows.sort_unstable();
            workflows.dedup();
            for id in workflows {
                let workflow = self
                    .store
                    .workflow(id)
                    .await?
                    .ok_or_else(|| OpsError::NotFound(format!("unknown workflow id {id}")))?;
                self.authorize(
                    workflow.scope(),
                    &needs_for_command(&workflow.command, Permission::EnqueueRun),
                    &format!("queuing runs of {}", workflow.name),
                )
                .await?;
            }
        }
        Ok(self.store.enqueue_runs(self.actor(), runs).await?)
    }

    /// A workflow by id, as a worker needs it for a run it claimed.
    pub async fn workflow_by_id(&self, id: i64) -> OpsResult<Option<Workflow>> {
        Ok(self.store.workflow(id).await?)
    }

    /// Something that wakes a worker when runs may have been queued.
    pub async fn run_waker(&self) -> OpsResult<Box<dyn RunWaker>> {
        Ok(self.store.run_waker().await?)
    }

    pub async fn run(&self, id: i64) -> OpsResult<Run> {
        self.store.run(id).await?.ok_or_else(|| unknown_run(id))
    }

    pub async fn run_detail(&self, id: i64) -> OpsResult<RunDetail> {
        let run = self.run(id).await?;
        let events = self.store.run_events(id).await?;
        let artifacts = self.store.run_artifacts(id).await?;
        let retried_by = self
            .store
            .retries_of(id)
            .await?
            .into_iter()
            .map(|(id, status)| RunLink { id, status })
            .collect();
        Ok(RunDetail {
            run,
            events,
            artifacts,
            retried_by,
        })
    }

    pub async fn list_runs(&self, query: &RunQuery<'_>) -> OpsResult<Vec<Run>> {
        let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(OpsError::Invalid(crate::domain::InvalidInput::new(
                format!("invalid limit {limit}: use 1 to {MAX_LIST_LIMIT}"),
            )));
        }
        let filter = RunFilter {
            limit,
            ..self.run_selection(query).await?
        };
        Ok(self.store.list_runs(&filter).await?)
    }

    /// The store's filter for a query, resolved once (names to ids, ages against now), for
    /// reading page after page with [`Ops::runs_page`]; its limit and page are the caller's.
    pub async fn run_selection(&self, query: &RunQuery<'_>) -> OpsResult<RunFilter> {
        let mut filter = RunFilter {
            status: query.status,
            text: query
                .text
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            limit: query.limit.unwrap_or(DEFAULT_LIST_LIMIT),
            page: query.page,
            newest: query.newest,
            conditions: match query.filter {
                Some(text) => {
                    let filter = Filter::parse(text, RUN_FIELDS)?;
                    RunCondition::from_filter(&filter, Utc::now())
                }
                None => Vec::new(),
            },
            ..RunFilter::default()
        };
        if let Some(project) = query.project {
            let project = self.project(project).await?;
            filter.project_id = Some(project.id);
            if let Some(workflow) = query.workflow {
                filter.workflow_id = Some(self.workflow(&project.key, workflow).await?.id);
            }
        } else if query.workflow.is_some() {
            return Err(OpsError::Invalid(crate::domain::InvalidInput::new(
                "--workflow needs --project: workflow names are per project",
            )));
        }
        Ok(filter)
    }

    /// Up to `n` runs of `selection` older than `older_than` (from the newest when None),
    /// newest first: one keyset page, however deep.
    pub async fn runs_page(
        &self,
        selection: &RunFilter,
        older_than: Option<i64>,
        n: i64,
    ) -> OpsResult<Vec<Run>> {
        let filter = RunFilter {
            limit: n.clamp(1, MAX_LIST_LIMIT),
            page: older_than.map_or(Page::Newest, Page::OlderThan),
            ..selection.clone()
        };
        Ok(self.store.list_runs(&filter).await?)
    }

    /// How many runs `selection` matches, when the store's counters know it exactly (a filter
    /// on project and status at most); None otherwise, or when the counters cannot be read.
    pub async fn count_selected_runs(&self, selection: &RunFilter) -> Option<i64> {
        let countable = selection.workflow_id.is_none()
            && selection.text.is_none()
            && selection.conditions.is_empty()
            && selection.newest.is_none()
            && selection.page == Page::Newest;
        if !countable || !self.identity().administrator {
            // A member's counters would count runs it cannot see.
            return None;
        }
        self.store
            .count_runs(selection.project_id, selection.status)
            .await
            .ok()
    }

    /// Where a watcher of runs starts: the newest run event now.
    pub async fn run_watch_start(&self) -> OpsResult<i64> {
        Ok(self.store.last_run_event_id().await?)
    }

    /// The runs of `selection` with an event after event `after` (created, moved on, asked to
    /// stop), as they are now, oldest change first, and the event to go on from.
    pub async fn run_changes(
        &self,
        selection: &RunFilter,
        after: i64,
    ) -> OpsResult<(Vec<Run>, i64)> {
        let events = self.store.run_events_after(after, WATCH_EVENTS).await?;
        let Some(&(last, _)) = events.last() else {
            return Ok((Vec::new(), after));
        };
        let mut ids: Vec<i64> = Vec::with_capacity(events.len());
        for (_, run) in &events {
            if !ids.contains(run) {
                ids.push(*run);
            }
        }
        let mut filter = selection.clone();
        filter
            .conditions
            .push(RunCondition::NumberIn(RunNumber::Id, ids.clone()));
        filter.limit = ids.len() as i64;
        filter.page = Page::Newest;
        let runs = self.store.list_runs(&filter).await?;
        let mut ordered = Vec::with_capacity(runs.len());
        for id in ids {
            if let Some(run) = runs.iter().find(|r| r.id == id) {
                ordered.push(run.clone());
            }
        }
        Ok((ordered, last))
    }

    pub async fn claim_runs(
        &self,
        worker: &str,
        queues: &[String],
        limit: u32,
        lease: Duration,
    ) -> OpsResult<Vec<ClaimedRun>> {
        self.take_runs(worker, queues, limit, lease, false).await
    }

    /// Claims and starts runs in one write, for a worker with free slots that runs them at once:
    /// the runs answered are running already (no `start_runs` follows).
    pub async fn claim_and_start_runs(
        &self,
        worker: &str,
        queues: &[String],
        limit: u32,
        lease: Duration,
    ) -> OpsResult<Vec<ClaimedRun>> {
        self.take_runs(worker, queues, limit, lease, true).await
    }

    async fn take_runs(
        &self,
        worker: &str,
        queues: &[String],
        limit: u32,
        lease: Duration,
        start: bool,
    ) -> OpsResult<Vec<ClaimedRun>> {
        check_worker_id(worker)?;
        // A member claims only in the projects where it may work.
        let projects = self.projects_with(Permission::ClaimAndFinishRuns).await?;
        if projects.as_ref().is_some_and(Vec::is_empty) {
            return Err(OpsError::Forbidden(format!(
                "permission denied: claiming runs needs developer or higher in a project, and {} \
                 holds that in none",
                self.actor()
            )));
        }
        Ok(self
            .store
            .claim_runs(&ClaimRequest {
                worker,
                queues,
                projects: projects.as_deref(),
                limit,
                lease,
                start,
            })
            .await?)
    }

    /// Claims the next run for `worker` and answers it in full, or None when nothing is queued.
    pub async fn claim_next_run(
        &self,
        worker: &str,
        queues: &[String],
        lease: Duration,
    ) -> OpsResult<Option<Run>> {
        match self.claim_runs(worker, queues, 1, lease).await?.first() {
            Some(claimed) => Ok(Some(self.run(claimed.id).await?)),
            None => Ok(None),
        }
    }

    pub async fn start_runs(&self, worker: &str, holds: &[Hold]) -> OpsResult<Vec<i64>> {
        Ok(self.store.start_runs(worker, holds).await?)
    }

    /// Starts a claimed run by id (the CLI's way: the worker names itself, the attempt is the current one).
    pub async fn start_run(&self, worker: &str, id: i64) -> OpsResult<Run> {
        check_worker_id(worker)?;
        let run = self.run(id).await?;
        self.authorize(
            run.scope(),
            &[Permission::ClaimAndFinishRuns],
            &format!("starting run {id}"),
        )
        .await?;
        require_held(&run, worker, &[RunStatus::Claimed], "start")?;
        let started = self
            .store
            .start_runs(
                worker,
                &[Hold {
                    run_id: id,
                    attempt: run.attempt,
                }],
            )
            .await?;
        if started.is_empty() {
            return Err(lost_hold(id, worker));
        }
        self.run(id).await
    }

    pub async fn heartbeat(
        &self,
        worker: &str,
        holds: &[Hold],
        lease: Duration,
    ) -> OpsResult<Vec<HeartbeatAck>> {
        Ok(self.store.heartbeat(worker, holds, lease).await?)
    }

    /// Finishes runs the worker holds; answers which were finished (the rest were fenced off).
    pub async fn complete_runs(&self, worker: &str, done: &[Completion]) -> OpsResult<Vec<i64>> {
        Ok(self.store.complete_runs(worker, done).await?)
    }

    pub async fn complete_run(
        &self,
        worker: &str,
        id: i64,
        exit_code: i32,
        error: Option<&str>,
    ) -> OpsResult<Run> {
        check_worker_id(worker)?;
        let run = self.run(id).await?;
        self.authorize(
            run.scope(),
            &[Permission::ClaimAndFinishRuns],
            &format!("completing run {id}"),
        )
        .await?;
        require_held(&run, worker, &[RunStatus::Running], "complete")?;
        let error = error
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned);
        let done = Completion {
            hold: Hold {
                run_id: id,
                attempt: run.attempt,
            },
            exit_code: Some(exit_code),
            error,
            canceled: false,
        };
        if self.store.complete_runs(worker, &[done]).await?.is_empty() {
            return Err(lost_hold(id, worker));
        }
        self.run(id).await
    }

    pub async fn release_runs(&self, worker: &str, holds: &[Hold]) -> OpsResult<Vec<i64>> {
        Ok(self.store.release_runs(worker, holds).await?)
    }

    /// Gives back runs whose lease ran out; the same periodic pass drops per-minute counters
    /// older than a day.
    pub async fn rescue_expired(&self) -> OpsResult<RescueOutcome> {
        let outcome = self.store.rescue_expired(self.actor()).await?;
        self.store.prune_run_counts().await?;
        Ok(outcome)
    }

    pub async fn cancel_run(&self, id: i64) -> OpsResult<CancelOutcome> {
        if !self.identity().administrator {
            let run = self.run(id).await?;
            self.authorize(
                run.scope(),
                &[Permission::CancelAnyRun],
                &format!("canceling run {id}"),
            )
            .await?;
        }
        match self.store.cancel_run(self.actor(), id).await? {
            None => Err(unknown_run(id)),
            Some(CancelOutcome::AlreadyFinished(status)) => Err(OpsError::Refused(format!(
                "run {id} already finished ({status}); nothing to cancel"
            ))),
            Some(outcome) => Ok(outcome),
        }
    }

    pub async fn retry_run(&self, id: i64) -> OpsResult<i64> {
        let run = self.run(id).await?;
        if !self.identity().administrator {
            let command = match self.store.workflow(run.workflow_id).await? {
                Some(w) => w.command,
                None => String::new(),
            };
            self.authorize(
                run.scope(),
                &needs_for_command(&command, Permission::EnqueueRun),
                &format!("retrying run {id}"),
            )
            .await?;
        }
        if !run.status.is_terminal() {
            return Err(OpsError::Refused(format!(
                "run {id} is {}; only a finished run can be retried (cancel it first)",
                run.status
            )));
        }
        self.store
            .retry_run(self.actor(), id)
            .await?
            .ok_or_else(|| unknown_run(id))
    }

    pub async fn append_logs(&self, run_id: i64, lines: &[NewLogLine]) -> OpsResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        Ok(self.store.append_logs(run_id, lines).await?)
    }

    pub async fn run_logs(
        &self,
        run_id: i64,
        after_id: i64,
        search: Option<&str>,
        limit: i64,
    ) -> OpsResult<Vec<RunLog>> {
        Ok(self.store.run_logs(run_id, after_id, search, limit).await?)
    }

    /// Up to `limit` log lines just before `before_id`, oldest first.
    pub async fn run_logs_before(
        &self,
        run_id: i64,
        before_id: i64,
        limit: i64,
    ) -> OpsResult<Vec<RunLog>> {
        Ok(self.store.run_logs_before(run_id, before_id, limit).await?)
    }

    /// Log lines of the run below `below_id` (all when None): a line's 0-based number.
    pub async fn count_run_logs(&self, run_id: i64, below_id: Option<i64>) -> OpsResult<i64> {
        Ok(self.store.count_run_logs(run_id, below_id).await?)
    }

    /// Server-side search over all of a run's lines: the matching ids (at most `cap`, capped
    /// at MAX_LOG_MATCHES) and how many match in all.
    pub async fn search_run_logs(
        &self,
        run_id: i64,
        text: &str,
        cap: i64,
    ) -> OpsResult<LogMatches> {
        let cap = cap.clamp(1, MAX_LOG_MATCHES);
        Ok(self.store.search_run_logs(run_id, text, cap).await?)
    }

    pub async fn add_artifact(&self, artifact: &NewArtifact) -> OpsResult<i64> {
        artifact.validate()?;
        let run = self.run(artifact.run_id).await?;
        self.authorize(
            run.scope(),
            &[Permission::ClaimAndFinishRuns],
            &format!("adding an artifact to run {}", run.id),
        )
        .await?;
        Ok(self.store.add_artifact(artifact).await?)
    }
}

/// The built-in deploy workflow launches workers: queuing a run of it, or creating it, is
/// deploying, an admin's act, on top of what `action` itself needs.
pub(super) fn needs_for_command(command: &str, action: Permission) -> Vec<Permission> {
    let mut needs = vec![action];
    if command == super::DEPLOY_COMMAND {
        needs.push(Permission::DeployWorker);
    }
    needs
}

fn unknown_run(id: i64) -> OpsError {
    OpsError::NotFound(format!("unknown run {id}"))
}

fn lost_hold(id: i64, worker: &str) -> OpsError {
    OpsError::Refused(format!(
        "run {id} is no longer held by worker {worker} (its lease expired or it was canceled)"
    ))
}

fn require_held(run: &Run, worker: &str, statuses: &[RunStatus], action: &str) -> OpsResult<()> {
    if !statuses.contains(&run.status) {
        let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        return Err(OpsError::Refused(format!(
            "cannot {action} run {}: it is {}, not {}",
            run.id,
            run.status,
            wanted.join(" or ")
        )));
    }
    if run.worker_id.as_deref() != Some(worker) {
        return Err(OpsError::Refused(format!(
            "cannot {action} run {}: it is held by {}, not by {worker}",
            run.id,
            run.worker_id.as_deref().unwrap_or("nobody")
        )));
    }
    Ok(())
}

/// Worker ids end up in events, logs and error messages: printable, bounded.
pub fn check_worker_id(worker: &str) -> OpsResult<()> {
    let ok = !worker.is_empty()
        && worker.len() <= 128
        && worker
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(OpsError::Invalid(crate::domain::InvalidInput::new(
            format!(
                "invalid worker id {worker:?}: use 1 to 128 letters, digits, '-', '_', '.', ':', '@'"
            ),
        )))
    }
}

/// Which runs a bulk cancel or retry takes.
#[derive(Debug, Clone, Copy)]
pub enum RunTarget<'a> {
    /// Runs named by id: every one must exist and be the caller's to act on, or nothing is done.
    Ids(&'a [i64]),
    /// Every run this filter (the `run list --where` grammar) selects; runs in projects where
    /// the caller lacks the role are skipped, each with the reason.
    Where(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Cancel,
    Retry,
}

/// What a bulk action did, or would do, to one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkOutcome {
    /// Queued or claimed, canceled now.
    Canceled,
    /// Running: its worker was asked to stop it.
    Requested,
    /// It was canceled before: nothing to do, and not a failure.
    AlreadyCanceled,
    /// Retried: the answer is the new queued run.
    Retried,
    WouldCancel,
    WouldRequestStop,
    WouldRetry,
    /// Left alone; `reason` says why.
    Skipped,
}

/// One run of a bulk answer: the run as it is after the action (for a retry, the new run; with
/// a dry run or when skipped, the run as it is), what became of it, and why when skipped.
#[derive(Debug, Clone, Serialize)]
pub struct BulkItem {
    #[serde(flatten)]
    pub run: Run,
    pub outcome: BulkOutcome,
    pub reason: Option<String>,
}

/// How many runs a bulk action takes, and what it does to them: a plan before, the tally after.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BulkTally {
    /// Runs the target names or the filter selects.
    pub matched: i64,
    /// Queued or claimed runs canceled (or to be).
    pub canceled: i64,
    /// Running runs asked to stop (or to be).
    pub requested: i64,
    /// Finished runs retried (or to be).
    pub retried: i64,
    /// Runs canceled before.
    pub already_canceled: i64,
    /// Runs the rules leave alone: a finished run is not canceled, only a finished one retried.
    pub not_applicable: i64,
    /// Runs in projects where the caller lacks the role.
    pub forbidden: i64,
    /// Runs whose state changed between reading and acting.
    pub changed_meanwhile: i64,
    /// The projects (keys) of the forbidden runs.
    pub forbidden_projects: Vec<String>,
}

impl BulkTally {
    /// Runs the action changes (or would).
    pub fn acting(&self) -> i64 {
        self.canceled + self.requested + self.retried
    }
}

/// What one run is to a bulk action before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Cancel,
    RequestStop,
    Retry,
    AlreadyCanceled,
    NotApplicable(String),
    Forbidden(String),
}

/// Who may act on which runs: None is everywhere (an administrator).
struct Allowed {
    action: BulkAction,
    projects: Option<Vec<i64>>,
    deploy_projects: Option<Vec<i64>>,
    deploy_workflows: std::collections::HashMap<i64, bool>,
}

impl Allowed {
    fn has(list: &Option<Vec<i64>>, project: i64) -> bool {
        list.as_ref().is_none_or(|l| l.contains(&project))
    }

    fn verdict(
        &self,
        project: i64,
        project_key: &str,
        workflow: i64,
        status: RunStatus,
    ) -> Verdict {
        let deploy = self
            .deploy_workflows
            .get(&workflow)
            .copied()
            .unwrap_or(false);
        let (permitted, needs) = match self.action {
            BulkAction::Cancel => (Self::has(&self.projects, project), Permission::CancelAnyRun),
            BulkAction::Retry if deploy => (
                Self::has(&self.projects, project) && Self::has(&self.deploy_projects, project),
                Permission::DeployWorker,
            ),
            BulkAction::Retry => (Self::has(&self.projects, project), Permission::EnqueueRun),
        };
        if !permitted {
            let verb = match self.action {
                BulkAction::Cancel => "canceling runs",
                BulkAction::Retry => "retrying runs",
            };
            return Verdict::Forbidden(format!(
                "permission denied: {verb} needs {} or higher in project {project_key}",
                needs.least_role()
            ));
        }
        match (self.action, status) {
            (BulkAction::Cancel, RunStatus::Queued | RunStatus::Claimed) => Verdict::Cancel,
            (BulkAction::Cancel, RunStatus::Running) => Verdict::RequestStop,
            (BulkAction::Cancel, RunStatus::Canceled) => Verdict::AlreadyCanceled,
            (BulkAction::Cancel, done) => {
                Verdict::NotApplicable(format!("it already finished ({done}); nothing to cancel"))
            }
            (BulkAction::Retry, s) if s.is_terminal() => Verdict::Retry,
            (BulkAction::Retry, s) => Verdict::NotApplicable(format!(
                "it is {s}; only a finished run can be retried (cancel it first)"
            )),
        }
    }
}

impl BulkTally {
    fn add(&mut self, verdict: &Verdict, n: i64, project_key: &str) {
        self.matched += n;
        match verdict {
            Verdict::Cancel => self.canceled += n,
            Verdict::RequestStop => self.requested += n,
            Verdict::Retry => self.retried += n,
            Verdict::AlreadyCanceled => self.already_canceled += n,
            Verdict::NotApplicable(_) => self.not_applicable += n,
            Verdict::Forbidden(_) => {
                self.forbidden += n;
                if !self.forbidden_projects.iter().any(|p| p == project_key) {
                    self.forbidden_projects.push(project_key.to_owned());
                }
            }
        }
    }
}

impl Ops {
    async fn allowed_for(&self, action: BulkAction) -> OpsResult<Allowed> {
        let (projects, deploy_projects) = match action {
            BulkAction::Cancel => (self.projects_with(Permission::CancelAnyRun).await?, None),
            BulkAction::Retry => (
                self.projects_with(Permission::EnqueueRun).await?,
                self.projects_with(Permission::DeployWorker).await?,
            ),
        };
        Ok(Allowed {
            action,
            projects,
            deploy_projects,
            deploy_workflows: Default::default(),
        })
    }

    /// Learns whether each of these workflows is the deploy workflow (retrying it is deploying).
    async fn learn_workflows(
        &self,
        allowed: &mut Allowed,
        workflows: impl Iterator<Item = i64>,
    ) -> OpsResult<()> {
        if allowed.action != BulkAction::Retry {
            return Ok(());
        }
        for id in workflows {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                allowed.deploy_workflows.entry(id)
            {
                let deploy = self
                    .store
                    .workflow(id)
                    .await?
                    .is_some_and(|w| w.command == super::DEPLOY_COMMAND);
                slot.insert(deploy);
            }
        }
        Ok(())
    }

    /// The runs of `target`, a page at a time (newest first), with their verdicts.
    async fn bulk_page(
        &self,
        target: &BulkSelection,
        allowed: &mut Allowed,
        older_than: Option<i64>,
    ) -> OpsResult<Vec<(Run, Verdict)>> {
        let runs = match target {
            BulkSelection::Ids(ids) => {
                let chunk: Vec<i64> = ids
                    .iter()
                    .copied()
                    .filter(|id| older_than.is_none_or(|below| *id < below))
                    .take(BULK_BATCH as usize)
                    .collect();
                if chunk.is_empty() {
                    return Ok(Vec::new());
                }
                let filter = RunFilter {
                    conditions: vec![RunCondition::NumberIn(RunNumber::Id, chunk.clone())],
                    limit: chunk.len() as i64,
                    ..RunFilter::default()
                };
                let runs = self.store.list_runs(&filter).await?;
                if let Some(missing) = chunk.iter().find(|id| !runs.iter().any(|r| r.id == **id)) {
                    return Err(unknown_run(*missing));
                }
                runs
            }
            BulkSelection::Where(filter, _) => {
                self.runs_page(filter, older_than, BULK_BATCH).await?
            }
        };
        self.learn_workflows(allowed, runs.iter().map(|r| r.workflow_id))
            .await?;
        Ok(runs
            .into_iter()
            .map(|r| {
                let verdict = allowed.verdict(r.project_id, &r.project, r.workflow_id, r.status);
                (r, verdict)
            })
            .collect())
    }

    /// What a bulk action would do, without doing it: counted per project, workflow and status
    /// by the store for a filter; read run by run (and checked to exist) for ids.
    pub async fn plan_bulk(
        &self,
        action: BulkAction,
        target: RunTarget<'_>,
    ) -> OpsResult<BulkTally> {
        let selection = self.bulk_selection(target).await?;
        let mut allowed = self.allowed_for(action).await?;
        let mut tally = BulkTally::default();
        match &selection {
            BulkSelection::Where(filter, _) => {
                let groups: Vec<RunGroup> = self.store.count_runs_grouped(filter).await?;
                self.learn_workflows(&mut allowed, groups.iter().map(|g| g.workflow_id))
                    .await?;
                let projects = self.store.list_projects().await?;
                for g in groups {
                    let key = projects
                        .iter()
                        .find(|p| p.id == g.project_id)
                        .map_or_else(|| g.project_id.to_string(), |p| p.key.clone());
                    let verdict = allowed.verdict(g.project_id, &key, g.workflow_id, g.status);
                    tally.add(&verdict, g.count, &key);
                }
            }
            BulkSelection::Ids(_) => {
                let mut cursor = None;
                loop {
                    let page = self.bulk_page(&selection, &mut allowed, cursor).await?;
                    let Some(last) = page.last() else { break };
                    cursor = Some(last.0.id);
                    for (run, verdict) in &page {
                        tally.add(verdict, 1, &run.project);
                    }
                }
            }
        }
        Ok(tally)
    }

    async fn bulk_selection(&self, target: RunTarget<'_>) -> OpsResult<BulkSelection> {
        Ok(match target {
            RunTarget::Ids(ids) => {
                let mut ids = ids.to_vec();
                // Newest first, as a filter's pages come.
                ids.sort_unstable_by(|a, b| b.cmp(a));
                ids.dedup();
                BulkSelection::Ids(ids)
            }
            RunTarget::Where(text) => {
                let filter = self
                    .run_selection(&RunQuery {
                        filter: Some(text),
                        ..RunQuery::default()
                    })
                    .await?;
                BulkSelection::Where(filter, text.to_owned())
            }
        })
    }

    /// Cancels or retries the runs of `target` in batches of [`BULK_BATCH`], each batch of a
    /// project one transaction with one audit row (recording the filter); with `dry_run` only
    /// reports. Hands each batch's answers to `sink` (which answers false to stop) and answers
    /// the tally. With ids, an unknown run or one the caller may not act on refuses the whole
    /// request before anything changes; with a filter such runs are skipped with the reason.
    /// `fresh` re-reads changed runs (and reads the new runs of a retry) for the answers;
    /// without it an answer carries the run as it was read before the change.
    pub async fn bulk_runs(
        &self,
        request: &BulkRequest<'_>,
        sink: &mut (dyn FnMut(Vec<BulkItem>) -> bool + Send),
    ) -> OpsResult<BulkTally> {
        let selection = self.bulk_selection(request.target).await?;
        let mut allowed = self.allowed_for(request.action).await?;
        if let BulkSelection::Ids(_) = selection {
            // All or nothing: every id must exist and be the caller's to act on.
            let mut cursor = None;
            loop {
                let page = self.bulk_page(&selection, &mut allowed, cursor).await?;
                let Some(last) = page.last() else { break };
                cursor = Some(last.0.id);
                if let Some((_, Verdict::Forbidden(why))) = page
                    .iter()
                    .find(|(_, v)| matches!(v, Verdict::Forbidden(_)))
                {
                    return Err(OpsError::Forbidden(why.clone()));
                }
            }
        }
        let filter_text = match &selection {
            BulkSelection::Where(_, text) => Some(text.as_str()),
            BulkSelection::Ids(_) => None,
        };
        let mut tally = BulkTally::default();
        let mut cursor = None;
        loop {
            let page = self.bulk_page(&selection, &mut allowed, cursor).await?;
            let Some(last) = page.last() else { break };
            cursor = Some(last.0.id);
            let items = if request.dry_run {
                page.into_iter()
                    .map(|(run, verdict)| {
                        tally.add(&verdict, 1, &run.project);
                        dry_item(run, verdict)
                    })
                    .collect()
            } else {
                self.act_on_page(request, filter_text, page, &mut tally)
                    .await?
            };
            if !sink(items) {
                break;
            }
        }
        Ok(tally)
    }

    async fn act_on_page(
        &self,
        request: &BulkRequest<'_>,
        filter: Option<&str>,
        page: Vec<(Run, Verdict)>,
        tally: &mut BulkTally,
    ) -> OpsResult<Vec<BulkItem>> {
        let mut by_project: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for (run, verdict) in &page {
            if matches!(
                verdict,
                Verdict::Cancel | Verdict::RequestStop | Verdict::Retry
            ) {
                by_project.entry(run.project_id).or_default().push(run.id);
            }
        }
        let mut canceled = Vec::new();
        let mut requested = Vec::new();
        let mut retried: Vec<(i64, i64)> = Vec::new();
        for (project_id, ids) in &by_project {
            let batch = RunBatch {
                project_id: *project_id,
                ids,
                filter,
            };
            match request.action {
                BulkAction::Cancel => {
                    let done = self.store.cancel_runs(self.actor(), &batch).await?;
                    canceled.extend(done.canceled);
                    requested.extend(done.requested);
                }
                BulkAction::Retry => {
                    retried.extend(self.store.retry_runs(self.actor(), &batch).await?)
                }
            }
        }
        let fresh: Vec<Run> = if request.fresh {
            let mut ids: Vec<i64> = canceled.iter().chain(&requested).copied().collect();
            ids.extend(retried.iter().map(|(_, new)| *new));
            self.runs_by_ids(ids).await?
        } else {
            Vec::new()
        };
        let now = |run: Run, id: i64| fresh.iter().find(|r| r.id == id).cloned().unwrap_or(run);
        let mut items = Vec::with_capacity(page.len());
        for (run, verdict) in page {
            let id = run.id;
            let (outcome, reason, run) = match verdict {
                Verdict::Cancel | Verdict::RequestStop if canceled.contains(&id) => {
                    (BulkOutcome::Canceled, None, now(run, id))
                }
                Verdict::Cancel | Verdict::RequestStop if requested.contains(&id) => {
                    (BulkOutcome::Requested, None, now(run, id))
                }
                Verdict::Retry => match retried.iter().find(|(old, _)| *old == id) {
                    Some((_, new)) => (BulkOutcome::Retried, None, now(run, *new)),
                    None => (BulkOutcome::Skipped, Some(CHANGED.to_owned()), run),
                },
                Verdict::Cancel | Verdict::RequestStop => {
                    (BulkOutcome::Skipped, Some(CHANGED.to_owned()), run)
                }
                Verdict::AlreadyCanceled => (BulkOutcome::AlreadyCanceled, None, run),
                Verdict::NotApplicable(why) | Verdict::Forbidden(why) => {
                    (BulkOutcome::Skipped, Some(why), run)
                }
            };
            match outcome {
                BulkOutcome::Canceled => tally.add(&Verdict::Cancel, 1, ""),
                BulkOutcome::Requested => tally.add(&Verdict::RequestStop, 1, ""),
                BulkOutcome::Retried => tally.add(&Verdict::Retry, 1, ""),
                BulkOutcome::AlreadyCanceled => tally.add(&Verdict::AlreadyCanceled, 1, ""),
                _ if reason.as_deref() == Some(CHANGED) => {
                    tally.matched += 1;
                    tally.changed_meanwhile += 1;
                }
                _ => {
                    let v = if reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("permission denied"))
                    {
                        Verdict::Forbidden(String::new())
                    } else {
                        Verdict::NotApplicable(String::new())
                    };
                    tally.add(&v, 1, &run.project);
                }
            }
            items.push(BulkItem {
                run,
                outcome,
                reason,
            });
        }
        Ok(items)
    }

    /// These runs as they are now (unknown ids left out).
    async fn runs_by_ids(&self, ids: Vec<i64>) -> OpsResult<Vec<Run>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = RunFilter {
            limit: ids.len() as i64,
            conditions: vec![RunCondition::NumberIn(RunNumber::Id, ids)],
            ..RunFilter::default()
        };
        Ok(self.store.list_runs(&filter).await?)
    }
}

const CHANGED: &str = "its state changed meanwhile";

/// A bulk cancel or retry as the CLI asks for it.
#[derive(Debug, Clone, Copy)]
pub struct BulkRequest<'a> {
    pub action: BulkAction,
    pub target: RunTarget<'a>,
    pub dry_run: bool,
    /// Answer runs as they are after the change (costs a read per batch).
    pub fresh: bool,
}

/// A target resolved: ids newest first, or the store's filter with its text.
enum BulkSelection {
    Ids(Vec<i64>),
    Where(RunFilter, String),
}

fn dry_item(run: Run, verdict: Verdict) -> BulkItem {
    let (outcome, reason) = match verdict {
        Verdict::Cancel => (BulkOutcome::WouldCancel, None),
        Verdict::RequestStop => (BulkOutcome::WouldRequestStop, None),
        Verdict::Retry => (BulkOutcome::WouldRetry, None),
        Verdict::AlreadyCanceled => (BulkOutcome::AlreadyCanceled, None),
        Verdict::NotApplicable(why) | Verdict::Forbidden(why) => (BulkOutcome::Skipped, Some(why)),
    };
    BulkItem {
        run,
        outcome,
        reason,
    }
}
