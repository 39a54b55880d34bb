//! A resident's message from a webhook: a new appeal, or a follow-up on the
//! resident's open one.
//!
//! The rule (the README states it for users):
//! 1. A message the platform delivered before (the same platform ids) changes
//!    nothing, however many copies arrive at once: the unique key of
//!    `channel_message` on (municipality, channel, external id) decides.
//! 2. A reply to one of the engine's messages about an appeal, or to one of the
//!    resident's own messages on it, by the same resident in the same chat, is a
//!    follow-up on that appeal while it is open.
//! 3. Otherwise a message in the same chat, from the same resident, within the
//!    follow-up window of their latest message on an open appeal, is a
//!    follow-up on that appeal.
//! 4. Everything else (also anything after the appeal is resolved) registers a
//!    new appeal and queues its acknowledgement.
//!
//! A follow-up is a `RESIDENT_MESSAGE` event in the appeal's chained history;
//! like a note it leaves the appeal's version alone.

use appeals_core::channels::{Attachment, InboundMessage, ReplyKind};
use appeals_core::text::{AppealText, Contact, ExternalId, PersonName};
use appeals_core::{Appeal, AppealId, Applied, ChainAnchor, Channel, MunicipalityId, Status, Submission};
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::Store;
use crate::appeals::check_anchor_before_append;
use crate::database::begin_write;
use crate::directory::inserted;
use crate::entity::{appeal, channel_message, sent_message};
use crate::error::{Result, StorageError};
use crate::events;
use crate::records::{StoredEvent, changed_appeal_row};

/// What became of a resident's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// A new appeal, with its acknowledgement queued.
    Registered { appeal: Appeal, event: StoredEvent },
    /// A follow-up recorded on the resident's open appeal.
    FollowUp { appeal: Appeal, event: StoredEvent },
    /// The platform delivered this message before; nothing changed.
    Repeat { appeal_id: AppealId },
}

/// A text cut to `limit` characters, for the name and contact a platform
/// gives: a long display name is no reason to refuse a resident's appeal.
fn clipped<T>(
    value: Option<&str>,
    limit: usize,
    parse: impl Fn(&str) -> Result<T, appeals_core::InvalidInput>,
) -> Option<T> {
    let value = value?;
    let clipped: String = value.chars().take(limit).collect();
    parse(&clipped).ok()
}

impl Store {
    /// Takes in a resident's message to the municipality's `channel` (see the
    /// module's rule). `follow_up_window` is how long after the resident's
    /// latest message on an open appeal a new message in the same chat still
    /// belongs to it.
    pub async fn receive_channel_message(
        &self,
        municipality_id: MunicipalityId,
        channel: Channel,
        message: &InboundMessage,
        follow_up_window: TimeDelta,
    ) -> Result<Intake> {
        let text = AppealText::parse(&message.text)?;
        let external_id = ExternalId::parse(&message.external_id)?;
        if let Some(appeal_id) = self.appeal_of_message(municipality_id, channel, &message.external_id).await? {
            return Ok(Intake::Repeat { appeal_id });
        }
        let now = self.now();
        if let Some(appeal_id) = self.open_thread(municipality_id, channel, message, now - follow_up_window).await?
            && let Some(intake) = self.record_follow_up(appeal_id, channel, message, &text, &external_id, now).await?
        {
            return Ok(intake);
        }
        self.register_from_channel(municipality_id, channel, message, text, external_id, now).await
    }

    /// The appeal a stored channel message belongs to.
    async fn appeal_of_message(
        &self,
        municipality_id: MunicipalityId,
        channel: Channel,
        external_id: &str,
    ) -> Result<Option<AppealId>> {
        let found = channel_message::Entity::find()
            .select_only()
            .column(channel_message::Column::AppealId)
            .filter(channel_message::Column::MunicipalityId.eq(municipality_id.as_uuid()))
            .filter(channel_message::Column::Channel.eq(channel.as_str()))
            .filter(channel_message::Column::ExternalId.eq(external_id))
            .into_tuple::<Uuid>()
            .one(self.db())
            .await?;
        Ok(found.map(AppealId::from_uuid))
    }

