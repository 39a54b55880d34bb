//! Queries, grouped by area and joined into one root.

mod appeals;
pub(crate) use appeals::appeal_id;
mod audit;
mod dashboard;
mod directory;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    directory::DirectoryQuery,
    appeals::AppealsQuery,
    dashboard::DashboardQuery,
    audit::AuditQuery,
    crate::schema::channels::ChannelsQuery,
);
