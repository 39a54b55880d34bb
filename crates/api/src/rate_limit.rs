//! Per-caller rate limits, so that one misbehaving bot cannot starve every
//! assistant: each token (or, for requests without one, each client address) gets
//! a sustained rate and a burst. Past them the answer is `RATE_LIMITED` (HTTP 429
//! with `Retry-After`), before any database work is done.
//!
//! Callers are keyed by the token's digest, never the token itself. Idle keys are
//! swept every minute, so a flood of made-up tokens cannot grow the table without
//! bound.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use appeals_storage::directory::token_digest;

/// A caller's sustained rate and burst; `None` disables limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    Token(String),
    Address(IpAddr),
}

/// The limiter shared by every request of a server.
#[derive(Clone)]
pub struct CallerLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<Caller>>>,
}

impl CallerLimiter {
    pub fn new(limit: Option<RateLimit>) -> Self {
        let limiter = limit.and_then(|limit| {
            let per_second = NonZeroU32::new(limit.per_second)?;
            let burst = NonZeroU32::new(limit.burst.max(limit.per_second)).unwrap_or(per_second);
            Some(Arc::new(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))))
        });
        let limiter = CallerLimiter { limiter };
        limiter.sweep_idle_callers();
        limiter
    }

    /// Counts `operations` (a batch counts each of its operations); `Err` carries
    /// how long the caller should wait. A batch larger than the burst can never
    /// pass and is refused outright.
    pub fn check(&self, token: Option<&str>, address: IpAddr, operations: usize) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let caller = match token {
            Some(token) => Caller::Token(token_digest(token)),
            None => Caller::Address(address),
        };
        let operations = NonZeroU32::new(u32::try_from(operations).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&caller, operations) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            Err(_insufficient_capacity) => Err(Duration::from_secs(60)),
        }
    }

    fn sweep_idle_callers(&self) {
        let Some(limiter) = &self.limiter else { return };
        let limiter = Arc::downgrade(limiter);
        // The sweeper holds only a weak reference and stops with the server.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut every_minute = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every_minute.tick().await;
                    let Some(limiter) = limiter.upgrade() else { break };
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            });
        }
    }
}
