use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::Uuid;
use unicode_normalization::UnicodeNormalization;

use crate::m20261128_000003_create_appeal::Appeal;

/// Recomputes `appeal.text_folded` for the search fold that now composes (NFC)
/// and reads `ё` as `е`, so that appeals stored before it are found as new ones
/// are. Appeals are read in batches by id; only rows whose fold changes are
/// written.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Appeals read per round trip.
const BATCH: u64 = 1_000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let mut after: Option<Uuid> = None;
        loop {
            let mut select = Query::select()
                .columns([Appeal::Id, Appeal::Text, Appeal::TextFolded])
                .from(Appeal::Table)
                .order_by(Appeal::Id, Order::Asc)
                .limit(BATCH)
                .to_owned();
            if let Some(last) = after {
                select.and_where(Expr::col(Appeal::Id).gt(last));
            }
            let rows = db.query_all(&select).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.try_get_by_index::<Uuid>(0)?);
            for row in &rows {
                let (id, text, folded) = (
                    row.try_get_by_index::<Uuid>(0)?,
                    row.try_get_by_index::<String>(1)?,
                    row.try_get_by_index::<String>(2)?,
                );
                let refolded = fold_for_search(&text);
                if refolded != folded {
                    let update = Query::update()
                        .table(Appeal::Table)
                        .value(Appeal::TextFolded, refolded)
                        .and_where(Expr::col(Appeal::Id).eq(id))
                        .to_owned();
                    db.execute(&update).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The new fold finds everything the old one did; nothing to undo.
        Ok(())
    }
}

/// `appeals_core::text::fold_for_search`, repeated here because migrations do
/// not depend on the domain. The storage suite checks that the two agree
/// (`the_migrations_search_fold_is_the_domains`); change both or neither.
pub fn fold_for_search(text: &str) -> String {
    let lowercase = text.nfc().collect::<String>().to_lowercase();
    lowercase.nfc().map(|c| if c == 'ё' { 'е' } else { c }).collect()
}
