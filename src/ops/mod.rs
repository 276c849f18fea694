//! Use cases: the only place that combines domain rules with the store. The CLI, the worker and
//! the console call these and nothing below them.

mod access;
mod catalog;
pub mod demo;
mod deploy;
mod error;
mod overview;
mod queue;
mod services;
mod templates;
mod tools;

use std::sync::Arc;

use crate::store::Store;

pub use access::*;
pub use deploy::*;
pub use error::OpsError;
pub use overview::*;
pub use queue::*;
pub use services::*;
pub use templates::*;
pub use tools::*;

pub type OpsResult<T> = Result<T, OpsError>;

/// A store plus who is acting on it.
#[derive(Clone)]
pub struct Ops {
    store: Arc<dyn Store>,
    actor: String,
}

impl Ops {
    pub fn new(store: Arc<dyn Store>, actor: impl Into<String>) -> Self {
        Self {
            store,
            actor: actor.into(),
        }
    }

    /// The acting user: an explicit `--as` where the store cannot know it, else the database's own
    /// user (PostgreSQL), else the OS user (SQLite: whoever can write the file).
    pub async fn connect_as(store: Arc<dyn Store>, as_user: Option<&str>) -> OpsResult<Self> {
        let actor = match as_user {
            Some(user) => user.to_owned(),
            None => match store.database_user().await? {
                Some(user) => user,
                None => whoami::username(),
            },
        };
        Ok(Self::new(store, actor))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }
}
