//! Use cases: the only place that combines domain rules with the store. The CLI, the worker and
//! the console call these and nothing below them.

mod access;
mod artifacts;
mod catalog;
pub mod demo;
mod deploy;
mod error;
mod outage;
mod overview;
mod queue;
mod services;
mod templates;
mod tools;

use std::sync::Arc;

use crate::domain::permission::Identity;
use crate::store::Store;

pub use access::*;
pub use artifacts::*;
pub use deploy::*;
pub use error::OpsError;
pub use outage::{Backoff, StoreHealth};
pub use overview::*;
pub use queue::*;
pub use services::*;
pub use templates::*;
pub use tools::*;

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

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn actor(&self) -> &str {
        &self.identity.user
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}
