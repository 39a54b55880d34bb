use std::collections::VecDeque;
use std::sync::Arc;

use appeals_core::text::MunicipalityCode;
use appeals_core::{MunicipalityId, Operation, Scope, UserId};
use appeals_storage::events::decode_cursor;
use appeals_storage::{FollowedEvent, Revocation};
use async_graphql::{Context, Subscription};
use futures_util::Stream;
use futures_util::stream;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::auth::current_actor;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::notifications::EventFeed;
use crate::schema::types::AppealEventNode;

/// How many missed events a subscription reads from the database at once.
const REPLAY_PAGE: u64 = 200;

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every event within the caller's scope (optionally one municipality's), as
    /// it is committed through any server on the same database, once each, in
    /// the order they were committed. With `after`, the `cursor` of the last
    /// event the client saw, the events committed since are replayed first. The
    /// stream ends with `UNAUTHENTICATED` if the caller's user is revoked.
    async fn appeal_events(
        &self,
        ctx: &Context<'_>,
        municipality_code: Option<String>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = ApiResult<AppealEventNode>> + use<>, ApiError> {
        let actor = current_actor(ctx)?;
        let scope = actor.scope(Operation::ReadAppeals)?;
        let feed =
            ctx.data::<EventFeed>().map_err(|_| ApiError::internal("the schema was built without an event feed"))?;
        let store = feed.store();
        let municipality = match municipality_code {
            None => None,
            Some(code) => {
                let code = MunicipalityCode::parse(&code)?;
                Some(store.known_municipality(&code).await?.id)
            }
        };
        let after = after.as_deref().map(decode_cursor).transpose()?;
        // Taken before subscribing: an event passed on in between shows as a
        // gap, which is read from the database.
        let now = feed.position();
        let events = feed.subscribe();
        let revocations = store.revocations();
        if let Some(after) = after {
            let last = store.last_event_position().await?.max(now);
            if after > last {
                return Err(ApiError::validation("after", "is not an event cursor of this database"));
            }
            let most = feed.max_replay();
            if last - after > most {
                return Err(ApiError::new(
                    ErrorCode::CursorExpired,
                    format!(
                        "the cursor is {} events behind, more than the {most} this server replays: \
                         re-read what you need, then subscribe without `after`",
                        last - after
                    ),
                ));
            }
        }
        let listener = Listener {
            feed: feed.clone(),
            events,
            revocations,
            user: actor.user_id,
            filter: Filter::of(scope, municipality),
            cursor: after.unwrap_or(now),
            replaying: after.is_some(),
            missed: VecDeque::new(),
            ended: false,
        };
        Ok(stream::unfold(listener, next_event))
    }
}

/// Which events a subscription delivers.
#[derive(Debug, Clone, Copy)]
enum Filter {
    /// Every event (a regional role, no municipality named).
    Everything,
    /// One municipality's.
    Only(MunicipalityId),
    /// None: a municipality outside the caller's scope was named.
    Nothing,
}

impl Filter {
    fn of(scope: Scope, municipality: Option<MunicipalityId>) -> Filter {
        match (scope, municipality) {
            (Scope::Everywhere, None) => Filter::Everything,
            (Scope::Everywhere, Some(only)) | (Scope::Municipality(only), None) => Filter::Only(only),
            (Scope::Municipality(own), Some(named)) if own == named => Filter::Only(own),
            (Scope::Municipality(_), Some(_)) => Filter::Nothing,
        }
    }

    fn wants(self, event: &FollowedEvent) -> bool {
        match self {
            Filter::Everything => true,
            Filter::Only(only) => event.municipality_id == only,
            Filter::Nothing => false,
        }
    }
}

/// What one subscription listens to, for whom, and how far it got.
struct Listener {
    feed: EventFeed,
    events: Receiver<Arc<FollowedEvent>>,
    revocations: Receiver<Revocation>,
    user: UserId,
    filter: Filter,
    /// The position of the last event looked at: every event up to it was
    /// delivered or is not wanted.
    cursor: i64,
    /// Reading missed events from the database instead of the feed.
    replaying: bool,
    /// Events read from the database, to deliver before reading on.
    missed: VecDeque<FollowedEvent>,
    ended: bool,
}

impl Listener {
    /// Reads the next page of missed events; stops replaying when there are
    /// none left (the feed then carries on from the cursor).
    async fn read_missed(&mut self) -> ApiResult<()> {
        let only = match self.filter {
            Filter::Everything => None,
            Filter::Only(only) => Some(only),
            Filter::Nothing => {
                self.replaying = false;
                return Ok(());
            }
        };
        let store = self.feed.store();
        // Every event up to here is committed, so a short page holds all the
        // wanted ones among them: those of other municipalities are passed
        // over at once, not one feed event at a time.
        let horizon = store.last_event_position().await?;
        let page = store.events_after(self.cursor, only, REPLAY_PAGE).await?;
        if (page.len() as u64) < REPLAY_PAGE {
            self.replaying = false;
            self.cursor = self.cursor.max(horizon);
        }
        self.missed.extend(page);
        Ok(())
    }
}

async fn next_event(mut listener: Listener) -> Option<(ApiResult<AppealEventNode>, Listener)> {
    loop {
        if listener.ended {
            return None;
        }
        if let Some(event) = listener.missed.pop_front() {
            listener.cursor = listener.cursor.max(event.event.position);
            if listener.filter.wants(&event) {
                return Some((Ok(AppealEventNode(event.event)), listener));
            }
            continue;
        }
        if listener.replaying {
            if let Err(error) = listener.read_missed().await {
                listener.ended = true;
                return Some((Err(error), listener));
            }
            continue;
        }
        tokio::select! {
            received = listener.events.recv() => match received {
                Ok(event) => {
                    let position = event.event.position;
                    if position <= listener.cursor {
                        // Delivered already, from the database.
                        continue;
                    }
                    if position > listener.cursor + 1 {
                        // Missed (passed on before this subscription began, or
                        // while it caught up): read from the database.
                        listener.replaying = true;
                        continue;
                    }
                    listener.cursor = position;
                    if listener.filter.wants(&event) {
                        return Some((Ok(AppealEventNode(event.event.clone())), listener));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("appeals_subscription_lagged_total").increment(missed);
                    listener.replaying = true;
                }
                Err(RecvError::Closed) => return None,
            },
            revoked = listener.revocations.recv() => match revoked {
                Ok(Revocation::User(user)) if user == listener.user => {
                    listener.ended = true;
                    return Some((Err(ApiError::unauthenticated()), listener));
                }
                // A socket asks the database about its user on `MayHaveMissed`
                // and closes, which ends its subscriptions.
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            },
        }
    }
}
