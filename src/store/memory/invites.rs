//! Invites of the embedded engine.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::{ChatId, InviteRow, UserId};
use crate::store::{InviteStore, StoreError, StoreResult};

#[async_trait]
impl InviteStore for MemoryTx {
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
        now: u64,
        limit: usize,
    ) -> StoreResult<Vec<InviteRow>> {
        let mut found: Vec<InviteRow> = self
            .state
            .chat_invites(chat)
            .filter(|i| creator.is_none_or(|c| i.creator == c) && i.usable(now))
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.code).cmp(&(b.created_at, &b.code)));
        found.truncate(limit);
        Ok(found)
    }

    async fn prune_invites(&mut self, chat: ChatId, now: u64) -> StoreResult<u64> {
        let dead: Vec<String> = self
            .state
            .chat_invites(chat)
            .filter(|i| !i.usable(now))
            .map(|i| i.code.clone())
            .collect();
        for code in &dead {
            self.take_invite(code);
        }
        Ok(dead.len() as u64)
    }

    async fn count_invites(&mut self, chat: ChatId) -> StoreResult<u64> {
        Ok(self.state.chat_invites(chat).count() as u64)
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
}
