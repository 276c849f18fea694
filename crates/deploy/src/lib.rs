//! Deployers: how a service's worker gets launched. `command` runs templated shell commands
//! (create, deploy, rollback) with retries and backoff; `none` launches nothing and waits for a
//! worker to heartbeat. Every step's output goes to a sink (the worker registry) as it happens.

/// The pure layer below, under the name the modules of this crate use for it.
use ospdeck_domain as domain;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::domain::deployment::{DeployAttempt, DeployStep, bounded_output};

/// `[deployer]` in config.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployerConfig {
    #[serde(default)]
    pub kind: DeployerKind,
    /// Runs once, before the first deploy (e.g. create the platform's service).
    pub create: Option<String>,
    pub deploy: Option<String>,
    /// Runs after the last failed attempt.
    pub rollback: Option<String>,
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait before retry n is backoff_secs × 2^(n-1).
    #[serde(default = "default_backoff")]
    pub backoff_secs: f64,
    #[serde(default = "default_step_timeout")]
    pub timeout_secs: u64,
    /// Where manifests are written for the deploy step to read (default: <data dir>/manifests).
    pub manifest_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployerKind {
    #[default]
    None,
    Command,
}

fn default_attempts() -> u32 {
    3
}

fn default_backoff() -> f64 {
    5.0
}

fn default_step_timeout() -> u64 {
    600
}

impl Default for DeployerConfig {
    fn default() -> Self {
        Self {
            kind: DeployerKind::None,
            create: None,
            deploy: None,
            rollback: None,
            attempts: default_attempts(),
            backoff_secs: default_backoff(),
            timeout_secs: default_step_timeout(),
            manifest_dir: None,
        }
    }
}

impl DeployerConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.kind == DeployerKind::Command && self.deploy.as_deref().is_none_or(str::is_empty) {
            return Err("[deployer] kind = \"command\" needs a `deploy` command".into());
        }
        if !(1..=20).contains(&self.attempts) {
            return Err("[deployer] attempts must be 1 to 20".into());
        }
        if !(0.0..=3600.0).contains(&self.backoff_secs) {
            return Err("[deployer] backoff_secs must be 0 to 3600".into());
        }
        Ok(())
    }
}

/// What the commands may use: as `{name}` in the template (shell-quoted) or as environment.
#[derive(Debug, Clone)]
pub struct DeployContext {
    pub schema: String,
    pub service_name: String,
    pub manifest_id: i64,
    pub manifest_path: PathBuf,
    pub task_queue: String,
}

impl DeployContext {
    fn vars(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("schema", self.schema.clone()),
            ("service_name", self.service_name.clone()),
            ("manifest_id", self.manifest_id.to_string()),
            ("manifest_path", self.manifest_path.display().to_string()),
            ("task_queue", self.task_queue.clone()),
        ])
    }

    fn env(&self, attempt: u32) -> Vec<(&'static str, String)> {
        vec![
            ("SERVICE_SCHEMA", self.schema.clone()),
            ("SERVICE_NAME", self.service_name.clone()),
            ("MANIFEST_ID", self.manifest_id.to_string()),
            ("MANIFEST_PATH", self.manifest_path.display().to_string()),
            ("TASK_QUEUE", self.task_queue.clone()),
            ("DEPLOY_ATTEMPT", attempt.to_string()),
        ]
    }
}

/// Single-quotes a value for sh, so a service name can never become a command.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Replaces `{schema}`, `{service_name}`, `{manifest_id}`, `{manifest_path}` and `{task_queue}`
/// with shell-quoted values; other braces are left alone.
pub fn render(template: &str, ctx: &DeployContext) -> String {
    let mut out = template.to_owned();
    for (name, value) in ctx.vars() {
        out = out.replace(&format!("{{{name}}}"), &shell_quote(&value));
    }
    out
}

