use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_create_municipality::Municipality;

/// The last registration number issued per municipality and year. It is
/// incremented inside the transaction that registers the appeal, so a rolled-back
/// submission gives its number back and numbers have no gaps.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RegistrationCounter::Table)
                    .if_not_exists()
                    .col(uuid(RegistrationCounter::MunicipalityId))
                    .col(integer(RegistrationCounter::Year))
                    .col(big_integer(RegistrationCounter::LastValue))
                    .primary_key(
                        Index::create().col(RegistrationCounter::MunicipalityId).col(RegistrationCounter::Year),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RegistrationCounter::Table, RegistrationCounter::MunicipalityId)
                            .to(Municipality::Table, Municipality::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RegistrationCounter::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum RegistrationCounter {
    Table,
    MunicipalityId,
    Year,
    LastValue,
}
