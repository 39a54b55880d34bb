//! The Appeals domain: what an appeal is, how it moves, who may move it, when it
//! is due, and how its history is chained so that tampering shows.
//!
//! This crate is pure: it does no IO, has no async, and knows nothing of databases,
//! HTTP or GraphQL. Storage and the API ask it questions and persist or serve the
//! answers, so every rule lives here once and is tested in microseconds.
//!
//! Layout, in reading order:
//! - [`id`]: typed identifiers of appeals, users and municipalities.
//! - [`text`]: parsed input values (trimmed, non-empty, within their limits).
//! - [`search`]: the word search's analyser: the terms a text is indexed under,
//!   and the parsed query matched against them.
//! - [`appeal`]: the appeal, its status, channel, priority and resolution.
//! - [`deadline`]: the deadline policy and the durations it is written in.
//! - [`events`]: recorded events and the SHA-256 hash chain; what a command
//!   records, knowing nothing of the state machine.
//! - [`transition`]: the state machine; commands and the events they produce.
//! - [`replay`](mod@replay): an appeal rebuilt from its history through the state machine.
//! - [`seal`]: the audit key and the keyed seals over the chain.
//! - [`access`]: roles, actors and the single who-may-do-what function.
//! - [`clock`]: the source of "now", settable in tests.
//! - [`channels`]: Telegram, VK and MAX webhooks read, and the replies to residents written.

pub mod access;
pub mod appeal;
pub mod channels;
pub mod clock;
pub mod deadline;
pub mod events;
pub mod id;
pub mod replay;
pub mod seal;
pub mod search;
pub mod text;
pub mod transition;

pub use access::{AccessDenied, Actor, Operation, Reach, Role, Scope, authorize, reach};
pub use appeal::{Appeal, Channel, Outcome, Priority, Resolution, Status, Submission};
pub use clock::{Clock, ManualClock, SystemClock};
pub use deadline::{DeadlinePolicy, ExtensionDays, PolicyDuration};
pub use events::{
    ChainAnchor, ChainBreak, EventData, EventKind, NewEvent, RecordedEvent, Seals, verify_chain, verify_sealed_chain,
};
pub use id::{AppealId, MunicipalityId, UserId};
pub use replay::{ReplayError, replay};
pub use seal::{AuditKey, InvalidAuditKey};
pub use text::InvalidInput;
pub use transition::{Applied, Command, CommandError};

/// Declares a closed vocabulary (an enum whose values have fixed names in the
/// public contract) with its `as_str`, `ALL`, `Display` and `FromStr`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's name in the public contract, e.g. `"RECEIVED"`.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::text::InvalidInput;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::text::InvalidInput::new(
                        stringify!($name),
                        format!("`{value}` is not one of {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use vocabulary;
