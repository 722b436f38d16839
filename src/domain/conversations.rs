//! A user's conversations: listing, opening, read state, drafts and
//! notification preferences.
//!
//! Reads never create a direct chat: GetChat of one nobody has written to
//! shows it empty (no id, `last_message_id` 0) and stores nothing, and
//! MarkChatRead there finds no message. A draft or a notification
//! preference is worth keeping before the first message, so setting one
//! creates the chat and the caller's conversation (counted against the
//! `create_chat` rate); clearing one, or setting what is already the
//! default, creates nothing.

use std::collections::HashSet;

use super::access::{unopened, Access, Mode};
use super::limits::RateLimit;
use super::render;
use super::target::ChatTarget;
use super::values::{ChatWindow, Draft};
use super::views::{participants, PARTICIPANT_USERS_PER_GROUP};
use super::{Chats, Core};
use crate::error::{Error, Result};
use crate::model::{ChatKey, ChatKind, ChatRow, MemberRow, MessageId, NewChange, UserId};
use crate::proto::{chats, types, updates};
use crate::store::{ChatEntry, ConversationRange, ReadContext};

use updates::update::Update as U;

impl Chats<'_> {
    /// One page of the caller's conversations, newest activity first, with
    /// their last messages, groups and the users those refer to. One
    /// statement bounded by the page; users come from the replica's cache.
    pub async fn list(&self, caller: UserId, window: ChatWindow) -> Result<chats::Chats> {
        let range = ConversationRange {
            before: window.before,
            after: window.after,
            limit: window.page.get(),
        };
        let entries = self.store.chat_page(caller, range).await?;
        // A peer or a last author per entry, and a group's first members.
        let most_users = entries.len() * (PARTICIPANT_USERS_PER_GROUP + 2);
        let mut seen = HashSet::with_capacity(most_users);
        let mut user_ids = Vec::with_capacity(most_users);
        for entry in &entries {
            let shown = entry
                .participants
                .iter()
                .take(PARTICIPANT_USERS_PER_GROUP)
                .copied();
            for user in
                render::referenced_users(&entry.chat, caller, entry.last.as_ref().map(|m| m.author))
                    .chain(shown)
            {
                if seen.insert(user) {
                    user_ids.push(user);
                }
            }
        }
        // In wire form: a page sends a few hundred users, each written as
        // the cache keeps it rather than cloned and encoded anew.
        let encoded_users = self
            .user_cache
            .encoded_users_outside(self.store.as_ref(), &user_ids)
            .await?;

        let mut page = chats::Chats {
            chats: Vec::with_capacity(entries.len()),
            messages: Vec::with_capacity(entries.len()),
            groups: Vec::with_capacity(entries.len()),
            users: Vec::new(),
            encoded_users,
        };
        for entry in entries {
            let ChatEntry {
                chat,
                member,
                last,
                participants,
            } = entry;
            page.chats.push(render::conversation(&chat, &member));
            if let Some(message) = last {
                page.messages
                    .push(render::last_message(message, &chat, caller));
            }
            if chat.kind == ChatKind::Group {
                page.groups
                    .push(render::group(&chat, &participants, caller));
            }
        }
        Ok(page)
    }

    /// One conversation, read without any lock or write: a chat the caller
    /// has is one statement; a direct chat nobody has written to yet is
    /// shown empty, as it would be.
    pub async fn get(&self, caller: UserId, target: ChatTarget) -> Result<chats::Chat> {
        // Read on its own (not in a reader of this call) so that the engine
        // may answer calls made at the same time together.
        if let Some(entry) = self
            .store
            .chat_entry(chat_key(caller, target), caller)
            .await?
        {
            let is_group = entry.chat.kind == ChatKind::Group;
            let mut wanted: Vec<UserId> = render::referenced_users(
                &entry.chat,
                caller,
                entry.last.as_ref().map(|m| m.author),
            )
            .collect();
            for user in &entry.participants {
                if !wanted.contains(user) {
                    wanted.push(*user);
                }
            }
            let users = self
                .user_cache
                .users_outside(self.store.as_ref(), &wanted)
                .await?;
            let last = entry
                .last
                .map(|last| render::last_message(last, &entry.chat, caller));
            return Ok(render::chat(
                &entry.chat,
                &entry.member,
                last,
                is_group.then_some(entry.participants.as_slice()),
                users,
            ));
        }
        // Not a member (NOT_FOUND), or a chat the caller has no row in yet.
        let mut tx = self.store.reader().await?;
        let access = self.access(tx.as_mut(), caller, target, Mode::Read).await?;
        let (chat, member) = match access {
            Some(Access {
                chat,
                member: Some(member),
            }) => (chat, member),
            Some(Access { chat, member: None }) => {
                let member = self.new_member(&chat, caller);
                (chat, member)
            }
            None => {
                let chat = unopened(caller, target).ok_or_else(Error::chat_not_found)?;
                let member = self.new_member(&chat, caller);
                (chat, member)
            }
        };
        let view = self.chat_view(tx.as_mut(), &chat, &member).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn set_draft(&self, caller: UserId, target: ChatTarget, draft: Draft) -> Result<()> {
        let draft = draft.into_option();
        self.change_member(caller, target, |m| {
            let changed = m.draft != draft;
            m.draft.clone_from(&draft);
            changed
        })
        .await
    }

    pub async fn set_notification_prefs(
        &self,
        caller: UserId,
        target: ChatTarget,
        prefs: types::NotifPrefs,
    ) -> Result<()> {
        self.change_member(caller, target, |m| {
            let changed = m.notif != prefs as i32;
            m.notif = prefs as i32;
            changed
        })
        .await
    }

    /// Moves the caller's read pointer forward to `message`, which must be in
    /// the chat; a pointer already at or past it stays where it is. Costs
    /// the same however many messages it marks read, and locks only the
    /// caller's own row.
    pub async fn mark_read(
        &self,
        caller: UserId,
        target: ChatTarget,
        message: MessageId,
    ) -> Result<()> {
        let mut tx = self.store.reader().await?;
        // The usual call needs one round trip to check everything.
        let context = tx
            .read_context(chat_key(caller, target), caller, message)
            .await?;
        tx.commit().await?;
        let (chat, member, ordinal) = match context {
            ReadContext {
                chat: Some(chat),
                member: Some(member),
                ordinal,
            } => (chat, member, ordinal),
            _ => {
                // Not a member (NOT_FOUND), or a direct chat without the
                // caller's conversation: one nobody wrote to has no message
                // to mark, and one that has messages has it already (a
                // message gives both sides theirs), but for chats opened by
                // a read before reads stopped creating them.
                let mut tx = self.store.reader().await?;
                let access = self.access(tx.as_mut(), caller, target, Mode::Read).await?;
                let ordinal = match &access {
                    Some(Access { chat, .. }) => tx
                        .message(chat.id, message, false)
                        .await?
                        .map(|m| m.ordinal),
                    None => None,
                };
                tx.commit().await?;
                let (Some(ordinal), Some(access)) = (ordinal, access) else {
                    return Err(no_message(message));
                };
                let (chat, member) = match access {
                    Access {
                        chat,
                        member: Some(member),
                    } => (chat, member),
                    Access { .. } => self.open_conversation(caller, target).await?,
                };
                (chat, member, Some(ordinal))
            }
        };
        let Some(ordinal) = ordinal else {
            return Err(no_message(message));
        };
        if message.get() <= member.last_read {
            return Ok(());
        }
        let mut tx = self.store.begin_relaxed().await?;
        let Some(state) = tx.mark_read(caller, chat.id, message, ordinal).await? else {
            // Already read this far (a concurrent call), or no longer a member.
            return self.commit(tx, Vec::new()).await;
        };
        let update = U::ConversationLastRead(updates::UpdateConversationLastRead {
            chat_ref: Some(render::chat_ref(&chat, caller)),
            last_read_message_id: message.get(),
            unread_count: Some(state.unread),
            unread_mentions_count: Some(state.mentions),
        });
        let logged = tx
            .commit_changes(vec![NewChange::to_all(self.change(update, None), [caller])])
            .await?;
        self.counters.count_logged(&logged);
        self.after_flush.publish(logged);
        Ok(())
    }
}

