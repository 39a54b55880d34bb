//! Accepting connections, and keeping slow or idle clients from holding them:
//!
//! - at most [`ConnectionLimits::max_connections`] open at once, and at most
//!   [`ConnectionLimits::max_per_address`] from one peer address; past either, a
//!   new connection is closed at once (WebSockets count for as long as they live);
//! - the request head must arrive within [`ConnectionLimits::header_read_timeout`];
//! - a connection from which nothing has been read for
//!   [`ConnectionLimits::idle_timeout`] is closed (keep-alive and WebSocket alike:
//!   the server pings its sockets, and a live client's pong is something read);
//! - on shutdown, the listener closes, WebSockets are told to go away, requests in
//!   flight may finish, and whatever is still open after
//!   [`ConnectionLimits::shutdown_timeout`] is dropped: shutdown always ends.
//!
//! HTTP/1.1 only: every client of the API speaks it, and a second protocol would
//! be a second surface to defend.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use crate::occupancy::{Occupancy, Place};

/// Bounds on connections; a count of 0 means no limit. The defaults are
/// `appeals serve`'s ([`crate::config::ServeArgs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` completes, then shuts down within
/// the limits' deadline. `going_away` is set to `true` when shutdown begins, for
/// the WebSockets to close themselves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()> + Send + 'static,
    going_away: watch::Sender<bool>,
) {
    let slots = Arc::new(Semaphore::new(if limits.max_connections == 0 {
        Semaphore::MAX_PERMITS
    } else {
        limits.max_connections
    }));
    let addresses = Occupancy::new(limits.max_per_address);
    // Every connection's task holds a sender; when the last one is dropped, every
    // connection has ended.
    let (connection_ended, mut all_ended) = mpsc::channel::<()>(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it
                    // was accepted: wait a moment rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!("appeals_connections_refused_total", "reason" => "max_connections").increment(1);
            continue;
        };
        let Some(address_slot) = addresses.enter(peer.ip()) else {
            metrics::counter!("appeals_connections_refused_total", "reason" => "max_per_address").increment(1);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut stream = TimeoutStream::new(CountedStream { stream, _slot: slot, _address_slot: address_slot });
        stream.set_read_timeout(Some(limits.idle_timeout));
        let io = TokioIo::new(Box::pin(stream));
        let service = router.clone().map_request(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = builder.serve_connection(io, TowerToHyperService::new(service)).with_upgrades();
        let (ended, mut shutting_down) = (connection_ended.clone(), going_away.subscribe());
        tokio::spawn(async move {
            tokio::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                () = async { let _ = shutting_down.wait_for(|going| *going).await; } => {
                    // Finish the request in flight, if any, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = outcome {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(ended);
        });
    }
    drop(listener);
    drop(connection_ended);
    let _ = going_away.send(true);
    tracing::info!("shutting down: finishing the requests in flight");
    if tokio::time::timeout(limits.shutdown_timeout, all_ended.recv()).await.is_err() {
        tracing::warn!(
            timeout = ?limits.shutdown_timeout,
            "requests still running at the shutdown deadline were abandoned"
        );
    }
}

/// A TCP stream that holds its connection slots for as long as it lives, through
/// an upgrade to a WebSocket too.
struct CountedStream {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _address_slot: Place<IpAddr>,
}

impl AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The peer address of a request, as [`serve`] records it.
pub fn peer_of<B>(request: &Request<B>) -> SocketAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |ConnectInfo(peer)| *peer)
}
