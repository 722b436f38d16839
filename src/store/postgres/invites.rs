//! Invites on Postgres.

use async_trait::async_trait;

use super::rows::*;
use super::tx::PgTx;
use crate::model::{ChatId, InviteRow, UserId};
use crate::store::{InviteStore, StoreError, StoreResult};

#[async_trait]
impl InviteStore for PgTx {
    async fn insert_invite(&mut self, invite: &InviteRow) -> StoreResult<()> {
        let inserted = self
            .execute(
                "INSERT INTO invites (code, chat_id, creator_id, created_at, expires_at, max_uses, uses)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &invite.code,
                    &(invite.chat_id.get() as i64),
                    &(invite.creator.get() as i64),
                    &(invite.created_at as i64),
                    &invite.expires_at.map(clamp),
                    &invite.max_uses.map(|m| m.min(i32::MAX as u32) as i32),
                    &(invite.uses as i32),
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Duplicate);
        }
        Ok(())
    }

    async fn invite(&mut self, code: &str, lock: bool) -> StoreResult<Option<InviteRow>> {
        let sql = format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE code = $1{}",
            lock_clause(lock)
        );
        let rows = self.query(&sql, &[&code]).await?;
        Ok(rows.first().map(invite_from))
    }

    async fn invites(
        &mut self,
        chat: ChatId,
        creator: Option<UserId>,
        now: u64,
        limit: usize,
    ) -> StoreResult<Vec<InviteRow>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {INVITE_COLUMNS} FROM invites
                     WHERE chat_id = $1 AND ($2::bigint IS NULL OR creator_id = $2)
                       AND (expires_at IS NULL OR expires_at > $3)
                       AND (max_uses IS NULL OR uses < max_uses)
                     ORDER BY created_at, code LIMIT $4"
                ),
                &[
                    &(chat.get() as i64),
                    &creator.map(|c| c.get() as i64),
                    &clamp(now),
                    &(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        Ok(rows.iter().map(invite_from).collect())
    }

    async fn prune_invites(&mut self, chat: ChatId, now: u64) -> StoreResult<u64> {
        Ok(self
            .execute(
                "DELETE FROM invites WHERE chat_id = $1
                   AND (expires_at <= $2 OR uses >= max_uses)",
                &[&(chat.get() as i64), &clamp(now)],
            )
            .await?)
    }

    async fn count_invites(&mut self, chat: ChatId) -> StoreResult<u64> {
        let rows = self
            .query(
                "SELECT count(*) FROM invites WHERE chat_id = $1",
                &[&(chat.get() as i64)],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }

    async fn delete_invite(&mut self, code: &str) -> StoreResult<()> {
        self.execute("DELETE FROM invites WHERE code = $1", &[&code])
            .await?;
        Ok(())
    }

    async fn count_invite_use(&mut self, code: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE invites SET uses = uses + 1 WHERE code = $1",
            &[&code],
        )
        .await?;
        Ok(())
    }
}
