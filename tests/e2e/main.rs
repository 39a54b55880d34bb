//! The end-to-end suite: the real server over HTTP and WebSocket, started in
//! process by [`support::spawn_app`] or as the `appeals` binary by
//! [`support::process`], each test on a throwaway database of its own. Most tests
//! run on both databases through [`on_both_databases!`], as `module::sqlite::name`
//! and `module::postgres::name`.
//!
//! One test binary, so that the server is linked once: `cargo test --test e2e
//! attacks` runs one module's tests. With `TEST_LOG=1` the servers' logs go to
//! the tests' output (shown for the tests that fail); without it a binary's log
//! is still shown when its test panics.
//!
//! [`on_both_databases!`]: appeals_storage::testing::on_both_databases

mod support;

mod abandoned;
mod attacks;
mod browser;
mod channel_crash;
mod channels;
mod cli;
mod concurrency;
mod console;
mod corpus;
mod crash;
mod graphql_http;
mod hostile_input;
mod lifecycle;
mod outage;
mod permissions;
mod probing;
mod races;
mod rate_limit;
mod readme;
mod replicas;
mod schema;
mod search;
mod service;
mod standby;
mod statements;
mod subscriptions;
mod tracing;
