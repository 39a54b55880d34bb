//! The server: its routes and middleware, and its life from start to shutdown.
//! `/graphql` is served by [`crate::graphql_http`] and [`crate::websocket`],
//! GraphiQL's files by [`crate::graphiql`]; connections are accepted and bounded
//! by [`crate::connections`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use appeals_storage::database::ConnectionBudget;
use appeals_storage::{StandbyRefused, Store, database};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};
use tracing::Span;

use crate::config::ServerConfig;
use crate::connections::{self, ConnectionLimits};
use crate::delivery::{DeliverySettings, Worker};
use crate::exit::Failure;
use crate::graphql_http::{self, GraphqlState};
use crate::hooks::{self, HookState};
use crate::notifications::EventFeed;
use crate::persisted::PersistedDocuments;
use crate::rate_limit::CallerLimits;
use crate::schema;
use crate::telemetry;
use crate::traces;
use crate::websocket::Sockets;
use crate::{console, graphiql};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A built server, bound to its port and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    store: Store,
    connection_limits: ConnectionLimits,
    going_away: watch::Sender<bool>,
    delivery: DeliverySettings,
    /// What the database is, for the start log (never a password).
    database: String,
}

impl Application {
    /// Binds the listener (port 0 picks a free port), then connects to the
    /// database, applies pending migrations and builds the schema.
    pub async fn build(config: ServerConfig) -> anyhow::Result<Application> {
        // Installed now, not at the first scrape, so that nothing before it is lost.
        telemetry::metrics();
        let listener = bind(config.listen).await?;
        let url = &config.database_url;
        let store = match Store::open(url, config.pool).await {
            Ok(store) => store.with_policy(config.policy),
            Err(error) => return Err(Failure::Database(database::diagnose(url, &error).await).into()),
        };
        let store =
            store.prepare_audit(config.audit_key.clone()).await?.with_local_offset(config.channels.local_offset);
        let store = match &config.standby {
            Some(standby) => {
                store.with_standby(&standby.url, standby.settings).await.map_err(|refused| match refused {
                    StandbyRefused::NotPostgres(message) => Failure::Usage(message),
                    other => Failure::Database(other.to_string()),
                })?
            }
            None => store,
        };
        log_connection_budget(&store, &config).await;
        let feed = match EventFeed::start(store.clone(), config.subscription_replay_limit).await {
            Ok(feed) => feed,
            Err(error) => return Err(Failure::Database(format!("cannot read the events: {error}")).into()),
        };
        Ok(Self::assemble(config, store, feed, listener))
    }

