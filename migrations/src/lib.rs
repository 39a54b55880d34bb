//! The Appeals database schema, as append-only sea-orm migrations that run
//! unchanged on SQLite and PostgreSQL.
//!
//! One change per file, named `mYYYYMMDD_HHMMSS_verb_noun.rs`, listed in
//! [`Migrator::migrations`] in the order they apply. An applied migration is never
//! edited: a change to the schema is a new file at the end of the list.
//!
//! This crate knows tables, columns and indexes only. Serializing one process's
//! migrations against another's is the caller's concern (storage takes a
//! PostgreSQL advisory lock around [`Migrator::up`]).

pub use sea_orm_migration::prelude::*;

/// The search fold the text migration applies; see its doc.
pub use m20261203_000010_refold_appeal_text::fold_for_search;

mod m20261128_000001_create_municipality;
mod m20261128_000002_create_app_user;
mod m20261128_000003_create_appeal;
mod m20261128_000004_create_appeal_event;
mod m20261128_000005_create_registration_counter;
mod m20261128_000006_seed_tomsk_municipalities;
mod m20261128_000007_create_dashboard_tallies;
mod m20261203_000008_add_audit_seals;
mod m20261203_000009_scope_external_id_to_municipality;
mod m20261203_000010_refold_appeal_text;
mod m20261203_000011_create_channels;
mod m20261204_000012_index_appeal_search;
mod m20261204_000013_order_appeal_events;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_municipality::Migration),
            Box::new(m20261128_000002_create_app_user::Migration),
            Box::new(m20261128_000003_create_appeal::Migration),
            Box::new(m20261128_000004_create_appeal_event::Migration),
            Box::new(m20261128_000005_create_registration_counter::Migration),
            Box::new(m20261128_000006_seed_tomsk_municipalities::Migration),
            Box::new(m20261128_000007_create_dashboard_tallies::Migration),
            Box::new(m20261203_000008_add_audit_seals::Migration),
            Box::new(m20261203_000009_scope_external_id_to_municipality::Migration),
            Box::new(m20261203_000010_refold_appeal_text::Migration),
            Box::new(m20261203_000011_create_channels::Migration),
            Box::new(m20261204_000012_index_appeal_search::Migration),
            Box::new(m20261204_000013_order_appeal_events::Migration),
        ]
    }
}
