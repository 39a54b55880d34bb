use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deadline_tally")]
pub struct Model {
    /// `ANSWER` or `READING`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub deadline: String,
    /// Days since 1970-01-01, UTC.
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub municipality_id: Uuid,
    /// How many appeals of the municipality owe this deadline on this day.
    pub owed: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
