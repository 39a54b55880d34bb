use appeals_core::Operation;
use async_graphql::{Context, ID, Object, SimpleObject};

use crate::auth::current_actor;
use crate::error::{ApiError, ApiResult};
use crate::schema::context::store;
use crate::schema::query::appeals::appeal_id;

#[derive(Default)]
pub struct AuditQuery;

/// The verdict on one appeal's history.
#[derive(SimpleObject)]
pub struct AuditVerification {
    pub ok: bool,
    pub events_checked: i32,
    /// The first event whose hash or order does not verify.
    pub broken_at_seq: Option<i32>,
    /// Why the history does not verify, in a sentence.
    pub reason: Option<String>,
    /// Whether the keyed seals were checked too. Without an audit key on the
    /// server the check is hashes only, which shows accidental change but not an
    /// edit by someone who recomputed every hash.
    pub sealed: bool,
}

#[Object]
impl AuditQuery {
    /// Checks the hash chain of an appeal's history, its anchor on the appeal,
    /// that replaying the history gives the appeal as stored, and, when the
    /// server has an audit key, the seals on every event and on the anchor.
    async fn verify_audit(&self, ctx: &Context<'_>, appeal_id: ID) -> ApiResult<AuditVerification> {
        let scope = current_actor(ctx)?.scope(Operation::ReadAppeals)?;
        let id = self::appeal_id(&appeal_id, "appealId")?;
        let store = store(ctx)?;
        match store.appeal(id).await? {
            Some(appeal) if scope.contains(appeal.municipality_id) => {}
            _ => return Err(ApiError::not_found()),
        }
        let report = store.verify_appeal(id).await?.ok_or_else(ApiError::not_found)?;
        Ok(AuditVerification {
            ok: report.ok(),
            events_checked: i32::try_from(report.events_checked).unwrap_or(i32::MAX),
            broken_at_seq: report.broken.as_ref().map(|broken| broken.seq),
            reason: report.broken.map(|broken| broken.reason.to_owned()),
            sealed: report.sealed,
        })
    }
}
