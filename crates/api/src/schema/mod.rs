//! The GraphQL schema: output types, batched loaders, and the query, mutation and
//! subscription roots, each grouped by area.

pub mod channels;
pub mod context;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use appeals_storage::Store;
use async_graphql::Schema;

use crate::budget::QueryBudget;
use crate::notifications::EventFeed;
use crate::traces::{self, operation::OperationSpans};

pub type AppSchema = Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// Limits that keep one request from taking the server down.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// The deepest nesting of selections a query may have. Every field counts, a
    /// leaf too, so the default admits the standard introspection query (depth 13
    /// as graphql-js 16 and GraphiQL send it, 15 with graphql-js 17's `typeDepth`):
    /// the schema is public.
    pub max_depth: usize,
    /// What one operation may cost (see [`crate::budget`]).
    pub budget: QueryBudget,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { max_depth: 15, budget: QueryBudget::default() }
    }
}

/// Builds the schema served at `/graphql`. Each operation has a span of its
/// own when traces are on.
pub fn build(store: Store, feed: EventFeed, limits: QueryLimits) -> AppSchema {
    let schema =
        Schema::build(query::QueryRoot::default(), mutation::MutationRoot::default(), subscription::SubscriptionRoot)
            .data(store)
            .data(feed)
            .extension(limits.budget)
            .limit_depth(limits.max_depth)
            .limit_recursive_depth(32)
            .limit_directives(16);
    let schema = if traces::are_on() { schema.extension(OperationSpans) } else { schema };
    schema.finish()
}

/// The schema's SDL, as `schema.graphql` holds it: everything introspection
/// serves, `@specifiedBy` on the scalars included.
pub fn sdl() -> String {
    Schema::build(query::QueryRoot::default(), mutation::MutationRoot::default(), subscription::SubscriptionRoot)
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}
