use appeals_core::Submission;
use appeals_core::text::{AppealText, Contact, ExternalId, MunicipalityCode, PersonName};
use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::auth::current_actor;
use crate::error::ApiResult;
use crate::schema::context::store;
use crate::schema::types::{AppealNode, Channel};

#[derive(Default)]
pub struct IntakeMutation;

#[derive(InputObject)]
pub struct SubmitAppealInput {
    /// The addressed municipality, such as `tomsk`.
    pub municipality_code: String,
    pub channel: Channel,
    /// The channel's own id of the message; a repeat with the same channel and
    /// id returns the first appeal.
    pub external_id: Option<String>,
    pub author_name: Option<String>,
    pub author_contact: Option<String>,
    pub text: String,
}

#[derive(SimpleObject)]
pub struct SubmitAppealPayload {
    pub appeal: AppealNode,
    /// False when the same channel message had been submitted before.
    pub created: bool,
}

/// Parses an optional text, treating an empty or blank one as absent.
fn optional<T>(
    raw: Option<String>,
    parse: impl Fn(&str) -> Result<T, appeals_core::InvalidInput>,
) -> ApiResult<Option<T>> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => Ok(Some(parse(text)?)),
    }
}

#[Object]
impl IntakeMutation {
    /// Registers a citizen's appeal. Idempotent on (`channel`, `externalId`).
    async fn submit_appeal(&self, ctx: &Context<'_>, input: SubmitAppealInput) -> ApiResult<SubmitAppealPayload> {
        let actor = current_actor(ctx)?;
        let code = MunicipalityCode::parse(&input.municipality_code)?;
        let submission = Submission {
            channel: input.channel.into(),
            external_id: optional(input.external_id, ExternalId::parse)?,
            author_name: optional(input.author_name, PersonName::parse)?,
            author_contact: optional(input.author_contact, Contact::parse)?,
            text: AppealText::parse(&input.text)?,
        };
        let submitted = store(ctx)?.submit(&actor, &code, submission).await?;
        if submitted.created {
            metrics::counter!("appeals_submitted_total", "channel" => submitted.appeal.channel.as_str()).increment(1);
        }
        Ok(SubmitAppealPayload { appeal: AppealNode(submitted.appeal), created: submitted.created })
    }
}
