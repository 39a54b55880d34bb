//! The storage suite. Every test is one `async fn` taking the [`Backend`], and
//! [`on_both_databases!`] turns it into two tests: `…::sqlite::name` on a temporary
//! SQLite file and `…::postgres::name` on a fresh, randomly named PostgreSQL
//! database (the server comes from `APPEALS_TEST_POSTGRES_URL`; without it the
//! PostgreSQL variants return at once, except under `CI`, where they fail).
//!
//! [`Backend`]: appeals_storage::testing::Backend
//! [`on_both_databases!`]: appeals_storage::testing::on_both_databases

mod support;

mod audit;
mod channels;
mod commands;
mod dashboard;
mod directory;
mod events;
mod intake;
mod queries;
mod search;
mod standby;
