//! The transactional outbox of replies to residents.
//!
//! A reply is written in the transaction of the change that causes it (the
//! registration, `markSeen`, `resolveAppeal`), so a reply exists exactly when
//! its change committed. The delivery worker (in the API crate) claims due
//! replies for a lease, sends each part, records each part as it is sent, and
//! records the outcome: sent, retry later, or failed for good.
//!
//! A claim that expires without an outcome means the worker stopped during an
//! attempt: the platform may or may not have taken the part in flight. The
//! next claim says so ([`DueReply::in_doubt`]); the worker resends it only
//! where the platform drops a repeat by its idempotency key (VK), and otherwise
//! marks it failed rather than risk sending it twice.

use appeals_core::channels::{ReplyKind, ReplyTarget, default_template, render};
use appeals_core::{Actor, Appeal, AppealId, Channel, InvalidInput, MunicipalityId, Operation, authorize};
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::BotToken;
use crate::Store;
use crate::database::begin_write;
use crate::entity::{channel_message, channel_setting, reply, reply_template, sent_message};
use crate::error::{Result, StorageError};

/// Where a reply stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Queued, or being retried.
    Pending,
    Sent,
    /// Refused for good by the platform, or its delivery could not be confirmed
    /// (see the module doc). An official may queue it again.
    Failed,
}

impl ReplyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Pending => "PENDING",
            ReplyStatus::Sent => "SENT",
            ReplyStatus::Failed => "FAILED",
        }
    }

    fn parse(value: &str) -> Result<Self> {
        match value {
            "PENDING" => Ok(ReplyStatus::Pending),
            "SENT" => Ok(ReplyStatus::Sent),
            "FAILED" => Ok(ReplyStatus::Failed),
            other => Err(StorageError::Corrupt(format!("a reply with status `{other}`"))),
        }
    }
}

/// A reply as officials see it on its appeal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: Uuid,
    pub appeal_id: AppealId,
    pub kind: ReplyKind,
    pub status: ReplyStatus,
    pub text: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A reply claimed by the delivery worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct DueReply {
    pub id: Uuid,
    pub appeal_id: AppealId,
    pub municipality_id: MunicipalityId,
    pub channel: Channel,
    pub kind: ReplyKind,
    pub text: String,
    pub target: ReplyTarget,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// How many parts of a long text the platform has taken already.
    pub parts_sent: usize,
    /// The previous attempt ended with no outcome recorded (see the module doc).
    pub in_doubt: bool,
    /// The channel's settings as they are now.
    pub enabled: bool,
    pub bot_token: Option<BotToken>,
    pub vk_group_id: Option<String>,
}

fn corrupt(id: Uuid, error: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("reply {id}: {error}"))
}

fn parse_kind(id: Uuid, value: &str) -> Result<ReplyKind> {
    ReplyKind::ALL.iter().copied().find(|kind| kind.as_str() == value).ok_or_else(|| corrupt(id, "unknown kind"))
}

impl TryFrom<reply::Model> for Reply {
    type Error = StorageError;

    fn try_from(row: reply::Model) -> Result<Self> {
        Ok(Reply {
            id: row.id,
            appeal_id: AppealId::from_uuid(row.appeal_id),
            kind: parse_kind(row.id, &row.kind)?,
            status: ReplyStatus::parse(&row.status)?,
            text: row.text,
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: row.created_at,
            sent_at: row.sent_at,
        })
    }
}

/// Errors from the platform are cut to this many characters before they are kept.
const MAX_ERROR_CHARS: usize = 500;

