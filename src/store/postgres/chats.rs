//! Chats on Postgres.

use async_trait::async_trait;

use tokio_postgres::types::ToSql;

use super::rows::*;
use super::tx::{duplicate_on_unique, first_cause, PgTx};
use crate::model::{ChatId, ChatKind, ChatRow, MemberRow, MessageId, UserId};
use crate::store::{ChatStore, StoreError, StoreResult};

#[async_trait]
impl ChatStore for PgTx {
    async fn chat(&mut self, id: ChatId, lock: bool) -> StoreResult<Option<ChatRow>> {
        let sql = format!(
            "SELECT {CHAT_COLUMNS} FROM chats WHERE id = $1{}",
            chat_lock_clause(lock)
        );
        let rows = self.query(&sql, &[&(id.get() as i64)]).await?;
        rows.first().map(chat_from).transpose()
    }

    async fn chats(&mut self, ids_: &[ChatId]) -> StoreResult<Vec<ChatRow>> {
        let rows = self
            .query(
                &format!("SELECT {CHAT_COLUMNS} FROM chats WHERE id = ANY($1)"),
                &[&ids(ids_, ChatId::get)],
            )
            .await?;
        rows.iter().map(chat_from).collect()
    }

    async fn lock_chat(&mut self, id: ChatId) -> StoreResult<Option<(ChatRow, Vec<MemberRow>)>> {
        let chat_sql = format!("SELECT {CHAT_COLUMNS} FROM chats WHERE id = $1 FOR NO KEY UPDATE");
        let members_sql =
            format!("{MEMBER_SELECT} WHERE m.chat_id = $1 ORDER BY m.joined, m.user_id");
        let id = id.get() as i64;
        let params: [&(dyn ToSql + Sync); 1] = [&id];
        // One round trip: the members are read once the lock is held.
        let (begun, chat, members) = tokio::join!(
            self.begin_now(),
            self.pending_rows(&chat_sql, &params).await?,
            self.pending_rows(&members_sql, &params).await?
        );
        let (chat, members) = match (begun, chat, members) {
            (Ok(()), Ok(chat), Ok(members)) => (chat, members),
            (begun, chat, members) => {
                return Err(first_cause(
                    [begun.err(), chat.err(), members.err()]
                        .into_iter()
                        .flatten(),
                ))
            }
        };
        let Some(chat) = chat.first().map(chat_from).transpose()? else {
            return Ok(None);
        };
        Ok(Some((chat, members.iter().map(member_from).collect())))
    }

    async fn direct_chat(
        &mut self,
        low: UserId,
        high: UserId,
        lock: bool,
    ) -> StoreResult<Option<ChatRow>> {
        let sql = format!(
            "SELECT {CHAT_COLUMNS} FROM chats WHERE kind = 0 AND dm_low = $1 AND dm_high = $2{}",
            chat_lock_clause(lock)
        );
        let rows = self
            .query(&sql, &[&(low.get() as i64), &(high.get() as i64)])
            .await?;
        rows.first().map(chat_from).transpose()
    }

    async fn insert_chat(&mut self, chat: &ChatRow) -> StoreResult<()> {
        let (kind, low, high) = match chat.kind {
            ChatKind::Direct { low, high } => {
                (0i16, Some(low.get() as i64), Some(high.get() as i64))
            }
            ChatKind::Group => (1i16, None, None),
        };
        let inserted = self
            .execute(
                "INSERT INTO chats (id, kind, dm_low, dm_high, name, owner_id, photo_file_id,
                                    photo_preview, highlighted_msg_id, last_message_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (dm_low, dm_high) WHERE kind = 0 DO NOTHING",
                &[
                    &(chat.id.get() as i64),
                    &kind,
                    &low,
                    &high,
                    &chat.name,
                    &chat.owner.map(|u| u.get() as i64),
                    &chat.photo.as_ref().map(|p| p.file_id as i64),
                    &chat.photo.as_ref().map(|p| p.preview.as_slice()),
                    &chat.highlighted.map(|m| m.get() as i64),
                    &chat.last_message.map(|m| m.get() as i64),
                ],
            )
            .await
            .map_err(duplicate_on_unique)?;
        if inserted == 0 {
            return Err(StoreError::Duplicate);
        }
        Ok(())
    }

    async fn set_last_message(&mut self, chat: ChatId, last: Option<MessageId>) -> StoreResult<()> {
        let sort_key = last.map_or(chat.get(), MessageId::get) as i64;
        self.execute(
            "WITH chat AS (UPDATE chats SET last_message_id = $2 WHERE id = $1)
             UPDATE members SET sort_key = $3 WHERE chat_id = $1 AND sort_key > $3",
            &[
                &(chat.get() as i64),
                &last.map(|m| m.get() as i64),
                &sort_key,
            ],
        )
        .await?;
        Ok(())
    }

    async fn update_chat(&mut self, chat: &ChatRow) -> StoreResult<()> {
        self.execute(
            "UPDATE chats SET name = $2, owner_id = $3, photo_file_id = $4, photo_preview = $5,
                              highlighted_msg_id = $6
             WHERE id = $1",
            &[
                &(chat.id.get() as i64),
                &chat.name,
                &chat.owner.map(|u| u.get() as i64),
                &chat.photo.as_ref().map(|p| p.file_id as i64),
                &chat.photo.as_ref().map(|p| p.preview.as_slice()),
                &chat.highlighted.map(|m| m.get() as i64),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_chat(&mut self, chat: ChatId) -> StoreResult<()> {
        // Members, messages and invites go with it (ON DELETE CASCADE).
        self.execute("DELETE FROM chats WHERE id = $1", &[&(chat.get() as i64)])
            .await?;
        Ok(())
    }
}

/// Chats are locked with `FOR NO KEY UPDATE`: enough against other writers
/// of the row, and no conflict with the key-share locks that inserting
/// members and messages (their foreign keys) take.
pub(super) fn chat_lock_clause(lock: bool) -> &'static str {
    if lock {
        " FOR NO KEY UPDATE"
    } else {
        ""
    }
}
