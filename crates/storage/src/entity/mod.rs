//! sea-orm entities: one per table, mirroring `migrations/` column for column.
//! They never leave this crate; the repositories map them to `appeals-core` types.

pub mod app_user;
pub mod appeal;
pub mod appeal_event;
pub mod channel_message;
pub mod channel_setting;
pub mod deadline_tally;
pub mod municipality;
pub mod municipality_tally;
pub mod registration_counter;
pub mod reply;
pub mod reply_template;
pub mod sent_message;
