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
    RunLog, RunOptions, RunStatus,
};
use crate::domain::workflow::Workflow;
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
        let mut filter = RunFilter {
            status: query.status,
            text: query
                .text
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            limit,
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
        Ok(self.store.list_runs(&filter).await?)
    }

    pub async fn claim_runs(
        &self,
        worker: &str,
        queues: &[String],
        limit: u32,
        lease: Duration,
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
