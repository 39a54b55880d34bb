//! `/graphql` over HTTP: POST runs queries and mutations, GET serves GraphiQL to a
//! browser ([`crate::graphiql`]) or upgrades to a WebSocket ([`crate::websocket`]).
//!
//! A POST passes, in order: the caller's rate limit (an unknown token is charged
//! to its address before the database is asked about it), the body's JSON, the
//! batch's size, the token, the caller's requests in flight, then each
//! document's admission ([`crate::admission`]); only then does async-graphql see
//! it, and the budget ([`crate::budget`]) is checked at its validation. The
//! answer is bounded in size too.

use std::net::SocketAddr;

use appeals_storage::Store;
use appeals_storage::directory::token_digest;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
use async_graphql::{BatchRequest, BatchResponse};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::admission::DocumentLimits;
use crate::auth::{Viewer, token_from_headers};
use crate::error::{ApiError, ErrorCode, code_unclassified};
use crate::graphiql;
use crate::rate_limit::{Caller, CallerLimits, Refused};
use crate::response_order::Order;
use crate::schema::AppSchema;
use crate::schema::loaders::new_loaders;
use crate::websocket::Sockets;

/// The read buffer each WebSocket connection allocates up front: a subscriber
/// sends a few small messages and then listens, so 4 KiB instead of 128 KiB
/// keeps a thousand subscribers in a few megabytes.
const WEBSOCKET_READ_BUFFER: usize = 4 * 1024;

/// What the `/graphql` handlers share.
#[derive(Clone)]
pub struct GraphqlState {
    pub schema: AppSchema,
    pub store: Store,
    pub limits: CallerLimits,
    pub documents: DocumentLimits,
    pub sockets: Sockets,
    /// The largest request body, and the largest WebSocket message.
    pub body_limit: usize,
    /// The largest answer, in bytes of JSON.
    pub response_limit: usize,
}

/// Queries and mutations. The body is parsed here rather than by an extractor so
/// that a malformed one gets a GraphQL-shaped `VALIDATION` error, not plain text.
pub async fn post(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let address = state.limits.client_address(&headers, peer);
    let token = token_from_headers(&headers);
    let digest = token.as_deref().map(token_digest);
    if !digest.as_deref().is_some_and(|digest| state.limits.is_known_token(digest))
        && let Err(refused) = state.limits.charge_address(address, 1)
    {
        return rate_limited(refused);
    }
    let request: BatchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("the body is not a GraphQL request in JSON: {error}");
            return error_response(StatusCode::BAD_REQUEST, ApiError::new(ErrorCode::Validation, message));
        }
    };
    let operations = match &request {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(batch) => batch.len(),
    };
    if operations > state.documents.max_batch {
        let message = format!("a batch may hold at most {} operations, got {operations}", state.documents.max_batch);
        return error_response(StatusCode::BAD_REQUEST, ApiError::new(ErrorCode::Validation, message));
    }
    let user = match token.as_deref() {
        None => None,
        Some(token) => match state.store.user_by_token(token).await {
            Ok(user) => user,
            Err(error) => return error_response(StatusCode::SERVICE_UNAVAILABLE, error.into()),
        },
    };
    if let Some(digest) = &digest {
        state.limits.learn_token(digest, user.is_some());
    }
    let charged = match &user {
        Some(user) => state.limits.charge_user(user.id, operations),
        None => state.limits.charge_address(address, operations.saturating_sub(1)),
    };
    if let Err(refused) = charged {
        return rate_limited(refused);
    }
    let caller = user.as_ref().map_or(Caller::Address(address), |user| Caller::User(user.id));
    let _in_flight = match state.limits.enter(caller).await {
        Ok(in_flight) => in_flight,
        Err(refused) => return rate_limited(refused),
    };
    let viewer = Viewer { user };
    let response = match request {
        BatchRequest::Single(request) => match execute(&state, &viewer, request).await {
            Ok(response) => BatchResponse::Single(response),
            Err(error) => return error_response(StatusCode::BAD_REQUEST, error),
        },
        // One after the other: a batch is one client's work, and runs as such.
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(execute(&state, &viewer, request).await.unwrap_or_else(ApiError::into_graphql_response));
            }
            BatchResponse::Batch(responses)
        }
    };
    answer(response, state.response_limit)
}

/// Admits and runs one operation.
async fn execute(
    state: &GraphqlState,
    viewer: &Viewer,
    mut request: async_graphql::Request,
) -> Result<async_graphql::Response, ApiError> {
    state.documents.admit(&mut request)?;
    let order = Order::of(&mut request);
    let request = request.data(viewer.clone()).data(new_loaders(state.store.clone()));
    let mut response = state.schema.execute(request).await;
    order.apply(&mut response);
    Ok(response)
}

/// Serializes the answer, refusing one larger than `limit` bytes.
fn answer(mut response: BatchResponse, limit: usize) -> Response {
    coded_errors(&mut response);
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, ApiError::internal(error)),
    };
    if body.len() > limit {
        let message =
            format!("the answer would be {} bytes and the limit is {limit}: ask for fewer items or fields", body.len());
        return error_response(StatusCode::OK, ApiError::new(ErrorCode::QueryTooComplex, message));
    }
    let mut http = (StatusCode::OK, body).into_response();
    http.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/graphql-response+json"));
    if let BatchResponse::Single(single) = &response {
        if single.is_ok()
            && let Some(cache_control) = single.cache_control.value()
            && let Ok(value) = HeaderValue::from_str(&cache_control)
        {
            http.headers_mut().insert(header::CACHE_CONTROL, value);
        }
        http.headers_mut().extend(single.http_headers.clone());
    }
    http
}

/// GraphiQL for browsers, or a `graphql-transport-ws` subscription for
/// WebSocket upgrades.
pub async fn get(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        return graphiql::page();
    }
    let (mut parts, _body) = request.into_parts();
    let protocol =
        parts.headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|value| value.to_str().ok()).and_then(|offered| {
            offered.split(',').find_map(|protocol| protocol.trim().parse::<WebSocketProtocols>().ok())
        });
    let Some(protocol) = protocol else {
        return (StatusCode::BAD_REQUEST, "no supported Sec-WebSocket-Protocol (graphql-transport-ws)").into_response();
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let address = state.limits.client_address(&parts.headers, peer);
    let header_token = token_from_headers(&parts.headers);
    let upgrade = upgrade
        .read_buffer_size(WEBSOCKET_READ_BUFFER)
        .max_message_size(state.body_limit)
        .max_frame_size(state.body_limit);
    let sockets = state.sockets;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| sockets.serve(socket, protocol, header_token, address))
}

/// Gives every error of the answer a code.
fn coded_errors(response: &mut BatchResponse) {
    let responses: Vec<&mut async_graphql::Response> = match response {
        BatchResponse::Single(single) => vec![single],
        BatchResponse::Batch(batch) => batch.iter_mut().collect(),
    };
    for single in responses {
        single.errors.iter_mut().for_each(code_unclassified);
    }
}

/// 429 with `Retry-After`.
pub fn rate_limited(refused: Refused) -> Response {
    let seconds = refused.retry_after.as_secs().max(1);
    let message = format!("{}; retry in {seconds} s", refused.reason);
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, ApiError::new(ErrorCode::RateLimited, message));
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

/// A GraphQL-shaped error answer with `status`.
pub fn error_response(status: StatusCode, error: ApiError) -> Response {
    (status, Json(error.into_graphql_response())).into_response()
}
