//! GraphQL over WebSocket (`graphql-transport-ws`, and the older
//! `subscriptions-transport-ws`), held to the same rules as HTTP:
//!
//! - The client has [`SocketSettings::init_timeout`] to send `connection_init`
//!   with a valid token (close 4408 otherwise); a user may hold at most
//!   [`SocketSettings::max_sockets_per_user`] sockets.
//! - **Every operation on a socket is a new request**: its document passes
//!   [`crate::admission`], its token is looked up again (a revoked user's next
//!   operation is `UNAUTHENTICATED`), and it is charged to the user's rate limit.
//!   A socket runs at most [`SocketSettings::max_operations_per_socket`]
//!   operations (subscriptions included) at once.
//! - Revoking a user closes their sockets with 4403 at once.
//! - The server pings every [`SocketSettings::ping_interval`]; a client that
//!   answers nothing is closed by the connection's idle timeout
//!   ([`crate::connections`]). On shutdown every socket is closed with 1001.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use appeals_core::UserId;
use appeals_storage::directory::token_digest;
use appeals_storage::{Revocation, Store};
use async_graphql::http::{WebSocket as GraphqlWebSocket, WebSocketProtocols as Protocols, WsMessage};
use async_graphql::{Data, Executor, Request, Response};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{self, BoxStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::admission::DocumentLimits;
use crate::auth::{Viewer, token_from_payload};
use crate::error::{ApiError, ErrorCode, code_unclassified};
use crate::occupancy::{Occupancy, Place};
use crate::persisted::{Lookup, PersistedDocuments};
use crate::rate_limit::CallerLimits;
use crate::response_order::Order;
use crate::schema::AppSchema;
use crate::schema::loaders::new_loaders;

/// Bounds on sockets; a count of 0 means no limit. The defaults are
/// `appeals serve`'s ([`crate::config::ServeArgs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketSettings {
    pub init_timeout: Duration,
    pub ping_interval: Duration,
    pub max_operations_per_socket: usize,
    pub max_sockets_per_user: usize,
}

/// Close codes of `graphql-transport-ws`, and the WebSocket's own "going away".
const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLOSE_GOING_AWAY: u16 = 1001;

/// What every socket of a server shares.
#[derive(Clone)]
pub struct Sockets {
    pub schema: AppSchema,
    pub store: Store,
    pub limits: CallerLimits,
    pub documents: DocumentLimits,
    pub persisted: PersistedDocuments,
    pub settings: SocketSettings,
    pub going_away: watch::Receiver<bool>,
    users: Occupancy<UserId>,
}

impl Sockets {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        schema: AppSchema,
        store: Store,
        limits: CallerLimits,
        documents: DocumentLimits,
        persisted: PersistedDocuments,
        settings: SocketSettings,
        going_away: watch::Receiver<bool>,
    ) -> Self {
        let users = Occupancy::new(settings.max_sockets_per_user);
        Sockets { schema, store, limits, documents, persisted, settings, going_away, users }
    }

    /// Serves one upgraded socket until it closes.
    pub async fn serve(self, socket: WebSocket, protocol: Protocols, header_token: Option<String>, address: IpAddr) {
        let signed_in: Arc<OnceLock<(UserId, String)>> = Arc::default();
        let executor = SocketExecutor { sockets: self.clone(), running: Arc::default() };
        let (mut sink, incoming) = socket.split();
        let incoming = incoming
            .take_while(|message| std::future::ready(!matches!(message, Err(_) | Ok(Message::Close(_)))))
            .filter_map(|message| {
                std::future::ready(match message {
                    Ok(Message::Text(text)) => Some(text.into()),
                    Ok(Message::Binary(bytes)) => Some(bytes),
                    _ => None,
                })
            });
        let on_init = {
            let sockets = self.clone();
            let signed_in = Arc::clone(&signed_in);
            move |payload: serde_json::Value| async move {
                sockets.sign_in(header_token.or_else(|| token_from_payload(&payload)), address, &signed_in).await
            }
        };
        let mut protocol_messages =
            GraphqlWebSocket::new(executor, incoming, protocol).on_connection_init(on_init).boxed();
        let mut revocations = self.store.revocations();
        let mut going_away = self.going_away.clone();
        let init_deadline = tokio::time::sleep(self.settings.init_timeout);
        tokio::pin!(init_deadline);
        let mut pings = tokio::time::interval_at(
            tokio::time::Instant::now() + self.settings.ping_interval,
            self.settings.ping_interval,
        );
        let close = loop {
            tokio::select! {
                message = protocol_messages.next() => match message {
                    Some(WsMessage::Text(text)) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => break Some((code, reason)),
                    None => break None,
                },
                () = &mut init_deadline, if signed_in.get().is_none() => {
                    break Some((CLOSE_INIT_TIMEOUT, "Connection initialisation timeout".to_owned()));
                }
                revoked = revocations.recv() => {
                    let Some((user, token)) = signed_in.get() else { continue };
                    let ended = match revoked {
                        Ok(Revocation::User(revoked)) => revoked == *user,
                        // Revocations were missed: ask the database.
                        // A database that does not answer now revokes no one.
                        Ok(Revocation::MayHaveMissed) | Err(RecvError::Lagged(_)) => {
                            matches!(self.store.user_by_token(token).await, Ok(None))
                        }
                        Err(RecvError::Closed) => false,
                    };
                    if ended {
                        break Some((CLOSE_FORBIDDEN, "Forbidden: the user was revoked".to_owned()));
                    }
                }
                _ = going_away.changed() => {
                    break Some((CLOSE_GOING_AWAY, "the server is shutting down".to_owned()));
                }
                _ = pings.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                }
            }
        };
        if let Some((code, reason)) = close {
            let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
        }
        let _ = sink.close().await;
    }

    /// `connection_init`: the token must name an active user with a socket to spare.
    async fn sign_in(
        &self,
        token: Option<String>,
        address: IpAddr,
        signed_in: &OnceLock<(UserId, String)>,
    ) -> async_graphql::Result<Data> {
        let Some(token) = token else { return Err(ApiError::unauthenticated().into()) };
        let digest = token_digest(&token);
        if !self.limits.is_known_token(&digest)
            && let Err(refused) = self.limits.charge_address(address, 1)
        {
            return Err(ApiError::new(ErrorCode::RateLimited, refused.reason).into());
        }
        let user = self.store.user_by_token(&token).await.map_err(ApiError::from)?;
        self.limits.learn_token(&digest, user.is_some());
        let Some(user) = user else { return Err(ApiError::unauthenticated().into()) };
        let Some(slot) = self.users.enter(user.id) else {
            let message = format!("a user may hold at most {} sockets", self.settings.max_sockets_per_user);
            return Err(ApiError::new(ErrorCode::RateLimited, message).into());
        };
        let _ = signed_in.set((user.id, token.clone()));
        let mut data = Data::default();
        data.insert(SocketSession { token, _slot: Arc::new(slot) });
        Ok(data)
    }
}

