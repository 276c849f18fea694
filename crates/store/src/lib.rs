//! Persistence behind one trait with two implementations: SQLite (embedded default) and PostgreSQL.
//! Only this layer writes SQL; `ops` calls it, and the conformance suite proves both agree.

/// The pure layer below, under the name the modules of this crate use for it.
use ospdeck_domain as domain;

pub mod access;
pub(crate) mod audit;
pub mod catalog;
mod error;
mod migrations;
pub mod postgres;
pub mod presence;
pub mod runs;
pub mod services;
mod shared;
mod sql;
pub mod sqlite;
pub mod templates;
pub mod tools;
pub mod user_keys;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::domain::permission::Identity;
use crate::domain::run::{
    ClaimedRun, Completion, HeartbeatAck, Hold, NewArtifact, NewLogLine, NewRun, RescueOutcome,
};

pub use access::AccessStore;
pub(crate) use audit::AuditEntry;
pub use catalog::CatalogStore;
pub use error::{StoreError, StoreResult};
pub use presence::PresenceStore;
pub use runs::RunStore;
pub use services::ServiceStore;
pub use templates::TemplateStore;
pub use tools::ToolStore;
pub use user_keys::UserKeyStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationState {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// Everything the use cases need from a database. Mutations are one transaction each.
#[async_trait]
pub trait Store:
    AccessStore
    + CatalogStore
    + PresenceStore
    + RunStore
    + ServiceStore
    + TemplateStore
    + ToolStore
    + UserKeyStore
    + Send
    + Sync
{
    fn kind(&self) -> StoreKind;
    /// Where the store lives, with any password redacted.
    fn location(&self) -> String;
    fn is_read_only(&self) -> bool;

    async fn migrate(&self) -> StoreResult<Vec<i64>>;
    async fn migration_status(&self) -> StoreResult<Vec<MigrationState>>;
    /// Reverts the newest applied migration; answers which one.
    async fn migrate_down(&self) -> StoreResult<Option<MigrationState>>;
    /// Who this store's connections act as. PostgreSQL knows (the session's role, or a gateway's
    /// JWT subject) and refuses `as_user`; SQLite takes `as_user`, else the OS user, and counts the
    /// owner of the database file (or root) as its administrator.
    async fn identity(&self, as_user: Option<&str>) -> StoreResult<Identity>;

    /// Inserts all runs or none; answers their ids in input order.
    async fn enqueue_runs(&self, actor: &str, runs: &[NewRun]) -> StoreResult<Vec<i64>>;

    /// Claims queued runs as `claim` asks, highest priority first.
    async fn claim_runs(&self, claim: &ClaimRequest<'_>) -> StoreResult<Vec<ClaimedRun>>;
    /// Answers the ids that moved to running (those this worker still held).
    async fn start_runs(&self, worker: &str, holds: &[Hold]) -> StoreResult<Vec<i64>>;
    async fn heartbeat(
        &self,
        worker: &str,
        holds: &[Hold],
        lease: Duration,
    ) -> StoreResult<Vec<HeartbeatAck>>;
    /// Finishes running runs this worker still holds (a hold with attempt 0 matches any attempt).
    /// Answers the ids that were finished; the others had been taken away (fenced).
    async fn complete_runs(&self, worker: &str, done: &[Completion]) -> StoreResult<Vec<i64>>;
    async fn release_runs(&self, worker: &str, holds: &[Hold]) -> StoreResult<Vec<i64>>;
    async fn rescue_expired(&self, actor: &str) -> StoreResult<RescueOutcome>;

    async fn append_logs(&self, run_id: i64, lines: &[NewLogLine]) -> StoreResult<()>;
    async fn add_artifact(&self, artifact: &NewArtifact) -> StoreResult<i64>;

    /// Something that wakes when runs may have been queued (or `timeout` passed).
    async fn run_waker(&self) -> StoreResult<Box<dyn RunWaker>>;

    /// Something that wakes when anything about runs (state, logs, artifacts) may have changed.
    async fn change_watcher(&self) -> StoreResult<Box<dyn ChangeWatcher>>;
}

/// A worker's claim: up to `limit` queued runs of `queues` (of every queue when empty), only of
/// `projects` when given, each leased to `worker` for `lease`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub worker: &'a str,
    pub queues: &'a [String],
    pub projects: Option<&'a [i64]>,
    pub limit: u32,
    pub lease: Duration,
    /// Claimed and started in one write (queued → claimed → running, both moves recorded), for a
    /// worker that runs what it claims at once.
    pub start: bool,
}

#[async_trait]
pub trait ChangeWatcher: Send {
    /// True when something changed, false when `timeout` passed quietly.
    async fn changed(&mut self, timeout: Duration) -> StoreResult<bool>;
}

#[async_trait]
pub trait RunWaker: Send {
    /// Returns when runs of one of `queues` (any when empty) may be waiting, or after `timeout`.
    async fn wait(&mut self, queues: &[String], timeout: Duration) -> StoreResult<()>;
}

/// How a store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    pub read_only: bool,
    pub max_connections: u32,
    /// SQLite's page cache per connection, in KiB (SQLite's default is 2 000). A long-running
    /// reader such as the console keeps it small: the cache fills as the store grows, and would
    /// otherwise be most of the console's memory growth.
    pub sqlite_cache_kib: Option<u32>,
    /// PostgreSQL: every connection acts as this JWT subject (`request.jwt.claim.sub`), the
    /// gateway identity path that PostgREST uses. Only a role in group `ospdeck_api` is trusted
    /// with a subject; for any other role the database ignores it. SQLite ignores it.
    pub gateway_subject: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            max_connections: 8,
            sqlite_cache_kib: None,
            gateway_subject: None,
        }
    }
}

