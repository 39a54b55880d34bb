//! Per-caller limits, so that one misbehaving client cannot starve every
//! assistant. Past a limit the answer is `RATE_LIMITED` (HTTP 429 with
//! `Retry-After`), given before any database work is done.
//!
//! - **Users** get a sustained rate and a burst each, keyed by user (so a user's
//!   several tokens and sockets share one budget). Every operation counts: each
//!   one of a batch, and each one sent over a WebSocket.
//! - **Client addresses** get a smaller budget for everything not (yet) known to
//!   come from a valid token: requests without a token, and with a token this
//!   process has not seen succeed. Made-up tokens are therefore charged to their
//!   address *before* the database is asked about them, and a flood of them
//!   cannot grow any table: the set of known tokens only holds tokens that
//!   authenticated, and is bounded.
//! - **In flight**: a caller (user, or address) may have only so many requests
//!   running at once, so that no one client holds the database pool; the rest
//!   wait their turn (for at most [`IN_FLIGHT_WAIT`]).
//!
//! The client address is the connection's peer, or, when a trusted proxy header
//! is configured, the address that header names (the last one of
//! `X-Forwarded-For`, the one the proxy added itself).
//!
//! Limits are per process: with several replicas behind a load balancer, a
//! caller's budget is the per-process one times the replicas it reaches.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appeals_core::UserId;
use axum::http::{HeaderMap, HeaderName};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// How long a request waits for one of its caller's slots before it is refused.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// How many token digests the known-token set holds before it starts afresh.
const KNOWN_TOKENS: usize = 10_000;

/// What the limits are; `None` turns one off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    pub per_user: Option<RateLimit>,
    pub per_address: Option<RateLimit>,
    /// Requests one caller may have running at once; 0 for no limit.
    pub in_flight_per_caller: usize,
    /// The header a trusted reverse proxy puts the client's address in.
    pub client_address_header: Option<HeaderName>,
}

/// Who a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    User(UserId),
    Address(IpAddr),
}

/// The limits shared by every request of a server.
#[derive(Clone)]
pub struct CallerLimits {
    users: Option<Budget<UserId>>,
    addresses: Option<Budget<IpAddr>>,
    known_tokens: Arc<Mutex<HashSet<String>>>,
    in_flight: Arc<Mutex<HashMap<Caller, Arc<Semaphore>>>>,
    in_flight_per_caller: usize,
    client_address_header: Option<HeaderName>,
}

/// Refused: wait this long before trying again. The reason names the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
    pub reason: String,
}

/// A rate, and the keyed limiter that keeps it.
#[derive(Clone)]
struct Budget<K: std::hash::Hash + Eq + Clone> {
    limiter: Arc<DefaultKeyedRateLimiter<K>>,
    limit: RateLimit,
    /// What is counted, and per what: "operations … from one user".
    counted: &'static str,
}

impl CallerLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        let limits = CallerLimits {
            users: settings.per_user.and_then(|limit| budget(limit, "operations per second from one user")),
            addresses: settings
                .per_address
                .and_then(|limit| budget(limit, "requests per second without a valid token from one address")),
            known_tokens: Arc::default(),
            in_flight: Arc::default(),
            in_flight_per_caller: settings.in_flight_per_caller,
            client_address_header: settings.client_address_header.clone(),
        };
        limits.sweep_idle_callers();
        limits
    }

    /// The client's address: the peer's, or the trusted proxy header's.
    pub fn client_address(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        let from_header = self.client_address_header.as_ref().and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            value.rsplit(',').map(str::trim).find(|part| !part.is_empty())?.parse::<IpAddr>().ok()
        });
        from_header.unwrap_or_else(|| peer.ip())
    }

    /// Whether `digest` is a token that authenticated before.
    pub fn is_known_token(&self, digest: &str) -> bool {
        self.known_tokens.lock().is_ok_and(|known| known.contains(digest))
    }

    /// Records whether the token `digest` authenticated.
    pub fn learn_token(&self, digest: &str, valid: bool) {
        let Ok(mut known) = self.known_tokens.lock() else { return };
        if !valid {
            known.remove(digest);
            return;
        }
        if known.len() >= KNOWN_TOKENS {
            // Starting afresh costs the legitimate callers one address charge each.
            known.clear();
        }
        known.insert(digest.to_owned());
    }

    /// Charges `operations` to the address's budget.
    pub fn charge_address(&self, address: IpAddr, operations: usize) -> Result<(), Refused> {
        charge(self.addresses.as_ref(), &address, operations)
    }

    /// Charges `operations` to the user's budget.
    pub fn charge_user(&self, user: UserId, operations: usize) -> Result<(), Refused> {
        charge(self.users.as_ref(), &user, operations)
    }

    /// Waits for one of `caller`'s slots for requests in flight, for at most
    /// [`IN_FLIGHT_WAIT`]; the slot is held until the guard is dropped. A client
    /// that sends many requests at once gets them run a few at a time, in order.
    pub async fn enter(&self, caller: Caller) -> Result<InFlight, Refused> {
        if self.in_flight_per_caller == 0 {
            return Ok(InFlight { _slot: None });
        }
        let semaphore = {
            let Ok(mut in_flight) = self.in_flight.lock() else { return Ok(InFlight { _slot: None }) };
            Arc::clone(in_flight.entry(caller).or_insert_with(|| Arc::new(Semaphore::new(self.in_flight_per_caller))))
        };
        match tokio::time::timeout(IN_FLIGHT_WAIT, Arc::clone(&semaphore).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(InFlight {
                _slot: Some(Slot { permit: Some(permit), semaphore, in_flight: Arc::clone(&self.in_flight) }),
            }),
            _ => {
                drop(Slot { permit: None, semaphore, in_flight: Arc::clone(&self.in_flight) });
                let reason = format!("more than {} of your requests running at once", self.in_flight_per_caller);
                Err(Refused { retry_after: Duration::from_secs(1), reason })
            }
        }
    }

    fn sweep_idle_callers(&self) {
        let users = self.users.as_ref().map(|budget| Arc::downgrade(&budget.limiter));
        let addresses = self.addresses.as_ref().map(|budget| Arc::downgrade(&budget.limiter));
        // The sweeper holds only weak references and stops with the server.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut every_minute = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every_minute.tick().await;
                    let users = users.as_ref().and_then(std::sync::Weak::upgrade);
                    let addresses = addresses.as_ref().and_then(std::sync::Weak::upgrade);
                    if users.is_none() && addresses.is_none() {
                        break;
                    }
                    if let Some(users) = users {
                        users.retain_recent();
                        users.shrink_to_fit();
                    }
                    if let Some(addresses) = addresses {
                        addresses.retain_recent();
                        addresses.shrink_to_fit();
                    }
                }
            });
        }
    }
}

