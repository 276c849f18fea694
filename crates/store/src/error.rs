use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Refused by a constraint or trigger of the database.
    #[error("{0}")]
    Invalid(String),
    #[error("cannot reach the database: {0}")]
    Unavailable(String),
    /// The store is missing or lacks ospdeck's schema. The text is whole: whoever knows how the
    /// store was named (the composition root) words it with the exact command to run.
    #[error("{0}")]
    NotMigrated(String),
    /// The database's own permission check (grants, row-level security) said no.
    #[error("refused by the database: {0}")]
    Forbidden(String),
    #[error("the store is open read-only: {0}")]
    ReadOnly(String),
    #[error("database error: {0}")]
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether waiting may cure it: the server is down or restarting, the connection broke, the
    /// file is locked by another writer, the disk is full. A worker or console waits these out;
    /// anything else (a refused write, a missing migration) is an answer, not an outage.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Database(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => classify(db.code().as_deref(), db.message()),
            sqlx::Error::Io(e) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Tls(e) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::PoolTimedOut => {
                StoreError::Unavailable("timed out waiting for a connection".into())
            }
            sqlx::Error::PoolClosed => StoreError::Unavailable("connection pool closed".into()),
            sqlx::Error::Configuration(e) => {
                StoreError::Invalid(format!("bad database configuration: {e}"))
            }
            sqlx::Error::Migrate(e) => StoreError::Database(format!("migration failed: {e}")),
            _ => StoreError::Database(err.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            other => StoreError::Database(format!("migration failed: {other}")),
        }
    }
}

/// Maps database errors of both backends onto what an operator can act on.
fn classify(code: Option<&str>, message: &str) -> StoreError {
    let msg = message.to_owned();
    match code {
        // PostgreSQL SQLSTATEs.
        Some("23505" | "42P06") => StoreError::Conflict(msg),
        Some("23503") => StoreError::NotFound(msg),
        Some("23514" | "23502" | "22P02" | "22023" | "22001" | "54000") => StoreError::Invalid(msg),
        // Grants, row-level security and ops.require; append-only tables answer the same way.
        Some("42501") if msg.contains("append-only") => StoreError::Invalid(msg),
        Some("42501") => StoreError::Forbidden(msg),
        Some("42P01" | "3F000" | "42883") => not_migrated(msg),
        Some("25006") => StoreError::ReadOnly(msg),
        // Shutdown, crash recovery, connection failures, and a server out of disk or memory.
        Some(
            "57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006" | "08001" | "08004" | "3D000"
            | "28P01" | "28000" | "53100" | "53200" | "53300",
        ) => StoreError::Unavailable(msg),
        // SQLite extended result codes.
        Some("2067" | "1555") => StoreError::Conflict(msg),
        Some("787") => StoreError::NotFound(msg),
        Some("275" | "1299" | "1811") => StoreError::Invalid(msg),
        Some("8" | "1032" | "520" | "776") => StoreError::ReadOnly(msg),
        // Locked (BUSY and its extended codes), cannot open, full disk, I/O error.
        Some("14" | "5" | "517" | "261" | "26" | "13" | "10") => StoreError::Unavailable(msg),
        _ if code.is_some_and(|c| c.parse::<u32>().is_ok_and(|n| n & 0xff == 10)) => {
            StoreError::Unavailable(msg)
        }
        _ if msg.starts_with("no such table") => not_migrated(msg),
        // RAISE(ABORT, …) from our triggers arrives as a plain constraint error (code 19 or 1).
        _ if msg.contains("illegal run transition")
            || msg.contains("append-only")
            || msg.contains("manifest rule:")
            || msg.contains("run rule:")
            || msg.contains("workflow rule:")
            || msg.contains("template rule:") =>
        {
            StoreError::Invalid(msg)
        }
        _ => StoreError::Database(msg),
    }
}

/// A query found ospdeck's schema missing after the store was opened (someone reverted it).
fn not_migrated(msg: String) -> StoreError {
    StoreError::NotMigrated(format!(
        "the database is not migrated ({msg}): run `ospdeck db migrate` on it"
    ))
}
