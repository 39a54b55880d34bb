use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channel_message")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub appeal_id: Uuid,
    pub municipality_id: Uuid,
    pub channel: String,
    pub external_id: String,
    pub conversation: String,
    pub message_key: String,
    /// The message the appeal started with (the others are follow-ups).
    pub origin: bool,
    /// JSON of `appeals_core::channels::ReplyTarget`.
    #[sea_orm(column_type = "Text")]
    pub reply_target: String,
    /// JSON array of `appeals_core::channels::Attachment`.
    #[sea_orm(column_type = "Text")]
    pub attachments: String,
    pub received_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