impl Core {
    /// Applies a change to the caller's own conversation and, when it changed
    /// anything, tells the caller's other sessions with `UpdateChat`. Locks
    /// only the caller's row; a database crash may lose the last moment of
    /// such changes (see [`crate::store::Store::begin_relaxed`]).
    async fn change_member(
        &self,
        caller: UserId,
        target: ChatTarget,
        change: impl Fn(&mut MemberRow) -> bool,
    ) -> Result<()> {
        let (chat, mut member) = match self.own_conversation(caller, target).await? {
            Some(found) => found,
            None => {
                // A direct chat the caller has no conversation in: created
                // only for a change that would show.
                let chat = unopened(caller, target).ok_or_else(Error::chat_not_found)?;
                if !change(&mut self.new_member(&chat, caller)) {
                    return Ok(());
                }
                self.admit(RateLimit::CreateChat, caller).await?;
                self.open_conversation(caller, target).await?
            }
        };
        if !change(&mut member) {
            return Ok(());
        }
        let mut tx = self.store.reader().await?;
        let last = match chat.last_message {
            Some(id) => tx.message(chat.id, id, false).await?,
            None => None,
        };
        let participants = match chat.kind {
            ChatKind::Group => participants(tx.as_mut(), chat.id).await?,
            ChatKind::Direct { .. } => Vec::new(),
        };
        let view = self
            .update_view(tx.as_mut(), &chat, &member, last.as_ref(), &participants)
            .await?;
        tx.commit().await?;
        let mut tx = self.store.begin_relaxed().await?;
        tx.update_member(&member).await?;
        let logged = tx
            .commit_changes(vec![NewChange::to_all(
                self.change(U::Chat(updates::UpdateChat { chat: Some(view) }), None),
                [caller],
            )])
            .await?;
        self.counters.count_logged(&logged);
        self.after_flush.publish(logged);
        Ok(())
    }

