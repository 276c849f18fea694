//! Use cases: the only place that combines domain rules with the store. The CLI, the worker and
//! the console call these and nothing below them.

/// The pure layer below, under the name the modules of this crate use for it.
use ospdeck_domain as domain;

mod access;
mod artifacts;
mod catalog;
pub mod demo;
mod deploy;
mod error;
mod outage;
mod overview;
mod queue;
mod resolver;
mod services;
mod templates;
mod tools;
mod user_keys;

use std::sync::Arc;

use crate::domain::permission::Identity;
use ospdeck_store::Store;

pub use access::*;
pub use artifacts::*;
pub use catalog::WorkflowRequest;
pub use deploy::*;
pub use error::OpsError;
pub use outage::{Announce, Backoff, StoreHealth};
pub use overview::*;
pub use queue::*;
pub use resolver::{
    Resolution, ResolveRequest, ResolvedArtifact, Resolver, ResolverConfig, Source,
};
pub use services::*;
pub use templates::*;
pub use tools::*;
pub use user_keys::*;

pub type OpsResult<T> = Result<T, OpsError>;

/// A store plus who is acting on it. Every use case that changes something checks the
/// identity's project role against `domain::permission` first (administrators pass), so the
/// refusal is one sentence in place; on PostgreSQL the database checks the same matrix again.
#[derive(Clone)]
pub struct Ops {
    store: Arc<dyn Store>,
    identity: Identity,
}

impl Ops {
    pub fn new(store: Arc<dyn Store>, identity: Identity) -> Self {
        Self { store, identity }
    }

    /// Acts as whoever the store says (PostgreSQL: the connected role or a gateway's JWT subject;
    /// SQLite: `--as`, else the OS user).
    pub async fn connect_as(store: Arc<dyn Store>, as_user: Option<&str>) -> OpsResult<Self> {
        let identity = store.identity(as_user).await?;
        Ok(Self::new(store, identity))
    }

    /// Where the store lives (a password in its URL redacted), for a status bar or a log line.
    pub fn store_location(&self) -> String {
        self.store.location()
    }

    pub fn store_kind(&self) -> ospdeck_store::StoreKind {
        self.store.kind()
    }

    pub fn actor(&self) -> &str {
        &self.identity.user
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}
