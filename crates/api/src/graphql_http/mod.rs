//! `/graphql` over HTTP, as the GraphQL over HTTP specification has it: POST runs
//! any operation, GET runs queries from URL parameters, serves GraphiQL to a
//! browser that asks for a page, or upgrades to a WebSocket
//! ([`crate::websocket`]).
//!
//! The answer is `application/graphql-response+json` or `application/json`, as
//! the client accepts ([`negotiation`]). A request error (the document does not
//! parse or validate, a variable does not coerce, a persisted document is
//! unknown) is a `400` without `data` under the first, a `200` under the second;
//! a malformed request (no document, a parameter of the wrong type, a body that is
//! not JSON) is a `400` under both.
//!
//! A request passes, in order: its media types, the caller's rate limit (an
//! unknown token is charged to its address before the database is asked about
//! it), its parameters ([`params`]), the batch's size, the token, the caller's
//! requests in flight; then each operation's document is found ([`crate::persisted`])
//! and admitted ([`crate::admission`]); only then does async-graphql see it, and
//! the budget ([`crate::budget`]) is checked at its validation. The answer is
//! bounded in size too.

mod negotiation;
mod params;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use appeals_storage::Store;
use appeals_storage::directory::token_digest;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
use async_graphql::parser::types::OperationType;
use async_graphql::{ServerError, Variables};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use negotiation::MediaType;
use params::{Batch, Params};

use crate::admission::DocumentLimits;
use crate::auth::{Viewer, token_from_headers};
use crate::error::{ApiError, ErrorCode, code_unclassified};
use crate::graphiql;
use crate::persisted::{Lookup, PersistedDocuments};
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
    pub persisted: PersistedDocuments,
    pub sockets: Sockets,
    /// The largest request body, the largest GET query string, and the largest
    /// WebSocket message.
    pub body_limit: usize,
    /// The largest answer, in bytes of JSON.
    pub response_limit: usize,
}

/// Any operation, from a JSON body.
pub async fn post(
    State(state): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(media) = negotiation::negotiate(&headers) else { return not_acceptable() };
    if let Err(problem) = negotiation::check_content_type(&headers) {
        let error = ApiError::new(ErrorCode::Validation, problem);
        return refusal(StatusCode::UNSUPPORTED_MEDIA_TYPE, error, media);
    }
    let gate = match Gate::open(&state, &headers, peer) {
        Ok(gate) => gate,
        Err(refused) => return rate_limited(refused),
    };
    let batch = match params::from_body(&body) {
        Ok(batch) => batch,
        Err(problem) => return refusal(StatusCode::BAD_REQUEST, ApiError::new(ErrorCode::Validation, problem), media),
    };
    match gate.identify(&state).await {
        Ok(caller) => caller.run(&state, batch, Method::POST, media).await,
        Err(error) => refusal(StatusCode::SERVICE_UNAVAILABLE, error, media),
    }
}

/// A WebSocket upgrade, GraphiQL for a browser that asks for a page, or a query
/// from the URL's parameters.
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
    if wants_websocket {
        return upgrade(state, peer, request).await;
    }
    let headers = request.headers();
    let query_string = request.uri().query().unwrap_or_default();
    if query_string.is_empty() && negotiation::wants_html(headers) {
        return graphiql::page(headers);
    }
    let Some(media) = negotiation::negotiate(headers) else { return not_acceptable() };
    if query_string.len() > state.body_limit {
        let message = format!(
            "the URL's parameters are {} bytes and the limit is {}: send a long document with POST",
            query_string.len(),
            state.body_limit
        );
        return refusal(StatusCode::URI_TOO_LONG, ApiError::new(ErrorCode::Validation, message), media);
    }
    let gate = match Gate::open(&state, headers, peer) {
        Ok(gate) => gate,
        Err(refused) => return rate_limited(refused),
    };
    let params = match params::from_url(query_string) {
        Ok(params) => params,
        Err(problem) => return refusal(StatusCode::BAD_REQUEST, ApiError::new(ErrorCode::Validation, problem), media),
    };
    match gate.identify(&state).await {
        Ok(caller) => caller.run(&state, Batch::Single(params), Method::GET, media).await,
        Err(error) => refusal(StatusCode::SERVICE_UNAVAILABLE, error, media),
    }
}

/// A request through its first rate limit: an unknown token is charged to its
/// address before the database is asked about it.
struct Gate {
    address: IpAddr,
    token: Option<String>,
    digest: Option<String>,
}

impl Gate {
    fn open(state: &GraphqlState, headers: &HeaderMap, peer: SocketAddr) -> Result<Gate, Refused> {
        let address = state.limits.client_address(headers, peer);
        let token = token_from_headers(headers);
        let digest = token.as_deref().map(token_digest);
        if !digest.as_deref().is_some_and(|digest| state.limits.is_known_token(digest))
            && let Err(refused) = state.limits.charge_address(address, 1)
        {
            return Err(refused);
        }
        Ok(Gate { address, token, digest })
    }

