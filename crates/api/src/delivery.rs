//! The delivery worker: sends the replies queued in the outbox
//! ([`appeals_storage::channels::outbox`]) to Telegram, VK and MAX.
//!
//! It claims due replies for a lease, sends each part of a reply (a long answer
//! is split to the platform's message limit), records each part as the platform
//! takes it, and records the outcome:
//! - the platform took every part: `SENT`;
//! - a refusal that would not change (the resident blocked the bot, the chat is
//!   gone): `FAILED` with the platform's reason;
//! - anything else (a `429`, a `5xx`, the network, a refused bot token, the
//!   channel disabled or without a token): tried again, after the platform's
//!   retry-after when it gives one, else after a backoff that doubles from 1 s
//!   to 10 minutes. Such a reply is never given up.
//!
//! Never twice: when an attempt ends without the platform's answer (the server
//! stopped while the platform was answering, or the answer timed out), the part
//! may or may not have been delivered. VK drops a repeat of the same
//! `random_id` (messages) or `guid` (wall comments), so the part is sent again
//! with the same key and arrives once. Telegram and MAX have no such key: the
//! reply is marked `FAILED` with "delivery not confirmed", and an official who
//! has checked with the resident can send it again (`resendReply`).

use std::time::Duration;

use appeals_core::channels::{
    Delivery, OutboundBody, OutboundCall, Platform, ReplyTarget, build_call, classify, split_text,
};
use appeals_storage::{DueReply, Store};
use chrono::TimeDelta;
use futures_util::future::join_all;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, Span};

use crate::traces;

/// Why a Telegram or MAX reply whose attempt ended without an answer is not
/// sent again.
pub const UNCONFIRMED: &str = "delivery not confirmed: the attempt ended before the platform answered, and \
     this platform cannot drop a repeat, so it was not sent again (resendReply sends it once more)";

/// The most replies one worker sends at once.
const BATCH: u64 = 8;
/// The most of a platform's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest wait between two attempts of one reply.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Where the platforms' APIs are, and how the worker paces itself.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub telegram_api_url: String,
    pub vk_api_url: String,
    pub max_api_url: String,
    /// How long a claim on a reply lasts; a worker that stops holds it no longer.
    pub lease: Duration,
    /// How often the outbox is looked at when nothing wakes the worker.
    pub poll_interval: Duration,
}

/// The worker's handle; it stops when the server begins to shut down.
pub struct Worker {
    store: Store,
    client: reqwest::Client,
    settings: DeliverySettings,
    lease: TimeDelta,
}

/// How an attempt at one part ended.
enum Attempt {
    /// The platform answered.
    Answered(Delivery),
    /// The request never reached the platform.
    NotSent(String),
    /// The request may have reached it; the answer did not come back.
    Unconfirmed(String),
}

impl Worker {
    /// Starts the worker on its own task.
    pub fn spawn(
        store: Store,
        settings: DeliverySettings,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<JoinHandle<()>> {
        // An answer must come well within the lease, or a second worker could
        // claim the reply while the first still waits on it.
        let timeout = (settings.lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(10));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("appeals/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let lease = TimeDelta::from_std(settings.lease).unwrap_or(TimeDelta::seconds(30));
        let worker = Worker { store, client, settings, lease };
        Ok(tokio::spawn(worker.run(stop)))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let due = match self.store.claim_due_replies(BATCH, self.lease).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, "could not read the outbox of replies");
                    Vec::new()
                }
            };
            if due.is_empty() {
                tokio::select! {
                    () = self.store.outbox_signal().notified() => {}
                    () = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            join_all(due.into_iter().map(|reply| {
                let span = delivery_span(&reply);
                self.deliver(reply).instrument(span)
            }))
            .await;
        }
    }

    /// Sends one claimed reply as far as it goes, and records how far.
    async fn deliver(&self, due: DueReply) {
        if let Err(error) = self.try_deliver(&due).await {
            // The outcome is lost; the claim expires and the next attempt knows
            // the part in flight is in doubt.
            tracing::warn!(reply = %due.id, %error, "could not record a reply's delivery");
        }
    }

