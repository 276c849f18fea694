//! SSH public keys that name users, and the audit rows of SSH sessions. Written once for both
//! backends; on PostgreSQL the two questions the SSH server asks before any session exists (whose
//! key is this, record this event) go through SECURITY DEFINER functions that its gateway role
//! may call, while the table itself is the administrators' alone.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::audit::AuditEntry;
use crate::domain::user_key::{RegisteredKey, SessionAction, UserKey};
use crate::sql::{Backend, JsonText, Time, Tx, dialects, row, stmt};
use crate::{StoreError, StoreKind, StoreResult};

#[async_trait]
pub trait UserKeyStore: Send + Sync {
    /// Registers `key` for `user`, with an audit row, in one transaction. Answers the key as
    /// stored and whether it was added now (false: it already named `user`, nothing written).
    /// A key that names another user is a Conflict that names that user.
    async fn add_user_key(
        &self,
        actor: &str,
        user: &str,
        key: &UserKey,
    ) -> StoreResult<(RegisteredKey, bool)>;
    /// Every key (of `user` when given), by user and then oldest first.
    async fn list_user_keys(&self, user: Option<&str>) -> StoreResult<Vec<RegisteredKey>>;
    /// Removes the key with an audit row; answers it as it was. NotFound when there is none.
    async fn remove_user_key(&self, actor: &str, fingerprint: &str) -> StoreResult<RegisteredKey>;
    /// The user a key names. On PostgreSQL through `ops.user_for_key`, which the gateway role
    /// (ospdeck_api) may call without reading the table.
    async fn user_for_key(&self, fingerprint: &str) -> StoreResult<Option<String>>;
    /// One audit row for an SSH session (entity `ssh_session`, the address); answers its id.
    /// `actor` is the session's user (None before one is known: a refusal). On PostgreSQL through
    /// `ops.record_session_event`, whose actor is the connection's identity: the transaction
    /// names `actor` as the gateway's JWT subject (a gateway connection) or as `ospdeck.actor`
    /// (an administrator's); on SQLite `actor`, else the OS user running the server.
    async fn record_session_event(
        &self,
        actor: Option<&str>,
        action: SessionAction,
        address: &str,
        detail: &Value,
    ) -> StoreResult<i64>;
}

row! {
    struct KeyRow {
        fingerprint: String,
        user_id: String,
        algorithm: String,
        public_key: String,
        comment: String,
        added_by: String,
        added_at: Time,
    }
}

impl From<KeyRow> for RegisteredKey {
    fn from(r: KeyRow) -> Self {
        RegisteredKey {
            fingerprint: r.fingerprint,
            user: r.user_id,
            algorithm: r.algorithm,
            public_key: r.public_key,
            comment: r.comment,
            added_by: r.added_by,
            added_at: r.added_at.into(),
        }
    }
}

const KEY_COLUMNS: &str =
    "fingerprint, user_id, algorithm, public_key, comment, added_by, added_at";

/// What an audit row keeps of a key: enough to recognise it, the key itself included.
fn key_json(key: &RegisteredKey) -> Value {
    json!({
        "user": key.user,
        "algorithm": key.algorithm,
        "public_key": key.public_key,
        "comment": key.comment,
    })
}

async fn key_by_fingerprint(tx: &mut Tx, fingerprint: &str) -> StoreResult<Option<KeyRow>> {
    tx.fetch_optional(
        stmt(format!(
            "SELECT {KEY_COLUMNS} FROM user_keys WHERE fingerprint = $1"
        ))
        .bind(fingerprint),
    )
    .await
}

fn held_by_another(fingerprint: &str, holder: &str, user: &str) -> StoreError {
    StoreError::Conflict(format!(
        "key {fingerprint} already names user {holder}: a key names one user; remove it from \
         {holder} first (`ospdeck user key remove {fingerprint}`) to give it to {user}"
    ))
}

