//! `member …` and `audit`.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliResult;
use super::output::{emit, table, time};
use crate::domain::permission::Role;
use crate::ops::Ops;

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member, or change their role (owner, admin, developer, viewer). On PostgreSQL an
    /// administrator also creates the member's login role (in group ospdeck_member)
    Add {
        /// The project (its key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: String,
        /// The user's name (the OS user on SQLite, the login role on PostgreSQL)
        user: String,
        /// owner, admin, developer or viewer
        #[arg(value_parser = parse_role)]
        role: Role,
        /// The user signs in through an API gateway's JWT (its subject): create no login role
        #[arg(long)]
        jwt_subject: bool,
    },
    /// Remove a member from a project
    Remove {
        /// The project (its key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: String,
        /// The member's user name
        user: String,
    },
    /// A project's members and their roles
    List {
        /// The project (its key)
        #[arg(long, value_name = "KEY", add = super::completions::projects())]
        project: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: crate::domain::InvalidInput| e.0)
}

pub async fn member(ops: &Ops, json: bool, cmd: &MemberCommand) -> CliResult<ExitCode> {
    match cmd {
        MemberCommand::Add {
            project,
            user,
            role,
            jwt_subject,
        } => {
            let m = ops.set_member(project, user, *role, *jwt_subject).await?;
            emit(json, &m, || {
                format!("{} is {} of {}", m.user, m.role, m.project)
            });
        }
        MemberCommand::Remove { project, user } => {
            // The answer is the membership as it was: after the removal there is nothing to read.
            let membership = ops
                .members(project)
                .await?
                .into_iter()
                .find(|m| &m.user == user);
            ops.remove_member(project, user).await?;
            emit(json, &membership, || {
                format!("{user} is no longer a member of {project}")
            });
        }
        MemberCommand::List { project } => {
            let members = ops.members(project).await?;
            emit(json, &members, || {
                table(
                    &["USER", "ROLE", "SINCE"],
                    members
                        .iter()
                        .map(|m| vec![m.user.clone(), m.role.to_string(), time(&m.created_at)]),
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(
    ops: &Ops,
    json: bool,
    project: Option<&str>,
    entity: Option<&str>,
    limit: Option<i64>,
) -> CliResult<ExitCode> {
    let rows = ops.audit_trail(project, entity, limit).await?;
    // Audit rows carry the project's id; people know projects by key. One list serves all rows.
    let keys: HashMap<i64, String> = if json || rows.iter().all(|r| r.project_id.is_none()) {
        HashMap::new()
    } else {
        ops.list_projects()
            .await?
            .into_iter()
            .map(|p| (p.id, p.key))
            .collect()
    };
    emit(json, &rows, || {
        // Absolute times: an audit trail is read against other logs and tickets.
        table(
            &["ID", "AT", "ACTOR", "ACTION", "ENTITY", "PROJECT"],
            rows.iter().map(|r| {
                vec![
                    r.id.to_string(),
                    time(&r.at),
                    r.actor.clone(),
                    r.action.clone(),
                    format!("{} {}", r.entity_type, r.entity_id),
                    match r.project_id {
                        Some(id) => keys.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
                        None => "-".to_owned(),
                    },
                ]
            }),
        )
    });
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(ops: &Ops, json: bool) -> CliResult<ExitCode> {
    let me = ops.whoami().await?;
    emit(json, &me, || {
        let mut out = format!(
            "{}{} on {}",
            me.identity.user,
            if me.identity.administrator {
                " (administrator: project roles do not apply)"
            } else {
                ""
            },
            match me.store {
                crate::store::StoreKind::Sqlite => "SQLite",
                crate::store::StoreKind::Postgres => "PostgreSQL",
            }
        );
        if me.roles.is_empty() {
            out.push_str("\nno project memberships");
        } else {
            out.push('\n');
            out.push_str(&table(
                &["PROJECT", "ROLE"],
                me.roles
                    .iter()
                    .map(|r| vec![r.project.clone(), r.role.to_string()]),
            ));
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}
