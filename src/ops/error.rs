use thiserror::Error;

use crate::domain::InvalidInput;
use crate::store::StoreError;

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
