use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "appeal")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub number: String,
    pub municipality_id: Uuid,
    pub channel: String,
    pub external_id: Option<String>,
    pub author_name: Option<String>,
    pub author_contact: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    #[sea_orm(column_type = "Text")]
    pub text_folded: String,
    /// The word search's terms of `text`, space-separated; `None` until analysed.
    #[sea_orm(column_type = "Text", nullable)]
    pub search_terms: Option<String>,
    pub status: String,
    pub priority: String,
    pub category: Option<String>,
    /// A JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub tags: String,
    pub received_at: ChronoDateTimeUtc,
    pub seen_at: Option<ChronoDateTimeUtc>,
    pub resolved_at: Option<ChronoDateTimeUtc>,
    pub seen_due_at: ChronoDateTimeUtc,
    pub due_at: ChronoDateTimeUtc,
    pub deadline_extended: bool,
    pub version: i32,
    pub outcome: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub response: Option<String>,
    pub duplicate_of: Option<Uuid>,
    pub resolved_by: Option<Uuid>,
    pub last_event_seq: i32,
    pub last_event_hash: String,
    /// The keyed seal of (`last_event_seq`, `last_event_hash`); `None` if written
    /// without a key.
    pub last_event_seal: Option<String>,
    /// Microseconds from receipt to the head's reading, once read.
    pub micros_to_seen: Option<i64>,
    /// Microseconds from receipt to the current resolution, if resolved.
    pub micros_to_resolution: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
