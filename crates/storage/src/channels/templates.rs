//! Each municipality's reply texts: its own where it set one, the default
//! Russian text otherwise. Placeholders: `{number}`, `{due_date}`, `{response}`.

use appeals_core::InvalidInput;
use appeals_core::channels::{ReplyKind, default_template, validate_template};
use appeals_core::text::MunicipalityCode;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::Store;
use crate::database::begin_write;
use crate::entity::reply_template;
use crate::error::Result;

/// The text a kind of reply is written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyText {
    pub kind: ReplyKind,
    pub template: String,
    /// Whether this is the default text (the municipality set none).
    pub is_default: bool,
}

impl Store {
    /// The reply texts of the municipality `code`, one per kind.
    pub async fn reply_texts(&self, code: &MunicipalityCode) -> Result<Vec<ReplyText>> {
        let municipality = self.known_municipality(code).await?;
        let rows = reply_template::Entity::find()
            .filter(reply_template::Column::MunicipalityId.eq(municipality.id.as_uuid()))
            .all(self.db())
            .await?;
        Ok(ReplyKind::ALL
            .iter()
            .map(|&kind| match rows.iter().find(|row| row.kind == kind.as_str()) {
                Some(row) => ReplyText { kind, template: row.template.clone(), is_default: false },
                None => ReplyText { kind, template: default_template(kind).to_owned(), is_default: true },
            })
            .collect())
    }

    /// Sets the municipality's texts for the kinds given; an empty text goes
    /// back to the default. All or nothing: one invalid text changes none.
    pub async fn configure_reply_texts(
        &self,
        code: &MunicipalityCode,
        texts: &[(ReplyKind, String)],
    ) -> Result<Vec<ReplyText>> {
        let municipality = self.known_municipality(code).await?;
        for (kind, template) in texts {
            let template = template.trim();
            if !template.is_empty() {
                validate_template(*kind, template).map_err(|reason| InvalidInput::new(field_of(*kind), reason))?;
            }
        }
        let txn = begin_write(self.db()).await?;
        for (kind, template) in texts {
            let template = template.trim();
            if template.is_empty() {
                reply_template::Entity::delete_many()
                    .filter(reply_template::Column::MunicipalityId.eq(municipality.id.as_uuid()))
                    .filter(reply_template::Column::Kind.eq(kind.as_str()))
                    .exec(&txn)
                    .await?;
                continue;
            }
            let row = reply_template::ActiveModel {
                municipality_id: Set(municipality.id.as_uuid()),
                kind: Set(kind.as_str().to_owned()),
                template: Set(template.to_owned()),
                updated_at: Set(self.now()),
            };
            reply_template::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([reply_template::Column::MunicipalityId, reply_template::Column::Kind])
                        .update_columns([reply_template::Column::Template, reply_template::Column::UpdatedAt])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        self.reply_texts(code).await
    }
}

/// The input field a kind's text arrives in, for error messages.
fn field_of(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Acknowledgement => "acknowledgement",
        ReplyKind::SeenNotice => "seenNotice",
        ReplyKind::Answer => "answer",
    }
}
