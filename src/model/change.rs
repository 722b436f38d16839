//! A change as the log and the bus carry it: its payload once, however many
//! users it reaches, plus per recipient only what differs for them. Each
//! recipient's update is rendered from the two when it is delivered, so a
//! message to a 250-member group is stored and published as one payload and
//! 250 small entries, never as 250 copies.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use super::ids::{ChatId, UserId};
use crate::proto::{refs, updates};

use updates::update::Update as U;

/// How the chat a change belongs to looks to each of its recipients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A direct chat (`low == high`: saved messages): `user{peer}` to each side.
    Direct { low: UserId, high: UserId },
    /// A group: `group{id}`; `Group.owner` is true in the owner's copy only.
    Group { id: ChatId, owner: Option<UserId> },
}

impl Scope {
    /// The chat as `viewer` refers to it.
    pub fn chat_ref(&self, viewer: UserId) -> refs::ChatRef {
        let r = match *self {
            Scope::Direct { low, high } if low == high => {
                refs::chat_ref::Ref::Self_(refs::RefSelf {})
            }
            Scope::Direct { low, high } => refs::chat_ref::Ref::User(refs::UserRef {
                user_id: if viewer == low { high } else { low }.get(),
            }),
            Scope::Group { id, .. } => {
                refs::chat_ref::Ref::Group(refs::GroupRef { group_id: id.get() })
            }
        };
        refs::ChatRef { r#ref: Some(r) }
    }
}

/// One change's shared payload.
///
/// The payload fields are private so that [`Change::encoded`], made once
/// when the change is made or decoded, can never disagree with them.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Unique, time-ordered (a snowflake); names the payload in the log and on the bus.
    pub id: u64,
    /// The update as nobody in particular sees it: chat refs unset, `owner`
    /// false, no unread count, no client id. When `scope` is `None` it is
    /// already rendered for its only recipient.
    update: updates::Update,
    scope: Option<Scope>,
    /// A sent message's client id, shown to its author only.
    client_id: Option<(UserId, u64)>,
    encoded: Bytes,
}

/// What one recipient's copy holds beyond the shared payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Personal {
    /// `UpdateMessageCreated.channel_unread_count` for this recipient.
    pub unread: Option<u32>,
}

/// A change on its way into the log, with everyone it reaches.
#[derive(Clone, Debug)]
pub struct NewChange {
    pub change: Arc<Change>,
    pub recipients: Vec<(UserId, Personal)>,
}

impl NewChange {
    /// The same view for every recipient.
    pub fn to_all(change: Arc<Change>, recipients: impl IntoIterator<Item = UserId>) -> Self {
        Self {
            change,
            recipients: recipients
                .into_iter()
                .map(|u| (u, Personal::default()))
                .collect(),
        }
    }
}

/// An entry of a user's update log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedUpdate {
    pub user: UserId,
    /// Gap-free per user, from 1.
    pub seq: u64,
    pub change: Arc<Change>,
    pub personal: Personal,
}

impl LoggedUpdate {
    pub fn render(&self) -> updates::Update {
        self.change.render(self.user, self.personal)
    }
}

impl Change {
    pub fn new(
        id: u64,
        update: updates::Update,
        scope: Option<Scope>,
        client_id: Option<(UserId, u64)>,
    ) -> Self {
        let encoded = stored(&update, scope, client_id);
        Self {
            id,
            update,
            scope,
            client_id,
            encoded,
        }
    }

    /// The update as `viewer` sees it.
    pub fn render(&self, viewer: UserId, personal: Personal) -> updates::Update {
        let mut update = self.update.clone();
        let Some(scope) = self.scope else {
            return update;
        };
        let chat_ref = Some(scope.chat_ref(viewer));
        match update.update.as_mut() {
            Some(U::MessageCreated(created)) => {
                if let Some(message) = created.message.as_mut() {
                    message.chat_ref = chat_ref;
                }
                created.channel_unread_count = personal.unread.unwrap_or(0);
                created.client_id = self
                    .client_id
                    .filter(|(author, _)| *author == viewer)
                    .map(|(_, id)| id);
            }
            Some(U::Message(edited)) => {
                if let Some(message) = edited.message.as_mut() {
                    message.chat_ref = chat_ref;
                }
            }
            Some(U::MessageDeleted(deleted)) => deleted.chat_ref = chat_ref,
            Some(U::ChatTyping(typing)) => typing.chat_ref = chat_ref,
            Some(U::ConversationLastRead(read)) => read.chat_ref = chat_ref,
            Some(U::Group(group)) => {
                if let (Some(group), Scope::Group { owner, .. }) = (group.group.as_mut(), scope) {
                    group.owner = owner == Some(viewer);
                }
            }
            Some(U::Chat(_)) | None => {}
        }
        update
    }