/// A request in flight; dropping it ends it.
pub struct InFlight {
    /// `None` when nothing is counted; dropped with the guard.
    _slot: Option<Slot>,
}

struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    semaphore: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashMap<Caller, Arc<Semaphore>>>>,
}

impl Drop for Slot {
    /// Forgets the caller's semaphore once nobody holds or awaits it: under the
    /// map's lock, only the map and this slot hold it then.
    fn drop(&mut self) {
        drop(self.permit.take());
        let Ok(mut in_flight) = self.in_flight.lock() else { return };
        if Arc::strong_count(&self.semaphore) == 2 {
            in_flight.retain(|_, semaphore| !Arc::ptr_eq(semaphore, &self.semaphore));
        }
    }
}

fn budget<K: std::hash::Hash + Eq + Clone>(limit: RateLimit, counted: &'static str) -> Option<Budget<K>> {
    let per_second = NonZeroU32::new(limit.per_second)?;
    let burst = NonZeroU32::new(limit.burst.max(limit.per_second)).unwrap_or(per_second);
    let limiter = Arc::new(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)));
    Some(Budget { limiter, limit: RateLimit { per_second: limit.per_second, burst: burst.get() }, counted })
}

/// A batch larger than the burst can never pass and is refused outright.
fn charge<K: std::hash::Hash + Eq + Clone>(
    budget: Option<&Budget<K>>,
    key: &K,
    operations: usize,
) -> Result<(), Refused> {
    let Some(Budget { limiter, limit, counted }) = budget else { return Ok(()) };
    let count = NonZeroU32::new(u32::try_from(operations).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    match limiter.check_key_n(key, count) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(Refused {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            reason: format!("more than {} {counted} (bursts of {})", limit.per_second, limit.burst),
        }),
        Err(_insufficient_capacity) => Err(Refused {
            retry_after: Duration::from_secs(60),
            reason: format!("a batch of {operations} operations is more than the burst of {} allowed", limit.burst),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            per_user: Some(RateLimit { per_second: 1, burst: 2 }),
            per_address: Some(RateLimit { per_second: 1, burst: 3 }),
            in_flight_per_caller: 2,
            client_address_header: Some(HeaderName::from_static("x-forwarded-for")),
        }
    }

    #[tokio::test]
    async fn an_address_runs_out_however_many_tokens_it_makes_up() {
        let limits = CallerLimits::new(&settings());
        let address: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            limits.charge_address(address, 1).unwrap();
        }
        assert!(limits.charge_address(address, 1).is_err());
        assert!(limits.charge_address("203.0.113.8".parse().unwrap(), 1).is_ok(), "another address is not affected");
    }

    #[tokio::test]
    async fn in_flight_requests_are_counted_until_they_end() {
        let limits = CallerLimits::new(&settings());
        let caller = Caller::Address("203.0.113.7".parse().unwrap());
        let first = limits.enter(caller).await.unwrap();
        let _second = limits.enter(caller).await.unwrap();
        let third = tokio::spawn({
            let limits = limits.clone();
            async move { limits.enter(caller).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "a third request waits for a slot");
        drop(first);
        assert!(third.await.unwrap(), "and runs once one is free");
    }

    #[tokio::test]
    async fn the_proxy_header_is_read_only_when_configured() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.1, 203.0.113.9".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let trusting = CallerLimits::new(&settings());
        assert_eq!(trusting.client_address(&headers, peer), "203.0.113.9".parse::<IpAddr>().unwrap());
        let untrusting = CallerLimits::new(&LimitSettings { client_address_header: None, ..settings() });
        assert_eq!(untrusting.client_address(&headers, peer), peer.ip());
    }
}
