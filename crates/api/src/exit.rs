//! The exit statuses a script can rely on, and the one line a failure prints.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | `audit verify` found a history that does not verify |
//! | 2 | the command line or a value in it is wrong (clap's own status too) |
//! | 3 | the database cannot be opened, reached or migrated |
//! | 4 | the server cannot listen on its address |
//! | 5 | anything else; the message says what |

use std::process::ExitCode;

use appeals_storage::StorageError;

/// `audit verify` found a broken history.
pub const AUDIT_BROKEN: u8 = 1;
pub const USAGE: u8 = 2;
pub const DATABASE: u8 = 3;
pub const LISTEN: u8 = 4;
pub const OTHER: u8 = 5;

/// A failure that ends a command, with the status it exits with.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A wrong value: an unknown role or municipality, a bad name.
    #[error("{0}")]
    Usage(String),
    /// The database cannot be opened, reached or migrated.
    #[error("{0}")]
    Database(String),
    /// The server cannot listen on its address.
    #[error("{0}")]
    Listen(String),
}

impl Failure {
    pub fn status(&self) -> u8 {
        match self {
            Failure::Usage(_) => USAGE,
            Failure::Database(_) => DATABASE,
            Failure::Listen(_) => LISTEN,
        }
    }

    /// A storage error met by a command: the caller's mistake is a usage
    /// error, the database's trouble a database error.
    pub fn from_storage(error: StorageError) -> anyhow::Error {
        match error {
            StorageError::Invalid(invalid) => Failure::Usage(invalid.to_string()).into(),
            StorageError::Access(denied) => Failure::Usage(denied.to_string()).into(),
            StorageError::NotFound => Failure::Usage("not found".to_owned()).into(),
            StorageError::Unavailable(error) => {
                Failure::Database(format!("the database is unavailable: {error}")).into()
            }
            other => anyhow::Error::new(other),
        }
    }
}

/// The status and the line to print for an error that ended a command.
pub fn report(error: &anyhow::Error) -> (ExitCode, String) {
    match error.downcast_ref::<Failure>() {
        Some(failure) => (ExitCode::from(failure.status()), failure.to_string()),
        None => match error.downcast_ref::<appeals_core::InvalidInput>() {
            Some(invalid) => (ExitCode::from(USAGE), invalid.to_string()),
            None => (ExitCode::from(OTHER), format!("{error:#}")),
        },
    }
}
