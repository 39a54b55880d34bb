use std::sync::Arc;

use appeals_core::text::MunicipalityCode;
use appeals_core::{Operation, Scope, UserId};
use async_graphql::{Context, Subscription};
use futures_util::Stream;
use futures_util::stream;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::auth::current_actor;
use crate::error::{ApiError, ApiResult};
use crate::notifications::{EventBus, Published};
use crate::schema::context::store;
use crate::schema::types::AppealEventNode;

#[derive(Default)]
pub struct SubscriptionRoot;

/// What one subscription listens to, and for whom.
struct Listener {
    events: Receiver<Arc<Published>>,
    revocations: Receiver<UserId>,
    user: UserId,
    scope: Scope,
    municipality: Option<appeals_core::MunicipalityId>,
    ended: bool,
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every event within the caller's scope (optionally one municipality's), as
    /// it is committed. The stream ends with `UNAUTHENTICATED` if the caller's user
    /// is revoked.
    async fn appeal_events(
        &self,
        ctx: &Context<'_>,
        municipality_code: Option<String>,
    ) -> Result<impl Stream<Item = ApiResult<AppealEventNode>> + use<>, ApiError> {
        let actor = current_actor(ctx)?;
        let scope = actor.scope(Operation::ReadAppeals)?;
        let municipality = match municipality_code {
            None => None,
            Some(code) => {
                let code = MunicipalityCode::parse(&code)?;
                let municipality = store(ctx)?.known_municipality(&code).await?;
                Some(municipality.id)
            }
        };
        let bus =
            ctx.data::<EventBus>().map_err(|_| ApiError::internal("the schema was built without an event bus"))?;
        let listener = Listener {
            events: bus.subscribe(),
            revocations: bus.subscribe_revocations(),
            user: actor.user_id,
            scope,
            municipality,
            ended: false,
        };
        Ok(stream::unfold(listener, next_event))
    }
}

async fn next_event(mut listener: Listener) -> Option<(ApiResult<AppealEventNode>, Listener)> {
    if listener.ended {
        return None;
    }
    loop {
        tokio::select! {
            received = listener.events.recv() => match received {
                Ok(published) => {
                    let wanted = listener.scope.contains(published.municipality_id)
                        && listener.municipality.is_none_or(|only| only == published.municipality_id);
                    if wanted {
                        return Some((Ok(AppealEventNode(published.event.clone())), listener));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("appeals_subscription_lagged_total").increment(missed);
                    tracing::warn!(missed, "a subscriber fell behind and skipped events");
                }
                Err(RecvError::Closed) => return None,
            },
            revoked = listener.revocations.recv() => match revoked {
                Ok(user) if user == listener.user => {
                    listener.ended = true;
                    return Some((Err(ApiError::unauthenticated()), listener));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            },
        }
    }
}