    /// The caller's conversation, read without a lock; `None` for a direct
    /// chat the caller has none in yet.
    async fn own_conversation(
        &self,
        caller: UserId,
        target: ChatTarget,
    ) -> Result<Option<(ChatRow, MemberRow)>> {
        let mut tx = self.store.reader().await?;
        let access = self.access(tx.as_mut(), caller, target, Mode::Read).await?;
        tx.commit().await?;
        Ok(match access {
            Some(Access {
                chat,
                member: Some(member),
            }) => Some((chat, member)),
            _ => None,
        })
    }

    /// Creates a direct chat and the caller's conversation in it, if missing.
    async fn open_conversation(
        &self,
        caller: UserId,
        target: ChatTarget,
    ) -> Result<(ChatRow, MemberRow)> {
        let mut tx = self.begin().await?;
        let found = self.access_for_write(tx.as_mut(), caller, target).await?;
        tx.commit().await?;
        Ok(found)
    }
}

fn no_message(message: MessageId) -> Error {
    Error::invalid("message_id", format!("no message {message} in this chat"))
}

/// How a target names its chat in the store.
pub(super) fn chat_key(caller: UserId, target: ChatTarget) -> ChatKey {
    match target {
        ChatTarget::Group(id) => ChatKey::Group(id),
        ChatTarget::Saved => ChatKey::Direct {
            low: caller,
            high: caller,
        },
        ChatTarget::Direct(peer) => ChatKey::Direct {
            low: caller.min(peer),
            high: caller.max(peer),
        },
    }
}
