//! Services and their governed manifests: create whole or not at all, propose, activate, lock.

use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use super::{Ops, OpsError, OpsResult, RunQuery, Scoped};
use crate::domain::deployment::{
    DeployAttempt, DeployStep, DeploymentStatus, Liveness, WorkerDeployment, liveness,
};
use crate::domain::manifest::{
    self, Bump, DEFAULT_LOCKED_FIELDS, Drift, FIRST_VERSION, FieldChange, Manifest,
    ManifestContent, ManifestStatus, activation_refused, check_locked_fields, parse_manifest,
    parse_version,
};
use crate::domain::permission::Permission;
use crate::domain::run::{NewRun, Run};
use crate::domain::service::{Service, WorkflowSpec, check_schema_name, check_service_name};
use crate::domain::worker::QueueStat;
use crate::domain::workflow::Workflow;
use crate::domain::workflow::{NewWorkflow, WorkflowType};
use ospdeck_domain::manifest::ManifestHead;
use ospdeck_domain::service::CreatedService;
use ospdeck_store::services::NewServiceRecord;

/// The built-in command of the deploy workflow: the worker calls the deployer instead of a shell.
pub const DEPLOY_COMMAND: &str = "ospdeck:deploy-service";
pub const DEPLOY_WORKFLOW: &str = "deploy-service";
pub const DEPLOY_QUEUE: &str = "ospdeck-deploy";
/// Runs `service show` lists.
const RECENT_RUNS: i64 = 10;

/// A service as the operator asks for it: flags, or a manifest file.
#[derive(Debug, Clone, Default)]
pub struct CreateService<'a> {
    pub project: &'a str,
    pub name: Option<&'a str>,
    pub schema: Option<&'a str>,
    pub workflows: Vec<WorkflowSpec>,
    /// Manifest text (`--from-file`): name, schema and workflows come from it.
    pub manifest: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceOverview {
    #[serde(flatten)]
    pub service: Service,
    pub manifest: Option<ManifestHead>,
    pub deployment: Option<WorkerDeployment>,
    pub worker: Liveness,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceDetail {
    #[serde(flatten)]
    pub overview: ServiceOverview,
    pub recent_runs: Vec<Run>,
    /// Every manifest version, oldest first.
    pub history: Vec<ManifestHead>,
    /// The deployed worker's manifest against the governing one.
    pub drift: Drift,
    /// The service's workflow rows (`<schema>.<name>`).
    pub workflows: Vec<Workflow>,
    /// The load of each queue those workflows run on.
    pub queues: Vec<QueueStat>,
    /// The worker's deployments, newest first, each with its steps in order (every attempt's
    /// create / deploy / rollback and their output).
    pub deployments: Vec<Vec<DeployAttempt>>,
}

/// Deployments the detail keeps (each step's output is bounded already).
const RECENT_DEPLOYMENTS: usize = 5;

/// Splits the registry's step records (in the order they were kept) into deployments: a
/// deployment's steps go forward (attempt 1 create, deploy, attempt 2 …, rollback last), so a
/// step that does not come after the previous one starts the next deployment.
pub fn group_deployments(steps: Vec<DeployAttempt>) -> Vec<Vec<DeployAttempt>> {
    let order = |s: &DeployAttempt| {
        let step = match s.step {
            DeployStep::Create => 0,
            DeployStep::Deploy => 1,
            DeployStep::Rollback => 2,
        };
        (s.attempt, step)
    };
    let mut deployments: Vec<Vec<DeployAttempt>> = Vec::new();
    for step in steps {
        match deployments.last_mut() {
            Some(current)
                if current
                    .last()
                    .is_some_and(|prev| order(prev) < order(&step)) =>
            {
                current.push(step)
            }
            _ => deployments.push(vec![step]),
        }
    }
    deployments.reverse();
    deployments
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    #[serde(flatten)]
    pub deployment: WorkerDeployment,
    pub liveness: Liveness,
}

/// The workflow rows a manifest asks for: `<schema>.<name>`, type service, on its task queue.
fn service_workflows(
    project_id: i64,
    schema: &str,
    content: &ManifestContent,
) -> OpsResult<Vec<NewWorkflow>> {
    content
        .workflows
        .iter()
        .map(|w| {
            Ok(NewWorkflow::new(
                project_id,
                &format!("{schema}.{}", w.name),
                WorkflowType::Service,
                &w.command_or_default(),
                Some(&w.task_queue),
                None,
            )?)
        })
        .collect()
}

/// A manifest draft to propose: `text` is the JSON for service `schema`; its version is `version`
/// when given, else the highest existing one bumped by `bump` (patch when unset).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ManifestProposal<'a> {
    pub schema: &'a str,
    pub text: &'a str,
    pub version: Option<&'a str>,
    pub bump: Option<Bump>,
}

