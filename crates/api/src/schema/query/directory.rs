use async_graphql::{Context, Object};

use crate::auth::current_user;
use crate::error::ApiResult;
use crate::schema::context::store;
use crate::schema::types::{MunicipalityNode, UserNode};

#[derive(Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
    /// The calling user.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<UserNode> {
        current_user(ctx).cloned().map(UserNode)
    }

    /// Every municipality, by code. Municipalities are public to every
    /// authenticated user; their appeals are not.
    #[graphql(complexity = "crate::budget::list(crate::budget::MUNICIPALITIES_ESTIMATE, child_complexity)")]
    async fn municipalities(&self, ctx: &Context<'_>) -> ApiResult<Vec<MunicipalityNode>> {
        current_user(ctx)?;
        Ok(store(ctx)?.municipalities().await?.into_iter().map(MunicipalityNode).collect())
    }
}
