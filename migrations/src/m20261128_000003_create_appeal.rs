use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_create_municipality::Municipality;

/// The appeal as it stands now. Its history is `appeal_event`; `last_event_seq`
/// and `last_event_hash` anchor the end of that chain so that a truncated history
/// is detected. `text_folded` is the text in Unicode lowercase, for a search that is
/// case-insensitive in Cyrillic on both databases.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Appeal::Table)
                    .if_not_exists()
                    .col(pk_uuid(Appeal::Id))
                    .col(string_len_uniq(Appeal::Number, 100))
                    .col(uuid(Appeal::MunicipalityId))
                    .col(string_len(Appeal::Channel, 16))
                    .col(string_len_null(Appeal::ExternalId, 200))
                    .col(string_len_null(Appeal::AuthorName, 200))
                    .col(string_len_null(Appeal::AuthorContact, 200))
                    .col(text(Appeal::Text))
                    .col(text(Appeal::TextFolded))
                    .col(string_len(Appeal::Status, 16))
                    .col(string_len(Appeal::Priority, 16))
                    .col(string_len_null(Appeal::Category, 100))
                    .col(text(Appeal::Tags))
                    .col(timestamp_with_time_zone(Appeal::ReceivedAt))
                    .col(timestamp_with_time_zone_null(Appeal::SeenAt))
                    .col(timestamp_with_time_zone_null(Appeal::ResolvedAt))
                    .col(timestamp_with_time_zone(Appeal::SeenDueAt))
                    .col(timestamp_with_time_zone(Appeal::DueAt))
                    .col(boolean(Appeal::DeadlineExtended))
                    .col(integer(Appeal::Version))
                    .col(string_len_null(Appeal::Outcome, 32))
                    .col(text_null(Appeal::Response))
                    .col(uuid_null(Appeal::DuplicateOf))
                    .col(uuid_null(Appeal::ResolvedBy))
                    .col(integer(Appeal::LastEventSeq))
                    .col(string_len(Appeal::LastEventHash, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Appeal::Table, Appeal::MunicipalityId)
                            .to(Municipality::Table, Municipality::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Idempotent intake: one appeal per channel message. NULL external ids are
        // distinct on both databases, so appeals without one never collide.
        manager
            .create_index(
                Index::create()
                    .name("appeal_channel_external_id_key")
                    .table(Appeal::Table)
                    .col(Appeal::Channel)
                    .col(Appeal::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The list page: newest first, per municipality or region-wide, ties by id.
        manager
            .create_index(
                Index::create()
                    .name("appeal_municipality_received_idx")
                    .table(Appeal::Table)
                    .col(Appeal::MunicipalityId)
                    .col(Appeal::ReceivedAt)
                    .col(Appeal::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("appeal_received_idx")
                    .table(Appeal::Table)
                    .col(Appeal::ReceivedAt)
                    .col(Appeal::Id)
                    .to_owned(),
            )
            .await?;
        // Status filters and the dashboard's counts per municipality and status.
        manager
            .create_index(
                Index::create()
                    .name("appeal_municipality_status_idx")
                    .table(Appeal::Table)
                    .col(Appeal::MunicipalityId)
                    .col(Appeal::Status)
                    .col(Appeal::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Appeal::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum Appeal {
    Table,
    Id,
    Number,
    MunicipalityId,
    Channel,
    ExternalId,
    AuthorName,
    AuthorContact,
    Text,
    TextFolded,
    Status,
    Priority,
    Category,
    Tags,
    ReceivedAt,
    SeenAt,
    ResolvedAt,
    SeenDueAt,
    DueAt,
    DeadlineExtended,
    Version,
    Outcome,
    Response,
    DuplicateOf,
    ResolvedBy,
    LastEventSeq,
    LastEventHash,
}
