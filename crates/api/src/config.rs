//! Configuration: one typed struct per command, from flags, then environment
//! variables, then defaults (clap with `env`).

use std::net::SocketAddr;
use std::time::Duration;

use appeals_core::{AuditKey, DeadlinePolicy, PolicyDuration};
use appeals_storage::{PoolSettings, StandbySettings};
use axum::http::HeaderName;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admission::DocumentLimits;
use crate::budget::QueryBudget;
use crate::connections::ConnectionLimits;
use crate::delivery::DeliverySettings;
use crate::persisted::{PersistedSettings, TrustedDocuments};
use crate::rate_limit::{LimitSettings, RateLimit};
use crate::schema::QueryLimits;
use crate::websocket::SocketSettings;

/// Appeals: citizens' appeals to the heads of municipalities, tracked to their
/// resolution.
#[derive(Debug, Parser)]
#[command(name = "appeals", version, about)]
pub struct Cli {
    /// Log format: human-readable lines or JSON objects.
    #[arg(long, global = true, env = "APPEALS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the API, applying pending migrations first.
    Serve(Box<ServeArgs>),
    /// Applies pending migrations and exits.
    Migrate(DatabaseArgs),
    /// Manages users.
    #[command(subcommand)]
    User(UserCommand),
    /// Checks the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configures the Telegram, VK and MAX channels.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Maintains the search indexes.
    #[command(subcommand)]
    Search(SearchCommand),
    /// Lists the municipalities (their codes are what the other commands take).
    #[command(subcommand)]
    Municipality(MunicipalityCommand),
    /// Prints a shell's completion script, e.g. `appeals completions bash >
    /// /etc/bash_completion.d/appeals`.
    Completions(CompletionsArgs),
    /// Trusted documents: the manifest `serve --trusted-documents` runs.
    #[command(subcommand)]
    Documents(DocumentsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DocumentsCommand {
    /// Prints the manifest of GraphQL documents, `{ "<sha256 hex>": "<document>" }`:
    /// each `.graphql` file (or each one in a folder) is one document.
    Manifest(ManifestArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// `.graphql` files or folders of them, e.g. `documents/`.
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum MunicipalityCommand {
    /// Prints each municipality's code and name.
    List(MunicipalityListArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MunicipalityListArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How a one-shot command prints what it made.
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArgs {
    /// Print only the result itself (a token, a code per line), for scripts.
    #[arg(long, short, conflicts_with = "json")]
    pub quiet: bool,

    /// Print the result as one JSON object (or array), for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Creates or changes a municipality's channel; prints its settings
    /// (never its secrets) and the webhook path to give the platform.
    Set(ChannelSetArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessagingChannel {
    Telegram,
    Vk,
    Max,
}

impl From<MessagingChannel> for appeals_core::Channel {
    fn from(channel: MessagingChannel) -> Self {
        match channel {
            MessagingChannel::Telegram => appeals_core::Channel::Telegram,
            MessagingChannel::Vk => appeals_core::Channel::Vk,
            MessagingChannel::Max => appeals_core::Channel::Max,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ChannelSetArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The municipality's code, such as `tomsk`.
    #[arg(long)]
    pub municipality: String,

    #[arg(long, value_enum)]
    pub channel: MessagingChannel,

    /// The secret the platform sends with every call. Also read from the
    /// environment, which keeps it out of the shell's history and `ps`.
    #[arg(long, env = "APPEALS_CHANNEL_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// The bot's (or VK community's) access token, for replies.
    #[arg(long, env = "APPEALS_CHANNEL_BOT_TOKEN", hide_env_values = true)]
    pub bot_token: Option<String>,

    /// The VK community's numeric id.
    #[arg(long)]
    pub vk_group_id: Option<String>,

    /// The string VK's confirmation call must be answered with.
    #[arg(long)]
    pub vk_confirmation: Option<String>,

    /// Turns the channel off (its webhook answers 401); without it the
    /// channel is enabled.
    #[arg(long)]
    pub disable: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user and prints its token alone on the last line.
    Add(UserAddArgs),
}

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Analyses every appeal's text again and rebuilds both search indexes,
    /// printing its progress. The server may keep running meanwhile.
    Reindex(DatabaseArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Checks the hash chains; exits with status 1 at the first broken one.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://FILE` or `postgres://USER@HOST/DB`. The SQLite file is created
    /// on first run.
    #[arg(long, env = "APPEALS_DATABASE_URL", default_value = "sqlite://appeals.db")]
    pub database_url: String,

    /// The most database connections to keep open.
    #[arg(long, env = "APPEALS_DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: u32,

    /// How long a request waits for a database connection before failing.
    #[arg(long, env = "APPEALS_DATABASE_TIMEOUT", default_value = "5s")]
    pub database_timeout: PolicyDuration,
}

impl DatabaseArgs {
    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database_pool_size.max(1),
            acquire_timeout: to_std(self.database_timeout),
            statement_timeout: None,
        }
    }
}

/// The messaging channels: where the platforms' APIs are, how follow-ups are
/// threaded, and how replies are delivered.
#[derive(Debug, Clone, Args)]
pub struct ChannelArgs {
    /// The Telegram Bot API's base address.
    #[arg(long, env = "APPEALS_TELEGRAM_API_URL", default_value = appeals_core::channels::telegram::DEFAULT_API_URL)]
    pub telegram_api_url: String,

    /// The VK API's base address.
    #[arg(long, env = "APPEALS_VK_API_URL", default_value = appeals_core::channels::vk::DEFAULT_API_URL)]
    pub vk_api_url: String,

    /// The MAX Bot API's base address.
    #[arg(long, env = "APPEALS_MAX_API_URL", default_value = appeals_core::channels::max::DEFAULT_API_URL)]
    pub max_api_url: String,

    /// How long after a resident's latest message on an open appeal a new
    /// message in the same chat is threaded onto it rather than registered.
    #[arg(long, env = "APPEALS_FOLLOW_UP_WINDOW", default_value = "24h")]
    pub follow_up_window: PolicyDuration,

    /// How long a delivery worker holds a reply it is sending; after a crash,
    /// the reply is taken up again once this has passed.
    #[arg(long, env = "APPEALS_REPLY_LEASE", default_value = "30s")]
    pub reply_lease: PolicyDuration,

    /// The offset from UTC that dates shown to residents are written in (the
    /// due date in an acknowledgement), e.g. `+07:00` for Tomsk.
    #[arg(long, env = "APPEALS_LOCAL_UTC_OFFSET", default_value = "+07:00", value_parser = parse_offset)]
    pub local_utc_offset: chrono::FixedOffset,
}

fn parse_offset(value: &str) -> Result<chrono::FixedOffset, String> {
    value.parse().map_err(|_| format!("`{value}` is not an offset from UTC such as +07:00"))
}

/// Reads on a PostgreSQL hot standby (README, "Deployment: several replicas").
#[derive(Debug, Clone, Args)]
pub struct StandbyArgs {
    /// A streaming hot standby of the database, `postgres://USER@HOST:PORT/DB`
    /// (the same database): lists, dashboards and searches are read there once
    /// it has replayed every change committed before them. Commands, and one
    /// appeal with its history, stay on the primary. Never migrated.
    #[arg(long, env = "APPEALS_DATABASE_READ_URL", value_parser = parse_read_url)]
    pub database_read_url: Option<String>,

    /// The most connections to keep open on the standby.
    #[arg(long, env = "APPEALS_DATABASE_READ_POOL_SIZE", default_value_t = 16)]
    pub database_read_pool_size: u32,

    /// How long a read waits for the standby to catch up with the primary
    /// (`100ms`, `1s`; `0ms` never waits) before it runs on the primary instead.
    #[arg(long, env = "APPEALS_DATABASE_READ_MAX_LAG", default_value = "100ms", value_parser = parse_lag)]
    pub database_read_max_lag: Duration,
}

/// A read URL must name PostgreSQL: SQLite has no standby.
fn parse_read_url(value: &str) -> Result<String, String> {
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        Ok(value.to_owned())
    } else {
        Err("a read URL must be a postgres:// URL of a hot standby of the database".to_owned())
    }
}

/// A short wait: `100ms`, `2s`.
fn parse_lag(value: &str) -> Result<Duration, String> {
    let refuse = || format!("`{value}` is not a wait such as 100ms or 1s");
    let value = value.trim();
    let (amount, unit) = match value.strip_suffix("ms") {
        Some(amount) => (amount, Duration::from_millis(1)),
        None => (value.strip_suffix('s').ok_or_else(refuse)?, Duration::from_secs(1)),
    };
    let amount: u32 = amount.parse().map_err(|_| refuse())?;
    let wait = unit * amount;
    if wait > Duration::from_secs(60) {
        return Err(format!("`{value}` is longer than a read should wait (at most 60s)"));
    }
    Ok(wait)
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub standby: StandbyArgs,

    /// The address to listen on; port 0 picks a free one.
    #[arg(long, env = "APPEALS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// How long the head has to read an appeal.
    #[arg(long, env = "APPEALS_SEEN_WITHIN", default_value = "3d")]
    pub seen_within: PolicyDuration,

    /// How long the municipality has to answer an appeal.
    #[arg(long, env = "APPEALS_ANSWER_WITHIN", default_value = "30d")]
    pub answer_within: PolicyDuration,

    /// The longest single extension of the answer deadline.
    #[arg(long, env = "APPEALS_MAX_EXTENSION", default_value = "30d")]
    pub max_extension: PolicyDuration,

    /// The largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "APPEALS_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,

    /// How long a request may run before it is answered 408.
    #[arg(long, env = "APPEALS_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: PolicyDuration,

    /// The deepest selection nesting a query may have.
    #[arg(long, env = "APPEALS_MAX_QUERY_DEPTH", default_value_t = QueryLimits::default().max_depth)]
    pub max_query_depth: usize,

    /// What one operation may cost: a field costs 1, a long text about 1 per
    /// kilobyte, and a list multiplies what it holds by its `first`.
    #[arg(long, env = "APPEALS_MAX_QUERY_COST", default_value_t = QueryBudget::default().max_cost)]
    pub max_query_cost: usize,

    /// The largest answer, in bytes of JSON.
    #[arg(long, env = "APPEALS_RESPONSE_LIMIT", default_value_t = 16 * 1024 * 1024)]
    pub response_limit: usize,

    /// The most operations in one batched request.
    #[arg(long, env = "APPEALS_MAX_BATCH", default_value_t = DocumentLimits::default().max_batch)]
    pub max_batch: usize,

    /// The most bytes of documents kept for automatic persisted queries (Apollo's
    /// APQ), the least recently used dropped first; 0 turns APQ off.
    #[arg(long, env = "APPEALS_APQ_CACHE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub apq_cache_bytes: usize,

    /// Run only the documents of this manifest (`{ "<sha256 hex>": "<document>" }`,
    /// GraphQL Code Generator's persisted-documents.json); anything else is refused.
    #[arg(long, env = "APPEALS_TRUSTED_DOCUMENTS", value_name = "FILE", value_parser = parse_trusted_documents)]
    pub trusted_documents: Option<TrustedDocuments>,

    /// Operations per second each user may sustain; 0 turns rate limiting off
    /// (for users and addresses alike).
    #[arg(long, env = "APPEALS_RATE_LIMIT", default_value_t = 50)]
    pub rate_limit: u32,

    /// How many operations a user may send at once above the sustained rate.
    #[arg(long, env = "APPEALS_RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,

    /// Requests per second one client address may send without a valid token
    /// (none, unknown or revoked).
    #[arg(long, env = "APPEALS_ANONYMOUS_RATE_LIMIT", default_value_t = 10)]
    pub anonymous_rate_limit: u32,

    /// The burst of requests without a valid token one address may send at once.
    #[arg(long, env = "APPEALS_ANONYMOUS_RATE_LIMIT_BURST", default_value_t = 50)]
    pub anonymous_rate_limit_burst: u32,

    /// Requests one user (or one address, without a token) may have running at
    /// once; 0 for no limit.
    #[arg(long, env = "APPEALS_MAX_REQUESTS_IN_FLIGHT", default_value_t = 8)]
    pub max_requests_in_flight: usize,

    /// The header a trusted reverse proxy puts the client's address in, such as
    /// `X-Forwarded-For` (its last address is used) or `X-Real-IP`. Set it only
    /// when every request comes through that proxy.
    #[arg(long, env = "APPEALS_CLIENT_ADDRESS_HEADER")]
    pub client_address_header: Option<HeaderName>,

    /// The most connections open at once; 0 for no limit.
    #[arg(long, env = "APPEALS_MAX_CONNECTIONS", default_value_t = 4_096)]
    pub max_connections: usize,

    /// The most connections open at once from one peer address; 0 for no limit.
    #[arg(long, env = "APPEALS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: usize,

    /// How long a client has to send a request's head.
    #[arg(long, env = "APPEALS_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: PolicyDuration,

    /// How long a connection may send nothing before it is closed.
    #[arg(long, env = "APPEALS_IDLE_TIMEOUT", default_value = "60s")]
    pub idle_timeout: PolicyDuration,

    /// How long shutdown waits for requests in flight before abandoning them.
    #[arg(long, env = "APPEALS_SHUTDOWN_TIMEOUT", default_value = "10s")]
    pub shutdown_timeout: PolicyDuration,

    /// How long a WebSocket client has to send `connection_init`.
    #[arg(long, env = "APPEALS_WEBSOCKET_INIT_TIMEOUT", default_value = "10s")]
    pub websocket_init_timeout: PolicyDuration,

    /// How often the server pings its WebSockets.
    #[arg(long, env = "APPEALS_WEBSOCKET_PING_INTERVAL", default_value = "20s")]
    pub websocket_ping_interval: PolicyDuration,

    /// The most operations (subscriptions included) one WebSocket runs at once;
    /// 0 for no limit.
    #[arg(long, env = "APPEALS_MAX_OPERATIONS_PER_SOCKET", default_value_t = 32)]
    pub max_operations_per_socket: usize,

    /// The most WebSockets one user may hold open; 0 for no limit.
    #[arg(long, env = "APPEALS_MAX_SOCKETS_PER_USER", default_value_t = 32)]
    pub max_sockets_per_user: usize,

    /// How many events behind the newest a subscription's `after` cursor may be
    /// and still be replayed; further behind is `CURSOR_EXPIRED`.
    #[arg(long, env = "APPEALS_SUBSCRIPTION_REPLAY_LIMIT", default_value_t = 100_000)]
    pub subscription_replay_limit: u32,

    #[command(flatten)]
    pub audit_key: AuditKeyArgs,

    #[command(flatten)]
    pub channels: ChannelArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UserAddArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[arg(long)]
    pub name: String,

    /// assistant, head, governor_office, auditor, admin or intake (any case, `-`
    /// for `_`).
    #[arg(long)]
    pub role: String,

    /// The municipality's code, for assistants and heads (`appeals
    /// municipality list` shows them).
    #[arg(long)]
    pub municipality: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Check only this appeal.
    #[arg(long)]
    pub appeal: Option<String>,

    #[command(flatten)]
    pub audit_key: AuditKeyArgs,

    /// Before verifying, seal the events and anchors that carry no seal, of
    /// every appeal whose history verifies as it stands (needs the audit key).
    /// Only for a history you trust: sealing vouches for it.
    #[arg(long)]
    pub seal_unsealed: bool,
}

/// The audit key, for the commands that write events or verify them. With a
/// key, every event and the end of every history is sealed (HMAC-SHA256) and
/// verification checks the seals; the database never holds the key.
#[derive(Debug, Clone, Default, Args)]
pub struct AuditKeyArgs {
    /// A file holding the audit key: 64 or more hex digits (e.g. from
    /// `openssl rand -hex 32`), or at least 32 raw bytes.
    #[arg(
        long,
        env = "APPEALS_AUDIT_KEY_FILE",
        value_name = "PATH",
        value_parser = AuditKeyParser::File,
        conflicts_with = "audit_key"
    )]
    pub audit_key_file: Option<AuditKey>,

    /// The audit key itself, as 64 or more hex digits. Prefer the file: a
    /// command line (and a process's environment) can be read by others.
    #[arg(long, env = "APPEALS_AUDIT_KEY", value_name = "HEX", hide_env_values = true, value_parser = AuditKeyParser::Hex)]
    pub audit_key: Option<AuditKey>,
}

impl AuditKeyArgs {
    /// The key given, if any.
    pub fn key(&self) -> Option<AuditKey> {
        self.audit_key_file.clone().or_else(|| self.audit_key.clone())
    }
}

/// Reads an audit key from a file or from hex. A key that cannot be used is
/// refused with a message that never repeats the key.
#[derive(Debug, Clone, Copy)]
enum AuditKeyParser {
    File,
    Hex,
}

impl TypedValueParser for AuditKeyParser {
    type Value = AuditKey;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        _argument: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<AuditKey, clap::Error> {
        let refuse = |message: String| clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{message}\n"));
        match self {
            AuditKeyParser::File => {
                let path = std::path::Path::new(value);
                let contents = std::fs::read(path)
                    .map_err(|error| refuse(format!("cannot read the audit key file {}: {error}", path.display())))?;
                AuditKey::from_file_contents(&contents)
                    .map_err(|error| refuse(format!("the audit key file {}: {error}", path.display())))
            }
            AuditKeyParser::Hex => {
                let text = value.to_str().ok_or_else(|| refuse("APPEALS_AUDIT_KEY is not text".to_owned()))?;
                AuditKey::from_hex(text).map_err(|error| refuse(format!("APPEALS_AUDIT_KEY (--audit-key): {error}")))
            }
        }
    }
}

/// Everything `appeals serve` needs, in plain types, so that tests can build one
/// without a command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub database_url: String,
    pub pool: PoolSettings,
    /// The hot standby lists, dashboards and searches are read from, if any.
    pub standby: Option<StandbyConfig>,
    pub listen: SocketAddr,
    pub policy: DeadlinePolicy,
    pub body_limit: usize,
    pub response_limit: usize,
    pub request_timeout: Duration,
    pub limits: QueryLimits,
    pub documents: DocumentLimits,
    pub persisted: PersistedSettings,
    pub caller_limits: LimitSettings,
    pub connections: ConnectionLimits,
    pub sockets: SocketSettings,
    /// How many events a subscription's cursor may be behind (see the flag).
    pub subscription_replay_limit: u32,
    /// The key that seals the audit chain; `None` leaves it unkeyed.
    pub audit_key: Option<AuditKey>,
    pub channels: ChannelConfig,
}

/// Where the standby is and how it is read.
#[derive(Debug, Clone)]
pub struct StandbyConfig {
    pub url: String,
    pub settings: StandbySettings,
}

/// The messaging channels' settings.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub delivery: DeliverySettings,
    pub follow_up_window: chrono::TimeDelta,
    pub local_offset: chrono::FixedOffset,
}

impl ServerConfig {
    /// The configuration `appeals serve --database-url URL` would have: the
    /// defaults are written once, on [`ServeArgs`] (and the environment's
    /// `APPEALS_*` variables apply, as they do to the command).
    ///
    /// # Panics
    /// If an `APPEALS_*` variable of the environment holds a value the command
    /// would refuse too.
    pub fn new(database_url: impl Into<String>) -> Self {
        let url = database_url.into();
        match Cli::try_parse_from(["appeals", "serve", "--database-url", &url]) {
            Ok(Cli { command: Command::Serve(args), .. }) => ServerConfig::from(*args),
            Ok(_) => unreachable!("`serve` parses as the serve command"),
            Err(error) => panic!("the environment's APPEALS_* settings do not parse: {error}"),
        }
    }

    /// Turns every per-caller limit off (rate, requests in flight).
    pub fn disable_rate_limits(&mut self) {
        self.caller_limits.per_user = None;
        self.caller_limits.per_address = None;
        self.caller_limits.in_flight_per_caller = 0;
    }
}

impl From<ServeArgs> for ServerConfig {
    fn from(args: ServeArgs) -> Self {
        let limiting = args.rate_limit > 0;
        let request_timeout = to_std(args.request_timeout);
        // A statement outliving its request's timeout is work nobody awaits.
        let pool = PoolSettings { statement_timeout: Some(request_timeout), ..args.database.pool() };
        let standby = args.standby.database_read_url.map(|url| StandbyConfig {
            url,
            settings: StandbySettings {
                pool: PoolSettings { max_connections: args.standby.database_read_pool_size.max(1), ..pool },
                max_lag: args.standby.database_read_max_lag,
            },
        });
        ServerConfig {
            pool,
            standby,
            database_url: args.database.database_url,
            listen: args.listen,
            policy: DeadlinePolicy {
                seen_within: args.seen_within,
                answer_within: args.answer_within,
                max_extension: args.max_extension,
            },
            body_limit: args.body_limit,
            response_limit: args.response_limit,
            request_timeout,
            limits: QueryLimits {
                max_depth: args.max_query_depth,
                budget: QueryBudget { max_cost: args.max_query_cost },
            },
            documents: DocumentLimits { max_batch: args.max_batch.max(1), ..DocumentLimits::default() },
            persisted: PersistedSettings {
                apq_cache_bytes: args.apq_cache_bytes,
                trusted_documents: args.trusted_documents,
            },
            caller_limits: LimitSettings {
                per_user: limiting.then_some(RateLimit { per_second: args.rate_limit, burst: args.rate_limit_burst }),
                per_address: (limiting && args.anonymous_rate_limit > 0).then_some(RateLimit {
                    per_second: args.anonymous_rate_limit,
                    burst: args.anonymous_rate_limit_burst,
                }),
                in_flight_per_caller: if limiting { args.max_requests_in_flight } else { 0 },
                client_address_header: args.client_address_header,
            },
            connections: ConnectionLimits {
                max_connections: args.max_connections,
                max_per_address: args.max_connections_per_address,
                header_read_timeout: to_std(args.header_read_timeout),
                idle_timeout: to_std(args.idle_timeout),
                shutdown_timeout: to_std(args.shutdown_timeout),
            },
            sockets: SocketSettings {
                init_timeout: to_std(args.websocket_init_timeout),
                ping_interval: to_std(args.websocket_ping_interval),
                max_operations_per_socket: args.max_operations_per_socket,
                max_sockets_per_user: args.max_sockets_per_user,
            },
            subscription_replay_limit: args.subscription_replay_limit,
            audit_key: args.audit_key.key(),
            channels: ChannelConfig {
                delivery: DeliverySettings {
                    telegram_api_url: args.channels.telegram_api_url,
                    vk_api_url: args.channels.vk_api_url,
                    max_api_url: args.channels.max_api_url,
                    lease: to_std(args.channels.reply_lease),
                    poll_interval: Duration::from_secs(1),
                },
                follow_up_window: args.channels.follow_up_window.as_time_delta(),
                local_offset: args.channels.local_utc_offset,
            },
        }
    }
}

fn parse_trusted_documents(path: &str) -> Result<TrustedDocuments, String> {
    TrustedDocuments::load(std::path::Path::new(path))
}

fn to_std(duration: PolicyDuration) -> Duration {
    duration.as_time_delta().to_std().unwrap_or(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_follow_the_subcommand() {
        let cli =
            Cli::try_parse_from(["appeals", "serve", "--listen", "0.0.0.0:9000", "--seen-within", "72h"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("expected serve") };
        let config = ServerConfig::from(*args);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.policy.seen_within, "3d".parse().unwrap());
        assert_eq!(config.policy.answer_within, "30d".parse().unwrap());
        assert!(config.audit_key.is_none(), "no audit key unless one is given");
        assert!(config.standby.is_none(), "no standby unless one is given");
    }

    #[test]
    fn a_standby_is_read_with_its_own_pool_and_wait_and_only_postgresql_is_accepted() {
        let url = "postgres://appeals@standby:5433/appeals";
        let cli = Cli::try_parse_from([
            "appeals",
            "serve",
            "--database-read-url",
            url,
            "--database-read-pool-size",
            "4",
            "--database-read-max-lag",
            "250ms",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else { panic!("expected serve") };
        let standby = ServerConfig::from(*args).standby.expect("a standby");
        assert_eq!(standby.url, url);
        assert_eq!(standby.settings.pool.max_connections, 4);
        assert_eq!(standby.settings.max_lag, Duration::from_millis(250));
        assert_eq!(standby.settings.pool.statement_timeout, Some(Duration::from_secs(30)), "the request timeout");

        for (refused, why) in [
            (["--database-read-url", "sqlite://replica.db"], "an SQLite read URL"),
            (["--database-read-max-lag", "soon"], "a wait without a unit"),
            (["--database-read-max-lag", "2m"], "a wait in minutes"),
            (["--database-read-max-lag", "61s"], "a wait over a minute"),
        ] {
            let parsed = Cli::try_parse_from(["appeals", "serve"].into_iter().chain(refused));
            assert!(parsed.is_err(), "{why} is refused");
        }
        assert_eq!(parse_lag("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_lag("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn the_audit_key_comes_from_a_file_or_hex_and_a_short_one_is_refused_without_being_shown() {
        let hex = "8f".repeat(16) + &"a1".repeat(16);
        let path = std::env::temp_dir().join(format!("appeals-audit-key-{}", std::process::id()));
        std::fs::write(&path, format!("{hex}\n")).unwrap();
        let from_file = Cli::try_parse_from(["appeals", "serve", "--audit-key-file", path.to_str().unwrap()]).unwrap();
        let Command::Serve(args) = from_file.command else { panic!("expected serve") };
        let from_file = ServerConfig::from(*args).audit_key.expect("a key from the file");
        let from_hex = Cli::try_parse_from(["appeals", "audit", "verify", "--audit-key", &hex]).unwrap();
        let Command::Audit(AuditCommand::Verify(args)) = from_hex.command else { panic!("expected audit verify") };
        let from_hex = args.audit_key.key().expect("a key from hex");
        assert_eq!(from_file.fingerprint(), from_hex.fingerprint(), "the same key either way");

        let short = "8fa1".repeat(8);
        std::fs::write(&path, &short).unwrap();
        let refused = Cli::try_parse_from(["appeals", "serve", "--audit-key-file", path.to_str().unwrap()]);
        let message = refused.expect_err("a 16-byte key is refused").to_string();
        assert!(message.contains("at least 32 bytes"), "{message}");
        let refused = Cli::try_parse_from(["appeals", "serve", "--audit-key", &short]);
        let message = refused.expect_err("a 16-byte key is refused").to_string();
        assert!(message.contains("at least 32 bytes") && !message.contains(&short), "{message}");
        let both = Cli::try_parse_from(["appeals", "serve", "--audit-key", &hex, "--audit-key-file", "x"]);
        assert!(both.is_err(), "one key at a time");
        std::fs::remove_file(&path).unwrap();
    }
}
