use sea_orm_migration::prelude::*;

/// Idempotent intake per municipality: the unique key of a channel message
/// becomes (`municipality_id`, `channel`, `external_id`) instead of (`channel`,
/// `external_id`). A repeat to the same municipality still finds the first
/// appeal; the same message id sent to another municipality (channel ids are
/// per chat or bot, so two municipalities' bots can see the same one) is that
/// municipality's own appeal, and a submitter learns nothing of appeals outside
/// its scope from a refusal. Storage's `ON CONFLICT` names these three columns.
///
/// Every row unique under the old key is unique under the new one, so the
/// change cannot fail on existing data. NULL external ids stay distinct.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(r#"DROP INDEX "appeal_channel_external_id_key""#).await?;
        db.execute_unprepared(
            r#"CREATE UNIQUE INDEX "appeal_municipality_channel_external_id_key" ON "appeal" ("municipality_id", "channel", "external_id")"#,
        )
        .await
        .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Fails if two municipalities now hold the same channel message: which
        // one to give up is not a migration's decision.
        let db = manager.get_connection();
        db.execute_unprepared(r#"DROP INDEX "appeal_municipality_channel_external_id_key""#).await?;
        db.execute_unprepared(
            r#"CREATE UNIQUE INDEX "appeal_channel_external_id_key" ON "appeal" ("channel", "external_id")"#,
        )
        .await
        .map(|_| ())
    }
}
