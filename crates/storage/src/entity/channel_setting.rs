use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channel_setting")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub municipality_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    pub enabled: bool,
    /// Hex SHA-256 of the webhook secret; the secret itself is never stored.
    pub webhook_secret_digest: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub bot_token: Option<String>,
    pub vk_group_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub vk_confirmation: Option<String>,
    pub last_update_at: Option<ChronoDateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
