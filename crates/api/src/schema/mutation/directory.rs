use appeals_core::text::{MunicipalityCode, MunicipalityName, PersonName};
use appeals_core::{Operation, UserId};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::auth::current_actor;
use crate::error::{ApiError, ApiResult};
use crate::schema::context::store;
use crate::schema::types::{MunicipalityNode, Role, UserNode};

#[derive(Default)]
pub struct DirectoryMutation;

#[derive(InputObject)]
pub struct CreateMunicipalityInput {
    pub code: String,
    pub name: String,
}

#[derive(SimpleObject)]
pub struct CreateMunicipalityPayload {
    pub municipality: MunicipalityNode,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    pub name: String,
    pub role: Role,
    /// Required for assistants and heads; not allowed for the other roles.
    pub municipality_code: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateUserPayload {
    pub user: UserNode,
    /// The user's API token. Shown this once; only its digest is stored.
    pub token: String,
}

#[derive(SimpleObject)]
pub struct RevokeUserPayload {
    pub user: UserNode,
}

#[Object]
impl DirectoryMutation {
    async fn create_municipality(
        &self,
        ctx: &Context<'_>,
        input: CreateMunicipalityInput,
    ) -> ApiResult<CreateMunicipalityPayload> {
        current_actor(ctx)?.scope(Operation::ManageDirectory)?;
        let code = MunicipalityCode::parse(&input.code)?;
        let name = MunicipalityName::parse(&input.name)?;
        let municipality = store(ctx)?.create_municipality(code, name).await?;
        Ok(CreateMunicipalityPayload { municipality: MunicipalityNode(municipality) })
    }

    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> ApiResult<CreateUserPayload> {
        current_actor(ctx)?.scope(Operation::ManageDirectory)?;
        let name = PersonName::parse(&input.name)?;
        let code = input.municipality_code.as_deref().map(MunicipalityCode::parse).transpose()?;
        let (user, token) = store(ctx)?.create_user(name, input.role.into(), code.as_ref()).await?;
        Ok(CreateUserPayload { user: UserNode(user), token: token.expose().to_owned() })
    }

    /// Revokes a user: its token stops working from the next request on, and its
    /// open subscriptions end.
    async fn revoke_user(&self, ctx: &Context<'_>, id: ID) -> ApiResult<RevokeUserPayload> {
        current_actor(ctx)?.scope(Operation::ManageDirectory)?;
        let id: UserId = id.parse().map_err(|_| ApiError::validation("id", "is not a valid user id"))?;
        let user = store(ctx)?.revoke_user(id).await?;
        Ok(RevokeUserPayload { user: UserNode(user) })
    }
}
