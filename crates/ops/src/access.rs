//! Who may do what: the permission check every changing use case makes, memberships, the audit
//! trail, and `whoami`.

use serde::Serialize;

use super::{Ops, OpsError, OpsResult};
use crate::domain::InvalidInput;
use crate::domain::permission::{Identity, Permission, Role, allowed, refusal};
use ospdeck_domain::audit::AuditRow;
use ospdeck_domain::permission::Member;
use ospdeck_store::StoreKind;
use ospdeck_store::access::AuditFilter;

pub const DEFAULT_AUDIT_LIMIT: i64 = 100;

pub(crate) fn check_user(user: &str) -> OpsResult<()> {
    if user.trim().is_empty() || user.len() > 63 || user.chars().any(|c| c.is_control()) {
        // 63: PostgreSQL's limit for a role name, which a member's user becomes there.
        return Err(OpsError::Invalid(InvalidInput::new(format!(
            "invalid user {user:?}: 1 to 63 printable characters"
        ))));
    }
    Ok(())
}

/// The project a permission is asked in: its id for the store, its key for the sentence.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub project_id: i64,
    pub project: &'a str,
}

/// Things that belong to one project, and so are checked against the role held there.
pub(crate) trait Scoped {
    fn scope(&self) -> Scope<'_>;
}

impl Scoped for crate::domain::project::Project {
    fn scope(&self) -> Scope<'_> {
        Scope {
            project_id: self.id,
            project: &self.key,
        }
    }
}

macro_rules! scoped_by_project_fields {
    ($($ty:ty),*) => {$(
        impl Scoped for $ty {
            fn scope(&self) -> Scope<'_> {
                Scope {
                    project_id: self.project_id,
                    project: &self.project,
                }
            }
        }
    )*};
}
scoped_by_project_fields!(
    crate::domain::run::Run,
    crate::domain::workflow::Workflow,
    crate::domain::service::Service
);

/// `ospdeck whoami`: the identity and the role held in each project.
#[derive(Debug, Clone, Serialize)]
pub struct WhoAmI {
    #[serde(flatten)]
    pub identity: Identity,
    pub store: StoreKind,
    pub roles: Vec<ProjectRole>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectRole {
    pub project: String,
    pub role: Role,
}

impl WhoAmI {
    /// Whether this identity may only read, wherever it is a member (or is a member nowhere):
    /// such a user's console is the monitor.
    pub fn reads_only(&self) -> bool {
        !self.identity.administrator && self.roles.iter().all(|r| r.role == Role::Viewer)
    }
}

impl Ops {
    /// Refuses, in one sentence, unless the identity may do everything in `needs` in the project.
    pub async fn authorize(
        &self,
        scope: Scope<'_>,
        needs: &[Permission],
        what: &str,
    ) -> OpsResult<()> {
        if self.identity().administrator {
            return Ok(());
        }
        let role = self
            .store
            .member_role(scope.project_id, self.actor())
            .await?;
        match role {
            Some(r) if needs.iter().all(|p| allowed(r, *p)) => Ok(()),
            _ => Err(OpsError::Forbidden(refusal(
                self.actor(),
                role,
                scope.project,
                needs,
                what,
            ))),
        }
    }

    /// For things outside any project (tools, advisories, shared templates).
    pub fn require_administrator(&self, what: &str) -> OpsResult<()> {
        if self.identity().administrator {
            Ok(())
        } else {
            Err(OpsError::Forbidden(format!(
                "permission denied: {what} is for the store's administrator, and {} is not one \
                 (on PostgreSQL a superuser or the owner of the ops schema; on SQLite the owner of \
                 the database file)",
                self.actor()
            )))
        }
    }

    /// The projects in which the identity holds `permission`; None for an administrator (all).
    pub async fn projects_with(&self, permission: Permission) -> OpsResult<Option<Vec<i64>>> {
        if self.identity().administrator {
            return Ok(None);
        }
        Ok(Some(
            self.store
                .memberships_of(self.actor())
                .await?
                .into_iter()
                .filter(|(_, role)| allowed(*role, permission))
                .map(|(id, _)| id)
                .collect(),
        ))
    }