    /// Finds the token's user.
    async fn identify(self, state: &GraphqlState) -> Result<Admitted, ApiError> {
        let user = match self.token.as_deref() {
            None => None,
            Some(token) => state.store.user_by_token(token).await?,
        };
        if let Some(digest) = &self.digest {
            state.limits.learn_token(digest, user.is_some());
        }
        Ok(Admitted { viewer: Viewer { user }, address: self.address })
    }
}

/// A caller the rate limits let in, and who they are.
struct Admitted {
    viewer: Viewer,
    address: IpAddr,
}

impl Admitted {
    /// Whom the limits count: the user, or the address without one.
    fn caller(&self) -> Caller {
        self.viewer.user.as_ref().map_or(Caller::Address(self.address), |user| Caller::User(user.id))
    }

    /// Charges the batch, holds a place among the caller's requests in flight,
    /// and runs each operation.
    async fn run(self, state: &GraphqlState, batch: Batch, method: Method, media: MediaType) -> Response {
        let operations = batch.len();
        if operations > state.documents.max_batch {
            let message =
                format!("a batch may hold at most {} operations, got {operations}", state.documents.max_batch);
            return refusal(StatusCode::BAD_REQUEST, ApiError::new(ErrorCode::Validation, message), media);
        }
        let charged = match &self.viewer.user {
            Some(user) => state.limits.charge_user(user.id, operations),
            None => state.limits.charge_address(self.address, operations.saturating_sub(1)),
        };
        if let Err(refused) = charged {
            return rate_limited(refused);
        }
        let _in_flight = match state.limits.enter(self.caller()).await {
            Ok(in_flight) => in_flight,
            Err(refused) => return rate_limited(refused),
        };
        match batch {
            Batch::Single(params) => {
                let outcome = execute(state, &self.viewer, params, &method).await;
                answer_one(outcome, media, &method, state.response_limit)
            }
            // One after the other: a batch is one client's work, and runs as such.
            Batch::Batch(batch) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for params in batch {
                    outcomes.push(execute(state, &self.viewer, params, &method).await);
                }
                answer_batch(outcomes, media, state.response_limit)
            }
        }
    }
}

/// How one operation ended.
enum Outcome {
    /// It ran; its errors, if any, are field errors.
    Executed(async_graphql::Response),
    /// It was refused before it ran: a request error, without `data`.
    Refused(Vec<ServerError>),
    /// A mutation or subscription sent with GET, refused.
    NotAQuery(Vec<ServerError>),
    /// A document outside the trusted documents, refused.
    Untrusted(Vec<ServerError>),
}

/// Finds the document, admits it and runs it.
async fn execute(state: &GraphqlState, viewer: &Viewer, mut params: Params, method: &Method) -> Outcome {
    let lookup = Lookup {
        query: params.query.take(),
        document_id: params.document_id.as_deref(),
        persisted_query: params.persisted_query(),
    };
    let resolved = match state.persisted.resolve(lookup) {
        Ok(resolved) => resolved,
        Err(error) if error.code == ErrorCode::PersistedQueryNotInList => {
            return Outcome::Untrusted(vec![error.into()]);
        }
        Err(error) => return Outcome::Refused(vec![error.into()]),
    };
    let mut request = async_graphql::Request::new(resolved.document);
    request.operation_name = params.operation_name;
    if let Some(variables) = params.variables {
        request.variables = Variables::from_json(serde_json::Value::Object(variables));
    }
    if let Err(error) = state.documents.admit(&mut request) {
        return Outcome::Refused(vec![error.into()]);
    }
    if *method == Method::GET
        && let Some(kind) = operation_type(&mut request)
        && kind != OperationType::Query
    {
        let message = format!("a {kind} cannot run over GET, which must stay safe to repeat: send it with POST");
        return Outcome::NotAQuery(vec![ApiError::new(ErrorCode::Validation, message).into()]);
    }
    if let Some(hash) = resolved.register {
        state.persisted.register(hash, &request.query);
    }
    let order = Order::of(&mut request);
    let request = request.data(viewer.clone()).data(new_loaders(state.store.clone()));
    let mut response = state.schema.execute(request).await;
    order.apply(&mut response);
    response.errors.iter_mut().for_each(code_unclassified);
    // A request error is raised before execution: no data, and no error at a
    // field's path. An error that nulled the whole answer from a field has one.
    if response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
    {
        return Outcome::Refused(response.errors);
    }
    Outcome::Executed(response)
}