fn clip_error(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

impl Store {
    /// Queues a reply of `kind` about `appeal` to `target`, inside the
    /// transaction of the change that causes it.
    pub(crate) async fn enqueue_reply(
        &self,
        txn: &DatabaseTransaction,
        appeal: &Appeal,
        kind: ReplyKind,
        target: &ReplyTarget,
    ) -> Result<()> {
        let template = reply_template::Entity::find_by_id((appeal.municipality_id.as_uuid(), kind.as_str().to_owned()))
            .one(txn)
            .await?
            .map(|row| row.template);
        let template = template.as_deref().unwrap_or_else(|| default_template(kind));
        let due_date = appeal.due_at.with_timezone(&self.local_offset()).format("%d.%m.%Y").to_string();
        let response = appeal.resolution.as_ref().map(|resolution| resolution.response.as_str()).unwrap_or_default();
        let now = self.now();
        let row = reply::ActiveModel {
            id: Set(Uuid::now_v7()),
            appeal_id: Set(appeal.id.as_uuid()),
            municipality_id: Set(appeal.municipality_id.as_uuid()),
            channel: Set(appeal.channel.as_str().to_owned()),
            kind: Set(kind.as_str().to_owned()),
            status: Set(ReplyStatus::Pending.as_str().to_owned()),
            text: Set(render(template, &appeal.number, &due_date, response)),
            reply_target: Set(serde_json::to_string(target).map_err(|error| StorageError::Corrupt(error.to_string()))?),
            attempts: Set(0),
            parts_sent: Set(0),
            last_error: Set(None),
            created_at: Set(now),
            next_attempt_at: Set(now),
            claimed_until: Set(None),
            sent_at: Set(None),
        };
        reply::Entity::insert(row).exec_without_returning(txn).await?;
        Ok(())
    }

    /// Queues the reply a command's change causes, if the appeal came through a
    /// messaging channel: the resident is told when the head has read it and
    /// given the answer when it is resolved. `true` when one was queued.
    pub(crate) async fn enqueue_reply_for(
        &self,
        txn: &DatabaseTransaction,
        appeal: &Appeal,
        kind: ReplyKind,
    ) -> Result<bool> {
        if !super::is_messaging(appeal.channel) {
            return Ok(false);
        }
        let origin = channel_message::Entity::find()
            .select_only()
            .column(channel_message::Column::ReplyTarget)
            .filter(channel_message::Column::AppealId.eq(appeal.id.as_uuid()))
            .filter(channel_message::Column::Origin.eq(true))
            .into_tuple::<String>()
            .one(txn)
            .await?;
        // An appeal submitted through the API with a messaging channel has no
        // chat to answer in.
        let Some(target) = origin else { return Ok(false) };
        let target: ReplyTarget = serde_json::from_str(&target)
            .map_err(|error| StorageError::Corrupt(format!("appeal {}: {error}", appeal.id)))?;
        self.enqueue_reply(txn, appeal, kind, &target).await?;
        Ok(true)
    }

    /// The replies of each of `ids`, oldest first.
    pub async fn replies_of(&self, ids: &[AppealId]) -> Result<Vec<Reply>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows = reply::Entity::find()
            .filter(reply::Column::AppealId.is_in(ids))
            .order_by_asc(reply::Column::CreatedAt)
            .order_by_asc(reply::Column::Id)
            .all(self.db())
            .await?;
        rows.into_iter().map(Reply::try_from).collect()
    }

    /// Queues a failed reply again, on an official's request: after the
    /// resident unblocked the bot, or after a delivery that could not be
    /// confirmed was checked with the resident.
    pub async fn resend_reply(&self, actor: &Actor, id: Uuid) -> Result<Reply> {
        actor.scope(Operation::ResendReply)?;
        let row = reply::Entity::find_by_id(id).one(self.db()).await?.ok_or(StorageError::NotFound)?;
        authorize(actor, Operation::ResendReply, MunicipalityId::from_uuid(row.municipality_id))?;
        let updated = reply::Entity::update_many()
            .col_expr(reply::Column::Status, Expr::value(ReplyStatus::Pending.as_str()))
            .col_expr(reply::Column::NextAttemptAt, Expr::value(self.now()))
            .col_expr(reply::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(reply::Column::Id.eq(id))
            .filter(reply::Column::Status.eq(ReplyStatus::Failed.as_str()))
            .exec(self.db())
            .await?;
        if updated.rows_affected != 1 {
            return Err(InvalidInput::new("id", "only a FAILED reply can be sent again").into());
        }
        self.outbox_signal().notify_one();
        let row = reply::Entity::find_by_id(id).one(self.db()).await?.ok_or(StorageError::NotFound)?;
        Reply::try_from(row)
    }

    /// Claims up to `limit` due replies for `lease`. Each claim is a
    /// compare-and-set on the reply's row, so two workers (two replicas) never
    /// hold one reply at once.
    pub async fn claim_due_replies(&self, limit: u64, lease: TimeDelta) -> Result<Vec<DueReply>> {
        let now = self.now();
        let free = Condition::any().add(reply::Column::ClaimedUntil.is_null()).add(reply::Column::ClaimedUntil.lt(now));
        let candidates = reply::Entity::find()
            .filter(reply::Column::Status.eq(ReplyStatus::Pending.as_str()))
            .filter(reply::Column::NextAttemptAt.lte(now))
            .filter(free)
            .order_by_asc(reply::Column::NextAttemptAt)
            .limit(limit)
            .all(self.db())
            .await?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for row in candidates {
            let previous_claim = match row.claimed_until {
                Some(until) => reply::Column::ClaimedUntil.eq(until),
                None => reply::Column::ClaimedUntil.is_null(),
            };
            let update = reply::Entity::update_many()
                .col_expr(reply::Column::ClaimedUntil, Expr::value(now + lease))
                .col_expr(reply::Column::Attempts, Expr::col(reply::Column::Attempts).add(1))
                .filter(reply::Column::Id.eq(row.id))
                .filter(reply::Column::Status.eq(ReplyStatus::Pending.as_str()))
                .filter(previous_claim)
                .exec(self.db())
                .await?;
            if update.rows_affected == 1 {
                claimed.push(row);
            }
        }
        // Each channel's settings once, however many of its replies are due.
        let mut settings_of: std::collections::HashMap<(Uuid, String), Option<channel_setting::Model>> =
            std::collections::HashMap::new();
        let mut due = Vec::with_capacity(claimed.len());
        for row in claimed {
            let key = (row.municipality_id, row.channel.clone());
            let settings = match settings_of.get(&key) {
                Some(settings) => settings.clone(),
                None => {
                    let settings = channel_setting::Entity::find_by_id(key.clone()).one(self.db()).await?;
                    settings_of.insert(key, settings.clone());
                    settings
                }
            };
            let target = serde_json::from_str(&row.reply_target).map_err(|error| corrupt(row.id, error))?;
            due.push(DueReply {
                id: row.id,
                appeal_id: AppealId::from_uuid(row.appeal_id),
                municipality_id: MunicipalityId::from_uuid(row.municipality_id),
                channel: row.channel.parse().map_err(|error| corrupt(row.id, error))?,
                kind: parse_kind(row.id, &row.kind)?,
                text: row.text,
                target,
                attempts: row.attempts + 1,
                parts_sent: usize::try_from(row.parts_sent).unwrap_or(0),
                in_doubt: row.claimed_until.is_some(),
                enabled: settings.as_ref().is_some_and(|settings| settings.enabled),
                bot_token: settings.as_ref().and_then(|settings| settings.bot_token.clone()).map(BotToken),
                vk_group_id: settings.and_then(|settings| settings.vk_group_id),
            });
        }
        Ok(due)
    }

    /// Records that the platform took part `part` (0-based) of a claimed reply,
    /// and the key of the message it became, so that a resident's reply to it
    /// finds the appeal. Extends the claim by `lease` for the next part.
    pub async fn record_part_sent(
        &self,
        due: &DueReply,
        part: usize,
        message_key: Option<&str>,
        lease: TimeDelta,
    ) -> Result<()> {
        let txn = begin_write(self.db()).await?;
        reply::Entity::update_many()
            .col_expr(reply::Column::PartsSent, Expr::value(i32::try_from(part + 1).unwrap_or(i32::MAX)))
            .col_expr(reply::Column::ClaimedUntil, Expr::value(self.now() + lease))
            .filter(reply::Column::Id.eq(due.id))
            .exec(&txn)
            .await?;
        if let Some(key) = message_key {
            let row = sent_message::ActiveModel {
                municipality_id: Set(due.municipality_id.as_uuid()),
                channel: Set(due.channel.as_str().to_owned()),
                message_key: Set(key.chars().take(200).collect()),
                appeal_id: Set(due.appeal_id.as_uuid()),
                reply_id: Set(due.id),
            };
            sent_message::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([
                        sent_message::Column::MunicipalityId,
                        sent_message::Column::Channel,
                        sent_message::Column::MessageKey,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Records that every part of a claimed reply was delivered, and clears the
    /// channel's last error.
    pub async fn record_reply_sent(&self, due: &DueReply) -> Result<()> {
        let now = self.now();
        reply::Entity::update_many()
            .col_expr(reply::Column::Status, Expr::value(ReplyStatus::Sent.as_str()))
            .col_expr(reply::Column::SentAt, Expr::value(now))
            .col_expr(reply::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(reply::Column::LastError, Expr::value(Option::<String>::None))
            .filter(reply::Column::Id.eq(due.id))
            .exec(self.db())
            .await?;
        channel_setting::Entity::update_many()
            .col_expr(channel_setting::Column::LastError, Expr::value(Option::<String>::None))
            .filter(channel_setting::Column::MunicipalityId.eq(due.municipality_id.as_uuid()))
            .filter(channel_setting::Column::Channel.eq(due.channel.as_str()))
            .filter(channel_setting::Column::LastError.is_not_null())
            .exec(self.db())
            .await?;
        Ok(())
    }

    /// Releases a claimed reply to be tried again at `next_attempt_at`.
    pub async fn record_reply_retry(&self, due: &DueReply, error: &str, next_attempt_at: DateTime<Utc>) -> Result<()> {
        self.record_reply_outcome(due, ReplyStatus::Pending, error, next_attempt_at).await
    }

    /// Records that a claimed reply cannot be delivered.
    pub async fn record_reply_failed(&self, due: &DueReply, error: &str) -> Result<()> {
        self.record_reply_outcome(due, ReplyStatus::Failed, error, self.now()).await
    }

    async fn record_reply_outcome(
        &self,
        due: &DueReply,
        status: ReplyStatus,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<()> {
        let error = clip_error(error);
        let txn = begin_write(self.db()).await?;
        reply::Entity::update_many()
            .col_expr(reply::Column::Status, Expr::value(status.as_str()))
            .col_expr(reply::Column::LastError, Expr::value(error.clone()))
            .col_expr(reply::Column::NextAttemptAt, Expr::value(next_attempt_at))
            .col_expr(reply::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(reply::Column::Id.eq(due.id))
            .exec(&txn)
            .await?;
        channel_setting::Entity::update_many()
            .col_expr(channel_setting::Column::LastError, Expr::value(error))
            .filter(channel_setting::Column::MunicipalityId.eq(due.municipality_id.as_uuid()))
            .filter(channel_setting::Column::Channel.eq(due.channel.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}
