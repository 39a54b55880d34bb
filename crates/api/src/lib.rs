//! The Appeals API: the GraphQL schema, its HTTP and WebSocket server,
//! authentication, and the `appeals` command line. It is thin: it parses input,
//! asks `appeals-storage` (which asks `appeals-core`) and maps the output. It is
//! the only crate that knows GraphQL or HTTP.
//!
//! Layout, in reading order:
//! - [`config`]: the command line and the server's configuration.
//! - [`app`]: the server's routes and middleware, from start to shutdown.
//! - [`connections`]: accepting connections, with limits and timeouts.
//! - [`graphql_http`]: `/graphql` over HTTP.
//! - [`console`]: the web console at `/`, served from the binary.
//! - [`graphiql`]: the GraphiQL page and its files, served from the binary.
//! - [`static_files`]: how both serve their files (caching, `ETag`, policy).
//! - [`websocket`]: `/graphql` over WebSocket, each operation a request of its own.
//! - [`hooks`]: the Telegram, VK and MAX webhooks.
//! - [`delivery`]: the worker that sends replies to residents.
//! - [`persisted`]: documents named by their hash (APQ, trusted documents).
//! - [`admission`]: what a document must pass before it is parsed and validated.
//! - [`budget`]: what one operation may cost, and its share of the database.
//! - [`response_order`]: every object of an answer in the order it was asked for.
//! - [`auth`]: bearer tokens on HTTP and WebSocket.
//! - [`schema`]: types, loaders, queries, mutations, the subscription.
//! - [`error`]: the one mapping from every error to `extensions.code`.
//! - [`notifications`]: the feed that carries committed events, from every
//!   replica, to this server's subscriptions.
//! - [`occupancy`]: places held per key, with a cap (connections, sockets).
//! - [`rate_limit`]: per-user and per-address limits.
//! - [`telemetry`]: logs and metrics.
//! - [`traces`]: OpenTelemetry traces, when an OTLP endpoint is configured.
//! - [`cli`]: `migrate`, `user add`, `municipality list`, `channel set`,
//!   `audit verify`, `documents manifest`, `completions`; [`exit`]: the statuses they exit with.

pub mod admission;
pub mod app;
pub mod auth;
pub mod budget;
pub mod cli;
pub mod config;
pub mod connections;
pub mod console;
pub mod delivery;
pub mod error;
pub mod exit;
pub mod graphiql;
pub mod graphql_http;
pub mod hooks;
pub mod notifications;
pub mod occupancy;
pub mod persisted;
pub mod rate_limit;
pub mod response_order;
pub mod schema;
pub mod static_files;
pub mod telemetry;
pub mod traces;
pub mod websocket;

use std::process::ExitCode;

pub use app::Application;
pub use config::ServerConfig;

use config::{
    AuditCommand, ChannelCommand, Cli, Command, DocumentsCommand, MunicipalityCommand, SearchCommand, UserCommand,
};
use traces::Traces;

/// Runs the command line: what `main` does.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The server logs what it does; the one-shot commands speak through their
    // output and log only what goes wrong.
    let serving = matches!(cli.command, Command::Serve(_));
    let default_level = if serving { "info" } else { "warn" };
    // Only the server is traced: a one-shot command has no requests.
    let traces = if serving { Traces::start_from_env()? } else { None };
    telemetry::init_logging(cli.log_format, default_level, traces.as_ref());
    match cli.command {
        Command::Serve(args) => {
            let served = serve(ServerConfig::from(*args)).await;
            if let Some(traces) = traces {
                traces.shutdown().await;
            }
            served
        }
        Command::Migrate(args) => cli::migrate(args).await,
        Command::User(UserCommand::Add(args)) => cli::add_user(args).await,
        Command::Audit(AuditCommand::Verify(args)) => cli::verify_audit(args).await,
        Command::Search(SearchCommand::Reindex(args)) => cli::reindex_search(args).await,
        Command::Channel(ChannelCommand::Set(args)) => cli::set_channel(args).await,
        Command::Municipality(MunicipalityCommand::List(args)) => cli::list_municipalities(args).await,
        Command::Completions(args) => Ok(cli::completions(args)),
        Command::Documents(DocumentsCommand::Manifest(args)) => cli::documents_manifest(args),
    }
}

async fn serve(config: ServerConfig) -> anyhow::Result<ExitCode> {
    let application = Application::build(config).await?;
    application.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}
