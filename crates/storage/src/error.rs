//! The storage layer's one error type. Each variant's doc says what a client of
//! the API sees; the API maps them in one place.

use appeals_core::{AccessDenied, CommandError, InvalidInput};
use sea_orm::DbErr;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    /// The caller's role may never do this (`FORBIDDEN`), or the target is outside
    /// the caller's scope and so does not exist for them (`NOT_FOUND`).
    #[error(transparent)]
    Access(#[from] AccessDenied),
    /// No such appeal, user or municipality (`NOT_FOUND`).
    #[error("not found")]
    NotFound,
    /// The input breaks a rule (`VALIDATION`).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The state machine refused the command (`INVALID_TRANSITION`,
    /// `VERSION_CONFLICT` or `VALIDATION`, by variant).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The database could not be reached, or did not answer in time
    /// (`INTERNAL`, "temporarily unavailable"; the request may be retried).
    #[error("the database is unavailable: {0}")]
    Unavailable(DbErr),
    /// Any other database failure (`INTERNAL`; logged in full, never shown).
    #[error("database error: {0}")]
    Database(DbErr),
    /// A stored row does not make sense to the domain (`INTERNAL`).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StorageError {
    fn from(error: DbErr) -> Self {
        match error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StorageError::Unavailable(error),
            other => StorageError::Database(other),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
