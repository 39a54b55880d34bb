//! Authentication: `Authorization: Bearer <token>` on HTTP requests and WebSocket
//! upgrades, or `{"Authorization": "Bearer <token>"}` in a WebSocket's
//! `connection_init` payload. The token is looked up by its digest; an unknown
//! token and a revoked user's cost the same one query and are refused alike.

use appeals_core::Actor;
use appeals_storage::User;
use async_graphql::Context;
use axum::http::HeaderMap;

use crate::error::{ApiError, ApiResult};

/// Who is calling: the user behind a valid token, or nobody.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub user: Option<User>,
}

/// Extracts the token from an `Authorization` value (`Bearer <token>`, any case).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The token of an HTTP request, if it carries one.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned)
}

/// The token of a WebSocket `connection_init` payload, if it carries one.
pub fn token_from_payload(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
        .and_then(bearer_token)
        .map(str::to_owned)
}

/// The calling user, or `UNAUTHENTICATED`.
pub fn current_user<'a>(ctx: &'a Context<'_>) -> ApiResult<&'a User> {
    ctx.data_opt::<Viewer>().and_then(|viewer| viewer.user.as_ref()).ok_or_else(ApiError::unauthenticated)
}

/// The calling user as an actor of the permission checks, or `UNAUTHENTICATED`.
pub fn current_actor(ctx: &Context<'_>) -> ApiResult<Actor> {
    current_user(ctx).map(User::actor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_in_any_case_of_the_scheme() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn connection_init_payloads_carry_the_header_by_any_case() {
        let payload = serde_json::json!({"authorization": "Bearer xyz"});
        assert_eq!(token_from_payload(&payload).as_deref(), Some("xyz"));
        assert_eq!(token_from_payload(&serde_json::json!({"Authorization": "Bearer q"})).as_deref(), Some("q"));
        assert_eq!(token_from_payload(&serde_json::json!(null)), None);
    }
}