#[async_trait]
impl<B: Backend> UserKeyStore for B {
    async fn add_user_key(
        &self,
        actor: &str,
        user: &str,
        key: &UserKey,
    ) -> StoreResult<(RegisteredKey, bool)> {
        let mut tx = self.db().begin().await?;
        // ON CONFLICT DO NOTHING: a key added meanwhile by another writer is read below rather
        // than failing this transaction.
        let inserted: Option<KeyRow> = tx
            .fetch_optional(
                stmt(format!(
                    "INSERT INTO user_keys (fingerprint, user_id, algorithm, public_key, comment, added_by)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (fingerprint) DO NOTHING
                     RETURNING {KEY_COLUMNS}"
                ))
                .bind(&key.fingerprint)
                .bind(user)
                .bind(&key.algorithm)
                .bind(&key.public_key)
                .bind(&key.comment)
                .bind(actor),
            )
            .await?;
        let Some(row) = inserted else {
            let existing = key_by_fingerprint(&mut tx, &key.fingerprint)
                .await?
                .ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "key {} changed while it was added: try again",
                        key.fingerprint
                    ))
                })?;
            // Nothing was written: the transaction ends without a commit.
            return if existing.user_id == user {
                Ok((existing.into(), false))
            } else {
                Err(held_by_another(&key.fingerprint, &existing.user_id, user))
            };
        };
        let added = RegisteredKey::from(row);
        AuditEntry {
            actor,
            action: "add_key",
            entity_type: "user_key",
            entity_id: added.fingerprint.clone(),
            project_id: None,
            before: None,
            after: Some(key_json(&added)),
        }
        .record(&mut tx)
        .await?;
        tx.commit().await?;
        Ok((added, true))
    }

    async fn list_user_keys(&self, user: Option<&str>) -> StoreResult<Vec<RegisteredKey>> {
        let rows: Vec<KeyRow> = self
            .db()
            .fetch_all(
                stmt(format!(
                    "SELECT {KEY_COLUMNS} FROM user_keys
                     WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1)
                     ORDER BY user_id, added_at, fingerprint"
                ))
                .bind(user),
            )
            .await?;
        Ok(rows.into_iter().map(RegisteredKey::from).collect())
    }

    async fn remove_user_key(&self, actor: &str, fingerprint: &str) -> StoreResult<RegisteredKey> {
        let mut tx = self.db().begin().await?;
        let removed: Option<KeyRow> = tx
            .fetch_optional(
                stmt(format!(
                    "DELETE FROM user_keys WHERE fingerprint = $1 RETURNING {KEY_COLUMNS}"
                ))
                .bind(fingerprint),
            )
            .await?;
        let Some(row) = removed else {
            return Err(StoreError::NotFound(format!(
                "no key {fingerprint}: `ospdeck user key list` shows the keys there are"
            )));
        };
        let removed = RegisteredKey::from(row);
        AuditEntry {
            actor,
            action: "remove_key",
            entity_type: "user_key",
            entity_id: removed.fingerprint.clone(),
            project_id: None,
            before: Some(key_json(&removed)),
            after: None,
        }
        .record(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn user_for_key(&self, fingerprint: &str) -> StoreResult<Option<String>> {
        let row: Option<(Option<String>,)> = self
            .db()
            .fetch_optional(
                dialects(
                    "SELECT ops.user_for_key($1)",
                    "SELECT user_id FROM user_keys WHERE fingerprint = $1",
                )
                .bind(fingerprint),
            )
            .await?;
        Ok(row.and_then(|(user,)| user))
    }

    async fn record_session_event(
        &self,
        actor: Option<&str>,
        action: SessionAction,
        address: &str,
        detail: &Value,
    ) -> StoreResult<i64> {
        let mut tx = self.db().begin().await?;
        let detail = (!detail.is_null()).then_some(detail);
        let (id,): (i64,) = match tx.kind() {
            StoreKind::Postgres => {
                // Transaction-local: the connection goes back to the pool as it came. With no
                // actor the claims are cleared, so that a refusal is the gateway role's own.
                tx.execute(
                    stmt(
                        "SELECT set_config('ospdeck.actor', $1, true),
                                set_config('request.jwt.claim.sub', $1, true),
                                set_config('request.jwt.claims', '', true)",
                    )
                    .bind(actor.unwrap_or_default()),
                )
                .await?;
                tx.fetch_one(
                    stmt("SELECT ops.record_session_event($1, $2, $3)")
                        .bind(action.as_str())
                        .bind(address)
                        .bind(detail),
                )
                .await?
            }
            StoreKind::Sqlite => {
                let actor = actor.map_or_else(whoami::username, str::to_owned);
                tx.fetch_one(
                    stmt(
                        "INSERT INTO audit_log (actor, action, entity_type, entity_id, project_id, before, after)
                         VALUES ($1, $2, 'ssh_session', $3, NULL, NULL, $4) RETURNING id",
                    )
                    .bind(actor)
                    .bind(action.as_str())
                    .bind(address)
                    .bind(detail.map(JsonText::of)),
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(id)
    }
}