/// Opens the store a URL names: `postgres://…`/`postgresql://…`, or `sqlite://PATH` / a plain path.
pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn Store>> {
    Ok(match Backends::open(url, options).await? {
        Backends::Postgres(store) => Arc::new(*store),
        Backends::Sqlite(store) => Arc::new(*store),
    })
}

/// The store a URL names, before it is handed out as a trait object.
enum Backends {
    Postgres(Box<postgres::PgStore>),
    Sqlite(Box<sqlite::SqliteStore>),
}

impl Backends {
    async fn open(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        if is_postgres_url(url) {
            Ok(Self::Postgres(Box::new(
                postgres::PgStore::open(url, options).await?,
            )))
        } else if let Some(path) = sqlite_path(url) {
            Ok(Self::Sqlite(Box::new(
                sqlite::SqliteStore::open(path, options).await?,
            )))
        } else {
            Err(StoreError::Invalid(format!(
                "unsupported database URL {}: use sqlite://PATH, a file path, or postgres://…",
                redact_url(url)
            )))
        }
    }
}

/// For benchmarks only, and kept off [`Store`] so that no use case can reach it.
#[async_trait]
pub trait QueueProbe: Send + Sync {
    /// One claim-and-start → complete cycle of up to `batch` runs of `queue` using the same SQL as
    /// the worker's fast path, with no domain decoding: the raw limit the bench compares to.
    /// Answers how many runs it finished.
    async fn raw_claim_complete_cycle(
        &self,
        worker: &str,
        queue: &str,
        batch: u32,
    ) -> StoreResult<usize>;

    /// Creates (if needed) the minimal queue — one table, one index, no events, no triggers, no
    /// checks — and queues `runs` runs in it: the floor under any queue with guarantees.
    async fn minimal_fill(&self, runs: usize) -> StoreResult<()>;
    /// One claim-and-start → complete cycle on the minimal queue; answers the runs it finished.
    async fn minimal_cycle(&self, worker: &str, batch: u32) -> StoreResult<usize>;
    /// Drops the minimal queue.
    async fn minimal_drop(&self) -> StoreResult<()>;

    /// Before a timed measurement: PostgreSQL vacuums and analyzes the queue's tables (and the
    /// minimal queue's), as the peer's bench does before each of its own, so that neither side is
    /// measured on the dead rows of the measurement before (autovacuum may be off, or behind).
    async fn settle(&self) -> StoreResult<()>;
}

/// The minimal queue's table: one per bench process, so two benches never share it.
fn minimal_table() -> String {
    format!("ospdeck_bench_minimal_{}", std::process::id())
}

/// The benchmark's probe on the store a URL names (see [`open`]).
pub async fn open_probe(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn QueueProbe>> {
    Ok(match Backends::open(url, options).await? {
        Backends::Postgres(store) => Arc::new(*store),
        Backends::Sqlite(store) => Arc::new(*store),
    })
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file a SQLite URL (`sqlite://PATH` or a plain path) names; None for any other URL.
pub fn sqlite_path(url: &str) -> Option<&str> {
    if is_postgres_url(url) {
        None
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        Some(rest.trim_start_matches("//"))
    } else if url.contains("://") {
        None
    } else {
        Some(url)
    }
}

/// Hides the password of a URL for display.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not a URL: if it looks like one with credentials, hide everything before '@'.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("/tmp/a.db"), "/tmp/a.db");
        assert!(!redact_url("postgres://bob:s3c ret@db/x").contains("s3c"));
    }
}
