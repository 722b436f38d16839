//! Replies whose generated form would make the replica copy what it
//! already holds encoded. A page of conversations refers to a few hundred
//! users; the replica's cache keeps each profile in its wire form as well,
//! so a page writes those bytes as they are instead of cloning every
//! profile, sizing it twice and encoding it again on every call.
//!
//! Each type here is wire for wire the message it stands for (`build.rs`
//! maps the message to it), so clients decode it as they always did.

#![warn(clippy::all)]

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use super::types;

/// A user profile in its wire form, encoded once from the profile: it can
/// only hold what a `types::User` encodes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedUser(Bytes);

impl From<&types::User> for EncodedUser {
    fn from(user: &types::User) -> Self {
        Self(Bytes::from(user.encode_to_vec()))
    }
}

impl EncodedUser {
    /// How many bytes the profile encodes to.
    pub fn byte_len(&self) -> usize {
        let EncodedUser(wire) = self;
        wire.len()
    }

    /// The profile back.
    pub fn decode(&self) -> Result<types::User, DecodeError> {
        let EncodedUser(wire) = self;
        types::User::decode(wire.clone())
    }

    /// Its length as a field `tag` of a message.
    fn field_len(&self, tag: u32) -> usize {
        let EncodedUser(wire) = self;
        encoding::bytes::encoded_len(tag, wire)
    }

    /// Written as a field `tag`: a length-delimited field is the same on
    /// the wire whether it holds bytes or a message.
    fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        let EncodedUser(wire) = self;
        encoding::bytes::encode(tag, wire, buf);
    }
}

/// `osmium.client.chats.Chats`: a page of conversations.
///
/// Users are sent as `users` then `encoded_users`, both as its field 2, in
/// that order. Decoding fills `users` alone.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Chats {
    pub chats: Vec<types::Conversation>,
    pub users: Vec<types::User>,
    pub groups: Vec<types::Group>,
    pub messages: Vec<types::Message>,
    /// Users already in their wire form, sent after `users`.
    pub encoded_users: Vec<EncodedUser>,
}

const CHATS: u32 = 1;
const USERS: u32 = 2;
const GROUPS: u32 = 3;
const MESSAGES: u32 = 5;

impl Message for Chats {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::message::encode_repeated(CHATS, &self.chats, buf);
        encoding::message::encode_repeated(USERS, &self.users, buf);
        for user in &self.encoded_users {
            user.encode_field(USERS, buf);
        }
        encoding::message::encode_repeated(GROUPS, &self.groups, buf);
        encoding::message::encode_repeated(MESSAGES, &self.messages, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            CHATS => encoding::message::merge_repeated(wire_type, &mut self.chats, buf, ctx),
            USERS => encoding::message::merge_repeated(wire_type, &mut self.users, buf, ctx),
            GROUPS => encoding::message::merge_repeated(wire_type, &mut self.groups, buf, ctx),
            MESSAGES => encoding::message::merge_repeated(wire_type, &mut self.messages, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        encoding::message::encoded_len_repeated(CHATS, &self.chats)
            + encoding::message::encoded_len_repeated(USERS, &self.users)
            + self
                .encoded_users
                .iter()
                .map(|user| user.field_len(USERS))
                .sum::<usize>()
            + encoding::message::encoded_len_repeated(GROUPS, &self.groups)
            + encoding::message::encoded_len_repeated(MESSAGES, &self.messages)
    }

    fn clear(&mut self) {
        self.chats.clear();
        self.users.clear();
        self.groups.clear();
        self.messages.clear();
        self.encoded_users.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::refs;

    fn user(id: u64, name: &str) -> types::User {
        types::User {
            id,
            name: name.into(),
            username: Some(format!("{name}_handle")),
            photo: Some(types::ChatPhoto {
                file_id: id + 1,
                preview: vec![1, 2, 3],
            }),
            bot: id.is_multiple_of(2),
            icon: None,
            color: Some(7),
        }
    }

    fn page(users: Vec<types::User>, encoded_users: Vec<EncodedUser>) -> Chats {
        Chats {
            chats: vec![types::Conversation {
                unread_count: 3,
                ..Default::default()
            }],
            users,
            groups: vec![types::Group {
                id: 9,
                name: "group".into(),
                ..Default::default()
            }],
            messages: vec![types::Message {
                chat_ref: Some(refs::ChatRef::default()),
                message_id: 5,
                author_id: 1,
                message: "hello".into(),
                ..Default::default()
            }],
            encoded_users,
        }
    }

    #[test]
    fn users_sent_encoded_decode_as_the_users_they_were() {
        let users = vec![user(1, "ann"), user(2, "bo"), user(3, "cy")];
        let (plain, encoded) = users.split_at(1);
        let sent = page(
            plain.to_vec(),
            encoded.iter().map(EncodedUser::from).collect(),
        );
        let wire = sent.encode_to_vec();
        assert_eq!(wire.len(), sent.encoded_len());
        let received = Chats::decode(wire.as_slice()).expect("decodes");
        assert_eq!(received, page(users, Vec::new()));
    }

    /// `osmium.client.chats.Chats` as prost would generate it.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Generated {
        #[prost(message, repeated, tag = "1")]
        chats: Vec<types::Conversation>,
        #[prost(message, repeated, tag = "2")]
        users: Vec<types::User>,
        #[prost(message, repeated, tag = "3")]
        groups: Vec<types::Group>,
        #[prost(message, repeated, tag = "5")]
        messages: Vec<types::Message>,
    }

    #[test]
    fn a_page_encodes_as_the_generated_message_would() {
        let users = vec![user(1, "ann"), user(2, "bo")];
        let Chats {
            chats,
            groups,
            messages,
            ..
        } = page(Vec::new(), Vec::new());
        let generated = Generated {
            chats,
            users: users.clone(),
            groups,
            messages,
        };
        let sent = page(Vec::new(), users.iter().map(EncodedUser::from).collect());
        assert_eq!(sent.encode_to_vec(), generated.encode_to_vec());
    }
}
