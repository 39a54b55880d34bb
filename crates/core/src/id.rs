//! Typed identifiers. An appeal id cannot be passed where a user id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! identifier {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new identifier, time-ordered (UUID v7) so that indexes stay compact.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = crate::text::InvalidInput;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(value.trim())
                    .map(Self)
                    .map_err(|_| crate::text::InvalidInput::new(stringify!($name), format!("`{value}` is not a valid id")))
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

identifier!(
    /// Identifies one appeal.
    AppealId
);
identifier!(
    /// Identifies one user (a person or a service such as an intake bot).
    UserId
);
identifier!(
    /// Identifies one municipality.
    MunicipalityId
);