    /// The open appeal a message continues, by rules 2 and 3.
    async fn open_thread(
        &self,
        municipality_id: MunicipalityId,
        channel: Channel,
        message: &InboundMessage,
        window_start: DateTime<Utc>,
    ) -> Result<Option<AppealId>> {
        let in_channel = |query: sea_orm::Select<channel_message::Entity>| {
            query
                .filter(channel_message::Column::MunicipalityId.eq(municipality_id.as_uuid()))
                .filter(channel_message::Column::Channel.eq(channel.as_str()))
        };
        if let Some(replied_to) = &message.replied_to {
            let engines = sent_message::Entity::find_by_id((
                municipality_id.as_uuid(),
                channel.as_str().to_owned(),
                replied_to.clone(),
            ))
            .one(self.db())
            .await?
            .map(|row| row.appeal_id);
            let residents = match engines {
                Some(_) => None,
                None => in_channel(channel_message::Entity::find())
                    .filter(channel_message::Column::MessageKey.eq(replied_to.as_str()))
                    .one(self.db())
                    .await?
                    .map(|row| row.appeal_id),
            };
            if let Some(appeal_id) = engines.or(residents) {
                // The same resident in the same chat: in a group, someone else's
                // reply to the engine is that person's own appeal.
                let origin = in_channel(channel_message::Entity::find())
                    .filter(channel_message::Column::AppealId.eq(appeal_id))
                    .filter(channel_message::Column::Origin.eq(true))
                    .one(self.db())
                    .await?;
                if origin.is_some_and(|origin| origin.conversation == message.conversation)
                    && self.is_open(appeal_id).await?
                {
                    return Ok(Some(AppealId::from_uuid(appeal_id)));
                }
            }
        }
        let latest = in_channel(channel_message::Entity::find())
            .filter(channel_message::Column::Conversation.eq(message.conversation.as_str()))
            .filter(channel_message::Column::ReceivedAt.gte(window_start))
            .order_by_desc(channel_message::Column::ReceivedAt)
            .one(self.db())
            .await?;
        match latest {
            Some(row) if self.is_open(row.appeal_id).await? => Ok(Some(AppealId::from_uuid(row.appeal_id))),
            _ => Ok(None),
        }
    }

    async fn is_open(&self, appeal_id: Uuid) -> Result<bool> {
        let status = appeal::Entity::find_by_id(appeal_id)
            .select_only()
            .column(appeal::Column::Status)
            .into_tuple::<String>()
            .one(self.db())
            .await?;
        Ok(status.is_some_and(|status| status != Status::Resolved.as_str()))
    }

    /// Records the message on the open appeal `id`, in one transaction.
    /// `None` if the appeal was resolved meanwhile: the message is then a new
    /// appeal.
    async fn record_follow_up(
        &self,
        id: AppealId,
        channel: Channel,
        message: &InboundMessage,
        text: &AppealText,
        external_id: &ExternalId,
        now: DateTime<Utc>,
    ) -> Result<Option<Intake>> {
        let txn = begin_write(self.db()).await?;
        // Locked as a command locks it (see `execute_command`).
        let row =
            appeal::Entity::find_by_id(id.as_uuid()).lock_exclusive().one(&txn).await?.ok_or(StorageError::NotFound)?;
        let (last_seq, last_hash, anchor_seal) =
            (row.last_event_seq, row.last_event_hash.clone(), row.last_event_seal.clone());
        let current = Appeal::try_from(row)?;
        if current.status == Status::Resolved {
            txn.rollback().await?;
            return Ok(None);
        }
        if let Some(key) = self.audit_key() {
            let anchor = ChainAnchor { seq: last_seq, hash: &last_hash };
            check_anchor_before_append(&txn, key, id, anchor, anchor_seal.as_deref()).await?;
        }
        if !insert_message(&txn, &current, channel, message, false, now).await? {
            txn.rollback().await?;
            return Ok(Some(Intake::Repeat { appeal_id: id }));
        }
        let Applied { appeal, event } = current.record_resident_message(text.clone(), external_id.clone(), now)?;
        let mut event = StoredEvent::new(event.record(appeal.id, last_seq + 1, &last_hash), self.audit_key());
        let updated = appeal::Entity::update_many()
            .set(changed_appeal_row(&appeal, &event.event, self.audit_key()))
            .filter(appeal::Column::Id.eq(appeal.id.as_uuid()))
            .filter(appeal::Column::LastEventSeq.eq(last_seq))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            return Err(StorageError::Corrupt(format!("appeal {id} changed under its row lock")));
        }
        events::insert(&txn, &mut event).await?;
        txn.commit().await?;
        self.events_committed();
        Ok(Some(Intake::FollowUp { appeal, event }))
    }

    /// Registers the message as a new appeal with its acknowledgement queued,
    /// in one transaction.
    async fn register_from_channel(
        &self,
        municipality_id: MunicipalityId,
        channel: Channel,
        message: &InboundMessage,
        text: AppealText,
        external_id: ExternalId,
        now: DateTime<Utc>,
    ) -> Result<Intake> {
        let municipality = self.municipalities_by_ids(&[municipality_id]).await?.pop().ok_or(StorageError::NotFound)?;
        let submission = Submission {
            channel,
            external_id: Some(external_id),
            author_name: clipped(message.author_name.as_deref(), 200, PersonName::parse),
            author_contact: clipped(Some(&message.author_contact), 200, Contact::parse),
            text,
        };
        let txn = begin_write(self.db()).await?;
        let registered = self.register(&txn, &municipality, submission, None, now).await?;
        let Some((appeal, event)) = registered else {
            // Another copy of the message registered it first.
            txn.rollback().await?;
            return self.repeat_of(municipality_id, channel, &message.external_id).await;
        };
        if !insert_message(&txn, &appeal, channel, message, true, now).await? {
            // Another copy recorded it as a follow-up first.
            txn.rollback().await?;
            return self.repeat_of(municipality_id, channel, &message.external_id).await;
        }
        self.enqueue_reply(&txn, &appeal, ReplyKind::Acknowledgement, &message.target).await?;
        txn.commit().await?;
        self.events_committed();
        self.outbox_signal().notify_one();
        Ok(Intake::Registered { appeal, event })
    }

    /// The appeal that holds the message's platform ids: the one its stored
    /// copy belongs to, or else one submitted through the API with those ids as
    /// its external id (an intake bot that keyed its submissions as the webhook
    /// does), which the registering insert conflicted with.
    async fn repeat_of(&self, municipality_id: MunicipalityId, channel: Channel, external_id: &str) -> Result<Intake> {
        if let Some(appeal_id) = self.appeal_of_message(municipality_id, channel, external_id).await? {
            return Ok(Intake::Repeat { appeal_id });
        }
        let submitted = appeal::Entity::find()
            .select_only()
            .column(appeal::Column::Id)
            .filter(appeal::Column::MunicipalityId.eq(municipality_id.as_uuid()))
            .filter(appeal::Column::Channel.eq(channel.as_str()))
            .filter(appeal::Column::ExternalId.eq(external_id))
            .into_tuple::<Uuid>()
            .one(self.db())
            .await?
            .ok_or_else(|| {
                StorageError::Corrupt("a conflicting channel message vanished after its commit".to_owned())
            })?;
        Ok(Intake::Repeat { appeal_id: AppealId::from_uuid(submitted) })
    }
}

