//! Posting on the embedded engine: a send's checks and a batch's writes.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::{ChatKey, LoggedUpdate, NewChange, UserId};
use crate::store::{LogStore, PostStore, PostWrites, SendContext, StoreError, StoreResult};

#[async_trait]
impl PostStore for MemoryTx {
    async fn send_context(
        &mut self,
        chat: ChatKey,
        author: UserId,
        client_id: Option<u64>,
    ) -> StoreResult<SendContext> {
        let chat = self.state.chat_by_key(chat).cloned();
        Ok(SendContext {
            member: chat
                .as_ref()
                .is_some_and(|c| self.state.members.contains_key(&(c.id, author))),
            chat,
            author: self.state.users.get(&author).cloned(),
            sent: client_id.and_then(|c| self.state.client_ids.get(&(author, c)).copied()),
        })
    }

    async fn write_posts(
        &mut self,
        w: &PostWrites,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let mut batch_ids = std::collections::HashSet::new();
        let mut minted = std::collections::HashSet::new();
        for message in &w.messages {
            if self.state.messages.contains_key(&message.id) || !minted.insert(message.id) {
                return Err(StoreError::IdTaken);
            }
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
}
