//! Who may do what in a project: roles owner > admin > developer > viewer, and one matrix.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
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

impl Permission {
    /// The name the PostgreSQL policies use (`ops.permissions`).
    pub fn as_str(self) -> &'static str {
        use Permission::*;
        match self {
            Read => "read",
            EnqueueRun => "enqueue_run",
            CreateWorkflow => "create_workflow",
            ProposeManifest => "propose_manifest",
            PublishDraftTemplate => "publish_draft_template",
            ClaimAndFinishRuns => "claim_and_finish_runs",
            ActivateManifest => "activate_manifest",
            DeployWorker => "deploy_worker",
            PromoteTemplate => "promote_template",
            DeprecateTemplate => "deprecate_template",
            MovePointers => "move_pointers",
            CancelAnyRun => "cancel_any_run",
            LockManifest => "lock_manifest",
            ManageMembers => "manage_members",
            ManageProject => "manage_project",
        }
    }
}

pub fn allowed(role: Role, permission: Permission) -> bool {
    role >= permission.least_role()
}

/// The least role that holds every one of `needs` (viewer for none).
pub fn least_role_for(needs: &[Permission]) -> Role {
    needs
        .iter()
        .map(|p| p.least_role())
        .max()
        .unwrap_or(Role::Viewer)
}

/// Who is acting, and whether the store lets them past the project roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub user: String,
    /// The store's administrator, to whom project roles do not apply: on PostgreSQL a superuser,
    /// a role with BYPASSRLS (Supabase's service_role) or the owner of the ops tables, exactly the
    /// roles row-level security lets through; on SQLite the owner of the database file.
    pub administrator: bool,
}

impl Identity {
    pub fn administrator(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            administrator: true,
        }
    }

    pub fn member(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            administrator: false,
        }
    }
}

/// The sentence an operator reads when `user` (holding `role` in `project`, or none) may not do
/// `what`, which needs all of `needs`.
pub fn refusal(
    user: &str,
    role: Option<Role>,
    project: &str,
    needs: &[Permission],
    what: &str,
) -> String {
    let least = least_role_for(needs);
    let held = match role {
        Some(r) => format!("{user} is {} {r} there", article(r)),
        None => format!("{user} is not a member of it"),
    };
    let higher = if least == Role::Owner {
        String::new()
    } else {
        " or higher".to_owned()
    };
    format!("permission denied: {what} needs {least}{higher} in project {project}; {held}")
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin | Role::Owner => "an",
        Role::Viewer | Role::Developer => "a",
    }
}

/// A user's role in one project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub project: String,
    pub user: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
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
    fn refusals_name_the_role_needed_and_the_role_held() {
        use Permission::*;
        assert_eq!(
            refusal(
                "alice",
                Some(Role::Viewer),
                "acme",
                &[EnqueueRun],
                "queuing a run"
            ),
            "permission denied: queuing a run needs developer or higher in project acme; \
             alice is a viewer there"
        );
        assert_eq!(
            refusal(
                "bob",
                None,
                "acme",
                &[EnqueueRun, DeployWorker],
                "deploying billing"
            ),
            "permission denied: deploying billing needs admin or higher in project acme; \
             bob is not a member of it"
        );
        assert_eq!(
            refusal(
                "carol",
                Some(Role::Admin),
                "acme",
                &[LockManifest],
                "locking billing"
            ),
            "permission denied: locking billing needs owner in project acme; carol is an admin there"
        );
        assert_eq!(least_role_for(&[]), Role::Viewer);
    }

    #[test]
    fn permission_names_are_unique_snake_case() {
        let names: std::collections::HashSet<&str> =
            Permission::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names.len(), Permission::ALL.len());
        for p in Permission::ALL {
            let json = serde_json::to_value(p).unwrap_or_default();
            assert_eq!(json.as_str(), Some(p.as_str()));
        }
    }

    #[test]
    fn roles_parse_and_order() {
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Developer);
    }
}
