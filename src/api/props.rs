//! Property tests of the request boundary: every request the parse layer
//! can be handed, whether well-typed with fields drawn around their rules
//! or decoded from arbitrary and corrupted bytes, is parsed without a panic,
//! and every refusal is INVALID_ARGUMENT whose text starts with a field of
//! that request (`field.path[i]: problem`). Entity offsets over any Unicode
//! text are accepted exactly when an independent count of UTF-16 units says
//! they lie inside it.
//!
//! Each request is parsed as its handler parses it: the same functions, in
//! the same order ([`Boundary::parse`]).

mod strategies;

use std::collections::HashMap;
use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use prost::Message;

use super::chat_service::{anchor, message_ids, parse_edit, parse_new_message, prefs_scope};
use super::directory::profiles;
use super::groups::{group_edit, new_group, new_invite};
use super::parse::{self, group, target};
use crate::domain::values::{Draft, InviteCode, MessageText, Page};
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::proto::service::{SetDraft, UpsertUsers};
use crate::proto::types::message_entity::Entity;
use crate::proto::{auth, chats, messages, settings, types};
use strategies::*;

/// A request as its handler parses it.
trait Boundary: Message + Default + std::fmt::Debug + Sized {
    /// The message's full protobuf name, to find its fields.
    const NAME: &'static str;
    fn parse(self, caller: UserId) -> Result<()>;
}

macro_rules! boundary {
    ($($ty:ty => $name:literal, |$r:ident, $caller:ident| $body:expr;)*) => {
        $(
            impl Boundary for $ty {
                const NAME: &'static str = $name;
                fn parse(self, caller: UserId) -> Result<()> {
                    let ($r, $caller) = (self, caller);
                    $body.map(drop)
                }
            }
        )*

        /// `bytes` decoded as every request type, each parsed if it decodes.
        fn decode_as_every_request(bytes: &[u8], caller: UserId) -> Result<(), TestCaseError> {
            $(
                if let Ok(request) = <$ty>::decode(bytes) {
                    refused_only_by_field(request, caller)?;
                }
            )*
            Ok(())
        }
    };
}

