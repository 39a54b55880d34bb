use appeals_core::Operation;
use appeals_core::text::MunicipalityCode;
use appeals_storage::{Counts, DashboardFilter, MunicipalityStats};
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::auth::current_actor;
use crate::error::ApiResult;
use crate::schema::types::{MunicipalityNode, store};

#[derive(Default)]
pub struct DashboardQuery;

/// Counts over the caller's scope, and the same per municipality.
#[derive(SimpleObject)]
pub struct Dashboard {
    pub total: u64,
    pub received: u64,
    pub seen: u64,
    pub resolved: u64,
    pub overdue: u64,
    pub seen_overdue: u64,
    /// Every municipality in scope, empty ones too, by code.
    #[graphql(complexity = "crate::budget::list(crate::budget::MUNICIPALITIES_ESTIMATE, child_complexity)")]
    pub municipalities: Vec<MunicipalityStatsNode>,
}

#[derive(SimpleObject)]
#[graphql(name = "MunicipalityStats")]
pub struct MunicipalityStatsNode {
    pub municipality: MunicipalityNode,
    pub total: u64,
    pub received: u64,
    pub seen: u64,
    pub resolved: u64,
    pub overdue: u64,
    pub seen_overdue: u64,
    /// Median hours from receipt to the head's reading; null if none was read.
    pub median_hours_to_seen: Option<f64>,
    /// Median hours from receipt to resolution; null if none is resolved.
    pub median_hours_to_resolve: Option<f64>,
}

impl From<MunicipalityStats> for MunicipalityStatsNode {
    fn from(stats: MunicipalityStats) -> Self {
        let Counts { total, received, seen, resolved, overdue, seen_overdue } = stats.counts;
        MunicipalityStatsNode {
            municipality: MunicipalityNode(stats.municipality),
            total,
            received,
            seen,
            resolved,
            overdue,
            seen_overdue,
            median_hours_to_seen: stats.median_hours_to_seen,
            median_hours_to_resolve: stats.median_hours_to_resolve,
        }
    }
}

#[Object]
impl DashboardQuery {
    /// Appeal counts for the caller's scope, optionally narrowed to one
    /// municipality and to appeals received in [`from`, `to`).
    async fn dashboard(
        &self,
        ctx: &Context<'_>,
        municipality_code: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> ApiResult<Dashboard> {
        let scope = current_actor(ctx)?.scope(Operation::ReadAppeals)?;
        let filter = DashboardFilter {
            municipality_code: municipality_code.as_deref().map(MunicipalityCode::parse).transpose()?,
            from,
            to,
        };
        let dashboard = store(ctx)?.dashboard(scope, &filter).await?;
        let Counts { total, received, seen, resolved, overdue, seen_overdue } = dashboard.counts;
        Ok(Dashboard {
            total,
            received,
            seen,
            resolved,
            overdue,
            seen_overdue,
            municipalities: dashboard.municipalities.into_iter().map(Into::into).collect(),
        })
    }
}