    fn assemble(config: ServerConfig, store: Store, feed: EventFeed, listener: TcpListener) -> Application {
        let schema = schema::build(store.clone(), feed, config.limits);
        let limits = CallerLimits::new(&config.caller_limits);
        let (going_away, going_away_receiver) = watch::channel(false);
        let persisted = PersistedDocuments::new(&config.persisted);
        let sockets = Sockets::new(
            schema.clone(),
            store.clone(),
            limits.clone(),
            config.documents,
            persisted.clone(),
            config.sockets,
            going_away_receiver,
        );
        let state = GraphqlState {
            schema,
            store: store.clone(),
            limits,
            documents: config.documents,
            persisted,
            sockets,
            body_limit: config.body_limit,
            response_limit: config.response_limit,
        };
        let hooks = HookState {
            store: store.clone(),
            limits: state.limits.clone(),
            follow_up_window: config.channels.follow_up_window,
        };
        let router = router(state, hooks, &config);
        Application {
            listener,
            router,
            store,
            connection_limits: config.connections,
            going_away,
            delivery: config.channels.delivery,
            database: match &config.standby {
                Some(standby) => format!(
                    "{}; lists, dashboards and searches read on {}",
                    database::describe(&config.database_url),
                    database::describe(&standby.url)
                ),
                None => database::describe(&config.database_url),
            },
        }
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

    /// Serves until SIGINT or SIGTERM, then shuts down within the deadline.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then lets in-flight requests finish within
    /// the shutdown deadline.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let base = format!("http://{}", self.local_addr());
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            database = %self.database,
            "Appeals is serving on {base}: GraphiQL at {base}/graphql, health at {base}/healthz and {base}/readyz, metrics at {base}/metrics"
        );
        let worker = Worker::spawn(self.store.clone(), self.delivery, self.going_away.subscribe())
            .map_err(std::io::Error::other)?;
        connections::serve(self.listener, self.router, self.connection_limits, stop, self.going_away).await;
        // A reply being sent is given the shutdown deadline to finish; one cut
        // off is taken up again once its lease passes.
        if tokio::time::timeout(self.connection_limits.shutdown_timeout, worker).await.is_err() {
            tracing::warn!("the reply worker did not stop in time");
        }
        // Connections abandoned at the deadline may still hold a database
        // connection for a moment; closing the pool waits for them only so long.
        let closing = self.store.close();
        if tokio::time::timeout(self.connection_limits.shutdown_timeout, closing).await.is_err() {
            tracing::warn!("the database pool did not close in time");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Logs how many connections this process may open on each server, and warns
/// when that alone is more than the server allows (README, "Connection budget").
async fn log_connection_budget(store: &Store, config: &ServerConfig) {
    let budget = ConnectionBudget::new(&config.pool, config.standby.as_ref().map(|standby| &standby.settings.pool));
    let (allowed_on_primary, allowed_on_standby) = match store.allowed_connections().await {
        Ok(allowed) => allowed,
        Err(error) => {
            tracing::warn!(%error, "cannot read max_connections");
            (None, None)
        }
    };
    tracing::info!(
        on_primary = budget.on_primary(),
        pool = budget.pool,
        listeners = budget.listeners,
        followers = budget.followers,
        cancelling = budget.cancelling,
        on_standby = budget.on_standby(),
        allowed_on_primary,
        allowed_on_standby,
        "connection budget of this replica (the migration session at start is one more, only while the pool holds one)"
    );
    for (server, needed, allowed) in
        [("primary", budget.on_primary(), allowed_on_primary), ("standby", budget.on_standby(), allowed_on_standby)]
    {
        if let Some(allowed) = allowed.filter(|allowed| needed > *allowed) {
            tracing::warn!(
                server,
                needed,
                allowed,
                "this replica alone may open more connections than the {server} allows (max_connections less superuser_reserved_connections): lower --database-pool-size / --database-read-pool-size"
            );
        }
    }
}

/// Binds `address`, naming it and the flag that changes it when that fails.
async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|error| {
        Failure::Listen(format!(
            "cannot listen on {address}: {error}; choose another address with --listen or APPEALS_LISTEN"
        ))
        .into()
    })
}

fn router(state: GraphqlState, hooks: HookState, config: &ServerConfig) -> Router {
    let store = state.store.clone();
    Router::new()
        .route("/graphql", get(graphql_http::get).post(graphql_http::post))
        .with_state(state)
        .merge(hooks::routes(hooks))
        .route("/", get(console::page))
        .route("/console/{file}", get(console::file))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(store))
        .route("/metrics", get(|| async { telemetry::metrics().render() }))
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, config.request_timeout))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(
            |response: &Response, latency: Duration, span: &Span| {
                traces::record_response(span, response.status());
                DefaultOnResponse::default().on_response(response, latency, span);
            },
        ))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The span of one request: its method, path (never its query string, which
/// may carry a GraphQL request's variables) and id, continuing the caller's
/// trace when traces are on.
fn request_span(request: &Request) -> Span {
    let request_id = request.headers().get(REQUEST_ID).and_then(|value| value.to_str().ok()).unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    traces::continue_trace(&span, request.method().as_str(), route, request.headers());
    span
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

async fn readyz(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer").into_response()
        }
    }
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
}
