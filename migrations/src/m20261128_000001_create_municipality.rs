use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Municipality::Table)
                    .if_not_exists()
                    .col(pk_uuid(Municipality::Id))
                    .col(string_len_uniq(Municipality::Code, 64))
                    .col(string_len(Municipality::Name, 200))
                    .col(timestamp_with_time_zone(Municipality::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Municipality::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum Municipality {
    Table,
    Id,
    Code,
    Name,
    CreatedAt,
}
