//! A transaction of the embedded engine: the state's lock, plus how to undo
//! each write made under it.

use async_trait::async_trait;
use prost::Message as _;
use tokio::sync::OwnedMutexGuard;

use super::state::State;
use crate::model::{
    clock::now_ms, ChatId, ChatKey, ChatKind, ChatRow, InviteRow, LoggedUpdate, MemberRow,
    MessageId, MessageRow, NewChange, ReadState, UserId,
};
use crate::proto::types;
use crate::store::{
    ConversationRange, PostWrites, ReadContext, SendContext, StoreError, StoreResult, Tx,
};

type Undo = Box<dyn FnOnce(&mut State) + Send>;

pub struct MemoryTx {
    state: OwnedMutexGuard<State>,
    undo: Vec<Undo>,
}

impl MemoryTx {
    pub(super) fn new(state: OwnedMutexGuard<State>) -> Self {
        Self {
            state,
            undo: Vec::new(),
        }
    }

    fn put_member(&mut self, member: MemberRow) {
        let key = (member.chat_id, member.user_id);
        let previous = self.state.put_member(member);
        self.undo.push(Box::new(move |s| {
            s.remove_member(key.0, key.1);
            if let Some(p) = previous {
                s.put_member(p);
            }
        }));
    }

    fn put_message(&mut self, message: MessageRow) {
        let id = message.id;
        let previous = self.state.put_message(message);
        self.undo.push(Box::new(move |s| {
            s.remove_message(id);
            if let Some(p) = previous {
                s.put_message(p);
            }
        }));
    }

    fn put_invite(&mut self, invite: InviteRow) {
        let code = invite.code.clone();
        let previous = self.state.put_invite(invite);
        self.undo.push(Box::new(move |s| {
            s.remove_invite(&code);
            if let Some(p) = previous {
                s.put_invite(p);
            }
        }));
    }

    fn take_member(&mut self, chat: ChatId, user: UserId) {
        if let Some(removed) = self.state.remove_member(chat, user) {
            self.undo.push(Box::new(move |s| {
                s.put_member(removed);
            }));
        }
    }

    fn take_message(&mut self, id: MessageId) {
        if let Some(removed) = self.state.remove_message(id) {
            self.undo.push(Box::new(move |s| {
                s.put_message(removed);
            }));
        }
    }

    fn take_invite(&mut self, code: &str) {
        if let Some(removed) = self.state.remove_invite(code) {
            self.undo.push(Box::new(move |s| {
                s.put_invite(removed);
            }));
        }
    }

    fn insert_deletion(&mut self, key: (ChatId, u64, UserId)) {
        if self.state.deletions.insert(key) {
            self.undo.push(Box::new(move |s| {
                s.deletions.remove(&key);
            }));
        }
    }

    fn insert_mention(&mut self, key: (ChatId, UserId, u64)) {
        if self.state.mentions.insert(key) {
            self.undo.push(Box::new(move |s| {
                s.mentions.remove(&key);
            }));
        }
    }

    fn remove_mention(&mut self, key: (ChatId, UserId, u64)) {
        if self.state.mentions.remove(&key) {
            self.undo.push(Box::new(move |s| {
                s.mentions.insert(key);
            }));
        }
    }

    /// Applies `change` to a member's stored row, if it exists.
    fn change_member(&mut self, chat: ChatId, user: UserId, change: impl FnOnce(&mut MemberRow)) {
        if let Some(mut member) = self.state.members.get(&(chat, user)).cloned() {
            change(&mut member);
            self.put_member(member);
        }
    }

    fn put_chat(&mut self, chat: ChatRow) {
        let id = chat.id;
        let previous = self.state.put_chat(chat);
        self.undo.push(Box::new(move |s| {
            s.remove_chat(id);
            if let Some(p) = previous {
                s.put_chat(p);
            }
        }));
    }
}

impl Drop for MemoryTx {
    fn drop(&mut self) {
        while let Some(undo) = self.undo.pop() {
            undo(&mut self.state);
        }
    }
}