/// What `connection_init` established, kept in the connection's data.
struct SocketSession {
    token: String,
    _slot: Arc<Place<UserId>>,
}

/// Runs each operation of a socket as a request of its own.
#[derive(Clone)]
struct SocketExecutor {
    sockets: Sockets,
    /// Operations running on this socket.
    running: Arc<AtomicUsize>,
}

impl SocketExecutor {
    async fn admit(&self, mut request: Request, session: Option<&Arc<Data>>) -> Result<(Request, Running), ApiError> {
        let session = session
            .and_then(|data| data.get(&std::any::TypeId::of::<SocketSession>()))
            .and_then(|session| session.downcast_ref::<SocketSession>())
            .ok_or_else(ApiError::unauthenticated)?;
        let sockets = &self.sockets;
        let user = sockets.store.user_by_token(&session.token).await?.ok_or_else(ApiError::unauthenticated)?;
        sockets
            .limits
            .charge_user(user.id, 1)
            .map_err(|refused| ApiError::new(ErrorCode::RateLimited, refused.reason))?;
        let most = sockets.settings.max_operations_per_socket;
        if most != 0 && self.running.load(Ordering::Acquire) >= most {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("a socket may run at most {most} operations at once; complete one first"),
            ));
        }
        let persisted_query = request.extensions.get("persistedQuery").and_then(|value| value.clone().into_json().ok());
        let query = std::mem::take(&mut request.query);
        let lookup = Lookup {
            query: (!query.is_empty()).then_some(query),
            document_id: None,
            persisted_query: persisted_query.as_ref(),
        };
        let resolved = sockets.persisted.resolve(lookup)?;
        request.query = resolved.document;
        sockets.documents.admit(&mut request)?;
        if let Some(hash) = resolved.register {
            sockets.persisted.register(hash, &request.query);
        }
        let running = Running::start(&self.running);
        let request = request.data(Viewer { user: Some(user) }).data(new_loaders(sockets.store.clone()));
        Ok((request, running))
    }
}

impl Executor for SocketExecutor {
    /// The protocol runs every operation through [`Self::execute_stream`], with
    /// the connection's session; an operation without one is not signed in.
    async fn execute(&self, _request: Request) -> Response {
        ApiError::unauthenticated().into_graphql_response()
    }

    fn execute_stream(&self, request: Request, session: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        let executor = self.clone();
        stream::once(async move {
            match executor.admit(request, session.as_ref()).await {
                Ok((mut request, running)) => {
                    let order = Order::of(&mut request);
                    let responses =
                        executor.sockets.schema.execute_stream_with_session_data(request, session.unwrap_or_default());
                    // The operation counts as running until its stream is dropped.
                    responses
                        .map(move |mut response| {
                            let _running = &running;
                            order.apply(&mut response);
                            // Validation's own errors get their code here too, as over HTTP.
                            response.errors.iter_mut().for_each(code_unclassified);
                            response
                        })
                        .boxed()
                }
                Err(error) => stream::once(std::future::ready(error.into_graphql_response())).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

/// One operation running on a socket, until dropped.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(counter: &Arc<AtomicUsize>) -> Running {
        counter.fetch_add(1, Ordering::AcqRel);
        Running(Arc::clone(counter))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
