//! The API's errors and the one place where every lower-layer error becomes an
//! `extensions.code` of the public contract.
//!
//! [`ApiError`] deliberately does not implement `Display`: async-graphql turns any
//! `Display` type into an error without a code, and this way the compiler refuses
//! such a silent conversion.

use appeals_core::{AccessDenied, CommandError, InvalidInput};
use appeals_storage::StorageError;
use async_graphql::ErrorExtensions;

/// The error codes of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token, an unknown token, or a revoked user's.
    Unauthenticated,
    /// The caller's role may never do this.
    Forbidden,
    /// No such thing, or not within the caller's scope.
    NotFound,
    /// The input breaks a rule, or the request is malformed.
    Validation,
    /// The state machine does not allow this from the appeal's status.
    InvalidTransition,
    /// The appeal changed since the caller read it.
    VersionConflict,
    /// The caller sent too many requests.
    RateLimited,
    /// The operation would cost more than the budget of one request.
    QueryTooComplex,
    /// The database is out of reach or every connection is busy; retrying in a
    /// few seconds may succeed.
    ServiceUnavailable,
    /// The server failed; details are in its log, never in the response.
    Internal,
    /// An automatic persisted query's hash that the server does not know: send
    /// the document with its hash once to register it (Apollo's protocol).
    PersistedQueryNotFound,
    /// Automatic persisted queries are turned off on this server.
    PersistedQueryNotSupported,
    /// The server runs only its trusted documents, and this is not one of them.
    PersistedQueryNotInList,
    /// A subscription's `after` cursor is further behind than the server
    /// replays: re-read the state, then subscribe without it.
    CursorExpired,
}

impl ErrorCode {
    /// Every code, in declaration order: what `docs/API.md` must describe.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Validation,
        ErrorCode::InvalidTransition,
        ErrorCode::VersionConflict,
        ErrorCode::RateLimited,
        ErrorCode::QueryTooComplex,
        ErrorCode::ServiceUnavailable,
        ErrorCode::Internal,
        ErrorCode::PersistedQueryNotFound,
        ErrorCode::PersistedQueryNotSupported,
        ErrorCode::PersistedQueryNotInList,
        ErrorCode::CursorExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::InvalidTransition => "INVALID_TRANSITION",
            ErrorCode::VersionConflict => "VERSION_CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            ErrorCode::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            ErrorCode::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            ErrorCode::CursorExpired => "CURSOR_EXPIRED",
        }
    }
}

/// An error as a client sees it: a code, a plain message, and for some codes
/// figures that say more (`extensions.cost` and `extensions.budget` of
/// `QUERY_TOO_COMPLEX`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub figures: Vec<(&'static str, u64)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), figures: Vec::new() }
    }

    /// Adds a figure to the error's extensions.
    pub fn with_figure(mut self, name: &'static str, value: u64) -> Self {
        self.figures.push((name, value));
        self
    }

    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "a valid `Authorization: Bearer <token>` header is required")
    }

    /// A failure of the server itself: logged here in full, inside the request's
    /// span; the client gets only the code and a plain sentence.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "not found")
    }

    pub fn validation(field: &'static str, problem: impl Into<String>) -> Self {
        InvalidInput::new(field, problem).into()
    }

    /// A GraphQL answer that is this error alone (an operation refused before it
    /// ran).
    pub fn into_graphql_response(self) -> async_graphql::Response {
        async_graphql::Response::from_errors(vec![self.into()])
    }
}

impl From<StorageError> for ApiError {
    /// The mapping of every failure below the API to a code. Internal failures are
    /// logged here, once and in full, inside the request's span (which carries its
    /// request id); the client gets only the code and a plain sentence.
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Access(AccessDenied::Forbidden) => {
                ApiError::new(ErrorCode::Forbidden, "your role may not do this")
            }
            StorageError::Access(AccessDenied::NotFound) | StorageError::NotFound => ApiError::not_found(),
            StorageError::Invalid(invalid) => ApiError::new(ErrorCode::Validation, invalid.to_string()),
            StorageError::Command(command) => {
                let code = match &command {
                    CommandError::InvalidTransition { .. } | CommandError::AlreadyExtended => {
                        ErrorCode::InvalidTransition
                    }
                    CommandError::VersionConflict { .. } => ErrorCode::VersionConflict,
                    CommandError::Invalid(_) => ErrorCode::Validation,
                };
                ApiError::new(code, command.to_string())
            }
            StorageError::Unavailable(cause) => {
                tracing::error!(error = %cause, "the database is unavailable");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the service is temporarily unavailable (the database is busy or out of reach); retry in a few seconds",
                )
            }
            StorageError::Database(cause) => ApiError::internal(format_args!("database error: {cause}")),
            StorageError::Corrupt(cause) => ApiError::internal(format_args!("inconsistent stored data: {cause}")),
        }
    }
}

impl From<InvalidInput> for ApiError {
    fn from(invalid: InvalidInput) -> Self {
        StorageError::Invalid(invalid).into()
    }
}

impl From<AccessDenied> for ApiError {
    fn from(denied: AccessDenied) -> Self {
        StorageError::Access(denied).into()
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        metrics::counter!("appeals_graphql_errors_total", "code" => error.code.as_str()).increment(1);
        async_graphql::Error::new(error.message).extend_with(|_, extensions| {
            extensions.set("code", error.code.as_str());
            for (name, value) in &error.figures {
                extensions.set(*name, *value);
            }
        })
    }
}

impl From<ApiError> for async_graphql::ServerError {
    /// An error refused before a document was read has no place in it: no
    /// `locations` (async-graphql would say line 0, column 0).
    fn from(error: ApiError) -> Self {
        let mut error = async_graphql::Error::from(error).into_server_error(Default::default());
        error.locations.clear();
        error
    }
}

/// Gives a code to an error that has none: async-graphql's own (syntax, unknown
/// fields, wrong types, depth) are the client's mistakes, so `VALIDATION`.
pub fn code_unclassified(error: &mut async_graphql::ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        metrics::counter!("appeals_graphql_errors_total", "code" => ErrorCode::Validation.as_str()).increment(1);
        extensions.set("code", ErrorCode::Validation.as_str());
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once_each_with_its_own_name() {
        // This match has no wildcard: a new code does not compile until it has
        // an arm here, and its arm is the reminder to add it to `ALL`.
        let position = |code: ErrorCode| match code {
            ErrorCode::Unauthenticated => 0,
            ErrorCode::Forbidden => 1,
            ErrorCode::NotFound => 2,
            ErrorCode::Validation => 3,
            ErrorCode::InvalidTransition => 4,
            ErrorCode::VersionConflict => 5,
            ErrorCode::RateLimited => 6,
            ErrorCode::QueryTooComplex => 7,
            ErrorCode::ServiceUnavailable => 8,
            ErrorCode::Internal => 9,
            ErrorCode::PersistedQueryNotFound => 10,
            ErrorCode::PersistedQueryNotSupported => 11,
            ErrorCode::PersistedQueryNotInList => 12,
            ErrorCode::CursorExpired => 13,
        };
        assert_eq!(ErrorCode::ALL.len(), 14, "every code of the match above, once");
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), index, "{code:?} out of place in ErrorCode::ALL");
        }
        let names: std::collections::HashSet<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "two codes share a name");
    }

    #[test]
    fn a_pool_with_no_free_connection_is_service_unavailable_not_internal() {
        let timeout = sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        let error = ApiError::from(StorageError::from(timeout));
        assert_eq!(error.code, ErrorCode::ServiceUnavailable);
        assert!(error.message.contains("retry"), "{}", error.message);
    }
}
