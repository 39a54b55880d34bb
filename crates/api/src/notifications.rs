//! The feed that carries committed events to this server's subscriptions, in
//! the order they were committed, whichever server committed them.
//!
//! One task per process follows the events table by position (see
//! `appeals_storage::events`): it wakes when the store announces events (its
//! own commits, and on PostgreSQL every server's, through `NOTIFY`), or once a
//! second in case an announcement was lost, reads what is new in pages and
//! passes each event on to every subscription here. A subscription that falls
//! behind, or joins with a cursor, reads what it missed from the database
//! itself (see `schema::subscription`), so no event is ever skipped.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use appeals_storage::{FollowedEvent, Store};
use tokio::sync::broadcast;

/// How many events the feed holds for a slow subscription; one further behind
/// reads the rest from the database.
pub const CAPACITY: usize = 4096;

/// How often the feed looks for new events when nothing woke it.
const POLL: Duration = Duration::from_secs(1);

/// How many events the feed reads at once.
const PAGE: u64 = 500;

struct Shared {
    /// How far behind the newest event a subscription's cursor may be.
    max_replay: i64,
    sender: broadcast::Sender<Arc<FollowedEvent>>,
    /// The position of the last event passed on.
    position: AtomicI64,
}

/// Committed events, in order, for this server's subscriptions.
#[derive(Clone)]
pub struct EventFeed {
    shared: Arc<Shared>,
    store: Store,
}

impl EventFeed {
    /// Starts following the events committed from now on. The task ends once
    /// every clone of the feed is dropped.
    pub async fn start(store: Store, max_replay: u32) -> Result<EventFeed, appeals_storage::StorageError> {
        let position = store.last_event_position().await?;
        let shared = Arc::new(Shared {
            max_replay: i64::from(max_replay),
            sender: broadcast::channel(CAPACITY).0,
            position: AtomicI64::new(position),
        });
        tokio::spawn(follow(store.clone(), Arc::downgrade(&shared)));
        Ok(EventFeed { shared, store })
    }

    /// Every event passed on from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FollowedEvent>> {
        self.shared.sender.subscribe()
    }

    /// The position of the last event passed on.
    pub fn position(&self) -> i64 {
        self.shared.position.load(Ordering::Acquire)
    }

    /// How many events behind the newest a subscription's cursor may be and
    /// still be replayed.
    pub fn max_replay(&self) -> i64 {
        self.shared.max_replay
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

async fn follow(store: Store, shared: Weak<Shared>) {
    let mut wakeups = store.follow_events();
    let mut failing = false;
    loop {
        let Some(feed) = shared.upgrade() else { return };
        match appeals_storage::events::following(pass_on_new_events(&store, &feed)).await {
            Ok(()) => failing = false,
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot read new events; subscriptions wait until the database answers");
                }
                failing = true;
            }
        }
        drop(feed);
        tokio::select! {
            changed = wakeups.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Reads every event after the feed's position and passes each one on.
async fn pass_on_new_events(store: &Store, feed: &Shared) -> Result<(), appeals_storage::StorageError> {
    loop {
        let after = feed.position.load(Ordering::Acquire);
        let events = store.next_events(after, PAGE).await?;
        let complete = (events.len() as u64) < PAGE;
        for event in events {
            let position = event.event.position;
            metrics::counter!("appeals_events_followed_total").increment(1);
            // Sending fails only when nobody is subscribed, which is fine.
            let _ = feed.sender.send(Arc::new(event));
            feed.position.store(position, Ordering::Release);
        }
        if complete {
            return Ok(());
        }
    }
}