boundary! {
    chats::GetChats => "osmium.client.chats.GetChats", |r, _c| {
        let _ = Page::parse(r.limit);
        Ok::<(), Error>(())
    };
    chats::GetChat => "osmium.client.chats.GetChat", |r, c| target("chat_ref", r.chat_ref.as_ref(), c);
    chats::CreateChat => "osmium.client.chats.CreateChat", |r, c| new_group(r, c);
    chats::EditChat => "osmium.client.chats.EditChat", |r, c| {
        group("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| group_edit(r))
    };
    chats::AddChatMember => "osmium.client.chats.AddChatMember", |r, c| {
        group("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| parse::user_id("user_id", r.user_id))
    };
    chats::RemoveChatMember => "osmium.client.chats.RemoveChatMember", |r, c| {
        group("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| parse::user_id("user_id", r.user_id))
    };
    chats::CreateChatInvite => "osmium.client.chats.CreateChatInvite", |r, c| new_invite(r, c);
    chats::ListChatInvites => "osmium.client.chats.ListChatInvites", |r, c| group("chat_ref", r.chat_ref.as_ref(), c);
    chats::DeleteChatInvite => "osmium.client.chats.DeleteChatInvite", |r, _c| InviteCode::parse("code", &r.code);
    auth::LookupInvite => "osmium.client.auth.LookupInvite", |r, _c| InviteCode::parse("code", &r.code);
    auth::UseInvite => "osmium.client.auth.UseInvite", |r, _c| InviteCode::parse("code", &r.code);
    chats::MarkChatRead => "osmium.client.chats.MarkChatRead", |r, c| {
        target("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| parse::message_id("message_id", r.message_id))
    };
    chats::SetTyping => "osmium.client.chats.SetTyping", |r, c| {
        target("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| parse::typing_action("action", r.action))
    };
    SetDraft => "osmium.chat.v1.SetDraft", |r, c| {
        target("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| Draft::parse("draft", r.draft))
    };
    settings::ChangeNotificationPreferences => "osmium.client.settings.ChangeNotificationPreferences", |r, c| {
        types::NotifPrefs::try_from(r.prefs)
            .map_err(|_| Error::invalid("prefs", format!("unknown value {}", r.prefs)))
            .and_then(|_| prefs_scope(r.scope.as_ref(), c))
    };
    messages::SendMessage => "osmium.client.messages.SendMessage", |r, c| {
        target("chat_ref", r.chat_ref.as_ref(), c).and_then(|chat| parse_new_message(chat, r))
    };
    messages::GetHistory => "osmium.client.messages.GetHistory", |r, c| {
        let _ = Page::parse(r.limit);
        target("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| anchor(r.offset))
    };
    messages::EditMessage => "osmium.client.messages.EditMessage", |r, c| {
        target("chat_ref", r.chat_ref.as_ref(), c).and_then(|chat| parse_edit(chat, r))
    };
    messages::DeleteMessage => "osmium.client.messages.DeleteMessage", |r, c| {
        target("chat_ref", r.chat_ref.as_ref(), c).and_then(|_| message_ids(&r.message_ids))
    };
    UpsertUsers => "osmium.chat.v1.UpsertUsers", |r, _c| profiles(r.users);
}

/// Every message's fields and oneofs, by full name.
static FIELDS: LazyLock<HashMap<String, Vec<String>>> = LazyLock::new(|| {
    let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .unwrap_or_default();
    let mut fields = HashMap::new();
    for file in set.file {
        let package = file.package.unwrap_or_default();
        for message in file.message_type {
            let names = message
                .field
                .iter()
                .filter_map(|f| f.name.clone())
                .chain(message.oneof_decl.iter().filter_map(|o| o.name.clone()))
                .collect();
            fields.insert(
                format!("{package}.{}", message.name.unwrap_or_default()),
                names,
            );
        }
    }
    fields
});

/// `path` is a field path (`a.b[3].c`) whose first name is one of `fields`.
fn is_field_path(path: &str, fields: &[String]) -> bool {
    let head = path.split(['.', '[']).next().unwrap_or_default();
    let well_formed = path.split('.').all(|segment| {
        let (name, index) = segment.split_once('[').unwrap_or((segment, ""));
        let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let index_ok = index.is_empty()
            || index
                .strip_suffix(']')
                .is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()));
        name_ok && index_ok
    });
    well_formed && fields.iter().any(|f| f == head)
}

/// Parses `request`; a refusal must be INVALID_ARGUMENT naming a field of it.
fn refused_only_by_field<T: Boundary>(request: T, caller: UserId) -> Result<(), TestCaseError> {
    let fields = FIELDS
        .get(T::NAME)
        .ok_or_else(|| TestCaseError::fail(format!("no descriptor for {}", T::NAME)))?;
    match request.parse(caller) {
        Ok(()) => Ok(()),
        Err(Error::InvalidArgument(text)) => {
            let path = text.split_once(": ").map(|(path, _)| path);
            prop_assert!(
                path.is_some_and(|p| is_field_path(p, fields)),
                "{}: {text:?} does not start with one of its fields {fields:?}",
                T::NAME
            );
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "{}: refused with {other:?}, not INVALID_ARGUMENT",
            T::NAME
        ))),
    }
}

/// `encoded` with some bytes changed and the tail maybe cut off.
fn corrupt(mut encoded: Vec<u8>, changes: &[(Index, u8)], cut: Index) -> Vec<u8> {
    if encoded.is_empty() {
        return encoded;
    }
    for (at, byte) in changes {
        let i = at.index(encoded.len());
        if let Some(b) = encoded.get_mut(i) {
            *b = *byte;
        }
    }
    let keep = encoded.len() - cut.index(encoded.len() / 4 + 1);
    encoded.truncate(keep);
    encoded
}

/// Texts rich in what UTF-16 counts differently: astral characters
/// (surrogate pairs), combining marks, BMP characters of every width.
fn unicode_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>(),
        Just('a'),
        Just('é'),
        Just('\u{0301}'),
        Just('中'),
        Just('\u{FFFF}'),
        Just('😀'),
        Just('\u{10000}'),
        Just('\u{10FFFF}'),
    ];
    vec(piece, 0..24).prop_map(String::from_iter)
}

/// The UTF-16 length by the Unicode rule, not by `encode_utf16`: one unit
/// per scalar value, two above the Basic Multilingual Plane.
fn utf16_units(text: &str) -> u64 {
    text.chars()
        .map(|c| if u32::from(c) > 0xFFFF { 2 } else { 1 })
        .sum()
}

/// Few cases, so that `cargo test` stays quick, unless `PROPTEST_CASES`
/// asks for more; failures are reported with their minimal input, not kept
/// in files.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let asked = std::env::var_os("PROPTEST_CASES").is_some();
    ProptestConfig {
        cases: if asked { default.cases } else { 48 },
        failure_persistence: None,
        ..default
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn messages_parse_or_are_refused_by_field(
        send in send_message(),
        edit in edit_message(),
        history in get_history(),
        delete in delete_message(),
        caller in caller(),
    ) {
        refused_only_by_field(send, caller)?;
        refused_only_by_field(edit, caller)?;
        refused_only_by_field(history, caller)?;
        refused_only_by_field(delete, caller)?;
    }

    #[test]
    fn chats_parse_or_are_refused_by_field(
        get in chat_ref(),
        create in create_chat(),
        edit in edit_chat(),
        (add_ref, add_user) in member_change(),
        (remove_ref, remove_user) in member_change(),
        read in mark_chat_read(),
        typing in set_typing(),
        draft in set_draft(),
        prefs in change_notification_preferences(),
        caller in caller(),
    ) {
        refused_only_by_field(chats::GetChat { chat_ref: get }, caller)?;
        refused_only_by_field(create, caller)?;
        refused_only_by_field(edit, caller)?;
        refused_only_by_field(chats::AddChatMember { chat_ref: add_ref, user_id: add_user }, caller)?;
        refused_only_by_field(chats::RemoveChatMember { chat_ref: remove_ref, user_id: remove_user }, caller)?;
        refused_only_by_field(read, caller)?;
        refused_only_by_field(typing, caller)?;
        refused_only_by_field(draft, caller)?;
        refused_only_by_field(prefs, caller)?;
    }

    #[test]
    fn invites_and_users_parse_or_are_refused_by_field(
        create in create_chat_invite(),
        list in chat_ref(),
        code in code(),
        lookup in lookup_invite(),
        users in upsert_users(),
        caller in caller(),
    ) {
        refused_only_by_field(create, caller)?;
        refused_only_by_field(chats::ListChatInvites { chat_ref: list }, caller)?;
        refused_only_by_field(chats::DeleteChatInvite { code: code.clone() }, caller)?;
        refused_only_by_field(auth::UseInvite { code }, caller)?;
        refused_only_by_field(lookup, caller)?;
        refused_only_by_field(users, caller)?;
    }

    #[test]
    fn arbitrary_bytes_decode_and_parse_without_panicking(
        bytes in vec(any::<u8>(), 0..256),
        caller in caller(),
    ) {
        decode_as_every_request(&bytes, caller)?;
    }

    #[test]
    fn corrupted_requests_decode_and_parse_without_panicking(
        send in send_message(),
        edit in edit_chat(),
        users in upsert_users(),
        changes in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in any::<Index>(),
        caller in caller(),
    ) {
        for encoded in [send.encode_to_vec(), edit.encode_to_vec(), users.encode_to_vec()] {
            decode_as_every_request(&corrupt(encoded, &changes, cut), caller)?;
        }
    }

    #[test]
    fn entities_are_accepted_exactly_inside_the_text_in_utf16_units(
        text in unicode_text(),
        spans in vec((0u32..60, 0u32..60), 0..5),
    ) {
        let units = utf16_units(&text);
        let inside = spans
            .iter()
            .all(|(start, length)| *length > 0 && u64::from(*start) + u64::from(*length) <= units);
        let entities = spans
            .iter()
            .map(|(start_index, length)| types::MessageEntity {
                start_index: *start_index,
                length: *length,
                entity: Some(Entity::Italic(true)),
            })
            .collect();
        match MessageText::parse("message", text, "entities", entities) {
            Ok(_) => prop_assert!(inside, "accepted spans outside {units} units: {spans:?}"),
            Err(error) => {
                prop_assert!(!inside, "refused spans inside {units} units: {spans:?}: {error}");
                prop_assert!(error.to_string().starts_with("entities["), "{error}");
            }
        }
    }
}
