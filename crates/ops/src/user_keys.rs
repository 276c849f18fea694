//! SSH public keys that name users (`ospdeck user key …`), and the two things `ospdeck serve` asks
//! before any session exists: whose key this is, and to record what happened.

use serde::Serialize;

use super::access::check_user;
use super::{Applied, Ops, OpsError, OpsResult, Outcome};
use crate::domain::InvalidInput;
use crate::domain::user_key::{
    RegisteredKey, SessionEvent, check_fingerprint, parse_authorized_keys, parse_public_key,
};
use ospdeck_store::StoreError;

/// The largest authorized_keys text `import_user_keys` reads (thousands of keys).
pub const MAX_IMPORT_BYTES: usize = 1 << 20;

/// What `import_user_keys` did with each key line of the text.
#[derive(Debug, Clone, Serialize)]
pub struct KeyImport {
    pub user: String,
    pub added: Vec<ImportedKey>,
    pub already: Vec<ImportedKey>,
    pub skipped: Vec<SkippedLine>,
}

/// A key line that names the user now (added, or already before).
#[derive(Debug, Clone, Serialize)]
pub struct ImportedKey {
    /// Its line in the text, from 1.
    pub line: usize,
    #[serde(flatten)]
    pub key: RegisteredKey,
    /// The authorized_keys options written before the key (`from="…",no-pty`): ospdeck does not
    /// apply them.
    pub ignored_options: Option<String>,
}

/// A key line that was not imported, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedLine {
    pub line: usize,
    pub reason: String,
}

/// The same kind of store error, its message led by `prefix`.
fn prefixed(prefix: &str, e: StoreError) -> StoreError {
    let p = |m: String| format!("{prefix}{m}");
    match e {
        StoreError::NotFound(m) => StoreError::NotFound(p(m)),
        StoreError::Conflict(m) => StoreError::Conflict(p(m)),
        StoreError::Invalid(m) => StoreError::Invalid(p(m)),
        StoreError::Unavailable(m) => StoreError::Unavailable(p(m)),
        StoreError::NotMigrated(m) => StoreError::NotMigrated(p(m)),
        StoreError::Forbidden(m) => StoreError::Forbidden(p(m)),
        StoreError::ReadOnly(m) => StoreError::ReadOnly(p(m)),
        StoreError::Database(m) => StoreError::Database(p(m)),
    }
}

impl Ops {
    /// Registers one OpenSSH public-key line (`ssh-ed25519 AAAA… comment`) for `user`. The same
    /// key for the same user again is `already_added`; a key that names another user is refused
    /// (Conflict, naming that user). The store's administrator's act.
    pub async fn add_user_key(&self, user: &str, line: &str) -> OpsResult<Applied<RegisteredKey>> {
        self.require_administrator(&format!("adding an SSH key for {user}"))?;
        check_user(user)?;
        let key = parse_public_key(line)?;
        let (stored, added) = self.store.add_user_key(self.actor(), user, &key).await?;
        Ok(Applied::new(
            stored,
            if added {
                Outcome::Added
            } else {
                Outcome::AlreadyAdded
            },
        ))
    }

    /// Registers every key of an authorized_keys text for `user`, each in its own transaction,
    /// and reports every key line: added, already there, or skipped with its reason (not a key, a
    /// refused type, a key of another user). A store failure other than a refused key stops the
    /// import; the keys added before it stay, and the error says how many.
    pub async fn import_user_keys(&self, user: &str, text: &str) -> OpsResult<KeyImport> {
        self.require_administrator(&format!("importing SSH keys for {user}"))?;
        check_user(user)?;
        if text.len() > MAX_IMPORT_BYTES {
            return Err(OpsError::Invalid(InvalidInput::new(format!(
                "the keys are {} bytes, more than the {MAX_IMPORT_BYTES} an import reads",
                text.len()
            ))));
        }
        let lines = parse_authorized_keys(text);
        if lines.is_empty() {
            return Err(OpsError::Invalid(InvalidInput::new(
                "no key lines to import (only blank lines and # comments)",
            )));
        }
        let mut report = KeyImport {
            user: user.to_owned(),
            added: Vec::new(),
            already: Vec::new(),
            skipped: Vec::new(),
        };
        for line in lines {
            let parsed = match line.parsed {
                Ok(parsed) => parsed,
                Err(e) => {
                    report.skipped.push(SkippedLine {
                        line: line.line,
                        reason: e.0,
                    });
                    continue;
                }
            };
            match self
                .store
                .add_user_key(self.actor(), user, &parsed.key)
                .await
            {
                Ok((key, added)) => {
                    let imported = ImportedKey {
                        line: line.line,
                        key,
                        ignored_options: parsed.options,
                    };
                    if added {
                        report.added.push(imported);
                    } else {
                        report.already.push(imported);
                    }
                }
                Err(StoreError::Conflict(reason) | StoreError::Invalid(reason)) => {
                    report.skipped.push(SkippedLine {
                        line: line.line,
                        reason,
                    });
                }
                Err(e) => {
                    let prefix = match report.added.len() {
                        0 => format!("line {}: ", line.line),
                        n => format!(
                            "line {}: stopped after adding {n} key(s) of earlier lines: ",
                            line.line
                        ),
                    };
                    return Err(prefixed(&prefix, e).into());
                }
            }
        }
        Ok(report)
    }

    /// Every key (of `user` when given). The administrator's: keys say who may sign in.
    pub async fn list_user_keys(&self, user: Option<&str>) -> OpsResult<Vec<RegisteredKey>> {
        self.require_administrator("listing SSH keys")?;
        if let Some(u) = user {
            check_user(u)?;
        }
        Ok(self.store.list_user_keys(user).await?)
    }

    /// Removes a key by its fingerprint (`SHA256:…`); answers it as it was. NotFound when absent.
    pub async fn remove_user_key(&self, fingerprint: &str) -> OpsResult<RegisteredKey> {
        self.require_administrator(&format!("removing SSH key {fingerprint}"))?;
        check_fingerprint(fingerprint)?;
        Ok(self
            .store
            .remove_user_key(self.actor(), fingerprint)
            .await?)
    }

    /// The user a key names, by fingerprint. No permission check: the SSH server asks before
    /// any session (and so any identity) exists; on PostgreSQL it may ask as the gateway role.
    pub async fn user_for_key(&self, fingerprint: &str) -> OpsResult<Option<String>> {
        check_fingerprint(fingerprint)?;
        Ok(self.store.user_for_key(fingerprint).await?)
    }

    /// One audit row for an SSH session (login, logout, refusal), with this identity as its
    /// actor (see `UserKeyStore::record_session_event` for PostgreSQL). No permission check: the
    /// server records refusals before anyone is signed in. Answers the audit row's id.
    pub async fn record_session_event(&self, event: &SessionEvent) -> OpsResult<i64> {
        event.check()?;
        Ok(self
            .store
            .record_session_event(
                Some(self.actor()),
                event.action,
                &event.address,
                &event.detail,
            )
            .await?)
    }
}
