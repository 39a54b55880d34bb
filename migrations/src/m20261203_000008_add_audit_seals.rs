use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000003_create_appeal::Appeal;
use crate::m20261128_000004_create_appeal_event::AppealEvent;

/// Room for the keyed seals over the audit chain (see `appeals_core::seal`):
/// `appeal_event.seal` seals each event, `appeal.last_event_seal` seals the
/// anchor (`last_event_seq`, `last_event_hash`). Both are hex HMAC-SHA256, NULL
/// where the history was written without an audit key; rows written before this
/// migration stay NULL until a server with a key seals them at start-up.
///
/// A partial index over the unsealed events lets sealing find them without
/// reading every event (on a sealed database it is empty).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(AppealEvent::Table).add_column(string_len_null(Seal::Seal, 64)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Appeal::Table).add_column(string_len_null(Seal::LastEventSeal, 64)).to_owned(),
            )
            .await?;
        // Written as SQL: sea-query's index builder has no WHERE.
        manager
            .get_connection()
            .execute_unprepared(
                r#"CREATE INDEX "appeal_event_unsealed_idx" ON "appeal_event" ("appeal_id") WHERE "seal" IS NULL"#,
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(r#"DROP INDEX "appeal_event_unsealed_idx""#).await?;
        manager.alter_table(Table::alter().table(Appeal::Table).drop_column(Seal::LastEventSeal).to_owned()).await?;
        manager.alter_table(Table::alter().table(AppealEvent::Table).drop_column(Seal::Seal).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum Seal {
    /// On `appeal_event`.
    Seal,
    /// On `appeal`.
    LastEventSeal,
}
