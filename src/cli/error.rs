//! What a failed command tells its caller: one line on stderr (a JSON object under `--json`) and
//! an exit status that says what kind of failure it was, so a script can tell "retry later" from
//! "no such run" without reading the message.

use std::process::ExitCode;

use serde::Serialize;

use crate::ops::OpsError;
use crate::root::RootError;
use crate::store::StoreError;

/// The kinds of failure, each with its own exit status (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Anything without a kind of its own (exit 1).
    Failed,
    /// The command line itself is wrong: an unknown flag, a missing argument (exit 2, as clap).
    Usage,
    /// The project, run, service, version… does not exist (exit 3).
    NotFound,
    /// The caller's role does not allow it, or the store is open read-only (exit 4).
    PermissionDenied,
    /// The current state does not allow it: an illegal transition, a name taken (exit 5).
    Conflict,
    /// The input is malformed or out of range (exit 6).
    Validation,
    /// The store cannot be reached or is busy; trying again later may work (exit 7).
    Unavailable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Failed,
        ErrorKind::Usage,
        ErrorKind::NotFound,
        ErrorKind::PermissionDenied,
        ErrorKind::Conflict,
        ErrorKind::Validation,
        ErrorKind::Unavailable,
    ];

    pub fn exit_status(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::PermissionDenied => 4,
            ErrorKind::Conflict => 5,
            ErrorKind::Validation => 6,
            ErrorKind::Unavailable => 7,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::Usage => "usage",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Validation => "validation",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

/// An error for the user: one line, already worded, and its kind.
#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
        }
    }

    /// A failure with no kind of its own (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError::new(ErrorKind::Failed, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(ErrorKind::Usage, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        CliError::new(ErrorKind::Validation, message)
    }

    /// The line printed on stderr: `error: …`, or under `--json` one JSON object.
    pub fn render(&self, json: bool) -> String {
        let message = crate::domain::one_line(&self.message);
        if json {
            serde_json::json!({ "error": { "kind": self.kind, "message": message } }).to_string()
        } else {
            format!("error: {message}")
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub fn store_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::NotFound(_) => ErrorKind::NotFound,
        StoreError::Conflict(_) => ErrorKind::Conflict,
        StoreError::Invalid(_) => ErrorKind::Validation,
        StoreError::Forbidden(_) | StoreError::ReadOnly(_) => ErrorKind::PermissionDenied,
        StoreError::Unavailable(_) | StoreError::Database(_) => ErrorKind::Unavailable,
        // Waiting does not migrate a store: it needs `db migrate`, which is not a retry.
        StoreError::NotMigrated(_) => ErrorKind::Failed,
    }
}

pub fn ops_kind(e: &OpsError) -> ErrorKind {
    match e {
        OpsError::Invalid(_) => ErrorKind::Validation,
        OpsError::NotFound(_) => ErrorKind::NotFound,
        OpsError::Forbidden(_) => ErrorKind::PermissionDenied,
        OpsError::Refused(_) => ErrorKind::Conflict,
        OpsError::Store(e) => store_kind(e),
    }
}

impl<E: Into<OpsError>> From<E> for CliError {
    fn from(e: E) -> Self {
        let e = e.into();
        CliError::new(ops_kind(&e), e.to_string())
    }
}

impl From<RootError> for CliError {
    fn from(e: RootError) -> Self {
        let kind = match &e {
            RootError::Config(_) => ErrorKind::Validation,
            RootError::Store(e) => store_kind(e),
            RootError::Ops(e) => ops_kind(e),
            RootError::DataDir { .. } => ErrorKind::Failed,
        };
        CliError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_exit_status_and_none_is_success() {
        let mut seen: Vec<u8> = ErrorKind::ALL.iter().map(|k| k.exit_status()).collect();
        assert!(!seen.contains(&0));
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn a_json_error_is_one_line_with_kind_and_message() {
        let e = CliError::new(ErrorKind::NotFound, "run 42 not found\nsecond line");
        let line = e.render(true);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"]["kind"], "not_found");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("run 42 not found")
        );
        assert_eq!(e.render(false).lines().count(), 1);
    }

    #[test]
    fn ops_and_store_errors_keep_their_kind() {
        let cases = [
            (OpsError::NotFound("x".into()), ErrorKind::NotFound),
            (OpsError::Forbidden("x".into()), ErrorKind::PermissionDenied),
            (OpsError::Refused("x".into()), ErrorKind::Conflict),
            (
                OpsError::Store(StoreError::Unavailable("x".into())),
                ErrorKind::Unavailable,
            ),
            (
                OpsError::Store(StoreError::Conflict("x".into())),
                ErrorKind::Conflict,
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(CliError::from(e).kind, kind);
        }
    }
}