    async fn try_deliver(&self, due: &DueReply) -> Result<(), appeals_storage::StorageError> {
        let platform = due.target.platform();
        let idempotent = platform == Platform::Vk;
        if due.in_doubt && !idempotent {
            metrics::counter!("appeals_replies_total", "outcome" => "unconfirmed").increment(1);
            tracing::warn!(reply = %due.id, appeal = %due.appeal_id, "a reply's delivery was interrupted; not resending it");
            return self.store.record_reply_failed(due, UNCONFIRMED).await;
        }
        if !due.enabled {
            return self.retry(due, "the channel is disabled", None).await;
        }
        let Some(token) = &due.bot_token else {
            return self.retry(due, "the channel has no bot token", None).await;
        };
        let parts = split_text(platform, &due.text);
        for (index, part) in parts.iter().enumerate().skip(due.parts_sent) {
            let key = idempotency_key(due, index);
            let call = build_call(&due.target, token.expose(), due.vk_group_id.as_deref(), part, key);
            match self.send(&due.target, call).await {
                Attempt::Answered(Delivery::Sent { message_key }) => {
                    self.store.record_part_sent(due, index, message_key.as_deref(), self.lease).await?;
                }
                Attempt::Answered(Delivery::Retry { reason, after }) => return self.retry(due, &reason, after).await,
                Attempt::Answered(Delivery::Refused { reason }) => {
                    metrics::counter!("appeals_replies_total", "outcome" => "refused").increment(1);
                    tracing::warn!(reply = %due.id, appeal = %due.appeal_id, %reason, "the platform refused a reply for good");
                    return self.store.record_reply_failed(due, &reason).await;
                }
                Attempt::NotSent(reason) => return self.retry(due, &reason, None).await,
                Attempt::Unconfirmed(reason) if idempotent => return self.retry(due, &reason, None).await,
                Attempt::Unconfirmed(reason) => {
                    metrics::counter!("appeals_replies_total", "outcome" => "unconfirmed").increment(1);
                    tracing::warn!(reply = %due.id, appeal = %due.appeal_id, %reason, "a reply's delivery was not confirmed; not resending it");
                    return self.store.record_reply_failed(due, &format!("{UNCONFIRMED} ({reason})")).await;
                }
            }
        }
        metrics::counter!("appeals_replies_total", "outcome" => "sent").increment(1);
        tracing::info!(reply = %due.id, appeal = %due.appeal_id, kind = due.kind.as_str(), parts = parts.len(), "delivered a reply");
        self.store.record_reply_sent(due).await
    }

    async fn retry(
        &self,
        due: &DueReply,
        reason: &str,
        after: Option<Duration>,
    ) -> Result<(), appeals_storage::StorageError> {
        let wait = after.unwrap_or_else(|| backoff(due.attempts));
        metrics::counter!("appeals_replies_total", "outcome" => "retry").increment(1);
        tracing::info!(reply = %due.id, appeal = %due.appeal_id, %reason, wait_ms = wait.as_millis() as u64, "will retry a reply");
        let next = self.store.now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(600));
        self.store.record_reply_retry(due, reason, next).await
    }

    /// Makes one call. A `reqwest` error names its URL, and Telegram's URL
    /// holds the bot token, so every error is stripped of it.
    async fn send(&self, target: &ReplyTarget, call: OutboundCall) -> Attempt {
        let base = match target.platform() {
            Platform::Telegram => &self.settings.telegram_api_url,
            Platform::Vk => &self.settings.vk_api_url,
            Platform::Max => &self.settings.max_api_url,
        };
        let span = call_span(base);
        let url = format!("{}{}", base.trim_end_matches('/'), call.path);
        let mut request = self.client.post(url);
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        request = match &call.body {
            OutboundBody::Json(json) => request.json(json),
            OutboundBody::Form(form) => request.form(form),
        };
        let mut response = match request.send().instrument(span.clone()).await {
            Ok(response) => response,
            // Only a connection that never opened is sure to have carried
            // nothing; a call that broke later may have been taken.
            Err(error) if error.is_connect() || error.is_builder() => {
                record_call_error(&span, &error);
                return Attempt::NotSent(format!("could not reach the platform: {}", error.without_url()));
            }
            Err(error) => {
                record_call_error(&span, &error);
                return Attempt::Unconfirmed(format!("no answer from the platform: {}", error.without_url()));
            }
        };
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        if status >= 400 {
            span.record("error.type", status.to_string().as_str());
            span.record("otel.status_code", "error");
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if room <= chunk.len() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    record_call_error(&span, &error);
                    return Attempt::Unconfirmed(format!("the platform's answer broke off: {}", error.without_url()));
                }
            }
        }
        Attempt::Answered(classify(target, status, retry_after.as_deref(), &body))
    }
}

/// The span of one reply's delivery, when traces are on: the parent of its
/// calls and statements. (Off, the worker's log lines stay as they were.)
fn delivery_span(due: &DueReply) -> Span {
    if !traces::are_on() {
        return Span::none();
    }
    tracing::info_span!("deliver reply", reply = %due.id, platform = ?due.target.platform())
}

/// A client span for one call to a platform's API, when traces are on. It names
/// the host and never the URL: Telegram's path holds the bot token, and VK's
/// query string the access token.
fn call_span(base: &str) -> Span {
    if !traces::are_on() {
        return Span::none();
    }
    let url = reqwest::Url::parse(base).ok();
    let host = url.as_ref().and_then(|url| url.host_str()).unwrap_or_default().to_owned();
    let port = url.as_ref().and_then(reqwest::Url::port_or_known_default).unwrap_or_default();
    tracing::info_span!(
        "POST",
        otel.kind = "client",
        http.request.method = "POST",
        server.address = host.as_str(),
        server.port = port,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Marks a call's span failed by the kind of error: never its message, which
/// may name the URL.
fn record_call_error(span: &Span, error: &reqwest::Error) {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    span.record("error.type", kind);
    span.record("otel.status_code", "error");
}

/// The wait before attempt `attempts + 1`: 1 s, 2 s, 4 s … up to 10 minutes.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// The key a platform drops repeats by, the same for every attempt at one part
/// of one reply: 31 bits of SHA-256 over the reply's id and the part's number.
fn idempotency_key(due: &DueReply, part: usize) -> i32 {
    let digest = Sha256::digest(format!("{}:{part}", due.id).as_bytes());
    let bytes = [digest[0], digest[1], digest[2], digest[3]];
    (u32::from_be_bytes(bytes) & 0x7fff_ffff) as i32
}