/// Stores the message on `appeal`; `false` if the platform's ids were stored
/// before (the unique key decides, also between concurrent copies).
async fn insert_message(
    txn: &DatabaseTransaction,
    appeal: &Appeal,
    channel: Channel,
    message: &InboundMessage,
    origin: bool,
    now: DateTime<Utc>,
) -> Result<bool> {
    let row = channel_message::ActiveModel {
        id: Set(Uuid::now_v7()),
        appeal_id: Set(appeal.id.as_uuid()),
        municipality_id: Set(appeal.municipality_id.as_uuid()),
        channel: Set(channel.as_str().to_owned()),
        external_id: Set(message.external_id.clone()),
        conversation: Set(message.conversation.chars().take(200).collect()),
        message_key: Set(message.message_key.chars().take(200).collect()),
        origin: Set(origin),
        reply_target: Set(
            serde_json::to_string(&message.target).map_err(|error| StorageError::Corrupt(error.to_string()))?
        ),
        attachments: Set(
            serde_json::to_string(&message.attachments).map_err(|error| StorageError::Corrupt(error.to_string()))?
        ),
        received_at: Set(now),
    };
    let insert = channel_message::Entity::insert(row)
        .on_conflict_do_nothing_on([
            channel_message::Column::MunicipalityId,
            channel_message::Column::Channel,
            channel_message::Column::ExternalId,
        ])
        .exec_without_returning(txn)
        .await?;
    Ok(inserted(insert).unwrap_or(0) == 1)
}

/// A resident's message as stored on its appeal.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMessage {
    pub appeal_id: AppealId,
    /// The message the appeal started with (the others are follow-ups).
    pub origin: bool,
    pub received_at: DateTime<Utc>,
    pub attachments: Vec<Attachment>,
}

impl Store {
    /// The channel messages of each of `ids`, oldest first.
    pub async fn channel_messages_of(&self, ids: &[AppealId]) -> Result<Vec<ChannelMessage>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows = channel_message::Entity::find()
            .filter(channel_message::Column::AppealId.is_in(ids))
            .order_by_asc(channel_message::Column::ReceivedAt)
            .order_by_asc(channel_message::Column::Id)
            .all(self.db())
            .await?;
        rows.into_iter()
            .map(|row| {
                let attachments = serde_json::from_str(&row.attachments)
                    .map_err(|error| StorageError::Corrupt(format!("channel message {}: {error}", row.id)))?;
                Ok(ChannelMessage {
                    appeal_id: AppealId::from_uuid(row.appeal_id),
                    origin: row.origin,
                    received_at: row.received_at,
                    attachments,
                })
            })
            .collect()
    }
}
