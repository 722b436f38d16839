//! Messages on Postgres.

use async_trait::async_trait;

use prost::Message as _;

use super::rows::*;
use super::tx::PgTx;
use crate::model::{ChatId, MessageId, MessageRow, UserId};
use crate::store::{MessageStore, StoreResult};

#[async_trait]
impl MessageStore for PgTx {
    async fn message(
        &mut self,
        chat: ChatId,
        id: MessageId,
        lock: bool,
    ) -> StoreResult<Option<MessageRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $2 AND chat_id = $1{}",
            lock_clause(lock)
        );
        let rows = self
            .query(&sql, &[&(chat.get() as i64), &clamp(id.get())])
            .await?;
        rows.first().map(message_from).transpose()
    }

    async fn messages_by_id(&mut self, ids_: &[MessageId]) -> StoreResult<Vec<MessageRow>> {
        let rows = self
            .query(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1)"),
                &[&ids(ids_, MessageId::get)],
            )
            .await?;
        messages_from(&rows)
    }

    async fn message_by_client_id(
        &mut self,
        author: UserId,
        client_id: u64,
    ) -> StoreResult<Option<MessageRow>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = $1 AND client_id = $2"
                ),
                &[&(author.get() as i64), &(client_id as i64)],
            )
            .await?;
        rows.first().map(message_from).transpose()
    }

    async fn update_message(&mut self, m: &MessageRow) -> StoreResult<()> {
        self.execute(
            "UPDATE messages SET mentions = $3, body = $4 WHERE id = $2 AND chat_id = $1",
            &[
                &(m.chat_id.get() as i64),
                &(m.id.get() as i64),
                &ids(&m.mentions, UserId::get),
                &m.body.encode_to_vec(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_messages(&mut self, chat: ChatId, ids_: &[MessageId]) -> StoreResult<()> {
        self.execute(
            "DELETE FROM messages WHERE chat_id = $1 AND id = ANY($2)",
            &[&(chat.get() as i64), &ids(ids_, MessageId::get)],
        )
        .await?;
        Ok(())
    }

    async fn messages_before(
        &mut self,
        chat: ChatId,
        before: Option<MessageId>,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1 AND id < $2
                     ORDER BY id DESC LIMIT $3"
                ),
                &[
                    &(chat.get() as i64),
                    &before.map_or(i64::MAX, |b| clamp(b.get())),
                    &(limit as i64),
                ],
            )
            .await?;
        messages_from(&rows)
    }

    async fn messages_after(
        &mut self,
        chat: ChatId,
        after: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1 AND id > $2
                     ORDER BY id ASC LIMIT $3"
                ),
                &[&(chat.get() as i64), &clamp(after.get()), &(limit as i64)],
            )
            .await?;
        messages_from(&rows)
    }
}