    pub async fn whoami(&self) -> OpsResult<WhoAmI> {
        let projects = self.store.list_projects().await?;
        let roles = self
            .store
            .memberships_of(self.actor())
            .await?
            .into_iter()
            .filter_map(|(id, role)| {
                let p = projects.iter().find(|p| p.id == id)?;
                Some(ProjectRole {
                    project: p.key.clone(),
                    role,
                })
            })
            .collect();
        Ok(WhoAmI {
            identity: self.identity().clone(),
            store: self.store.kind(),
            roles,
        })
    }

    /// Adds a member or changes a role. On PostgreSQL an administrator also gives the member a
    /// login role in group ospdeck_member unless `jwt_subject` says the user signs in through a
    /// gateway's JWT instead.
    pub async fn set_member(
        &self,
        project: &str,
        user: &str,
        role: Role,
        jwt_subject: bool,
    ) -> OpsResult<Member> {
        check_user(user)?;
        let p = self.project(project).await?;
        let scope = p.scope();
        self.authorize(
            scope,
            &[Permission::ManageMembers],
            &format!("making {user} {role}"),
        )
        .await?;
        if role != Role::Owner {
            self.keep_an_owner(scope, user).await?;
        }
        let login_role = self.store.kind() == StoreKind::Postgres
            && self.identity().administrator
            && !jwt_subject;
        Ok(self
            .store
            .set_member(self.actor(), p.id, user, role, login_role)
            .await?)
    }

    pub async fn remove_member(&self, project: &str, user: &str) -> OpsResult<()> {
        check_user(user)?;
        let p = self.project(project).await?;
        let scope = p.scope();
        self.authorize(
            scope,
            &[Permission::ManageMembers],
            &format!("removing {user}"),
        )
        .await?;
        self.keep_an_owner(scope, user).await?;
        if self.store.remove_member(self.actor(), p.id, user).await? {
            Ok(())
        } else {
            Err(OpsError::NotFound(format!(
                "{user} is not a member of {project}"
            )))
        }
    }

    /// A project without an owner could never change its members again.
    async fn keep_an_owner(&self, scope: Scope<'_>, leaving: &str) -> OpsResult<()> {
        let members = self.store.members(scope.project_id).await?;
        let owners: Vec<&str> = members
            .iter()
            .filter(|m| m.role == Role::Owner)
            .map(|m| m.user.as_str())
            .collect();
        if owners == [leaving] {
            return Err(OpsError::Refused(format!(
                "{leaving} is the last owner of {}: make someone else owner first",
                scope.project
            )));
        }
        Ok(())
    }

    pub async fn members(&self, project: &str) -> OpsResult<Vec<Member>> {
        let p = self.project(project).await?;
        Ok(self.store.members(p.id).await?)
    }

    pub async fn audit_trail(
        &self,
        project: Option<&str>,
        entity_type: Option<&str>,
        limit: Option<i64>,
    ) -> OpsResult<Vec<AuditRow>> {
        let limit = limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
        if !(1..=10_000).contains(&limit) {
            return Err(OpsError::Invalid(InvalidInput::new(format!(
                "invalid limit {limit}: use 1 to 10000"
            ))));
        }
        let project_id = match project {
            Some(key) => Some(self.project(key).await?.id),
            None => None,
        };
        Ok(self
            .store
            .audit(&AuditFilter {
                project_id,
                entity_type: entity_type.map(str::to_owned),
                limit,
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(administrator: bool, roles: &[Role]) -> WhoAmI {
        WhoAmI {
            identity: Identity {
                user: "vic".into(),
                administrator,
            },
            store: StoreKind::Sqlite,
            roles: roles
                .iter()
                .enumerate()
                .map(|(i, role)| ProjectRole {
                    project: format!("p{i}"),
                    role: *role,
                })
                .collect(),
        }
    }

    #[test]
    fn only_a_viewer_everywhere_or_nowhere_reads_only() {
        assert!(
            who(false, &[]).reads_only(),
            "a member of nothing may only read"
        );
        assert!(who(false, &[Role::Viewer, Role::Viewer]).reads_only());
        assert!(!who(false, &[Role::Viewer, Role::Developer]).reads_only());
        assert!(
            !who(true, &[]).reads_only(),
            "the administrator writes anywhere"
        );
    }
}
