//! Deploying a service's worker: the manifest is written where the deploy step reads it, the
//! configured deployer runs, and the worker registry keeps every step's output and the result.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use super::{Ops, OpsError, OpsResult, Scoped};
use crate::domain::deployment::{DeployAttempt, DeploymentStatus, WorkerDeployment};
use crate::domain::manifest::task_queue;
use crate::domain::permission::Permission;
use ospdeck_deploy::{DeployContext, DeployOutcome, DeployerConfig, DeployerKind, StepSink};
use ospdeck_store::Store;
use ospdeck_store::services::DeploymentUpdate;

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub deployment: WorkerDeployment,
    pub steps: Vec<DeployAttempt>,
    pub summary: String,
}

impl DeployReport {
    pub fn deployed(&self) -> bool {
        self.deployment.status != DeploymentStatus::Failed
    }
}

/// Keeps each step in the registry the moment it ends, so a crash later loses nothing.
struct RegistrySink {
    store: Arc<dyn Store>,
    registry_id: i64,
    steps: Vec<DeployAttempt>,
}

#[async_trait]
impl StepSink for RegistrySink {
    async fn record(&mut self, step: &DeployAttempt) {
        if let Err(e) = self.store.record_deploy_step(self.registry_id, step).await {
            tracing::warn!(error = %e, registry_id = self.registry_id, "could not keep a deploy step");
        }
        self.steps.push(step.clone());
    }
}

fn write_manifest(path: &Path, content: &serde_json::Value) -> OpsResult<()> {
    let io = |e: std::io::Error| OpsError::Refused(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write then rename: the deploy step never reads half a manifest.
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(content).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Ops {
    /// Deploys the worker of `schema` with `config`, writing its manifest into `manifest_dir`.
    pub async fn deploy_service(
        &self,
        schema: &str,
        config: &DeployerConfig,
        manifest_dir: &Path,
    ) -> OpsResult<DeployReport> {
        config
            .check()
            .map_err(|e| OpsError::Invalid(crate::domain::InvalidInput::new(e)))?;
        let service = self.service(schema).await?;
        // Also for a worker executing a queued deploy-service run: the deployer launches workers
        // with deployment credentials, so whoever runs it deploys.
        self.authorize(
            service.scope(),
            &[Permission::DeployWorker],
            &format!("deploying {schema}"),
        )
        .await?;
        let manifest = self.manifest(schema, None).await?;
        let path: PathBuf = manifest_dir.join(format!("{schema}.json"));
        write_manifest(&path, &manifest.content)?;
        let starting = match config.kind {
            DeployerKind::Command => DeploymentStatus::Deploying,
            DeployerKind::None => DeploymentStatus::Pending,
        };
        let deployment = self
            .store
            .update_deployment(
                self.actor(),
                &service,
                &DeploymentUpdate {
                    status: starting,
                    manifest_id: Some(manifest.id),
                    manifest_path: Some(path.display().to_string()),
                    logs: Some(format!("deploying manifest {}", manifest.version)),
                },
            )
            .await?;
        let ctx = DeployContext {
            schema: schema.to_owned(),
            service_name: service.name.clone(),
            manifest_id: manifest.id,
            manifest_path: path,
            task_queue: task_queue(schema),
        };
        let mut sink = RegistrySink {
            store: self.store.clone(),
            registry_id: deployment.id,
            steps: Vec::new(),
        };
        let outcome = ospdeck_deploy::deploy(config, &ctx, &mut sink).await;
        let (status, summary) = match outcome {
            DeployOutcome::Deployed { attempt } => (
                DeploymentStatus::Deployed,
                format!(
                    "deployed manifest {} on attempt {attempt}",
                    manifest.version
                ),
            ),
            DeployOutcome::Failed { attempts, rollback } => (
                DeploymentStatus::Failed,
                format!(
                    "failed after {attempts} attempt(s); {}",
                    match rollback {
                        None => "no rollback configured".to_owned(),
                        Some(Some(0)) => "rollback ran".to_owned(),
                        Some(code) => format!(
                            "rollback failed too (exit {})",
                            code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
                        ),
                    }
                ),
            ),
            DeployOutcome::AwaitingWorker => (
                DeploymentStatus::Pending,
                format!(
                    "nothing to launch (deployer none): deployed once a worker for {schema} heartbeats \
                     (`ospdeck worker --service {schema}`)"
                ),
            ),
        };
        let deployment = if status == starting {
            deployment
        } else {
            self.store
                .update_deployment(
                    self.actor(),
                    &service,
                    &DeploymentUpdate {
                        status,
                        manifest_id: None,
                        manifest_path: None,
                        logs: Some(summary.clone()),
                    },
                )
                .await?
        };
        Ok(DeployReport {
            deployment,
            steps: sink.steps,
            summary,
        })
    }

    pub async fn deploy_steps(&self, schema: &str) -> OpsResult<Vec<DeployAttempt>> {
        let service = self.service(schema).await?;
        match self.store.deployment(service.id).await? {
            Some(d) => Ok(self.store.deploy_steps(d.id).await?),
            None => Ok(Vec::new()),
        }
    }

    /// A service worker's heartbeat: alive now, and deployed if it was waiting for one.
    pub async fn service_worker_heartbeat(
        &self,
        schema: &str,
        worker_id: &str,
    ) -> OpsResult<WorkerDeployment> {
        super::check_worker_id(worker_id)?;
        let service = self.service(schema).await?;
        self.authorize(
            service.scope(),
            &[Permission::ClaimAndFinishRuns],
            &format!("serving {schema} as a worker"),
        )
        .await?;
        Ok(self
            .store
            .worker_heartbeat(&service, worker_id, env!("CARGO_PKG_VERSION"))
            .await?)
    }
}