    /// The stored form, what the log's `changes` table and the bus carry:
    /// the shared payload with its scope and author, once however many it
    /// reaches. What rendering adds per recipient (chat refs, `owner`, the
    /// unread count, the client id) is not in it, so its length is what the
    /// one shared copy costs, and that is what buffer and queue bounds count.
    /// Encoded once, when the change is made or decoded; cheap to clone.
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// The length of [`Change::encoded`].
    pub fn encoded_len(&self) -> usize {
        self.encoded.len()
    }

    /// The change from its stored form; fails on bytes that are not one.
    pub fn decode(id: u64, bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let stored = StoredChange::decode(bytes)?;
        let scope = match (stored.direct_low, stored.direct_high, stored.group_id) {
            (Some(low), Some(high), _) => Some(Scope::Direct {
                low: UserId(low),
                high: UserId(high),
            }),
            (_, _, Some(group)) => Some(Scope::Group {
                id: ChatId(group),
                owner: stored.owner.map(UserId),
            }),
            _ => None,
        };
        Ok(Self {
            id,
            update: stored.update.unwrap_or_default(),
            scope,
            client_id: stored
                .author
                .zip(stored.client_id)
                .map(|(a, c)| (UserId(a), c)),
            encoded: Bytes::copy_from_slice(bytes),
        })
    }

    /// A change that is already one user's rendered update (legacy log rows).
    pub fn rendered(update: updates::Update) -> Self {
        Self::new(0, update, None, None)
    }
}

/// The bytes of a [`StoredChange`], written field by field so that making a
/// change does not clone its update just to encode it.
fn stored(
    update: &updates::Update,
    scope: Option<Scope>,
    client_id: Option<(UserId, u64)>,
) -> Bytes {
    use prost::encoding::{fixed64, message};
    let (direct_low, direct_high, group_id, owner) = match scope {
        Some(Scope::Direct { low, high }) => (Some(low.get()), Some(high.get()), None, None),
        Some(Scope::Group { id, owner }) => (None, None, Some(id.get()), owner.map(|o| o.get())),
        None => (None, None, None, None),
    };
    let fixed = [
        (2, direct_low),
        (3, direct_high),
        (4, group_id),
        (5, owner),
        (6, client_id.map(|(a, _)| a.get())),
        (7, client_id.map(|(_, c)| c)),
    ];
    let len = message::encoded_len(1, update)
        + fixed
            .iter()
            .filter_map(|(tag, v)| v.as_ref().map(|v| fixed64::encoded_len(*tag, v)))
            .sum::<usize>();
    let mut buf = Vec::with_capacity(len);
    message::encode(1, update, &mut buf);
    for (tag, value) in fixed {
        if let Some(value) = value {
            fixed64::encode(tag, &value, &mut buf);
        }
    }
    Bytes::from(buf)
}

/// The stored encoding of a [`Change`]; never on the public wire.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredChange {
    #[prost(message, optional, tag = "1")]
    update: Option<updates::Update>,
    #[prost(fixed64, optional, tag = "2")]
    direct_low: Option<u64>,
    #[prost(fixed64, optional, tag = "3")]
    direct_high: Option<u64>,
    #[prost(fixed64, optional, tag = "4")]
    group_id: Option<u64>,
    #[prost(fixed64, optional, tag = "5")]
    owner: Option<u64>,
    #[prost(fixed64, optional, tag = "6")]
    author: Option<u64>,
    #[prost(fixed64, optional, tag = "7")]
    client_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::types;

    #[test]
    fn a_direct_message_renders_for_each_side_and_survives_encoding() {
        let change = Change::new(
            7,
            updates::Update {
                update: Some(U::MessageCreated(updates::UpdateMessageCreated {
                    message: Some(types::Message {
                        message_id: 9,
                        author_id: 1,
                        message: "hi".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
            },
            Some(Scope::Direct {
                low: UserId(1),
                high: UserId(2),
            }),
            Some((UserId(1), 55)),
        );
        let stored = StoredChange::decode(change.encoded().as_ref()).unwrap();
        assert_eq!(stored.encode_to_vec(), change.encoded().as_ref());
        let decoded = Change::decode(7, change.encoded()).unwrap();
        assert_eq!(decoded, change);
        let change = decoded;
        let Some(U::MessageCreated(to_peer)) = change
            .render(UserId(2), Personal { unread: Some(3) })
            .update
        else {
            panic!("not a created message");
        };
        assert_eq!(to_peer.channel_unread_count, 3);
        assert_eq!(to_peer.client_id, None);
        assert_eq!(
            to_peer.message.unwrap().chat_ref.unwrap().r#ref,
            Some(refs::chat_ref::Ref::User(refs::UserRef { user_id: 1 }))
        );
        let Some(U::MessageCreated(to_author)) =
            change.render(UserId(1), Personal::default()).update
        else {
            panic!("not a created message");
        };
        assert_eq!(to_author.client_id, Some(55));
        assert_eq!(
            to_author.message.unwrap().chat_ref.unwrap().r#ref,
            Some(refs::chat_ref::Ref::User(refs::UserRef { user_id: 2 }))
        );
    }
}
