//! What one GraphQL operation may cost the server, checked before it runs, and how
//! much of the database one request may hold at once.
//!
//! **Cost.** The unit is about a hundred bytes of answer. Every field costs 1; a
//! field that can hold a long text costs what its longest value weighs
//! ([`TEXT_COST`]), and a list
//! multiplies the cost of what is selected in it by how many items it can return:
//! its `first` (or its default page), or, for lists without one, their cap. So
//! ten aliases of `appeals(first: 100) { … history { … } }` cost what producing
//! them would, not thirty fields. An operation over the budget is refused at
//! validation with `QUERY_TOO_COMPLEX`, its computed cost and the budget, before
//! a single row is read. With the default budget of 100,000 no accepted
//! operation can produce more than about 10 MB of answer.
//!
//! **Database fan-out.** The root fields of a query run concurrently; aliases
//! could make one request hold every connection of the pool. A request resolves
//! at most [`ROOT_FIELDS_AT_ONCE`] root fields at a time; the rest wait for them.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, NextValidation, ResolveInfo,
};
use async_graphql::{ServerError, ServerResult, ValidationResult, Value};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ErrorCode};

/// The cost of a field that can hold a text of up to 20,000 characters: about
/// 40 KB of UTF-8 in Cyrillic, 400 units of a hundred bytes.
pub const TEXT_COST: usize = 400;

/// Lists of municipalities have no `first`: a region has a few dozen (Tomsk
/// has 20), and they are priced as if it had this many.
pub const MUNICIPALITIES_ESTIMATE: i32 = 100;

/// How many root fields of one request resolve at once.
pub const ROOT_FIELDS_AT_ONCE: usize = 2;

/// Costs are capped far below `usize::MAX`, so that async-graphql's sums of them
/// cannot overflow, and far above any budget, so that the cap never admits.
const COST_CEILING: usize = 1 << 40;

/// The cost of a list of at most `items` items whose selection costs `each`.
pub fn list(items: i32, each: usize) -> usize {
    usize::try_from(items.max(0)).unwrap_or(0).max(1).saturating_mul(each).min(COST_CEILING)
}

/// The budget of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBudget {
    pub max_cost: usize,
}

impl Default for QueryBudget {
    fn default() -> Self {
        Self { max_cost: 100_000 }
    }
}

impl ExtensionFactory for QueryBudget {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(BudgetedRequest { budget: *self, root_fields: Semaphore::new(ROOT_FIELDS_AT_ONCE) })
    }
}

/// One request's check of its cost and its share of the database.
struct BudgetedRequest {
    budget: QueryBudget,
    root_fields: Semaphore,
}

#[async_trait::async_trait]
impl Extension for BudgetedRequest {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.complexity > self.budget.max_cost {
            let message = format!(
                "the query costs {} and the budget is {}: ask for fewer items (`first`) or fewer fields",
                result.complexity, self.budget.max_cost
            );
            let error = ApiError::new(ErrorCode::QueryTooComplex, message)
                .with_figure("cost", result.complexity as u64)
                .with_figure("budget", self.budget.max_cost as u64);
            return Err(vec![error.into()]);
        }
        Ok(result)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() {
            return next.run(ctx, info).await;
        }
        // The semaphore is never closed, so acquiring cannot fail; if it somehow
        // did, the field would simply run unthrottled.
        let _permit = self.root_fields.acquire().await.ok();
        next.run(ctx, info).await
    }
}
