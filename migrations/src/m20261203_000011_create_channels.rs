use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_create_municipality::Municipality;
use crate::m20261128_000003_create_appeal::Appeal;

/// The messaging channels: each municipality's settings per platform, the
/// residents' messages that arrived through them, the messages the engine sent
/// (so that a resident's reply to one finds its appeal), the outbox of replies
/// to residents, and each municipality's reply texts.
///
/// - `channel_setting`: one row per (municipality, platform). The webhook secret
///   is kept only as its SHA-256 digest (it is checked, never read back); the bot
///   token must be sent to the platform, so it is kept as given.
/// - `channel_message`: every resident message that became an appeal or was
///   threaded onto one. Unique on the platform's ids, so a platform's retries
///   store nothing twice. `reply_target` and `attachments` are JSON text.
/// - `sent_message`: the platform's keys of the messages the engine sent.
/// - `reply`: the transactional outbox. A row is written in the transaction of
///   the change that causes it; the delivery worker claims it (`claimed_until`),
///   sends its parts, and records the outcome.
/// - `reply_template`: a municipality's own text for a kind of reply.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let to_municipality = |table: DynIden, column: DynIden| {
            ForeignKey::create().from(table, column).to(Municipality::Table, Municipality::Id).to_owned()
        };
        let to_appeal = |table: DynIden, column: DynIden| {
            ForeignKey::create().from(table, column).to(Appeal::Table, Appeal::Id).to_owned()
        };

        manager
            .create_table(
                Table::create()
                    .table(ChannelSetting::Table)
                    .if_not_exists()
                    .col(uuid(ChannelSetting::MunicipalityId))
                    .col(string_len(ChannelSetting::Channel, 16))
                    .col(boolean(ChannelSetting::Enabled))
                    .col(string_len_null(ChannelSetting::WebhookSecretDigest, 64))
                    .col(text_null(ChannelSetting::BotToken))
                    .col(string_len_null(ChannelSetting::VkGroupId, 64))
                    .col(text_null(ChannelSetting::VkConfirmation))
                    .col(timestamp_with_time_zone_null(ChannelSetting::LastUpdateAt))
                    .col(text_null(ChannelSetting::LastError))
                    .col(timestamp_with_time_zone(ChannelSetting::UpdatedAt))
                    .primary_key(Index::create().col(ChannelSetting::MunicipalityId).col(ChannelSetting::Channel))
                    .foreign_key(&mut to_municipality(
                        ChannelSetting::Table.into_iden(),
                        ChannelSetting::MunicipalityId.into_iden(),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChannelMessage::Table)
                    .if_not_exists()
                    .col(pk_uuid(ChannelMessage::Id))
                    .col(uuid(ChannelMessage::AppealId))
                    .col(uuid(ChannelMessage::MunicipalityId))
                    .col(string_len(ChannelMessage::Channel, 16))
                    .col(string_len(ChannelMessage::ExternalId, 200))
                    .col(string_len(ChannelMessage::Conversation, 200))
                    .col(string_len(ChannelMessage::MessageKey, 200))
                    .col(boolean(ChannelMessage::Origin))
                    .col(text(ChannelMessage::ReplyTarget))
                    .col(text(ChannelMessage::Attachments))
                    .col(timestamp_with_time_zone(ChannelMessage::ReceivedAt))
                    .foreign_key(&mut to_appeal(
                        ChannelMessage::Table.into_iden(),
                        ChannelMessage::AppealId.into_iden(),
                    ))
                    .to_owned(),
            )
            .await?;
        // A platform's retry finds the message it already stored.
        create_index(
            manager,
            "channel_message_external_id_key",
            ChannelMessage::Table,
            &[ChannelMessage::MunicipalityId, ChannelMessage::Channel, ChannelMessage::ExternalId],
            true,
        )
        .await?;
        // A follow-up finds the resident's latest message in the conversation.
        create_index(
            manager,
            "channel_message_conversation_idx",
            ChannelMessage::Table,
            &[
                ChannelMessage::MunicipalityId,
                ChannelMessage::Channel,
                ChannelMessage::Conversation,
                ChannelMessage::ReceivedAt,
            ],
            false,
        )
        .await?;
        // A reply to a resident's own message finds it; an appeal's messages in order.
        create_index(
            manager,
            "channel_message_message_key_idx",
            ChannelMessage::Table,
            &[ChannelMessage::MunicipalityId, ChannelMessage::Channel, ChannelMessage::MessageKey],
            false,
        )
        .await?;
        create_index(
            manager,
            "channel_message_appeal_idx",
            ChannelMessage::Table,
            &[ChannelMessage::AppealId, ChannelMessage::ReceivedAt],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Reply::Table)
                    .if_not_exists()
                    .col(pk_uuid(Reply::Id))
                    .col(uuid(Reply::AppealId))
                    .col(uuid(Reply::MunicipalityId))
                    .col(string_len(Reply::Channel, 16))
                    .col(string_len(Reply::Kind, 32))
                    .col(string_len(Reply::Status, 16))
                    .col(text(Reply::Text))
                    .col(text(Reply::ReplyTarget))
                    .col(integer(Reply::Attempts))
                    .col(integer(Reply::PartsSent))
                    .col(text_null(Reply::LastError))
                    .col(timestamp_with_time_zone(Reply::CreatedAt))
                    .col(timestamp_with_time_zone(Reply::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Reply::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(Reply::SentAt))
                    .foreign_key(&mut to_appeal(Reply::Table.into_iden(), Reply::AppealId.into_iden()))
                    .to_owned(),
            )
            .await?;
        // The worker's question: which pending replies are due?
        create_index(manager, "reply_due_idx", Reply::Table, &[Reply::Status, Reply::NextAttemptAt], false).await?;
        create_index(manager, "reply_appeal_idx", Reply::Table, &[Reply::AppealId, Reply::CreatedAt], false).await?;

        manager
            .create_table(
                Table::create()
                    .table(SentMessage::Table)
                    .if_not_exists()
                    .col(uuid(SentMessage::MunicipalityId))
                    .col(string_len(SentMessage::Channel, 16))
                    .col(string_len(SentMessage::MessageKey, 200))
                    .col(uuid(SentMessage::AppealId))
                    .col(uuid(SentMessage::ReplyId))
                    .primary_key(
                        Index::create()
                            .col(SentMessage::MunicipalityId)
                            .col(SentMessage::Channel)
                            .col(SentMessage::MessageKey),
                    )
                    .foreign_key(&mut to_appeal(SentMessage::Table.into_iden(), SentMessage::AppealId.into_iden()))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReplyTemplate::Table)
                    .if_not_exists()
                    .col(uuid(ReplyTemplate::MunicipalityId))
                    .col(string_len(ReplyTemplate::Kind, 32))
                    .col(text(ReplyTemplate::Template))
                    .col(timestamp_with_time_zone(ReplyTemplate::UpdatedAt))
                    .primary_key(Index::create().col(ReplyTemplate::MunicipalityId).col(ReplyTemplate::Kind))
                    .foreign_key(&mut to_municipality(
                        ReplyTemplate::Table.into_iden(),
                        ReplyTemplate::MunicipalityId.into_iden(),
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReplyTemplate::Table.into_iden(),
            SentMessage::Table.into_iden(),
            Reply::Table.into_iden(),
            ChannelMessage::Table.into_iden(),
            ChannelSetting::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

async fn create_index<C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: C,
    columns: &[C],
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(*column);
    }
    if unique {
        index.unique();
    }
    manager.create_index(index.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ChannelSetting {
    Table,
    MunicipalityId,
    Channel,
    Enabled,
    WebhookSecretDigest,
    BotToken,
    VkGroupId,
    VkConfirmation,
    LastUpdateAt,
    LastError,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ChannelMessage {
    Table,
    Id,
    AppealId,
    MunicipalityId,
    Channel,
    ExternalId,
    Conversation,
    MessageKey,
    Origin,
    ReplyTarget,
    Attachments,
    ReceivedAt,
}

/// The columns keep the names the other tables use (`reply_target` as in
/// `channel_message`), though one starts with the table's name.
#[allow(clippy::enum_variant_names)]
#[derive(DeriveIden, Clone, Copy)]
pub enum Reply {
    Table,
    Id,
    AppealId,
    MunicipalityId,
    Channel,
    Kind,
    Status,
    Text,
    ReplyTarget,
    Attempts,
    PartsSent,
    LastError,
    CreatedAt,
    NextAttemptAt,
    ClaimedUntil,
    SentAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum SentMessage {
    Table,
    MunicipalityId,
    Channel,
    MessageKey,
    AppealId,
    ReplyId,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum ReplyTemplate {
    Table,
    MunicipalityId,
    Kind,
    Template,
    UpdatedAt,
}
