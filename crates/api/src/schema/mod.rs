//! The GraphQL schema: output types, batched loaders, and the query, mutation and
//! subscription roots, each grouped by area.

pub mod loaders;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use appeals_storage::Store;
use async_graphql::Schema;

use crate::notifications::EventBus;

pub type AppSchema = Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// Limits that keep one request from taking the server down.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// The deepest nesting of selections a query may have. Every field counts, a
    /// leaf too, so the default admits the standard introspection query (depth 13
    /// as graphql-js 16 and GraphiQL send it, 15 with graphql-js 17's `typeDepth`):
    /// the schema is public.
    pub max_depth: usize,
    /// The most fields (counting each alias and list item estimate) a query may select.
    pub max_complexity: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { max_depth: 15, max_complexity: 2_000 }
    }
}

/// Builds the schema served at `/graphql`.
pub fn build(store: Store, bus: EventBus, limits: QueryLimits) -> AppSchema {
    Schema::build(query::QueryRoot::default(), mutation::MutationRoot::default(), subscription::SubscriptionRoot)
        .data(store)
        .data(bus)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(16)
        .finish()
}

/// The schema's SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    Schema::build(query::QueryRoot::default(), mutation::MutationRoot::default(), subscription::SubscriptionRoot)
        .finish()
        .sdl()
}