/// Where step results go as they happen.
#[async_trait]
pub trait StepSink: Send {
    async fn record(&mut self, step: &DeployAttempt);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployOutcome {
    /// The deploy command succeeded on this attempt.
    Deployed { attempt: u32 },
    /// Every attempt failed; the rollback ran if one is configured (Some(exit code)).
    Failed {
        attempts: u32,
        rollback: Option<Option<i32>>,
    },
    /// Nothing to launch (kind none): a worker's heartbeat will mark it deployed.
    AwaitingWorker,
}

/// Runs the configured deployment with retries; rollback after the final failure.
pub async fn deploy(
    config: &DeployerConfig,
    ctx: &DeployContext,
    sink: &mut dyn StepSink,
) -> DeployOutcome {
    if config.kind == DeployerKind::None {
        return DeployOutcome::AwaitingWorker;
    }
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    let mut created = config.create.is_none();
    for attempt in 1..=config.attempts.max(1) {
        if attempt > 1 {
            let wait = config.backoff_secs * f64::from(2u32.saturating_pow(attempt - 2));
            tokio::time::sleep(Duration::from_secs_f64(wait.min(3600.0))).await;
        }
        if !created && let Some(create) = &config.create {
            let step = run_step(DeployStep::Create, attempt, create, ctx, timeout).await;
            let ok = step.exit_code == Some(0);
            sink.record(&step).await;
            if !ok {
                continue;
            }
            created = true;
        }
        let Some(deploy) = &config.deploy else {
            break;
        };
        let step = run_step(DeployStep::Deploy, attempt, deploy, ctx, timeout).await;
        let ok = step.exit_code == Some(0);
        sink.record(&step).await;
        if ok {
            return DeployOutcome::Deployed { attempt };
        }
    }
    let rollback = match &config.rollback {
        Some(cmd) => {
            let step = run_step(DeployStep::Rollback, config.attempts, cmd, ctx, timeout).await;
            let code = step.exit_code;
            sink.record(&step).await;
            Some(code)
        }
        None => None,
    };
    DeployOutcome::Failed {
        attempts: config.attempts,
        rollback,
    }
}

/// One command through `sh -c`, stdout and stderr together, bounded to its tail.
async fn run_step(
    step: DeployStep,
    attempt: u32,
    template: &str,
    ctx: &DeployContext,
    timeout: Duration,
) -> DeployAttempt {
    let started_at = Utc::now();
    let command = render(template, ctx);
    let mut child = match tokio::process::Command::new("sh")
        .arg("-c")
        // Both streams into one pipe, in the order the command wrote them.
        .arg(format!("exec 2>&1; {command}"))
        .envs(ctx.env(attempt))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return DeployAttempt {
                attempt: attempt as i32,
                step,
                exit_code: None,
                output: format!("cannot start `sh -c`: {e}"),
                started_at,
                finished_at: Utc::now(),
            };
        }
    };
    let mut stdout = child.stdout.take();
    let read = async {
        let mut buf = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_end(&mut buf).await;
        }
        buf
    };
    let result = tokio::time::timeout(timeout, async {
        let (buf, status) = tokio::join!(read, child.wait());
        (buf, status)
    })
    .await;
    let (output, exit_code) = match result {
        Ok((buf, Ok(status))) => (String::from_utf8_lossy(&buf).into_owned(), status.code()),
        Ok((buf, Err(e))) => (
            format!(
                "{}\nwaiting for the command failed: {e}",
                String::from_utf8_lossy(&buf)
            ),
            None,
        ),
        Err(_) => {
            let _ = child.kill().await;
            (format!("timed out after {}s", timeout.as_secs()), None)
        }
    };
    DeployAttempt {
        attempt: attempt as i32,
        step,
        exit_code,
        output: bounded_output(&output),
        started_at,
        finished_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DeployContext {
        DeployContext {
            schema: "telecom_billing".into(),
            service_name: "Bob's $(rm -rf /) service".into(),
            manifest_id: 7,
            manifest_path: "/tmp/m.json".into(),
            task_queue: "telecom_billing-tasks".into(),
        }
    }

    #[test]
    fn templates_quote_every_value() {
        let cmd = render("echo {service_name} {schema} {unknown}", &ctx());
        assert_eq!(
            cmd,
            "echo 'Bob'\\''s $(rm -rf /) service' 'telecom_billing' {unknown}"
        );
    }

    #[test]
    fn command_kind_needs_a_deploy_command() {
        let config = DeployerConfig {
            kind: DeployerKind::Command,
            ..Default::default()
        };
        assert!(config.check().is_err());
        assert_eq!(DeployerConfig::default().check(), Ok(()));
    }
}
