//! Pages of the embedded engine: what each read RPC shows, gathered under
//! the one lock.

use async_trait::async_trait;

use super::state::State;
use super::tx::MemoryTx;
use crate::model::{ChatId, ChatKey, ChatKind, MemberRow, MessageId, UserId};
use crate::store::{
    ChatEntry, ConversationRange, HistoryPage, HistoryRange, LastMessage, MemberStore, PageStore,
    StoreResult,
};

impl State {
    fn entry(&self, member: MemberRow) -> Option<ChatEntry> {
        let chat = self.chats.get(&member.chat_id)?.clone();
        let last = chat
            .last_message
            .and_then(|id| self.messages.get(&id))
            .filter(|m| m.chat_id == chat.id)
            .cloned()
            .map(LastMessage::from);
        let participants = match chat.kind {
            ChatKind::Group => {
                let mut members: Vec<&MemberRow> = self.chat_members(chat.id).collect();
                members.sort_by_key(|m| (m.joined, m.user_id));
                members.iter().map(|m| m.user_id).collect()
            }
            ChatKind::Direct { .. } => Vec::new(),
        };
        Some(ChatEntry {
            chat,
            member,
            last,
            participants,
        })
    }

    fn history_page(&self, chat: ChatKey, user: UserId, range: HistoryRange) -> HistoryPage {
        let Some(chat) = self.chat_by_key(chat).cloned() else {
            return HistoryPage::default();
        };
        let member = self.members.contains_key(&(chat.id, user));
        if chat.kind == ChatKind::Group && !member {
            return HistoryPage {
                chat: Some(chat),
                member,
                messages: Vec::new(),
            };
        }
        let id = chat.id;
        let below = range.below.unwrap_or(MessageId(u64::MAX));
        let newer: Vec<MessageId> = self
            .by_chat
            .range((id, range.above)..(ChatId(id.get().saturating_add(1)), MessageId(0)))
            .filter(|(c, m)| *c == id && *m > range.above)
            .take(range.newer)
            .map(|(_, m)| *m)
            .collect();
        let older = self
            .by_chat
            .range((id, MessageId(0))..(id, below))
            .rev()
            .take(range.older)
            .map(|(_, m)| *m);
        let messages = newer
            .into_iter()
            .rev()
            .chain(older)
            .filter_map(|m| self.messages.get(&m).cloned())
            .collect();
        HistoryPage {
            chat: Some(chat),
            member,
            messages,
        }
    }
}

#[async_trait]
impl PageStore for MemoryTx {
    async fn chat_page(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<ChatEntry>> {
        let members = self.conversations(user, range).await?;
        Ok(members
            .into_iter()
            .filter_map(|m| self.state.entry(m))
            .collect())
    }

    async fn chat_entries(
        &mut self,
        wanted: &[(ChatKey, UserId)],
    ) -> StoreResult<Vec<Option<ChatEntry>>> {
        Ok(wanted
            .iter()
            .map(|&(chat, user)| {
                let id = self.state.chat_by_key(chat)?.id;
                let member = self.state.members.get(&(id, user))?;
                self.state.entry(self.state.view(member))
            })
            .collect())
    }

    async fn history_pages(
        &mut self,
        wanted: &[(ChatKey, UserId, HistoryRange)],
    ) -> StoreResult<Vec<HistoryPage>> {
        Ok(wanted
            .iter()
            .map(|&(chat, user, range)| self.state.history_page(chat, user, range))
            .collect())
    }
}
