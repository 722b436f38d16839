//! A transaction of the embedded engine: the state's lock, plus how to undo
//! each write made under it. The helpers here record those undos; each
//! trait of the contract is written in its own file beside this one.

use async_trait::async_trait;
use tokio::sync::OwnedMutexGuard;

use super::state::State;
use crate::model::{ChatId, ChatRow, InviteRow, MemberRow, MessageId, MessageRow, UserId};
use crate::store::{StoreResult, Tx};

pub(super) type Undo = Box<dyn FnOnce(&mut State) + Send>;

pub struct MemoryTx {
    pub(super) state: OwnedMutexGuard<State>,
    /// How to undo each write so far, oldest first.
    pub(super) undo: Vec<Undo>,
}

impl MemoryTx {
    pub(super) fn new(state: OwnedMutexGuard<State>) -> Self {
        Self {
            state,
            undo: Vec::new(),
        }
    }

    pub(super) fn put_member(&mut self, member: MemberRow) {
        let key = (member.chat_id, member.user_id);
        let previous = self.state.put_member(member);
        self.undo.push(Box::new(move |s| {
            s.remove_member(key.0, key.1);
            if let Some(p) = previous {
                s.put_member(p);
            }
        }));
    }

    pub(super) fn put_message(&mut self, message: MessageRow) {
        let id = message.id;
        let previous = self.state.put_message(message);
        self.undo.push(Box::new(move |s| {
            s.remove_message(id);
            if let Some(p) = previous {
                s.put_message(p);
            }
        }));
    }

    pub(super) fn put_invite(&mut self, invite: InviteRow) {
        let code = invite.code.clone();
        let previous = self.state.put_invite(invite);
        self.undo.push(Box::new(move |s| {
            s.remove_invite(&code);
            if let Some(p) = previous {
                s.put_invite(p);
            }
        }));
    }

    pub(super) fn take_member(&mut self, chat: ChatId, user: UserId) {
        if let Some(removed) = self.state.remove_member(chat, user) {
            self.undo.push(Box::new(move |s| {
                s.put_member(removed);
            }));
        }
    }

    pub(super) fn take_message(&mut self, id: MessageId) {
        if let Some(removed) = self.state.remove_message(id) {
            self.undo.push(Box::new(move |s| {
                s.put_message(removed);
            }));
        }
    }

    pub(super) fn take_invite(&mut self, code: &str) {
        if let Some(removed) = self.state.remove_invite(code) {
            self.undo.push(Box::new(move |s| {
                s.put_invite(removed);
            }));
        }
    }

    pub(super) fn insert_deletion(&mut self, key: (ChatId, u64, UserId)) {
        if self.state.deletions.insert(key) {
            self.undo.push(Box::new(move |s| {
                s.deletions.remove(&key);
            }));
        }
    }

    pub(super) fn insert_mention(&mut self, key: (ChatId, UserId, u64)) {
        if self.state.mentions.insert(key) {
            self.undo.push(Box::new(move |s| {
                s.mentions.remove(&key);
            }));
        }
    }

    pub(super) fn remove_mention(&mut self, key: (ChatId, UserId, u64)) {
        if self.state.mentions.remove(&key) {
            self.undo.push(Box::new(move |s| {
                s.mentions.insert(key);
            }));
        }
    }

    /// Applies `change` to a member's stored row, if it exists.
    pub(super) fn change_member(
        &mut self,
        chat: ChatId,
        user: UserId,
        change: impl FnOnce(&mut MemberRow),
    ) {
        if let Some(mut member) = self.state.members.get(&(chat, user)).cloned() {
            change(&mut member);
            self.put_member(member);
        }
    }

    pub(super) fn put_chat(&mut self, chat: ChatRow) {
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
}
