use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_create_municipality::Municipality;

/// Users are `app_user`, since `user` is reserved in PostgreSQL. The token is kept
/// only as the hex SHA-256 digest of the secret.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AppUser::Table)
                    .if_not_exists()
                    .col(pk_uuid(AppUser::Id))
                    .col(string_len(AppUser::Name, 200))
                    .col(string_len(AppUser::Role, 32))
                    .col(uuid_null(AppUser::MunicipalityId))
                    .col(string_len_uniq(AppUser::TokenDigest, 64))
                    .col(timestamp_with_time_zone(AppUser::CreatedAt))
                    .col(timestamp_with_time_zone_null(AppUser::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AppUser::Table, AppUser::MunicipalityId)
                            .to(Municipality::Table, Municipality::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AppUser::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum AppUser {
    Table,
    Id,
    Name,
    Role,
    MunicipalityId,
    TokenDigest,
    CreatedAt,
    RevokedAt,
}
