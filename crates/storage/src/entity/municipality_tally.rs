use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "municipality_tally")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub municipality_id: Uuid,
    pub received: i64,
    pub seen: i64,
    pub resolved: i64,
    /// A `DelayHistogram` of the times to reading.
    #[sea_orm(column_type = "Blob")]
    pub to_seen: Vec<u8>,
    /// A `DelayHistogram` of the times to resolution.
    #[sea_orm(column_type = "Blob")]
    pub to_resolution: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
