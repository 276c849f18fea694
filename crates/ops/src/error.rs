use thiserror::Error;

use crate::domain::InvalidInput;
use ospdeck_store::StoreError;

#[derive(Debug, Error)]
pub enum OpsError {
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    #[error("{0}")]
    NotFound(String),
    /// The identity's role in the project does not allow it (ops' own check).
    #[error("{0}")]
    Forbidden(String),
    /// The request is well-formed but the current state does not allow it.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpsError {
    /// A store outage (see `StoreError::is_transient`): worth waiting out, not an answer.
    pub fn is_transient(&self) -> bool {
        matches!(self, OpsError::Store(e) if e.is_transient())
    }
}