/// The type of the operation a parsed request would run, if it names one the
/// document has.
fn operation_type(request: &mut async_graphql::Request) -> Option<OperationType> {
    let name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let operation = match name {
        Some(name) => document.operations.iter().find(|(candidate, _)| candidate.is_some_and(|n| *n == name))?.1,
        None => document.operations.iter().next()?.1,
    };
    Some(operation.node.ty)
}

/// An answer's JSON: `data` only when execution began.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[ServerError]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, async_graphql::Value>,
}

/// No extensions.
static NONE: BTreeMap<String, async_graphql::Value> = BTreeMap::new();

impl<'a> Body<'a> {
    fn of(outcome: &'a Outcome) -> Body<'a> {
        match outcome {
            Outcome::Executed(response) => {
                Body { data: Some(&response.data), errors: &response.errors, extensions: &response.extensions }
            }
            Outcome::Refused(errors) | Outcome::NotAQuery(errors) | Outcome::Untrusted(errors) => {
                Body { data: None, errors, extensions: &NONE }
            }
        }
    }
}

/// The answer to one operation.
fn answer_one(outcome: Outcome, media: MediaType, method: &Method, limit: usize) -> Response {
    let status = match &outcome {
        Outcome::NotAQuery(_) => StatusCode::METHOD_NOT_ALLOWED,
        Outcome::Untrusted(_) => StatusCode::BAD_REQUEST,
        Outcome::Refused(_) if media == MediaType::GraphqlResponse => StatusCode::BAD_REQUEST,
        Outcome::Refused(_) | Outcome::Executed(_) => StatusCode::OK,
    };
    let Some(mut response) = encode(&Body::of(&outcome), status, media, limit) else {
        return too_large(limit, media);
    };
    if let Outcome::Executed(executed) = &outcome {
        if executed.is_ok()
            && let Some(cache_control) = executed.cache_control.value()
            && let Ok(value) = HeaderValue::from_str(&cache_control)
        {
            response.headers_mut().insert(header::CACHE_CONTROL, value);
        }
        response.headers_mut().extend(executed.http_headers.clone());
    }
    if let Outcome::NotAQuery(_) = &outcome {
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    if *method == Method::GET {
        // What a GET answers depends on who asks and for which media type.
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Authorization"));
    }
    response
}

/// The answers to a batch, in its order. Batches are outside the specification;
/// their status is `200` and each answer stands on its own.
fn answer_batch(outcomes: Vec<Outcome>, media: MediaType, limit: usize) -> Response {
    let bodies: Vec<Body<'_>> = outcomes.iter().map(Body::of).collect();
    encode(&bodies, StatusCode::OK, media, limit).unwrap_or_else(|| too_large(limit, media))
}

/// Serializes `body`; `None` when it is larger than `limit` bytes.
fn encode(body: &impl Serialize, status: StatusCode, media: MediaType, limit: usize) -> Option<Response> {
    let bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(error) => return Some(refusal(StatusCode::INTERNAL_SERVER_ERROR, ApiError::internal(error), media)),
    };
    if bytes.len() > limit {
        return None;
    }
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
    Some(response)
}

/// The operation ran, but its answer is larger than the server sends.
fn too_large(limit: usize, media: MediaType) -> Response {
    let message = format!("the answer would be more than {limit} bytes: ask for fewer items or fields");
    let error: ServerError = ApiError::new(ErrorCode::QueryTooComplex, message).into();
    let body =
        Body { data: Some(&async_graphql::Value::Null), errors: std::slice::from_ref(&error), extensions: &NONE };
    encode(&body, StatusCode::OK, media, usize::MAX)
        .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A `graphql-transport-ws` subscription.
async fn upgrade(state: GraphqlState, peer: SocketAddr, request: Request) -> Response {
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
    // The socket's operations join the upgrade request's trace.
    let span = crate::traces::socket_parent();
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| {
        tracing::Instrument::instrument(sockets.serve(socket, protocol, header_token, address), span)
    })
}

/// 429 with `Retry-After`.
pub fn rate_limited(refused: Refused) -> Response {
    let seconds = refused.retry_after.as_secs().max(1);
    let message = format!("{}; retry in {seconds} s", refused.reason);
    let mut response =
        refusal(StatusCode::TOO_MANY_REQUESTS, ApiError::new(ErrorCode::RateLimited, message), MediaType::Json);
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

/// The client accepts neither media type an answer can have.
fn not_acceptable() -> Response {
    let message =
        "the answer is application/graphql-response+json or application/json; the Accept header allows neither";
    refusal(StatusCode::NOT_ACCEPTABLE, ApiError::new(ErrorCode::Validation, message), MediaType::Json)
}

/// A request refused before any operation ran: `status`, and `error` alone
/// without `data`.
pub fn refusal(status: StatusCode, error: ApiError, media: MediaType) -> Response {
    let outcome = Outcome::Refused(vec![error.into()]);
    encode(&Body::of(&outcome), status, media, usize::MAX)
        .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
