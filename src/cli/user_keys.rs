//! `user key …`: SSH public keys that name users (`ospdeck serve` signs a key's user in).

use std::process::ExitCode;

use clap::Subcommand;

use super::output::{emit, table, time};
use super::services::{already, read_source};
use super::{CliError, CliResult};
use crate::ops::{KeyImport, MAX_IMPORT_BYTES, Ops};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// SSH public keys: each names one user, whose project roles apply to an `ospdeck serve`
    /// session (the store's administrator manages them)
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Let a public key sign in as a user (ssh-ed25519 or ecdsa-sha2-nistp256/384/521)
    Add {
        /// The user the key names (the OS user on SQLite, the login role or JWT subject on
        /// PostgreSQL, as in `member add`)
        user: String,
        /// The public key line, quoted: 'ssh-ed25519 AAAA… user@host' (the contents of a .pub
        /// file)
        #[arg(value_name = "KEY")]
        public_key: String,
    },
    /// The keys and the users they name
    List {
        /// Only this user's keys
        user: Option<String>,
    },
    /// Remove a key by its fingerprint (SHA256:…, as `user key list` prints it)
    Remove {
        /// The key's fingerprint
        fingerprint: String,
    },
    /// Add every key of an authorized_keys file for a user; each line is reported (added,
    /// already there, or skipped with the reason), and any skipped line makes the exit non-zero
    Import {
        /// The user the keys name
        user: String,
        /// The authorized_keys file (`-` for stdin); options before a key are not applied
        file: String,
    },
}

pub async fn user(ops: &Ops, json: bool, cmd: &UserCommand) -> CliResult<ExitCode> {
    match cmd {
        UserCommand::Key(cmd) => key(ops, json, cmd).await,
    }
}

async fn key(ops: &Ops, json: bool, cmd: &KeyCommand) -> CliResult<ExitCode> {
    match cmd {
        KeyCommand::Add { user, public_key } => {
            let added = ops.add_user_key(user, public_key).await?;
            emit(json, &added, || {
                let k = &added.value;
                format!(
                    "key {} ({}) {}names {}",
                    k.fingerprint,
                    k.algorithm,
                    already(added.outcome),
                    k.user
                )
            });
        }
        KeyCommand::List { user } => {
            let keys = ops.list_user_keys(user.as_deref()).await?;
            emit(json, &keys, || {
                table(
                    &["FINGERPRINT", "USER", "TYPE", "COMMENT", "ADDED"],
                    keys.iter().map(|k| {
                        vec![
                            k.fingerprint.clone(),
                            k.user.clone(),
                            k.algorithm.clone(),
                            k.comment.clone(),
                            time(&k.added_at),
                        ]
                    }),
                )
            });
        }
        KeyCommand::Remove { fingerprint } => {
            let removed = ops.remove_user_key(fingerprint).await?;
            emit(json, &removed, || {
                format!("removed key {} of {}", removed.fingerprint, removed.user)
            });
        }
        KeyCommand::Import { user, file } => {
            let text = read_source(file, MAX_IMPORT_BYTES, "keys")?;
            let report = ops.import_user_keys(user, &text).await?;
            emit(json, &report, || import_text(&report));
            if !report.skipped.is_empty() {
                let lines: Vec<String> =
                    report.skipped.iter().map(|s| s.line.to_string()).collect();
                return Err(CliError::validation(format!(
                    "{} key line(s) of {file} skipped (line {}); the others were imported",
                    report.skipped.len(),
                    lines.join(", ")
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per key line of the file, in file order, then the tally.
fn import_text(report: &KeyImport) -> String {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (verb, keys) in [("added", &report.added), ("already there", &report.already)] {
        for k in keys {
            let mut text = format!(
                "line {}: {verb} {} ({})",
                k.line, k.key.fingerprint, k.key.algorithm
            );
            if let Some(options) = &k.ignored_options {
                text.push_str(&format!(
                    "; options not applied: {}",
                    crate::domain::one_line(options)
                ));
            }
            lines.push((k.line, text));
        }
    }
    for s in &report.skipped {
        lines.push((s.line, format!("line {}: skipped: {}", s.line, s.reason)));
    }
    lines.sort_by_key(|(n, _)| *n);
    let mut out: Vec<String> = lines.into_iter().map(|(_, t)| t).collect();
    out.push(format!(
        "{}: {} added, {} already there, {} skipped",
        report.user,
        report.added.len(),
        report.already.len(),
        report.skipped.len()
    ));
    out.join("\n")
}
