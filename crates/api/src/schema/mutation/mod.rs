//! Mutations, grouped by area and joined into one root.

mod directory;
mod intake;
mod workflow;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    intake::IntakeMutation,
    workflow::WorkflowMutation,
    directory::DirectoryMutation,
    crate::schema::channels::ChannelsMutation,
);
