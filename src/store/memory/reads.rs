//! Read state of the embedded engine: read pointers and the counters
//! that deletions and edits move.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::{ChatId, ChatKey, MemberRow, MessageId, MessageRow, ReadState, UserId};
use crate::store::{ReadContext, ReadStore, StoreResult};

#[async_trait]
impl ReadStore for MemoryTx {
    async fn read_context(
        &mut self,
        chat: ChatKey,
        user: UserId,
        message: MessageId,
    ) -> StoreResult<ReadContext> {
        let chat = self.state.chat_by_key(chat).cloned();
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
}
