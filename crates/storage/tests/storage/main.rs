//! The storage suite. Every test is one `async fn` taking the [`Backend`], and
//! [`on_both_backends!`] turns it into two tests: `…::sqlite::name` on a temporary
//! SQLite file and `…::postgres::name` on a fresh, randomly named PostgreSQL
//! database (the server comes from `APPEALS_TEST_POSTGRES_URL`; without it the
//! PostgreSQL variants return at once, except under `CI`, where they fail).
//!
//! [`Backend`]: appeals_storage::testing::Backend

/// Emits, for each named `async fn name(backend: Backend)` of the calling module,
/// `sqlite::name` and `postgres::name` tests that call it. A function left out of
/// the list is dead code, which `clippy -D warnings` refuses.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(::appeals_storage::testing::Backend::Sqlite).await
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(::appeals_storage::testing::Backend::Postgres).await
                }
            )+
        }
    };
}

mod support;

mod audit;
mod commands;
mod dashboard;
mod directory;
mod intake;
mod queries;
