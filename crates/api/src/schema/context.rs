//! What resolvers reach through the request's context: the store, and the
//! related objects they load through the request's loaders, scoped to the caller.

use appeals_core::Operation;
use appeals_storage::Store;
use async_graphql::Context;

use crate::auth::current_actor;
use crate::error::{ApiError, ApiResult};
use crate::schema::loaders::loaders;
use crate::schema::types::{AppealNode, UserNode};

pub(crate) fn store<'a>(ctx: &'a Context<'_>) -> ApiResult<&'a Store> {
    ctx.data::<Store>().map_err(|_| ApiError::internal("the schema was built without a store"))
}

pub(crate) async fn load_user(ctx: &Context<'_>, id: appeals_core::UserId) -> ApiResult<UserNode> {
    loaders(ctx)?
        .directory
        .load_one(id)
        .await?
        .map(UserNode)
        .ok_or_else(|| ApiError::internal(format_args!("user {id} is referenced but missing")))
}

/// The appeal `id` if the caller may read it, else `None`.
pub(crate) async fn readable_appeal(ctx: &Context<'_>, id: appeals_core::AppealId) -> ApiResult<Option<AppealNode>> {
    let scope = current_actor(ctx)?.scope(Operation::ReadAppeals)?;
    let appeal = loaders(ctx)?.appeals.load_one(id).await?;
    Ok(appeal.filter(|appeal| scope.contains(appeal.municipality_id)).map(AppealNode))
}