impl<'a> ManifestProposal<'a> {
    pub fn new(schema: &'a str, text: &'a str) -> Self {
        Self {
            schema,
            text,
            version: None,
            bump: None,
        }
    }
}

impl Ops {
    pub async fn create_service(&self, req: &CreateService<'_>) -> OpsResult<CreatedService> {
        let project = self.project(req.project).await?;
        // A new service activates its first manifest and queues its worker's deployment.
        self.authorize(
            project.scope(),
            &[Permission::ActivateManifest, Permission::DeployWorker],
            "creating a service",
        )
        .await?;
        let content = match req.manifest {
            Some(text) => {
                // The file names the schema; flags may repeat it but not contradict it.
                let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                    OpsError::Invalid(crate::domain::InvalidInput::new(format!(
                        "invalid manifest: {e}"
                    )))
                })?;
                let schema = req
                    .schema
                    .or_else(|| raw.get("schema_name").and_then(|v| v.as_str()))
                    .unwrap_or("");
                check_schema_name(schema)?;
                let content = parse_manifest(text, schema)?;
                if let Some(name) = req.name
                    && name != content.service_name
                {
                    return Err(OpsError::Invalid(crate::domain::InvalidInput::new(
                        format!(
                            "--name {name:?} differs from the manifest's service_name {:?}",
                            content.service_name
                        ),
                    )));
                }
                content
            }
            None => {
                let (Some(name), Some(schema)) = (req.name, req.schema) else {
                    return Err(OpsError::Invalid(crate::domain::InvalidInput::new(
                        "give --name and --schema, or --from-file with a manifest",
                    )));
                };
                check_service_name(name)?;
                check_schema_name(schema)?;
                let content = ManifestContent::initial(name.trim(), schema, &req.workflows);
                content.validate(schema)?;
                content
            }
        };
        let schema = content.schema_name.clone();
        let workflows = service_workflows(project.id, &schema, &content)?;
        let deploy_workflow = NewWorkflow::new(
            project.id,
            DEPLOY_WORKFLOW,
            WorkflowType::Deploy,
            DEPLOY_COMMAND,
            Some(DEPLOY_QUEUE),
            Some(3600),
        )?;
        let record = NewServiceRecord {
            project_id: project.id,
            name: content.service_name.clone(),
            schema: schema.clone(),
            version: FIRST_VERSION.to_owned(),
            content: content.to_value(),
            locked_fields: DEFAULT_LOCKED_FIELDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            workflows,
            deploy_workflow,
            // The deployer retries by itself; the run is one deployment.
            deploy_run: NewRun {
                max_attempts: 1,
                ..NewRun::with_payload(project.id, 0, json!({ "service": schema }))
            },
        };
        Ok(self.store.create_service(self.actor(), &record).await?)
    }

    pub async fn service(&self, schema: &str) -> OpsResult<Service> {
        check_schema_name(schema)?;
        self.store.find_service(schema).await?.ok_or_else(|| {
            OpsError::NotFound(format!(
                "unknown service {schema:?} (see `ospdeck service list`)"
            ))
        })
    }

    /// One service as `service list` shows it.
    pub async fn service_overview(&self, schema: &str) -> OpsResult<ServiceOverview> {
        let service = self.service(schema).await?;
        let manifest = self
            .store
            .manifest_history(service.id)
            .await?
            .into_iter()
            .find(|m| matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked));
        let deployment = self.store.deployment(service.id).await?;
        let worker = liveness(
            Utc::now(),
            deployment.as_ref().and_then(|d| d.last_heartbeat),
        );
        Ok(ServiceOverview {
            service,
            manifest,
            deployment,
            worker,
        })
    }

    pub async fn list_services(&self) -> OpsResult<Vec<ServiceOverview>> {
        let services = self.store.list_services().await?;
        let mut manifests = self.store.governing_manifests().await?;
        let mut registry = self.store.worker_registry().await?;
        let now = Utc::now();
        Ok(services
            .into_iter()
            .map(|service| {
                let manifest = manifests
                    .iter()
                    .position(|m| m.service_id == service.id)
                    .map(|i| manifests.swap_remove(i));
                let deployment = registry
                    .iter()
                    .position(|d| d.service_id == service.id)
                    .map(|i| registry.swap_remove(i));
                let worker = liveness(now, deployment.as_ref().and_then(|d| d.last_heartbeat));
                ServiceOverview {
                    service,
                    manifest,
                    deployment,
                    worker,
                }
            })
            .collect())
    }

    pub async fn service_detail(&self, schema: &str) -> OpsResult<ServiceDetail> {
        let service = self.service(schema).await?;
        let history = self.manifest_history(schema).await?;
        let manifest = history
            .iter()
            .find(|m| matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked))
            .cloned();
        let deployment = self.store.deployment(service.id).await?;
        // The registry names a manifest from the moment a deployment starts; only a deployed
        // worker is known to run it.
        let running = deployment
            .as_ref()
            .filter(|d| d.status == DeploymentStatus::Deployed)
            .and_then(|d| d.manifest_id);
        let drift = manifest::drift(running, &history);
        let mut deployments = match &deployment {
            Some(d) => group_deployments(self.store.deploy_steps(d.id).await?),
            None => Vec::new(),
        };
        deployments.truncate(RECENT_DEPLOYMENTS);
        let prefix = format!("{schema}.");
        let workflows: Vec<Workflow> = self
            .store
            .list_workflows(Some(service.project_id))
            .await?
            .into_iter()
            .filter(|w| w.name.starts_with(&prefix))
            .collect();
        let mut queue_names: Vec<String> = workflows.iter().map(|w| w.queue.clone()).collect();
        queue_names.push(manifest::task_queue(schema));
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        let mut queues: Vec<QueueStat> = self
            .store
            .queue_stats(hour_ago)
            .await?
            .into_iter()
            .filter(|q| queue_names.contains(&q.queue))
            .collect();
        // A queue nothing was ever enqueued on has no row: it is shown empty, not left out.
        queue_names.sort();
        queue_names.dedup();
        for name in queue_names {
            if !queues.iter().any(|q| q.queue == name) {
                queues.push(QueueStat {
                    queue: name,
                    ..QueueStat::default()
                });
            }
        }
        queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        let worker = liveness(
            Utc::now(),
            deployment.as_ref().and_then(|d| d.last_heartbeat),
        );
        // The service's runs: its own workflows (`<schema>.…` on `<schema>-tasks`) and the
        // project's deploy runs that name it in their payload.
        let mut recent_runs = self
            .list_runs(&RunQuery {
                text: Some(schema),
                limit: Some(RECENT_RUNS),
                ..Default::default()
            })
            .await?;
        let deploys = self
            .list_runs(&RunQuery {
                project: Some(&service.project),
                workflow: Some(DEPLOY_WORKFLOW),
                limit: Some(200),
                ..Default::default()
            })
            .await?;
        recent_runs.extend(
            deploys
                .into_iter()
                .filter(|r| r.payload.get("service").and_then(|s| s.as_str()) == Some(schema)),
        );
        recent_runs.sort_by_key(|r| std::cmp::Reverse(r.id));
        recent_runs.dedup_by_key(|r| r.id);
        recent_runs.truncate(RECENT_RUNS as usize);
        Ok(ServiceDetail {
            overview: ServiceOverview {
                service,
                manifest,
                deployment,
                worker,
            },
            recent_runs,
            history,
            drift,
            workflows,
            queues,
            deployments,
        })
    }

    /// A version, or the governing one when none is named.
    pub async fn manifest(&self, schema: &str, version: Option<&str>) -> OpsResult<Manifest> {
        let service = self.service(schema).await?;
        let version = match version {
            Some(v) => parse_version(v)?.to_string(),
            None => self
                .store
                .manifest_history(service.id)
                .await?
                .into_iter()
                .find(|m| matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked))
                .map(|m| m.version)
                .ok_or_else(|| OpsError::NotFound(format!("{schema} has no active manifest")))?,
        };
        self.store
            .manifest(service.id, &version)
            .await?
            .ok_or_else(|| {
                OpsError::NotFound(format!("{schema} has no manifest version {version}"))
            })
    }

    pub async fn manifest_history(&self, schema: &str) -> OpsResult<Vec<ManifestHead>> {
        let service = self.service(schema).await?;
        let mut history = self.store.manifest_history(service.id).await?;
        history.sort_by(|a, b| {
            let va = semver::Version::parse(&a.version).ok();
            let vb = semver::Version::parse(&b.version).ok();
            va.cmp(&vb)
        });
        Ok(history)
    }

    pub async fn manifest_diff(
        &self,
        schema: &str,
        from: &str,
        to: &str,
    ) -> OpsResult<Vec<FieldChange>> {
        let a = self.manifest(schema, Some(from)).await?;
        let b = self.manifest(schema, Some(to)).await?;
        Ok(manifest::diff(&a.content, &b.content))
    }

    /// A new draft: validated content, locked fields unchanged, version given or bumped from the
    /// highest existing one (patch by default).
    pub async fn propose_manifest(&self, proposal: &ManifestProposal<'_>) -> OpsResult<Manifest> {
        let ManifestProposal {
            schema,
            text,
            version,
            bump,
        } = *proposal;
        let service = self.service(schema).await?;
        self.authorize(
            service.scope(),
            &[Permission::ProposeManifest],
            &format!("proposing a manifest for {schema}"),
        )
        .await?;
        let content = parse_manifest(text, schema)?;
        let value = content.to_value();
        let history = self.store.manifest_history(service.id).await?;
        let governing = history
            .iter()
            .find(|m| matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked));
        let locked_fields = match governing {
            Some(head) => {
                let current = self
                    .store
                    .manifest(service.id, &head.version)
                    .await?
                    .ok_or_else(|| OpsError::NotFound(format!("{schema} lost its manifest")))?;
                check_locked_fields(&current.content, &value, &current.locked_fields)?;
                current.locked_fields
            }
            None => DEFAULT_LOCKED_FIELDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let version = match (version, bump) {
            (Some(_), Some(_)) => {
                return Err(OpsError::Invalid(crate::domain::InvalidInput::new(
                    "give --version or --bump, not both",
                )));
            }
            (Some(v), None) => parse_version(v)?,
            (None, bump) => {
                let highest = history
                    .iter()
                    .filter_map(|m| semver::Version::parse(&m.version).ok())
                    .max()
                    .unwrap_or_else(|| semver::Version::new(0, 0, 0));
                manifest::bump(&highest, bump.unwrap_or(Bump::Patch))?
            }
        };
        if !version.pre.is_empty() || !version.build.is_empty() {
            return Err(OpsError::Invalid(crate::domain::InvalidInput::new(
                format!("invalid version {version}: manifests use plain MAJOR.MINOR.PATCH"),
            )));
        }
        Ok(self
            .store
            .insert_draft(
                self.actor(),
                &service,
                &version.to_string(),
                &value,
                &locked_fields,
            )
            .await?)
    }

    /// New content for an existing draft (editing continues it instead of making another
    /// version): validated, locked fields unchanged, the draft's version kept.
    pub async fn revise_draft(
        &self,
        schema: &str,
        version: &str,
        text: &str,
    ) -> OpsResult<Manifest> {
        let service = self.service(schema).await?;
        self.authorize(
            service.scope(),
            &[Permission::ProposeManifest],
            &format!("revising a draft of {schema}"),
        )
        .await?;
        let version = parse_version(version)?.to_string();
        let content = parse_manifest(text, schema)?;
        let value = content.to_value();
        let target = self
            .store
            .manifest(service.id, &version)
            .await?
            .ok_or_else(|| {
                OpsError::NotFound(format!("{schema} has no manifest version {version}"))
            })?;
        if !target.status.content_can_change() {
            return Err(OpsError::Refused(format!(
                "{schema} {version} is {}: only a draft's content can change (propose a new version)",
                target.status
            )));
        }
        check_locked_fields(&target.content, &value, &target.locked_fields)?;
        let history = self.store.manifest_history(service.id).await?;
        if let Some(head) = history
            .iter()
            .find(|m| matches!(m.status, ManifestStatus::Active | ManifestStatus::Locked))
            && let Some(current) = self.store.manifest(service.id, &head.version).await?
        {
            check_locked_fields(&current.content, &value, &current.locked_fields)?;
        }
        Ok(self
            .store
            .revise_draft(self.actor(), &service, &version, &value)
            .await?)
    }

    /// Activates a draft: the governing version is superseded and the service's workflows follow.
    /// The version that is active already answers as it is (see [`Self::activate_manifest_applied`]).
    pub async fn activate_manifest(&self, schema: &str, version: &str) -> OpsResult<Manifest> {
        Ok(self.activate_manifest_applied(schema, version).await?.value)
    }

    /// [`Self::activate_manifest`], saying whether it activated or found the version active.
    pub async fn activate_manifest_applied(
        &self,
        schema: &str,
        version: &str,
    ) -> OpsResult<Applied<Manifest>> {
        let service = self.service(schema).await?;
        self.authorize(
            service.scope(),
            &[Permission::ActivateManifest],
            &format!("activating a manifest of {schema}"),
        )
        .await?;
        let version = parse_version(version)?.to_string();
        let target = self.manifest_version(&service, &version).await?;
        if target.status == ManifestStatus::Active {
            return Ok(Applied::new(target, Outcome::AlreadyActive));
        }
        let history = self.store.manifest_history(service.id).await?;
        if let Some(why) = activation_refused(schema, &version, target.status, &history) {
            return Err(OpsError::Refused(why));
        }
        let content: ManifestContent = serde_json::from_value(target.content.clone())
            .map_err(|e| OpsError::Refused(format!("stored manifest does not parse: {e}")))?;
        let workflows = service_workflows(service.project_id, schema, &content)?;
        match self
            .store
            .activate_manifest(self.actor(), &service, &version, &workflows)
            .await
        {
            Ok(m) => Ok(Applied::new(m, Outcome::Activated)),
            // Someone activated it between the read and the write: that is done, not failed.
            Err(e) => match self.manifest_version(&service, &version).await {
                Ok(now) if now.status == ManifestStatus::Active => {
                    Ok(Applied::new(now, Outcome::AlreadyActive))
                }
                _ => Err(e.into()),
            },
        }
    }

    async fn manifest_version(&self, service: &Service, version: &str) -> OpsResult<Manifest> {
        self.store
            .manifest(service.id, version)
            .await?
            .ok_or_else(|| {
                OpsError::NotFound(format!(
                    "{} has no manifest version {version}",
                    service.schema
                ))
            })
    }

    /// The governing version, if it is in `status`.
    async fn governing_in(
        &self,
        service: &Service,
        status: ManifestStatus,
    ) -> OpsResult<Option<Manifest>> {
        let history = self.store.manifest_history(service.id).await?;
        match history.iter().find(|m| m.status == status) {
            Some(head) => Ok(Some(self.manifest_version(service, &head.version).await?)),
            None => Ok(None),
        }
    }

    pub async fn lock_manifest(&self, schema: &str) -> OpsResult<Manifest> {
        Ok(self.lock_manifest_applied(schema).await?.value)
    }

    pub async fn unlock_manifest(&self, schema: &str) -> OpsResult<Manifest> {
        Ok(self.unlock_manifest_applied(schema).await?.value)
    }

    /// Locks the service; a locked one answers as it is, `already_locked`.
    pub async fn lock_manifest_applied(&self, schema: &str) -> OpsResult<Applied<Manifest>> {
        self.move_lock(schema, ManifestStatus::Locked).await
    }

    /// Unlocks the service; an unlocked one answers as it is, `already_unlocked`.
    pub async fn unlock_manifest_applied(&self, schema: &str) -> OpsResult<Applied<Manifest>> {
        self.move_lock(schema, ManifestStatus::Active).await
    }

    /// Moves the governing version to `to` (Locked or Active). The write is conditional on the
    /// other status, so when it finds nothing to move the answer is re-read: a version that got
    /// there meanwhile is "already", anything else the refusal.
    async fn move_lock(&self, schema: &str, to: ManifestStatus) -> OpsResult<Applied<Manifest>> {
        let (from, verb, done, already, refusal) = if to == ManifestStatus::Locked {
            (
                ManifestStatus::Active,
                "locking",
                Outcome::Locked,
                Outcome::AlreadyLocked,
                format!("{schema} has no active manifest to lock"),
            )
        } else {
            (
                ManifestStatus::Locked,
                "unlocking",
                Outcome::Unlocked,
                Outcome::AlreadyUnlocked,
                format!("{schema} has no active manifest to unlock"),
            )
        };
        let service = self.service(schema).await?;
        self.authorize(
            service.scope(),
            &[Permission::LockManifest],
            &format!("{verb} {schema}"),
        )
        .await?;
        if let Some(m) = self.governing_in(&service, to).await? {
            return Ok(Applied::new(m, already));
        }
        match self
            .store
            .set_manifest_lock(self.actor(), &service, from, to)
            .await
        {
            Ok(m) => Ok(Applied::new(m, done)),
            Err(ospdeck_store::StoreError::NotFound(_)) => {
                match self.governing_in(&service, to).await? {
                    Some(m) => Ok(Applied::new(m, already)),
                    None => Err(OpsError::Refused(refusal)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn workers(&self) -> OpsResult<Vec<WorkerView>> {
        let now = Utc::now();
        Ok(self
            .store
            .worker_registry()
            .await?
            .into_iter()
            .map(|deployment| WorkerView {
                liveness: liveness(now, deployment.last_heartbeat),
                deployment,
            })
            .collect())
    }
}

/// What an idempotent verb did: changed something, or found it done already. Either way it
/// succeeded; `already_…` says nothing was written (and nothing audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Activated,
    AlreadyActive,
    Locked,
    AlreadyLocked,
    Unlocked,
    AlreadyUnlocked,
    Promoted,
    AlreadyStable,
    DefaultSet,
    AlreadyDefault,
    Labeled,
    AlreadyLabeled,
    /// An SSH key now names its user.
    Added,
    AlreadyAdded,
}

impl Outcome {
    pub fn is_already(self) -> bool {
        matches!(
            self,
            Self::AlreadyActive
                | Self::AlreadyLocked
                | Self::AlreadyUnlocked
                | Self::AlreadyStable
                | Self::AlreadyDefault
                | Self::AlreadyLabeled
                | Self::AlreadyAdded
        )
    }
}

/// An entity as it is after an idempotent verb, with what the verb did (`"outcome"` in JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Applied<T> {
    #[serde(flatten)]
    pub value: T,
    pub outcome: Outcome,
}

impl<T> Applied<T> {
    pub fn new(value: T, outcome: Outcome) -> Self {
        Self { value, outcome }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn step(attempt: i32, step: DeployStep) -> DeployAttempt {
        DeployAttempt {
            attempt,
            step,
            exit_code: Some(0),
            output: String::new(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
        }
    }

    #[test]
    fn steps_are_grouped_into_deployments_newest_first() {
        use DeployStep::*;
        let steps = vec![
            // A deployment that failed twice and rolled back …
            step(1, Create),
            step(1, Deploy),
            step(2, Create),
            step(2, Deploy),
            step(2, Rollback),
            // … one that worked at once, without a create step …
            step(1, Deploy),
            // … and one that needed a second attempt.
            step(1, Deploy),
            step(2, Deploy),
        ];
        let grouped = group_deployments(steps);
        let shape: Vec<Vec<(i32, &str)>> = grouped
            .iter()
            .map(|d| d.iter().map(|s| (s.attempt, s.step.as_str())).collect())
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![(1, "deploy"), (2, "deploy")],
                vec![(1, "deploy")],
                vec![
                    (1, "create"),
                    (1, "deploy"),
                    (2, "create"),
                    (2, "deploy"),
                    (2, "rollback")
                ],
            ]
        );
        assert!(group_deployments(Vec::new()).is_empty());
    }
}
