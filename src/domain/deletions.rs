//! Deleting messages: by their author or the group's owner, moving the
//! chat's last message back when it goes, with one update to every member.

use super::access::Locked;
use super::target::ChatTarget;
use super::Messages;
use crate::error::{Error, Result};
use crate::model::{MessageId, MessageRow, NewChange, UserId};
use crate::proto::updates;

use updates::update::Update as U;

impl Messages<'_> {
    pub async fn delete(
        &self,
        caller: UserId,
        target: ChatTarget,
        ids: Vec<MessageId>,
    ) -> Result<()> {
        if self.member_chat(caller, target).await?.is_none() {
            // A direct chat without the caller's conversation has no message.
            return Err(no_message(ids.first().copied().unwrap_or(MessageId(0))));
        }
        let mut tx = self.begin().await?;
        let Locked { chat, members, .. } = self.lock_as_member(tx.as_mut(), caller, target).await?;
        let mut doomed = Vec::with_capacity(ids.len());
        for id in &ids {
            let row = tx
                .message(chat.id, *id, true)
                .await?
                .ok_or_else(|| no_message(*id))?;
            let may = row.author == caller || chat.owner == Some(caller);
            if !may {
                return Err(Error::PermissionDenied(format!(
                    "message {id}: only its author or the group owner may delete it"
                )));
            }
            if !doomed.iter().any(|d: &MessageRow| d.id == row.id) {
                doomed.push(row);
            }
        }
        tx.forget_messages(chat.id, &doomed).await?;
        tx.delete_messages(chat.id, &ids).await?;
        if chat.last_message.is_some_and(|last| ids.contains(&last)) {
            let newest = tx
                .messages_before(chat.id, None, 1)
                .await?
                .pop()
                .map(|m| m.id);
            tx.set_last_message(chat.id, newest).await?;
        }
        let change = self.change(
            U::MessageDeleted(updates::UpdateMessageDeleted {
                chat_ref: None,
                message_ids: ids.iter().map(|i| i.get()).collect(),
            }),
            Some(chat.scope()),
        );
        let logged = tx
            .append_changes(vec![NewChange::to_all(
                change,
                members.iter().map(|m| m.user_id),
            )])
            .await?;
        self.commit(tx, logged).await
    }
}

fn no_message(id: MessageId) -> Error {
    Error::invalid("message_ids", format!("no message {id} in this chat"))
}
