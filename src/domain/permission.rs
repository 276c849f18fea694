//! Who may do what in a project: roles owner > admin > developer > viewer, and one matrix.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::error::InvalidInput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "unknown role {s:?}: owner, admin, developer or viewer"
                ))
            })
    }
}

/// Everything a member can be allowed to do in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Read,
    EnqueueRun,
    CreateWorkflow,
    ProposeManifest,
    PublishDraftTemplate,
    ClaimAndFinishRuns,
    ActivateManifest,
    DeployWorker,
    PromoteTemplate,
    DeprecateTemplate,
    MovePointers,
    CancelAnyRun,
    LockManifest,
    ManageMembers,
    ManageProject,
}

impl Permission {
    pub const ALL: [Permission; 15] = [
        Permission::Read,
        Permission::EnqueueRun,
        Permission::CreateWorkflow,
        Permission::ProposeManifest,
        Permission::PublishDraftTemplate,
        Permission::ClaimAndFinishRuns,
        Permission::ActivateManifest,
        Permission::DeployWorker,
        Permission::PromoteTemplate,
        Permission::DeprecateTemplate,
        Permission::MovePointers,
        Permission::CancelAnyRun,
        Permission::LockManifest,
        Permission::ManageMembers,
        Permission::ManageProject,
    ];

    /// The least role that may do this; every higher role may too.
    pub fn least_role(self) -> Role {
        use Permission::*;
        match self {
            Read => Role::Viewer,
            EnqueueRun | CreateWorkflow | ProposeManifest | PublishDraftTemplate
            | ClaimAndFinishRuns => Role::Developer,
            ActivateManifest | DeployWorker | PromoteTemplate | DeprecateTemplate
            | MovePointers | CancelAnyRun => Role::Admin,
            LockManifest | ManageMembers | ManageProject => Role::Owner,
        }
    }
}

pub fn allowed(role: Role, permission: Permission) -> bool {
    role >= permission.least_role()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix of issue 6, written out row by row, checked against `allowed` for all 60 pairs.
    #[test]
    fn every_role_and_permission_pair() {
        use Permission::*;
        let expected: &[(Role, &[Permission])] = &[
            (Role::Viewer, &[Read]),
            (
                Role::Developer,
                &[
                    Read,
                    EnqueueRun,
                    CreateWorkflow,
                    ProposeManifest,
                    PublishDraftTemplate,
                    ClaimAndFinishRuns,
                ],
            ),
            (
                Role::Admin,
                &[
                    Read,
                    EnqueueRun,
                    CreateWorkflow,
                    ProposeManifest,
                    PublishDraftTemplate,
                    ClaimAndFinishRuns,
                    ActivateManifest,
                    DeployWorker,
                    PromoteTemplate,
                    DeprecateTemplate,
                    MovePointers,
                    CancelAnyRun,
                ],
            ),
            (Role::Owner, &Permission::ALL),
        ];
        let mut pairs = 0;
        for (role, may) in expected {
            for p in Permission::ALL {
                assert_eq!(allowed(*role, p), may.contains(&p), "{role} {p:?}");
                pairs += 1;
            }
        }
        assert_eq!(pairs, 60);
    }

    #[test]
    fn roles_parse_and_order() {
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Developer);
    }
}
