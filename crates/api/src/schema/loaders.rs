//! Batched loading of related objects within one request (DataLoader): the
//! municipalities, users, appeals and histories that a page of appeals refers to
//! are each fetched in one query.

use std::collections::HashMap;
use std::sync::Arc;

use appeals_core::{Appeal, AppealId, MunicipalityId, UserId};
use appeals_storage::channels::ChannelMessage;
use appeals_storage::{HistoryWindow, Municipality, Reply, Store, StoredEvent, User};
use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};

use crate::error::{ApiError, ApiResult};
use crate::schema::channels::{MessagesOf, RepliesOf};

/// The key for a stretch of an appeal's history, as distinct from the appeal itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryOf(pub AppealId, pub HistoryWindow);

/// Loads by id through the store.
pub struct StoreLoader {
    store: Store,
}

/// A request's loaders (a WebSocket connection's, for subscriptions).
pub struct Loaders {
    /// Municipalities and users, cached for the request: a page refers to the same
    /// few many times over, and they hardly ever change.
    pub directory: DataLoader<StoreLoader, HashMapCache>,
    /// Appeals and histories, never cached: a subscription's connection lives
    /// long, and each event must show the appeal as it stands.
    pub appeals: DataLoader<StoreLoader>,
}

/// Fresh loaders; each request gets its own, so nothing is shared across requests.
pub fn new_loaders(store: Store) -> Arc<Loaders> {
    Arc::new(Loaders {
        directory: DataLoader::with_cache(StoreLoader { store: store.clone() }, spawn_in_span, HashMapCache::default()),
        appeals: DataLoader::new(StoreLoader { store }, spawn_in_span),
    })
}

/// Runs a loader's batch on its own task inside the span of the request that
/// asked for it, so that a failure logged there carries the request id.
fn spawn_in_span(batch: futures_util::future::BoxFuture<'static, ()>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(tracing::Instrument::in_current_span(batch))
}

pub fn loaders<'a>(ctx: &'a Context<'_>) -> ApiResult<&'a Loaders> {
    ctx.data::<Arc<Loaders>>().map(Arc::as_ref).map_err(|_| ApiError::internal("the request carries no loaders"))
}

impl Loader<MunicipalityId> for StoreLoader {
    type Value = Municipality;
    type Error = ApiError;

    async fn load(&self, keys: &[MunicipalityId]) -> Result<HashMap<MunicipalityId, Municipality>, ApiError> {
        let found = self.store.municipalities_by_ids(keys).await?;
        Ok(found.into_iter().map(|municipality| (municipality.id, municipality)).collect())
    }
}

impl Loader<UserId> for StoreLoader {
    type Value = User;
    type Error = ApiError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, User>, ApiError> {
        let found = self.store.users_by_ids(keys).await?;
        Ok(found.into_iter().map(|user| (user.id, user)).collect())
    }
}

impl Loader<AppealId> for StoreLoader {
    type Value = Appeal;
    type Error = ApiError;

    async fn load(&self, keys: &[AppealId]) -> Result<HashMap<AppealId, Appeal>, ApiError> {
        let found = self.store.appeals_by_ids(keys).await?;
        Ok(found.into_iter().map(|appeal| (appeal.id, appeal)).collect())
    }
}

impl Loader<HistoryOf> for StoreLoader {
    type Value = Vec<StoredEvent>;
    type Error = ApiError;

    /// One statement per distinct window; a page asks for the same window of
    /// every appeal, so that is one statement.
    async fn load(&self, keys: &[HistoryOf]) -> Result<HashMap<HistoryOf, Vec<StoredEvent>>, ApiError> {
        let mut by_window: HashMap<HistoryWindow, Vec<AppealId>> = HashMap::new();
        for HistoryOf(id, window) in keys {
            by_window.entry(*window).or_default().push(*id);
        }
        let mut loaded = HashMap::with_capacity(keys.len());
        for (window, ids) in by_window {
            let histories = self.store.history_windows(&ids, window).await?;
            loaded.extend(histories.into_iter().map(|(id, events)| (HistoryOf(id, window), events)));
        }
        Ok(loaded)
    }
}

impl Loader<RepliesOf> for StoreLoader {
    type Value = Vec<Reply>;
    type Error = ApiError;

    async fn load(&self, keys: &[RepliesOf]) -> Result<HashMap<RepliesOf, Vec<Reply>>, ApiError> {
        let ids: Vec<AppealId> = keys.iter().map(|RepliesOf(id)| *id).collect();
        let mut loaded: HashMap<RepliesOf, Vec<Reply>> = keys.iter().map(|key| (*key, Vec::new())).collect();
        for reply in self.store.replies_of(&ids).await? {
            loaded.entry(RepliesOf(reply.appeal_id)).or_default().push(reply);
        }
        Ok(loaded)
    }
}

impl Loader<MessagesOf> for StoreLoader {
    type Value = Vec<ChannelMessage>;
    type Error = ApiError;

    async fn load(&self, keys: &[MessagesOf]) -> Result<HashMap<MessagesOf, Vec<ChannelMessage>>, ApiError> {
        let ids: Vec<AppealId> = keys.iter().map(|MessagesOf(id)| *id).collect();
        let mut loaded: HashMap<MessagesOf, Vec<ChannelMessage>> = keys.iter().map(|key| (*key, Vec::new())).collect();
        for message in self.store.channel_messages_of(&ids).await? {
            loaded.entry(MessagesOf(message.appeal_id)).or_default().push(message);
        }
        Ok(loaded)
    }
}
