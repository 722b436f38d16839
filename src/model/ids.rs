//! Typed snowflake ids, so a user id can never be passed where a chat id is meant.

use std::fmt;

macro_rules! snowflake_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

snowflake_id!(
    /// A user, as known from `UpsertUsers` or a token's `name` claim.
    UserId
);
snowflake_id!(
    /// A chat: a direct conversation (including saved messages) or a group.
    ChatId
);
snowflake_id!(
    /// A message; ordered by creation time across the whole service.
    MessageId
);
