use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::{ChronoUtc, Uuid};
use serde::Deserialize;

use crate::m20261128_000001_create_municipality::Municipality;

/// The twenty municipalities of the Tomsk region, so that a first run has
/// something real to show. The list is the project's own copy.
const TOMSK_REGION: &str = include_str!("../data/tomsk-municipalities.json");

#[derive(Deserialize)]
struct Seed {
    code: String,
    name: String,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let seeds: Vec<Seed> = serde_json::from_str(TOMSK_REGION)
            .map_err(|error| DbErr::Migration(format!("the municipality list does not parse: {error}")))?;
        let now = ChronoUtc::now();
        let mut insert = Query::insert()
            .into_table(Municipality::Table)
            .columns([Municipality::Id, Municipality::Code, Municipality::Name, Municipality::CreatedAt])
            .to_owned();
        for seed in seeds {
            insert.values_panic([Uuid::now_v7().into(), seed.code.into(), seed.name.into(), now.into()]);
        }
        manager.execute(insert).await.map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let codes: Vec<String> = serde_json::from_str::<Vec<Seed>>(TOMSK_REGION)
            .map_err(|error| DbErr::Migration(error.to_string()))?
            .into_iter()
            .map(|seed| seed.code)
            .collect();
        let delete = Query::delete()
            .from_table(Municipality::Table)
            .and_where(Expr::col(Municipality::Code).is_in(codes))
            .to_owned();
        manager.execute(delete).await.map(|_| ())
    }
}
