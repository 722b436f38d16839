//! Typing indicators: ephemeral, never in the database. Each change goes to
//! the chat's other members with seq 0, rendered for each of them.

use super::access::{known_users, Access, Mode};
use super::limits::RateLimit;
use super::target::ChatTarget;
use super::views::participants;
use super::{Core, Typing};
use crate::bus::Delivery;
use crate::ephemeral::{EphemeralError, TypingChange};
use crate::error::{Error, Result};
use crate::model::{ChatRow, Personal, Scope, TypingAction, UserId};
use crate::proto::updates;

use updates::update::Update as U;

impl From<EphemeralError> for Error {
    fn from(error: EphemeralError) -> Self {
        Error::Unavailable(error.to_string())
    }
}

/// Where typing in a chat is kept, and who hears of it.
struct Audience {
    key: String,
    scope: Scope,
    recipients: Vec<UserId>,
}

impl Typing<'_> {
    pub async fn set(
        &self,
        caller: UserId,
        target: ChatTarget,
        typing: bool,
        action: TypingAction,
    ) -> Result<()> {
        self.admit(RateLimit::Typing, caller).await?;
        let Some(audience) = self.audience(caller, target).await? else {
            return Ok(());
        };
        let news = if typing {
            self.ephemeral
                .start_typing(&audience.key, caller, action)
                .await?
                == TypingChange::Changed
        } else {
            self.ephemeral
                .stop_typing(&audience.key, caller, false)
                .await?
        };
        if news {
            self.announce_typing(caller, audience, typing, typing.then_some(action))
                .await;
        }
        Ok(())
    }
}

impl Core {
    /// After a send: the author stopped typing there. Costs one Redis call
    /// unless they were typing. Best effort: the message is already sent,
    /// and an indicator expires by itself.
    pub(super) async fn typing_ended_by_send(&self, caller: UserId, target: ChatTarget) {
        let Some(key) = typing_key(caller, target) else {
            return;
        };
        match self.ephemeral.stop_typing(&key, caller, true).await {
            Ok(true) => {
                if let Ok(Some(audience)) = self.audience(caller, target).await {
                    self.announce_typing(caller, audience, false, None).await;
                }
            }
            Ok(false) => {}
            Err(error) => tracing::debug!(%error, "could not end typing after a send"),
        }
    }

    async fn announce_typing(
        &self,
        caller: UserId,
        audience: Audience,
        typing: bool,
        action: Option<TypingAction>,
    ) {
        // One payload for everyone; each copy renders its own chat ref.
        let change = self.change(
            U::ChatTyping(updates::UpdateChatTyping {
                chat_ref: None,
                user_id: caller.get(),
                typing,
                action: action.map(TypingAction::wire),
            }),
            Some(audience.scope),
        );
        let deliveries = audience
            .recipients
            .into_iter()
            .map(|user| Delivery {
                user,
                seq: 0,
                change: change.clone(),
                personal: Personal::default(),
            })
            .collect();
        self.bus.publish(deliveries).await;
    }

    /// `None` for saved messages: nobody else to tell.
    async fn audience(&self, caller: UserId, target: ChatTarget) -> Result<Option<Audience>> {
        match target {
            ChatTarget::Saved => Ok(None),
            ChatTarget::Direct(peer) => {
                // Typing to someone needs no chat row yet, only that they exist.
                let mut tx = self.store.reader().await?;
                known_users(tx.as_mut(), &[peer]).await?;
                tx.commit().await?;
                Ok(typing_key(caller, target).map(|key| Audience {
                    key,
                    scope: Scope::Direct {
                        low: caller.min(peer),
                        high: caller.max(peer),
                    },
                    recipients: vec![peer],
                }))
            }
            ChatTarget::Group(_) => {
                let mut tx = self.store.reader().await?;
                let Some(Access { chat, .. }) =
                    self.access(tx.as_mut(), caller, target, Mode::Read).await?
                else {
                    return Err(Error::chat_not_found());
                };
                let members = participants(tx.as_mut(), chat.id).await?;
                tx.commit().await?;
                Ok(Some(group_audience(&chat, &members, caller)))
            }
        }
    }
}

/// Where typing in a chat is kept: derived from the target alone, so that
/// ending it after a send needs no database read.
fn typing_key(caller: UserId, target: ChatTarget) -> Option<String> {
    match target {
        ChatTarget::Saved => None,
        ChatTarget::Direct(peer) => Some(format!("d:{}:{}", caller.min(peer), caller.max(peer))),
        ChatTarget::Group(id) => Some(format!("g:{id}")),
    }
}

fn group_audience(chat: &ChatRow, members: &[UserId], caller: UserId) -> Audience {
    Audience {
        key: format!("g:{}", chat.id),
        scope: chat.scope(),
        recipients: members.iter().copied().filter(|m| *m != caller).collect(),
    }
}
