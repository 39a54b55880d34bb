use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reply")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub appeal_id: Uuid,
    pub municipality_id: Uuid,
    pub channel: String,
    pub kind: String,
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    /// JSON of `appeals_core::channels::ReplyTarget`.
    #[sea_orm(column_type = "Text")]
    pub reply_target: String,
    pub attempts: i32,
    pub parts_sent: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub next_attempt_at: ChronoDateTimeUtc,
    /// Set while a worker holds the reply; a claim left to expire means the
    /// worker stopped mid-attempt.
    pub claimed_until: Option<ChronoDateTimeUtc>,
    pub sent_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
