//! The platforms' webhooks: `POST /hooks/{telegram,vk,max}/{municipalityCode}`.
//!
//! A call passes, in order: the address's rate limit (skipped for a secret
//! known to be valid, so a platform's own traffic is never throttled by a
//! flood of forged calls), the body's size (the router's limit), the
//! municipality's channel and its secret (`401` and nothing stored when any
//! is missing, disabled or wrong; the secret is compared as a digest, in
//! constant time), the payload (malformed: `400`). A resident's message then
//! becomes an appeal or a follow-up ([`appeals_storage::channels::intake`]);
//! everything else is answered with success so the platform stops retrying,
//! and stores nothing. Only a database outage is a `5xx` (`503`, so the
//! platform retries later).
//!
//! Secrets, tokens and message texts are never logged; a line names the
//! platform, the municipality, what the update was and what became of it.

use std::net::SocketAddr;

use appeals_core::Channel;
use appeals_core::channels::{Inbound, ParseError, max, telegram, vk};
use appeals_storage::channels::WebhookGate;
use appeals_storage::directory::token_digest;
use appeals_storage::{Intake, StorageError, Store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::TimeDelta;

use crate::rate_limit::CallerLimits;

/// What the webhooks share.
#[derive(Clone)]
pub struct HookState {
    pub store: Store,
    pub limits: CallerLimits,
    /// How long after a resident's latest message on an open appeal a new one
    /// in the same chat still belongs to it.
    pub follow_up_window: TimeDelta,
}

/// The three webhook routes.
pub fn routes(state: HookState) -> Router {
    Router::new()
        .route("/hooks/telegram/{code}", post(telegram_hook))
        .route("/hooks/vk/{code}", post(vk_hook))
        .route("/hooks/max/{code}", post(max_hook))
        .with_state(state)
}

async fn telegram_hook(
    State(state): State<HookState>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parse = || telegram::parse_update(&body);
    state.take_with_header_secret(Channel::Telegram, telegram::SECRET_HEADER, &code, &headers, peer, parse).await
}

async fn max_hook(
    State(state): State<HookState>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parse = || max::parse_update(&body);
    state.take_with_header_secret(Channel::Max, max::SECRET_HEADER, &code, &headers, peer, parse).await
}

/// VK sends its secret in the body, so the body is read first; its size is
/// already bounded by the router.
async fn vk_hook(
    State(state): State<HookState>,
    Path(code): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let callback = match vk::parse_callback(&body) {
        Ok(callback) => callback,
        Err(error) => {
            // Charged like a wrong secret: a malformed body proves nothing.
            if let Some(refusal) = state.limit_unknown(&headers, peer) {
                return refusal;
            }
            return malformed(Channel::Vk, &code, &error);
        }
    };
    let ok = || plain(StatusCode::OK, "ok".to_owned());
    match callback.event {
        vk::VkEvent::Confirmation => {
            // The confirmation call carries no secret: VK asks it before the
            // secret is in use. It reveals only the string VK itself shows the
            // community's admins, and only for the configured community.
            if let Some(refusal) = state.limit_unknown(&headers, peer) {
                return refusal;
            }
            let gate = match state.store.webhook_gate(&code, Channel::Vk).await {
                Ok(gate) => gate,
                Err(error) => return outage(Channel::Vk, &code, &error),
            };
            match gate {
                Some(gate)
                    if gate.enabled && gate.vk_group_id.as_deref() == Some(callback.group_id.to_string().as_str()) =>
                {
                    match gate.vk_confirmation {
                        Some(confirmation) => {
                            tracing::info!(channel = "VK", municipality = %code, "answered VK's confirmation call");
                            plain(StatusCode::OK, confirmation)
                        }
                        None => unauthorized(Channel::Vk, &code, "no confirmation string is configured"),
                    }
                }
                _ => unauthorized(Channel::Vk, &code, "not a configured community"),
            }
        }
        vk::VkEvent::Update(inbound) => {
            let gate = match state.admit(Channel::Vk, &code, callback.secret.as_deref(), &headers, peer).await {
                Ok(gate) => gate,
                Err(response) => return response,
            };
            if let Some(group) = gate.vk_group_id.as_deref()
                && group != callback.group_id.to_string()
            {
                return unauthorized(Channel::Vk, &code, "the call is for another community");
            }
            state.take(Channel::Vk, &code, &gate, Ok(inbound), ok).await
        }
    }
}

impl HookState {
    /// Telegram and MAX: the secret in a header, the update in the body,
    /// answered with an empty `200`.
    async fn take_with_header_secret(
        &self,
        channel: Channel,
        header: &str,
        code: &str,
        headers: &HeaderMap,
        peer: SocketAddr,
        parse: impl FnOnce() -> Result<Inbound, ParseError>,
    ) -> Response {
        let secret = headers.get(header).and_then(|value| value.to_str().ok());
        let gate = match self.admit(channel, code, secret, headers, peer).await {
            Ok(gate) => gate,
            Err(response) => return response,
        };
        self.take(channel, code, &gate, parse(), || StatusCode::OK.into_response()).await
    }

    /// Checks the caller's rate and the channel's secret; the gate when both pass.
    async fn admit(
        &self,
        channel: Channel,
        code: &str,
        secret: Option<&str>,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<WebhookGate, Response> {
        // A secret already seen to be valid for this channel skips the
        // address's charge; the set of such secrets is bounded.
        let known = secret.map(|secret| token_digest(&format!("hook\n{channel}\n{code}\n{secret}")));
        if !known.as_deref().is_some_and(|digest| self.limits.is_known_token(digest))
            && let Some(refusal) = self.limit_unknown(headers, peer)
        {
            return Err(refusal);
        }
        let gate = match self.store.webhook_gate(code, channel).await {
            Ok(Some(gate)) => gate,
            Ok(None) => return Err(unauthorized(channel, code, "the channel is not configured")),
            Err(error) => return Err(outage(channel, code, &error)),
        };
        let admitted = gate.admits(secret);
        if let Some(digest) = &known {
            self.limits.learn_token(digest, admitted);
        }
        if !admitted {
            return Err(unauthorized(channel, code, if secret.is_some() { "a wrong secret" } else { "no secret" }));
        }
        if !gate.enabled {
            return Err(unauthorized(channel, code, "the channel is disabled"));
        }
        Ok(gate)
    }

    /// Charges a call not (yet) known to be the platform's to its address;
    /// the `429` when the address is over its limit.
    fn limit_unknown(&self, headers: &HeaderMap, peer: SocketAddr) -> Option<Response> {
        let address = self.limits.client_address(headers, peer);
        let refused = self.limits.charge_address(address, 1).err()?;
        let seconds = refused.retry_after.as_secs().max(1);
        let mut response = plain(StatusCode::TOO_MANY_REQUESTS, format!("{}; retry in {seconds} s", refused.reason));
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        Some(response)
    }

    /// Takes in an admitted call's update; `ok` is the platform's success answer.
    async fn take(
        &self,
        channel: Channel,
        code: &str,
        gate: &WebhookGate,
        inbound: Result<Inbound, ParseError>,
        ok: impl FnOnce() -> Response,
    ) -> Response {
        let inbound = match inbound {
            Ok(inbound) => inbound,
            Err(error) => return malformed(channel, code, &error),
        };
        if let Err(error) = self.store.note_webhook_call(gate.municipality_id, channel).await {
            return outage(channel, code, &error);
        }
        let message = match inbound {
            Inbound::Ignored { kind } => {
                count(channel, "ignored");
                tracing::info!(channel = %channel, municipality = %code, update = %kind, "acknowledged an update that is not an appeal");
                return ok();
            }
            Inbound::Message(message) => message,
        };
        let intake =
            self.store.receive_channel_message(gate.municipality_id, channel, &message, self.follow_up_window).await;
        match intake {
            Ok(Intake::Registered { appeal, .. }) => {
                count(channel, "registered");
                tracing::info!(channel = %channel, municipality = %code, appeal = %appeal.number, "registered an appeal from a resident's message");
            }
            Ok(Intake::FollowUp { appeal, .. }) => {
                count(channel, "follow_up");
                tracing::info!(channel = %channel, municipality = %code, appeal = %appeal.number, "threaded a resident's follow-up onto the open appeal");
            }
            Ok(Intake::Repeat { appeal_id }) => {
                count(channel, "repeat");
                tracing::info!(channel = %channel, municipality = %code, appeal = %appeal_id, "a message delivered again; nothing changed");
            }
            Err(StorageError::Invalid(error)) => {
                // A text the engine cannot take (over 20,000 characters, say):
                // retrying would not change that.
                count(channel, "ignored");
                tracing::info!(channel = %channel, municipality = %code, %error, "acknowledged a message that cannot be an appeal");
            }
            Err(error) => return outage(channel, code, &error),
        }
        ok()
    }
}

fn count(channel: Channel, outcome: &'static str) {
    metrics::counter!("appeals_webhook_updates_total", "channel" => channel.as_str(), "outcome" => outcome)
        .increment(1);
}

fn plain(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn unauthorized(channel: Channel, code: &str, why: &'static str) -> Response {
    count(channel, "unauthorized");
    tracing::warn!(channel = %channel, municipality = %code, why, "refused a webhook call");
    // The same answer whatever the reason, so a caller learns nothing of which
    // municipalities or channels exist.
    plain(StatusCode::UNAUTHORIZED, "unauthorized".to_owned())
}

fn malformed(channel: Channel, code: &str, error: &ParseError) -> Response {
    count(channel, "malformed");
    tracing::info!(channel = %channel, municipality = %code, %error, "refused a malformed webhook body");
    plain(StatusCode::BAD_REQUEST, format!("not a {channel} update: {error}"))
}

/// A storage failure: `503` (the platform retries later) when the database is
/// unreachable, and the same for anything else, logged in full. Neither tells
/// the caller more than that.
fn outage(channel: Channel, code: &str, error: &StorageError) -> Response {
    count(channel, "unavailable");
    tracing::error!(channel = %channel, municipality = %code, %error, "a webhook call failed in storage");
    plain(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable; retry later".to_owned())
}
