use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::{InvalidInput, check_identifier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowType {
    Build,
    Test,
    Deploy,
    Backup,
    Upgrade,
    Service,
}

impl WorkflowType {
    pub const ALL: [WorkflowType; 6] = [
        Self::Build,
        Self::Test,
        Self::Deploy,
        Self::Backup,
        Self::Upgrade,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Build => "build",
            Self::Test => "test",
            Self::Deploy => "deploy",
            Self::Backup => "backup",
            Self::Upgrade => "upgrade",
            Self::Service => "service",
        }
    }
}

impl fmt::Display for WorkflowType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkflowType {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            InvalidInput::new(format!(
                "unknown workflow type {s:?}: expected one of build, test, deploy, backup, upgrade, service"
            ))
        })
    }
}

/// What a worker can execute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    pub id: i64,
    pub project_id: i64,
    pub project: String,
    pub name: String,
    #[serde(rename = "type")]
    pub workflow_type: WorkflowType,
    pub queue: String,
    pub command: String,
    pub timeout_secs: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_TIMEOUT_SECS: i32 = 3600;
pub const MAX_TIMEOUT_SECS: i32 = 7 * 24 * 3600;
const MAX_COMMAND_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    pub project_id: i64,
    pub name: String,
    pub workflow_type: WorkflowType,
    pub queue: String,
    pub command: String,
    pub timeout_secs: i32,
}

impl NewWorkflow {
    pub fn new(
        project_id: i64,
        name: &str,
        workflow_type: WorkflowType,
        command: &str,
        queue: Option<&str>,
        timeout_secs: Option<i64>,
    ) -> Result<Self, InvalidInput> {
        check_workflow_name(name)?;
        let queue = queue.unwrap_or(DEFAULT_QUEUE);
        check_queue_name(queue)?;
        if command.trim().is_empty() || command.len() > MAX_COMMAND_BYTES || command.contains('\0')
        {
            return Err(InvalidInput::new(
                "invalid command: it must be non-empty, under 64 KiB and free of NUL bytes",
            ));
        }
        let timeout = timeout_secs.unwrap_or(i64::from(DEFAULT_TIMEOUT_SECS));
        let timeout_secs = i32::try_from(timeout)
            .ok()
            .filter(|t| (1..=MAX_TIMEOUT_SECS).contains(t))
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "invalid timeout {timeout}: use 1 to {MAX_TIMEOUT_SECS} seconds"
                ))
            })?;
        Ok(Self {
            project_id,
            name: name.to_owned(),
            workflow_type,
            queue: queue.to_owned(),
            command: command.to_owned(),
            timeout_secs,
        })
    }
}

/// Workflow names follow the seeds' camelCase style (`processBilling`), so upper case is allowed.
pub fn check_workflow_name(name: &str) -> Result<(), InvalidInput> {
    let ok = name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InvalidInput::new(format!(
            "invalid workflow name {name:?}: use 1 to 63 letters, digits, '_', '.', '-', a letter first"
        )))
    }
}

/// Queue names appear in NOTIFY payloads and in `<schema>-tasks` of manifests.
pub fn check_queue_name(queue: &str) -> Result<(), InvalidInput> {
    check_identifier("queue name", queue, 63, &['-', '.'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_types_round_trip() {
        for t in WorkflowType::ALL {
            assert_eq!(t.as_str().parse::<WorkflowType>(), Ok(t));
        }
        assert!("Build".parse::<WorkflowType>().is_err());
    }

    #[test]
    fn new_workflow_validates_every_field() {
        let ok = NewWorkflow::new(1, "processBilling", WorkflowType::Build, "make", None, None);
        assert_eq!(ok.as_ref().map(|w| w.queue.as_str()), Ok("default"));
        assert_eq!(ok.map(|w| w.timeout_secs), Ok(3600));
        let t = WorkflowType::Test;
        assert!(NewWorkflow::new(1, "", t, "x", None, None).is_err());
        assert!(NewWorkflow::new(1, "a b", t, "x", None, None).is_err());
        assert!(NewWorkflow::new(1, "ok", t, "  ", None, None).is_err());
        assert!(NewWorkflow::new(1, "ok", t, "x", Some("Bad Queue"), None).is_err());
        assert!(NewWorkflow::new(1, "ok", t, "x", Some("billing-tasks"), None).is_ok());
        assert!(NewWorkflow::new(1, "ok", t, "x", None, Some(0)).is_err());
        assert!(NewWorkflow::new(1, "ok", t, "x", None, Some(i64::MAX)).is_err());
        assert!(NewWorkflow::new(1, "ok", t, "x", None, Some(604_800)).is_ok());
    }
}
