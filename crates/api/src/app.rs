//! The HTTP server: `/graphql` (POST for queries and mutations, GET for GraphiQL
//! and for WebSocket subscriptions), `/healthz`, `/readyz` and `/metrics`, with
//! request ids, tracing, a body limit, a timeout and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use appeals_storage::Store;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql::{BatchRequest, BatchResponse, Data, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{token_from_headers, token_from_payload, viewer_for};
use crate::config::ServerConfig;
use crate::error::{ApiError, ErrorCode};
use crate::notifications::EventBus;
use crate::rate_limit::CallerLimiter;
use crate::schema::loaders::new_loaders;
use crate::schema::{self, AppSchema};
use crate::telemetry;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The read buffer each WebSocket connection allocates up front.
const WEBSOCKET_READ_BUFFER: usize = 4 * 1024;

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    schema: AppSchema,
    store: Store,
    limiter: CallerLimiter,
    /// The largest request body, and the largest WebSocket message.
    body_limit: usize,
}

/// A built server, bound to its port and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    store: Store,
}

impl Application {
    /// Connects to the database, applies pending migrations, builds the schema
    /// and binds the listener (port 0 picks a free port).
    pub async fn build(config: ServerConfig) -> anyhow::Result<Application> {
        telemetry::metrics();
        let store = Store::open(&config.database_url, config.pool).await?.with_policy(config.policy);
        let store = store.prepare_audit(config.audit_key.clone()).await?;
        Self::build_with_store(config, store).await
    }

    /// As [`Application::build`], on a store the caller opened (and migrated).
    pub async fn build_with_store(config: ServerConfig, store: Store) -> anyhow::Result<Application> {
        // Installed now, not at the first scrape, so that nothing before it is lost.
        telemetry::metrics();
        let schema = schema::build(store.clone(), EventBus::default(), config.limits);
        let state = AppState {
            schema,
            store: store.clone(),
            limiter: CallerLimiter::new(config.rate_limit),
            body_limit: config.body_limit,
        };
        let router = router(state, &config);
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Application { listener, router, store })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then lets in-flight requests finish.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(address = %self.local_addr(), "serving Appeals");
        axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop)
            .await?;
        self.store.close().await.map_err(std::io::Error::other)?;
        tracing::info!("stopped");
        Ok(())
    }
}

fn router(state: AppState, config: &ServerConfig) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|| async { telemetry::metrics().render() }))
        .with_state(state)
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request.headers().get(REQUEST_ID).and_then(|value| value.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Counts requests and their latencies by route and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("appeals_http_requests_total", "path" => path.clone(), "status" => status).increment(1);
    metrics::histogram!("appeals_http_request_duration_seconds", "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer").into_response()
        }
    }
}

/// Queries and mutations. The body is parsed here rather than by an extractor so
/// that a malformed one gets a GraphQL-shaped `VALIDATION` error, not plain text.
async fn graphql_post(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = token_from_headers(&headers);
    let request: BatchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            if let Err(wait) = state.limiter.check(token.as_deref(), client.ip(), 1) {
                return rate_limited(wait);
            }
            let message = format!("the body is not a GraphQL request in JSON: {error}");
            return error_response(StatusCode::BAD_REQUEST, ApiError::new(ErrorCode::Validation, message));
        }
    };
    let operations = match &request {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(batch) => batch.len(),
    };
    if let Err(wait) = state.limiter.check(token.as_deref(), client.ip(), operations) {
        return rate_limited(wait);
    }
    let viewer = match viewer_for(&state.store, token.as_deref()).await {
        Ok(viewer) => viewer,
        Err(error) => return error_response(StatusCode::SERVICE_UNAVAILABLE, error),
    };
    let request = request.data(viewer).data(new_loaders(state.store.clone()));
    let mut response = state.schema.execute_batch(request).await;
    coded_errors(&mut response);
    GraphQLResponse::from(response).into_response()
}

/// GraphiQL for browsers, or a `graphql-transport-ws` subscription for
/// WebSocket upgrades.
async fn graphql_get(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        return Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql").finish())
            .into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &state).await {
        Ok(protocol) => protocol,
        Err(status) => return status.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let header_token = token_from_headers(&parts.headers);
    if let Err(wait) = state.limiter.check(header_token.as_deref(), client.ip(), 1) {
        return rate_limited(wait);
    }
    let AppState { schema, store, body_limit, .. } = state;
    // A subscriber sends a few small messages and then listens: a read buffer of
    // 4 KiB instead of 128 KiB keeps a thousand subscribers in a few megabytes.
    let upgrade =
        upgrade.read_buffer_size(WEBSOCKET_READ_BUFFER).max_message_size(body_limit).max_frame_size(body_limit);
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        GraphQLWebSocket::new(socket, schema, protocol)
            .on_connection_init(move |payload| async move {
                let token = header_token.or_else(|| token_from_payload(&payload));
                let viewer = viewer_for(&store, token.as_deref()).await?;
                if viewer.0.is_none() {
                    return Err(ApiError::unauthenticated().into());
                }
                let mut data = Data::default();
                data.insert(viewer);
                data.insert(new_loaders(store));
                Ok(data)
            })
            .serve()
            .await
    })
}

/// Gives every error a code: async-graphql's own (syntax, unknown fields, wrong
/// types, limits) are the client's mistakes, so `VALIDATION`.
fn coded_errors(response: &mut BatchResponse) {
    let responses: Vec<&mut async_graphql::Response> = match response {
        BatchResponse::Single(single) => vec![single],
        BatchResponse::Batch(batch) => batch.iter_mut().collect(),
    };
    for single in responses {
        for error in &mut single.errors {
            add_code_if_missing(error);
        }
    }
}

fn add_code_if_missing(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        metrics::counter!("appeals_graphql_errors_total", "code" => ErrorCode::Validation.as_str()).increment(1);
        extensions.set("code", ErrorCode::Validation.as_str());
    }
}

fn rate_limited(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let error = ApiError::new(ErrorCode::RateLimited, format!("too many requests; retry in {seconds} s"));
    metrics::counter!("appeals_graphql_errors_total", "code" => ErrorCode::RateLimited.as_str()).increment(1);
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, error);
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

fn error_response(status: StatusCode, error: ApiError) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": error.message, "extensions": { "code": error.code.as_str() } }],
    });
    (status, Json(body)).into_response()
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
