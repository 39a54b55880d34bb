use appeals_core::Operation;
use appeals_core::text::MunicipalityCode;
use appeals_storage::{Counts, DashboardFilter, MunicipalityStats};
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::auth::current_actor;
use crate::error::ApiResult;
use crate::schema::context::store;
use crate::schema::types::MunicipalityNode;

#[derive(Default)]
pub struct DashboardQuery;

/// Counts over the caller's scope, and the same per municipality.
#[derive(SimpleObject)]
pub struct Dashboard {
    #[graphql(flatten)]
    pub counts: CountsFields,
    /// Every municipality in scope, empty ones too, by code.
    #[graphql(complexity = "crate::budget::list(crate::budget::MUNICIPALITIES_ESTIMATE, child_complexity)")]
    pub municipalities: Vec<MunicipalityStatsNode>,
}

#[derive(SimpleObject)]
#[graphql(name = "MunicipalityStats")]
pub struct MunicipalityStatsNode {
    pub municipality: MunicipalityNode,
    #[graphql(flatten)]
    pub counts: CountsFields,
    /// Median hours from receipt to the head's reading; null if none was read.
    pub median_hours_to_seen: Option<f64>,
    /// Median hours from receipt to resolution; null if none is resolved.
    pub median_hours_to_resolve: Option<f64>,
}

/// The counts that `Dashboard` and `MunicipalityStats` both show, defined once
/// and flattened into each: the schema has their fields, not a type of this name.
pub struct CountsFields(pub Counts);

// No doc comments on these resolvers: they would become descriptions in the
// schema, which has none for the counts.
#[Object]
impl CountsFields {
    async fn total(&self) -> u64 {
        self.0.total
    }

    async fn received(&self) -> u64 {
        self.0.received
    }

    async fn seen(&self) -> u64 {
        self.0.seen
    }

    async fn resolved(&self) -> u64 {
        self.0.resolved
    }

    async fn overdue(&self) -> u64 {
        self.0.overdue
    }

    async fn seen_overdue(&self) -> u64 {
        self.0.seen_overdue
    }
}

impl From<MunicipalityStats> for MunicipalityStatsNode {
    fn from(stats: MunicipalityStats) -> Self {
        MunicipalityStatsNode {
            municipality: MunicipalityNode(stats.municipality),
            counts: CountsFields(stats.counts),
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
        Ok(Dashboard {
            counts: CountsFields(dashboard.counts),
            municipalities: dashboard.municipalities.into_iter().map(Into::into).collect(),
        })
    }
}
