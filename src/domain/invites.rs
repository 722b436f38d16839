//! Group invites: random codes that let anyone holding one join a group,
//! within an optional expiry and number of uses. A group holds a bounded
//! number of live invites: creating one first deletes the group's dead ones
//! (expired or used up), so its rows never outnumber the cap and listing
//! them costs at most the cap.

use super::access::Locked;
use super::limits::RateLimit;
use super::render;
use super::target::ChatTarget;
use super::values::InviteCode;
use super::views::participants;
use super::Invites;
use crate::error::{Error, Result};
use crate::model::{clock::now_ms, ChatId, InviteRow, UserId};
use crate::proto::{auth, types};
use crate::store::StoreError;

/// 64 URL-safe symbols: a random byte masked to 6 bits picks one uniformly.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// 12 symbols: 72 bits from the operating system's CSPRNG.
const CODE_LENGTH: usize = 12;

/// A validated CreateChatInvite.
pub struct NewInvite {
    pub chat: ChatId,
    /// Unix milliseconds, in the future.
    pub expires_at: Option<u64>,
    /// At least 1.
    pub max_uses: Option<u32>,
}

// `b & 63` is below 64, `ALPHABET`'s length (fixed by its type), so the
// index cannot panic.
#[allow(clippy::indexing_slicing)]
fn new_code() -> Result<String> {
    let mut bytes = [0u8; CODE_LENGTH];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Unavailable(format!("no randomness for an invite code: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect())
}

fn invite_not_found() -> Error {
    Error::NotFound("invite not found, expired or used up".into())
}

impl Invites<'_> {
    /// Deletes every group's dead invites, at most `batch` at a time, so
    /// that a quiet group's do not wait for its next invite; returns how
    /// many went.
    pub async fn prune_dead(&self, batch: usize) -> Result<u64> {
        Ok(self.store.prune_dead_invites(now_ms(), batch).await?)
    }

    pub async fn create(&self, caller: UserId, new: NewInvite) -> Result<String> {
        if new.expires_at.is_some_and(|at| at <= now_ms()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        self.admit(RateLimit::CreateInvite, caller).await?;
        let mut tx = self.begin().await?;
        // Under the group's lock, so that concurrent creations count each
        // other and the cap holds exactly.
        let Locked { chat, .. } = self
            .lock_as_member(tx.as_mut(), caller, ChatTarget::Group(new.chat))
            .await?;
        let now = now_ms();
        tx.prune_invites(chat.id, now).await?;
        let live = tx.count_invites(chat.id).await?;
        let cap = self.limits.max_invites_per_group;
        if live >= cap as u64 {
            return Err(Error::FailedPrecondition(format!(
                "the group has {live} live invites, at most {cap} allowed: delete one, or wait for one to expire or be used up"
            )));
        }
        // 72 random bits make a collision all but impossible; retry anyway.
        for _ in 0..3 {
            let invite = InviteRow {
                code: new_code()?,
                chat_id: chat.id,
                creator: caller,
                created_at: now,
                expires_at: new.expires_at,
                max_uses: new.max_uses,
                uses: 0,
            };
            match tx.insert_invite(&invite).await {
                Ok(()) => {
                    tx.commit().await?;
                    return Ok(invite.code);
                }
                Err(StoreError::Duplicate) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Unavailable(
            "could not pick a fresh invite code; try again".into(),
        ))
    }

    /// The owner sees every usable invite of the group, other members their
    /// own; oldest first, at most the cap. Each preview names the group by
    /// `target_id` only: the caller is a member and has the group already,
    /// and the reply's size then depends on the invites, not on the group's.
    pub async fn list(&self, caller: UserId, id: ChatId) -> Result<auth::InviteList> {
        let mut tx = self.store.reader().await?;
        let chat = self.group_read(tx.as_mut(), caller, id).await?;
        let creator = (chat.owner != Some(caller)).then_some(caller);
        let invites = tx
            .invites(
                chat.id,
                creator,
                now_ms(),
                self.limits.max_invites_per_group,
            )
            .await?;
        let mut creators: Vec<UserId> = invites.iter().map(|i| i.creator).collect();
        creators.sort();
        creators.dedup();
        let creators = tx.users(&creators).await?;
        tx.commit().await?;
        let invites = invites
            .iter()
            .map(|invite| {
                let creator = creators
                    .iter()
                    .find(|u| u.id == invite.creator.get())
                    .cloned();
                preview(invite, chat.id, None, creator)
            })
            .collect();
        Ok(auth::InviteList { invites })
    }

    /// Its creator or the group owner deletes an invite.
    pub async fn delete(&self, caller: UserId, code: &InviteCode) -> Result<()> {
        let mut tx = self.begin().await?;
        let invite = tx
            .invite(code.as_str(), true)
            .await?
            .ok_or_else(invite_not_found)?;
        let chat = self
            .group_read(tx.as_mut(), caller, invite.chat_id)
            .await
            .map_err(|_| invite_not_found())?;
        if invite.creator != caller && chat.owner != Some(caller) {
            return Err(Error::PermissionDenied(
                "only the invite's creator or the group owner may delete it".into(),
            ));
        }
        tx.delete_invite(code.as_str()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Anyone holding a usable code sees what it leads to.
    pub async fn lookup(&self, caller: UserId, code: &InviteCode) -> Result<auth::InvitePreview> {
        let mut tx = self.store.reader().await?;
        let invite = tx
            .invite(code.as_str(), false)
            .await?
            .filter(|i| i.usable(now_ms()))
            .ok_or_else(invite_not_found)?;
        let chat = tx
            .chat(invite.chat_id, false)
            .await?
            .ok_or_else(invite_not_found)?;
        let people = participants(tx.as_mut(), chat.id).await?;
        let creator = tx.users(&[invite.creator]).await?.pop();
        tx.commit().await?;
        let group = render::group(&chat, &people, caller);
        Ok(preview(&invite, chat.id, Some(group), creator))
    }

    /// Joins the caller to the invite's group, counting exactly one use.
    pub async fn redeem(&self, caller: UserId, code: &InviteCode) -> Result<()> {
        self.admit(RateLimit::UseInvite, caller).await?;
        let mut tx = self.begin().await?;
        let chat_id = tx
            .invite(code.as_str(), false)
            .await?
            .ok_or_else(invite_not_found)?
            .chat_id;
        // The group first, then the invite: the order every membership change
        // takes locks in, so concurrent uses and removals cannot deadlock.
        let (chat, members) = tx.lock_chat(chat_id).await?.ok_or_else(invite_not_found)?;
        let invite = tx
            .invite(code.as_str(), true)
            .await?
            .filter(|i| i.usable(now_ms()))
            .ok_or_else(invite_not_found)?;
        tx.count_invite_use(&invite.code).await?;
        let logged = self.join(tx.as_mut(), &chat, members, caller).await?;
        self.commit(tx, logged).await
    }
}

/// `group` is shown to those who hold the code, not to the members listing it.
fn preview(
    invite: &InviteRow,
    chat: ChatId,
    group: Option<types::Group>,
    creator: Option<types::User>,
) -> auth::InvitePreview {
    auth::InvitePreview {
        code: invite.code.clone(),
        creator_id: invite.creator.get(),
        target_id: chat.get(),
        target_type: auth::InviteType::Group as i32,
        expires_at: invite.expires_at,
        creator,
        target_info: group.map(auth::invite_preview::TargetInfo::Chat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_url_safe_and_different() {
        let a = new_code().unwrap();
        let b = new_code().unwrap();
        assert_eq!(a.len(), CODE_LENGTH);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
