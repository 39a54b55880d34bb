//! What one store tells every store on the same database, and what it hears.
//!
//! Two things are announced:
//! - **Events committed.** Every statement that inserts events announces them
//!   (on PostgreSQL a trigger runs `NOTIFY appeals_events`; see the migration
//!   that orders events), and each store wakes its followers (`events`), so a
//!   subscriber on one server hears at once of an event committed through
//!   another. A store also wakes them itself after its own commits, which is all
//!   there is on SQLite, where one server process serves a file.
//! - **Users revoked** (`NOTIFY appeals_user_revoked`, payload the user's id):
//!   every store forgets the user's token (`lookups`) and tells its sockets,
//!   which close.
//!
//! One connection of the store's own, outside its pool, listens to both. While
//! it is not connected (at start, or after it broke and before it is back) the
//! store keeps no users, followers fall back to reading the events on a timer,
//! and sockets are told that revocations may have been missed.

use std::sync::{Arc, Once, Weak};

use appeals_core::UserId;
use sea_orm::prelude::Uuid;
use tokio::sync::{broadcast, watch};

use crate::lookups::Lookups;

/// The PostgreSQL channel revocations are announced on; its payload is the
/// user's id.
pub const REVOCATIONS: &str = "appeals_user_revoked";

/// The PostgreSQL channel committed events are announced on (by a trigger); it
/// carries no payload: followers read what is new.
pub const EVENTS: &str = "appeals_events";

/// A revocation heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// This user was revoked.
    User(UserId),
    /// Revocations may have been missed (the listener was not connected); a
    /// holder of a token should ask the database whether it still holds.
    MayHaveMissed,
}

/// Where a store's listener passes on what it hears.
#[derive(Debug)]
pub(crate) struct Announcements {
    /// Counts the wake-ups for followers of the events.
    events: watch::Sender<u64>,
    revocations: broadcast::Sender<Revocation>,
    listening: Once,
}

impl Announcements {
    pub(crate) fn new() -> Announcements {
        Announcements { events: watch::channel(0).0, revocations: broadcast::channel(256).0, listening: Once::new() }
    }

    /// Wakes every follower of the events.
    pub(crate) fn events_committed(&self) {
        self.events.send_modify(|wakeups| *wakeups = wakeups.wrapping_add(1));
    }

    pub(crate) fn follow_events(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    pub(crate) fn revoked(&self, revocation: Revocation) {
        // Sending fails only when nobody listens, which is fine.
        let _ = self.revocations.send(revocation);
    }

    pub(crate) fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revocations.subscribe()
    }

    /// Runs `start` the first time it is called, and never again.
    pub(crate) fn listen_once(&self, start: impl FnOnce()) {
        self.listening.call_once(start);
    }
}

/// Listens to both channels on a connection of its own (not one of `pool`'s),
/// until `pool` closes or the store is dropped.
pub(crate) fn listen(pool: sea_orm::sqlx::PgPool, lookups: Weak<Lookups>, announcements: Weak<Announcements>) {
    use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
    let options = pool.connect_options().as_ref().clone();
    let own = PgPoolOptions::new().max_connections(1).min_connections(0).connect_lazy_with(options);
    tokio::spawn(async move {
        let closed = pool.close_event();
        tokio::pin!(closed);
        // Before the first connection no user was kept, so nothing was missed.
        let mut reconnecting = false;
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&own).await?;
                listener.listen_all([REVOCATIONS, EVENTS]).await?;
                Ok::<_, sea_orm::sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                () = &mut closed => break,
                listening = listening => match listening {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for announcements; users are looked up every time");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let (Some(users), Some(heard)) = (lookups.upgrade(), announcements.upgrade()) else { break };
            users.trust_users(true);
            // Whatever was committed or revoked while nobody listened is
            // looked at now.
            heard.events_committed();
            if reconnecting {
                heard.revoked(Revocation::MayHaveMissed);
            }
            reconnecting = true;
            drop((users, heard));
            loop {
                let notification = tokio::select! {
                    () = &mut closed => return own.close().await,
                    notification = listener.try_recv() => notification,
                };
                let (Some(users), Some(heard)) = (lookups.upgrade(), announcements.upgrade()) else {
                    return own.close().await;
                };
                match notification {
                    Ok(Some(notification)) if notification.channel() == EVENTS => heard.events_committed(),
                    Ok(Some(notification)) => match notification.payload().parse::<Uuid>() {
                        Ok(id) => {
                            let id = UserId::from_uuid(id);
                            users.forget_user(id);
                            heard.revoked(Revocation::User(id));
                        }
                        Err(_) => {
                            users.trust_users(true);
                            heard.revoked(Revocation::MayHaveMissed);
                        }
                    },
                    // `Ok(None)`: the connection broke, and announcements may
                    // have been missed while it was down.
                    Ok(None) | Err(_) => {
                        users.trust_users(false);
                        heard.revoked(Revocation::MayHaveMissed);
                        break;
                    }
                }
            }
        }
        own.close().await;
    });
}

/// Starts `store`'s listener the first time it is needed (PostgreSQL only), so
/// that a store that never looks a token up nor follows events (a one-shot
/// command, the benchmark's floor) opens no listening connection.
pub(crate) fn listen_once(
    db: &sea_orm::DatabaseConnection,
    lookups: &Arc<Lookups>,
    announcements: &Arc<Announcements>,
) {
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        let pool = db.get_postgres_connection_pool();
        announcements.listen_once(|| listen(pool.clone(), Arc::downgrade(lookups), Arc::downgrade(announcements)));
    }
}