#[async_trait]
impl Tx for MemoryTx {
    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.undo.clear();
        Ok(())
    }

    async fn users(&mut self, ids: &[UserId]) -> StoreResult<Vec<types::User>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.state.users.get(id).cloned())
            .collect())
    }

    async fn user_ids_by_username(&mut self, names: &[String]) -> StoreResult<Vec<UserId>> {
        Ok(names
            .iter()
            .filter_map(|name| self.state.by_username.get(name))
            .flatten()
            .copied()
            .collect())
    }

    async fn upsert_users(&mut self, users: &[types::User]) -> StoreResult<()> {
        for user in users {
            let id = UserId(user.id);
            let previous = self.state.put_user(user.clone());
            self.undo.push(Box::new(move |s| {
                s.remove_user(id);
                if let Some(p) = previous {
                    s.put_user(p);
                }
            }));
        }
        Ok(())
    }

    async fn insert_user_if_absent(&mut self, id: UserId, name: &str) -> StoreResult<()> {
        if !self.state.users.contains_key(&id) {
            let user = types::User {
                id: id.get(),
                name: name.to_owned(),
                ..Default::default()
            };
            self.upsert_users(&[user]).await?;
        }
        Ok(())
    }

    async fn chat(&mut self, id: ChatId, _lock: bool) -> StoreResult<Option<ChatRow>> {
        Ok(self.state.chats.get(&id).cloned())
    }

    async fn chats(&mut self, ids: &[ChatId]) -> StoreResult<Vec<ChatRow>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.state.chats.get(id).cloned())
            .collect())
    }

    async fn lock_chat(&mut self, id: ChatId) -> StoreResult<Option<(ChatRow, Vec<MemberRow>)>> {
        let Some(chat) = self.state.chats.get(&id).cloned() else {
            return Ok(None);
        };
        let members = self.members(id).await?;
        Ok(Some((chat, members)))
    }

    async fn direct_chat(
        &mut self,
        low: UserId,
        high: UserId,
        _lock: bool,
    ) -> StoreResult<Option<ChatRow>> {
        Ok(self
            .state
            .direct
            .get(&(low, high))
            .and_then(|id| self.state.chats.get(id))
            .cloned())
    }

    async fn insert_chat(&mut self, chat: &ChatRow) -> StoreResult<()> {
        if let ChatKind::Direct { low, high } = chat.kind {
            if self.state.direct.contains_key(&(low, high)) {
                return Err(StoreError::Duplicate);
            }
        }
        self.put_chat(chat.clone());
        Ok(())
    }

    async fn set_last_message(&mut self, chat: ChatId, last: Option<MessageId>) -> StoreResult<()> {
        if let Some(mut row) = self.state.chats.get(&chat).cloned() {
            row.last_message = last;
            self.put_chat(row);
        }
        Ok(())
    }

    async fn update_chat(&mut self, chat: &ChatRow) -> StoreResult<()> {
        if let Some(current) = self.state.chats.get(&chat.id).cloned() {
            self.put_chat(ChatRow {
                name: chat.name.clone(),
                owner: chat.owner,
                photo: chat.photo.clone(),
                highlighted: chat.highlighted,
                ..current
            });
        }
        Ok(())
    }

    async fn delete_chat(&mut self, chat: ChatId) -> StoreResult<()> {
        let members: Vec<UserId> = self.state.chat_members(chat).map(|m| m.user_id).collect();
        for user in members {
            self.take_member(chat, user);
        }
        let messages: Vec<MessageId> = self
            .state
            .by_chat
            .range((chat, MessageId(0))..=(chat, MessageId(u64::MAX)))
            .map(|(_, id)| *id)
            .collect();
        for id in messages {
            self.take_message(id);
        }
        let invites: Vec<String> = self
            .state
            .chat_invites(chat)
            .map(|i| i.code.clone())
            .collect();
        for code in invites {
            self.take_invite(&code);
        }
        if let Some(removed) = self.state.remove_chat(chat) {
            self.undo.push(Box::new(move |s| {
                s.put_chat(removed);
            }));
        }
        Ok(())
    }

    async fn members_of(&mut self, chats: &[ChatId]) -> StoreResult<Vec<(ChatId, UserId)>> {
        let mut all = Vec::new();
        for chat in chats {
            let mut members: Vec<&MemberRow> = self.state.chat_members(*chat).collect();
            members.sort_by_key(|m| (m.joined, m.user_id));
            all.extend(members.iter().map(|m| (m.chat_id, m.user_id)));
        }
        Ok(all)
    }

    async fn remove_member(&mut self, chat: ChatId, user: UserId) -> StoreResult<()> {
        self.take_member(chat, user);
        Ok(())
    }

    async fn insert_invite(&mut self, invite: &InviteRow) -> StoreResult<()> {
        if self.state.invites.contains_key(&invite.code) {
            return Err(StoreError::Duplicate);
        }
        self.put_invite(invite.clone());
        Ok(())
    }

    async fn invite(&mut self, code: &str, _lock: bool) -> StoreResult<Option<InviteRow>> {
        Ok(self.state.invites.get(code).cloned())
    }

    async fn invites(
        &mut self,
        chat: ChatId,
        creator: Option<UserId>,
    ) -> StoreResult<Vec<InviteRow>> {
        let mut found: Vec<InviteRow> = self
            .state
            .chat_invites(chat)
            .filter(|i| creator.is_none_or(|c| i.creator == c))
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.code).cmp(&(b.created_at, &b.code)));
        Ok(found)
    }

    async fn delete_invite(&mut self, code: &str) -> StoreResult<()> {
        self.take_invite(code);
        Ok(())
    }

    async fn count_invite_use(&mut self, code: &str) -> StoreResult<()> {
        if let Some(mut invite) = self.state.invites.get(code).cloned() {
            invite.uses += 1;
            self.put_invite(invite);
        }
        Ok(())
    }

    async fn member(
        &mut self,
        chat: ChatId,
        user: UserId,
        _lock: bool,
    ) -> StoreResult<Option<MemberRow>> {
        Ok(self
            .state
            .members
            .get(&(chat, user))
            .map(|m| self.state.view(m)))
    }

    async fn members(&mut self, chat: ChatId) -> StoreResult<Vec<MemberRow>> {
        let mut members: Vec<MemberRow> = self
            .state
            .chat_members(chat)
            .map(|m| self.state.view(m))
            .collect();
        members.sort_by_key(|m| (m.joined, m.user_id));
        Ok(members)
    }

    async fn insert_member(&mut self, member: &MemberRow) -> StoreResult<()> {
        if !self
            .state
            .members
            .contains_key(&(member.chat_id, member.user_id))
        {
            self.put_member(member.clone());
        }
        Ok(())
    }

    async fn update_member(&mut self, member: &MemberRow) -> StoreResult<()> {
        let (draft, notif) = (member.draft.clone(), member.notif);
        self.change_member(member.chat_id, member.user_id, |m| {
            m.draft = draft;
            m.notif = notif;
        });
        Ok(())
    }

    async fn conversations(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<MemberRow>> {
        let low = range.after.map_or(0, |a| a.saturating_add(1));
        let high = range.before.unwrap_or(u64::MAX);
        if low >= high {
            return Ok(Vec::new());
        }
        Ok(self
            .state
            .by_user
            .range((user, low, ChatId(0))..(user, high, ChatId(0)))
            .rev()
            .take(range.limit)
            .filter_map(|(u, _, c)| self.state.members.get(&(*c, *u)))
            .map(|m| self.state.view(m))
            .collect())
    }

    async fn write_posts(
        &mut self,
        w: &PostWrites,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let mut batch_ids = std::collections::HashSet::new();
        for message in &w.messages {
            if let Some(client_id) = message.client_id {
                let key = (message.author, client_id);
                if self.state.client_ids.contains_key(&key) || !batch_ids.insert(key) {
                    return Err(StoreError::Duplicate);
                }
            }
        }
        for member in &w.new_members {
            self.put_member(member.clone());
        }
        for message in &w.messages {
            for user in &message.mentions {
                self.insert_mention((w.chat, *user, message.ordinal));
            }
            self.put_message(message.clone());
        }
        if let Some(mut chat) = self.state.chats.get(&w.chat).cloned() {
            chat.msg_seq = w.msg_seq;
            chat.last_message = w.last_message;
            self.put_chat(chat);
        }
        let sort_key = w.messages.iter().map(|m| m.id.get()).max().unwrap_or(0);
        let members: Vec<UserId> = self.state.chat_members(w.chat).map(|m| m.user_id).collect();
        for user in members {
            self.change_member(w.chat, user, |m| m.sort_key = m.sort_key.max(sort_key));
        }
        for r in &w.readers {
            let r = *r;
            self.change_member(w.chat, r.user, |m| {
                m.last_read = m.last_read.max(r.last_read.get());
                m.read_seq = m.read_seq.max(r.read_seq);
                m.skipped = 0;
                m.mentions = r.mentions;
                m.draft = None;
            });
        }
        for (user, n) in &w.mentioned {
            let n = *n;
            self.change_member(w.chat, *user, |m| m.mentions += n);
        }
        self.append_changes(changes).await
    }

    async fn read_context(
        &mut self,
        chat: ChatKey,
        user: UserId,
        message: MessageId,
    ) -> StoreResult<ReadContext> {
        let chat = match chat {
            ChatKey::Group(id) => self
                .state
                .chats
                .get(&id)
                .filter(|c| c.kind == ChatKind::Group),
            ChatKey::Direct { low, high } => self
                .state
                .direct
                .get(&(low, high))
                .and_then(|id| self.state.chats.get(id)),
        }
        .cloned();
        let Some(chat) = chat else {
            return Ok(ReadContext::default());
        };
        Ok(ReadContext {
            member: self
                .state
                .members
                .get(&(chat.id, user))
                .map(|m| self.state.view(m)),
            ordinal: self
                .state
                .messages
                .get(&message)
                .filter(|m| m.chat_id == chat.id)
                .map(|m| m.ordinal),
            chat: Some(chat),
        })
    }

    async fn mark_read(
        &mut self,
        user: UserId,
        chat: ChatId,
        message: MessageId,
        ordinal: u64,
    ) -> StoreResult<Option<ReadState>> {
        let Some(member) = self.state.members.get(&(chat, user)) else {
            return Ok(None);
        };
        if member.last_read >= message.get() {
            return Ok(None);
        }
        let skipped = self
            .state
            .deletions
            .range((chat, ordinal + 1, UserId(0))..=(chat, u64::MAX, UserId(u64::MAX)))
            .filter(|(_, _, author)| *author != user)
            .count() as u32;
        let mentions = self
            .state
            .mentions
            .range((chat, user, ordinal + 1)..=(chat, user, u64::MAX))
            .count() as u32;
        let id = message.get();
        self.change_member(chat, user, |m| {
            m.last_read = id;
            m.read_seq = ordinal;
            m.skipped = skipped;
            m.mentions = mentions;
        });
        let member = &self.state.members[&(chat, user)];
        let view = self.state.view(member);
        Ok(Some(ReadState {
            unread: view.unread,
            mentions: view.mentions,
        }))
    }

    async fn forget_messages(&mut self, chat: ChatId, deleted: &[MessageRow]) -> StoreResult<()> {
        let members: Vec<MemberRow> = self.state.chat_members(chat).cloned().collect();
        for mut member in members {
            let unread: Vec<&MessageRow> = deleted
                .iter()
                .filter(|m| m.ordinal > member.read_seq && m.author != member.user_id)
                .collect();
            if unread.is_empty() {
                continue;
            }
            let mentions = unread
                .iter()
                .filter(|m| m.mentions.contains(&member.user_id))
                .count() as u32;
            member.skipped += unread.len() as u32;
            member.mentions = member.mentions.saturating_sub(mentions);
            self.put_member(member);
        }
        for message in deleted {
            self.insert_deletion((chat, message.ordinal, message.author));
            for user in &message.mentions {
                self.remove_mention((chat, *user, message.ordinal));
            }
        }
        Ok(())
    }

    async fn remention(
        &mut self,
        message: &MessageRow,
        removed: &[UserId],
        added: &[UserId],
    ) -> StoreResult<()> {
        let chat = message.chat_id;
        for user in removed.iter().chain(added) {
            let Some(mut member) = self.state.members.get(&(chat, *user)).cloned() else {
                continue;
            };
            if member.read_seq >= message.ordinal {
                continue;
            }
            if added.contains(user) {
                member.mentions += 1;
            } else {
                member.mentions = member.mentions.saturating_sub(1);
            }
            self.put_member(member);
        }
        for user in removed {
            self.remove_mention((chat, *user, message.ordinal));
        }
        for user in added {
            self.insert_mention((chat, *user, message.ordinal));
        }
        Ok(())
    }

    async fn insert_message(&mut self, message: &MessageRow) -> StoreResult<()> {
        if let Some(client_id) = message.client_id {
            if self
                .state
                .client_ids
                .contains_key(&(message.author, client_id))
            {
                return Err(StoreError::Duplicate);
            }
        }
        self.put_message(message.clone());
        Ok(())
    }

    async fn message(
        &mut self,
        chat: ChatId,
        id: MessageId,
        _lock: bool,
    ) -> StoreResult<Option<MessageRow>> {
        Ok(self
            .state
            .messages
            .get(&id)
            .filter(|m| m.chat_id == chat)
            .cloned())
    }

    async fn messages_by_id(&mut self, ids: &[MessageId]) -> StoreResult<Vec<MessageRow>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.state.messages.get(id).cloned())
            .collect())
    }

    async fn send_context(
        &mut self,
        chat: ChatKey,
        author: UserId,
        client_id: Option<u64>,
    ) -> StoreResult<SendContext> {
        let chat = match chat {
            ChatKey::Group(id) => self
                .state
                .chats
                .get(&id)
                .filter(|c| c.kind == ChatKind::Group),
            ChatKey::Direct { low, high } => self
                .state
                .direct
                .get(&(low, high))
                .and_then(|id| self.state.chats.get(id)),
        }
        .cloned();
        Ok(SendContext {
            member: chat
                .as_ref()
                .is_some_and(|c| self.state.members.contains_key(&(c.id, author))),
            chat,
            author: self.state.users.get(&author).cloned(),
            sent: client_id.and_then(|c| self.state.client_ids.get(&(author, c)).copied()),
        })
    }

    async fn message_by_client_id(
        &mut self,
        author: UserId,
        client_id: u64,
    ) -> StoreResult<Option<MessageRow>> {
        Ok(self
            .state
            .client_ids
            .get(&(author, client_id))
            .and_then(|id| self.state.messages.get(id))
            .cloned())
    }

    async fn update_message(&mut self, message: &MessageRow) -> StoreResult<()> {
        self.put_message(message.clone());
        Ok(())
    }

    async fn delete_messages(&mut self, chat: ChatId, ids: &[MessageId]) -> StoreResult<()> {
        for id in ids {
            if self
                .state
                .messages
                .get(id)
                .is_some_and(|m| m.chat_id == chat)
            {
                if let Some(removed) = self.state.remove_message(*id) {
                    self.undo.push(Box::new(move |s| {
                        s.put_message(removed);
                    }));
                }
            }
        }
        Ok(())
    }

    async fn messages_before(
        &mut self,
        chat: ChatId,
        before: Option<MessageId>,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>> {
        let end = before.unwrap_or(MessageId(u64::MAX));
        Ok(self
            .state
            .by_chat
            .range((chat, MessageId(0))..(chat, end))
            .rev()
            .take(limit)
            .map(|(_, id)| self.state.messages[id].clone())
            .collect())
    }

    async fn messages_after(
        &mut self,
        chat: ChatId,
        after: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>> {
        Ok(self
            .state
            .by_chat
            .range((chat, MessageId(after.get().saturating_add(1)))..=(chat, MessageId(u64::MAX)))
            .take(limit)
            .map(|(_, id)| self.state.messages[id].clone())
            .collect())
    }

    async fn append_changes(&mut self, changes: Vec<NewChange>) -> StoreResult<Vec<LoggedUpdate>> {
        let mut logged = Vec::new();
        for new in changes {
            for (user, personal) in new.recipients {
                let log = self.state.logs.entry(user).or_default();
                log.head += 1;
                let entry = LoggedUpdate {
                    user,
                    seq: log.head,
                    change: new.change.clone(),
                    personal,
                };
                log.entries.push_back((now_ms(), entry.clone()));
                logged.push(entry);
                self.undo.push(Box::new(move |s| {
                    if let Some(log) = s.logs.get_mut(&user) {
                        log.entries.pop_back();
                        log.head -= 1;
                    }
                }));
            }
        }
        Ok(logged)
    }

    async fn update_head(&mut self, user: UserId) -> StoreResult<u64> {
        Ok(self.state.logs.get(&user).map_or(0, |l| l.head))
    }

    async fn oldest_update(&mut self, user: UserId) -> StoreResult<Option<u64>> {
        Ok(self
            .state
            .logs
            .get(&user)
            .and_then(|l| l.entries.front())
            .map(|(_, e)| e.seq))
    }

    async fn updates_after(
        &mut self,
        user: UserId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let Some(log) = self.state.logs.get(&user) else {
            return Ok(Vec::new());
        };
        let first = log.entries.front().map_or(1, |(_, e)| e.seq);
        let skip = after.saturating_add(1).saturating_sub(first) as usize;
        let mut bytes = 0;
        let mut page = Vec::new();
        for (_, entry) in log.entries.iter().skip(skip).take(limit) {
            if bytes >= max_bytes && !page.is_empty() {
                break;
            }
            bytes += entry.change.update.encoded_len();
            page.push(entry.clone());
        }
        Ok(page)
    }
}
