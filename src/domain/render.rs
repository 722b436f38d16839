//! Builds protocol messages as one particular user sees them: a direct
//! chat is `user{peer}` to each side, saved messages are `self`, and
//! `Group.owner` is true only in the owner's copy.

use crate::model::{ChatKind, ChatRow, MemberRow, MessageRow, UserId};
use crate::proto::{chats, refs, types, updates};
use crate::store::LastMessage;

/// The other user of a direct chat, as seen by `viewer`; `None` for saved
/// messages and groups.
pub fn peer(chat: &ChatRow, viewer: UserId) -> Option<UserId> {
    match chat.kind {
        ChatKind::Direct { low, high } if low != high => {
            Some(if low == viewer { high } else { low })
        }
        _ => None,
    }
}

pub fn chat_ref(chat: &ChatRow, viewer: UserId) -> refs::ChatRef {
    let r = match chat.kind {
        ChatKind::Direct { low, high } if low == high => {
            refs::chat_ref::Ref::Self_(refs::RefSelf {})
        }
        ChatKind::Direct { .. } => refs::chat_ref::Ref::User(refs::UserRef {
            user_id: peer(chat, viewer).map_or(0, UserId::get),
        }),
        ChatKind::Group => refs::chat_ref::Ref::Group(refs::GroupRef {
            group_id: chat.id.get(),
        }),
    };
    refs::ChatRef { r#ref: Some(r) }
}

pub fn message(row: &MessageRow, chat: &ChatRow, viewer: UserId) -> types::Message {
    types::Message {
        chat_ref: Some(chat_ref(chat, viewer)),
        ..row.body.clone()
    }
}

/// A conversation's last message as `viewer` sees it: its stored body,
/// moved, with the chat's reference added.
pub fn last_message(last: LastMessage, chat: &ChatRow, viewer: UserId) -> types::Message {
    types::Message {
        chat_ref: Some(chat_ref(chat, viewer)),
        ..last.body
    }
}

pub fn conversation(chat: &ChatRow, member: &MemberRow) -> types::Conversation {
    types::Conversation {
        chat_ref: Some(chat_ref(chat, member.user_id)),
        last_message_id: member.sort_key,
        last_read_message_id: member.last_read,
        unread_count: member.unread,
        draft: member.draft.clone(),
        permissions: None,
        notif_prefs: member.notif,
        unread_mentions_count: member.mentions,
    }
}

/// The users a chat view refers to: the direct peer and the last author,
/// each once. An iterator, not a list: a page asks this of every entry.
pub fn referenced_users(
    chat: &ChatRow,
    viewer: UserId,
    last_author: Option<UserId>,
) -> impl Iterator<Item = UserId> {
    let peer = peer(chat, viewer);
    let author = last_author.filter(|a| Some(*a) != peer);
    peer.into_iter().chain(author)
}

/// A group as `viewer` sees it; `participants` oldest member first.
pub fn group(chat: &ChatRow, participants: &[UserId], viewer: UserId) -> types::Group {
    types::Group {
        id: chat.id.get(),
        name: chat.name.clone(),
        owner: chat.owner == Some(viewer),
        participant_ids: participants.iter().map(|u| u.get()).collect(),
        photo: chat.photo.clone(),
    }
}

/// `participants` is `Some` for groups; `last` is the last message
/// rendered for the member ([`message`], [`last_message`]).
pub fn chat(
    chat: &ChatRow,
    member: &MemberRow,
    last: Option<types::Message>,
    participants: Option<&[UserId]>,
    users: Vec<types::User>,
) -> chats::Chat {
    chats::Chat {
        chat: Some(conversation(chat, member)),
        message: last,
        users,
        group: participants.map(|p| group(chat, p, member.user_id)),
    }
}

pub fn update(kind: updates::update::Update) -> updates::Update {
    updates::Update { update: Some(kind) }
}
