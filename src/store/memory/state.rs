//! The tables of the embedded engine and their indexes, kept in step by
//! the only functions that write them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::model::{
    ChatId, ChatKey, ChatKind, ChatRow, InviteRow, LoggedUpdate, MemberRow, MessageId, MessageRow,
    UserId,
};
use crate::proto::types;

#[derive(Default)]
pub(super) struct Log {
    pub(super) head: u64,
    /// (appended at, in unix ms; the entry).
    pub(super) entries: VecDeque<(u64, LoggedUpdate)>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) users: HashMap<UserId, types::User>,
    /// username -> users: the mention index.
    pub(super) by_username: HashMap<String, BTreeSet<UserId>>,
    pub(super) chats: HashMap<ChatId, ChatRow>,
    pub(super) direct: HashMap<(UserId, UserId), ChatId>,
    pub(super) members: BTreeMap<(ChatId, UserId), MemberRow>,
    /// (user, sort key, chat): the GetChats index.
    pub(super) by_user: BTreeSet<(UserId, u64, ChatId)>,
    pub(super) messages: HashMap<MessageId, MessageRow>,
    /// (chat, message): the history index.
    pub(super) by_chat: BTreeSet<(ChatId, MessageId)>,
    pub(super) client_ids: HashMap<(UserId, u64), MessageId>,
    pub(super) invites: HashMap<String, InviteRow>,
    /// (chat, code): a group's invites.
    pub(super) invites_by_chat: BTreeSet<(ChatId, String)>,
    pub(super) logs: HashMap<UserId, Log>,
    /// (chat, ordinal, author) of deleted messages.
    pub(super) deletions: BTreeSet<(ChatId, u64, UserId)>,
    /// (chat, user, ordinal): who each message mentions.
    pub(super) mentions: BTreeSet<(ChatId, UserId, u64)>,
}

impl State {
    pub(super) fn put_invite(&mut self, invite: InviteRow) -> Option<InviteRow> {
        self.invites_by_chat
            .insert((invite.chat_id, invite.code.clone()));
        self.invites.insert(invite.code.clone(), invite)
    }

    pub(super) fn remove_invite(&mut self, code: &str) -> Option<InviteRow> {
        let invite = self.invites.remove(code)?;
        self.invites_by_chat
            .remove(&(invite.chat_id, invite.code.clone()));
        Some(invite)
    }

    pub(super) fn chat_invites(&self, chat: ChatId) -> impl Iterator<Item = &InviteRow> {
        self.invites_by_chat
            .range((chat, String::new())..)
            .take_while(move |(c, _)| *c == chat)
            .filter_map(|(_, code)| self.invites.get(code))
    }

    pub(super) fn put_user(&mut self, user: types::User) -> Option<types::User> {
        let id = UserId(user.id);
        let previous = self.remove_user(id);
        if let Some(name) = &user.username {
            self.by_username.entry(name.clone()).or_default().insert(id);
        }
        self.users.insert(id, user);
        previous
    }

    pub(super) fn remove_user(&mut self, id: UserId) -> Option<types::User> {
        let user = self.users.remove(&id)?;
        if let Some(name) = &user.username {
            if let Some(ids) = self.by_username.get_mut(name) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_username.remove(name);
                }
            }
        }
        Some(user)
    }

    pub(super) fn put_chat(&mut self, chat: ChatRow) -> Option<ChatRow> {
        if let ChatKind::Direct { low, high } = chat.kind {
            self.direct.insert((low, high), chat.id);
        }
        self.chats.insert(chat.id, chat)
    }

    pub(super) fn remove_chat(&mut self, id: ChatId) -> Option<ChatRow> {
        let chat = self.chats.remove(&id)?;
        if let ChatKind::Direct { low, high } = chat.kind {
            self.direct.remove(&(low, high));
        }
        Some(chat)
    }

    pub(super) fn put_member(&mut self, member: MemberRow) -> Option<MemberRow> {
        let sort_key = member.sort_key;
        self.by_user
            .insert((member.user_id, member.sort_key, member.chat_id));
        let previous = self
            .members
            .insert((member.chat_id, member.user_id), member);
        if let Some(p) = &previous {
            if p.sort_key != sort_key {
                self.by_user.remove(&(p.user_id, p.sort_key, p.chat_id));
            }
        }
        previous
    }

    pub(super) fn remove_member(&mut self, chat: ChatId, user: UserId) -> Option<MemberRow> {
        let member = self.members.remove(&(chat, user))?;
        self.by_user.remove(&(user, member.sort_key, chat));
        Some(member)
    }

    pub(super) fn put_message(&mut self, message: MessageRow) -> Option<MessageRow> {
        self.by_chat.insert((message.chat_id, message.id));
        if let Some(client_id) = message.client_id {
            self.client_ids
                .insert((message.author, client_id), message.id);
        }
        self.messages.insert(message.id, message)
    }

    pub(super) fn remove_message(&mut self, id: MessageId) -> Option<MessageRow> {
        let message = self.messages.remove(&id)?;
        self.by_chat.remove(&(message.chat_id, id));
        if let Some(client_id) = message.client_id {
            self.client_ids.remove(&(message.author, client_id));
        }
        Some(message)
    }

    /// The chat a key names (a group only when it is one).
    pub(super) fn chat_by_key(&self, key: ChatKey) -> Option<&ChatRow> {
        match key {
            ChatKey::Group(id) => self.chats.get(&id).filter(|c| c.kind == ChatKind::Group),
            ChatKey::Direct { low, high } => self
                .direct
                .get(&(low, high))
                .and_then(|id| self.chats.get(id)),
        }
    }

    /// A member as read: with its unread count derived from the chat.
    pub(super) fn view(&self, member: &MemberRow) -> MemberRow {
        let msg_seq = self.chats.get(&member.chat_id).map_or(0, |c| c.msg_seq);
        MemberRow {
            unread: member.unread_at(msg_seq),
            ..member.clone()
        }
    }

    pub(super) fn chat_members(&self, chat: ChatId) -> impl Iterator<Item = &MemberRow> {
        self.members
            .range((chat, UserId(0))..=(chat, UserId(u64::MAX)))
            .map(|(_, m)| m)
    }
}
