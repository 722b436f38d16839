//! Read state on Postgres: read pointers and the counters that deletions
//! and edits move.

use async_trait::async_trait;

use futures_util::future::join_all;
use tokio_postgres::types::ToSql;

use super::rows::*;
use super::tx::{all_ok, first_cause, Pending, PgTx};
use crate::model::{ChatId, ChatKey, MessageId, MessageRow, ReadPoint, ReadState, UserId};
use crate::store::{ReadContext, ReadStore, StoreResult};

#[async_trait]
impl ReadStore for PgTx {
    async fn read_context(
        &mut self,
        chat: ChatKey,
        user: UserId,
        message: MessageId,
    ) -> StoreResult<ReadContext> {
        let (on, low_or_id, high) = key_join(chat);
        let sql = format!(
            "SELECT {chat}, {member},
                    (SELECT ordinal FROM messages WHERE chat_id = c.id AND id = $4)
             FROM (SELECT 1) AS one
             LEFT JOIN chats c ON {on} AND $2::bigint IS NOT NULL
             LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = $3",
            chat = prefixed("c", CHAT_COLUMNS),
            member = MEMBER_COLUMNS_OF_M,
        );
        let rows = self
            .query(
                &sql,
                &[
                    &low_or_id,
                    &high,
                    &(user.get() as i64),
                    &clamp(message.get()),
                ],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(ReadContext::default());
        };
        let chat_columns = CHAT_COLUMNS.split(',').count();
        let member_columns = MEMBER_COLUMN_COUNT;
        let chat = match row.get::<_, Option<i64>>(0) {
            Some(_) => Some(chat_from(row)?),
            None => None,
        };
        let member = row
            .get::<_, Option<i64>>(chat_columns)
            .map(|_| member_at(row, chat_columns));
        Ok(ReadContext {
            chat,
            member,
            ordinal: row
                .get::<_, Option<i64>>(chat_columns + member_columns)
                .map(|o| o as u64),
        })
    }

    async fn mark_read(
        &mut self,
        user: UserId,
        chat: ChatId,
        message: MessageId,
        ordinal: u64,
    ) -> StoreResult<Option<ReadState>> {
        let chat = chat.get() as i64;
        let user = user.get() as i64;
        let id = message.get() as i64;
        let ordinal = ordinal as i64;
        // The row lock first, in a statement of its own: the counts below then
        // run in a snapshot taken once any writer of this row has committed.
        let lock_params: [&(dyn ToSql + Sync); 2] = [&chat, &user];
        let update_params: [&(dyn ToSql + Sync); 4] = [&chat, &user, &id, &ordinal];
        let lock = self
            .pending_rows(
                "SELECT 1 FROM members WHERE chat_id = $1 AND user_id = $2 FOR UPDATE",
                &lock_params,
            )
            .await?;
        let update = self
            .pending_rows(
                "UPDATE members m SET last_read = $3, read_seq = $4,
                 skipped = (SELECT count(*) FROM message_deletions d
                            WHERE d.chat_id = $1 AND d.ordinal > $4 AND d.author_id <> $2),
                 mentions = (SELECT count(*) FROM message_mentions x
                             WHERE x.chat_id = $1 AND x.user_id = $2 AND x.ordinal > $4)
             FROM chats c
             WHERE m.chat_id = $1 AND m.user_id = $2 AND c.id = m.chat_id AND m.last_read < $3
             RETURNING c.msg_seq, m.read_seq, m.skipped, m.mentions",
                &update_params,
            )
            .await?;
        let (begun, locked, rows) = tokio::join!(self.begin_now(), lock, update);
        let rows = match (begun, locked, rows) {
            (Ok(()), Ok(_), Ok(rows)) => rows,
            (begun, locked, rows) => {
                return Err(first_cause(
                    [begun.err(), locked.err(), rows.err()]
                        .into_iter()
                        .flatten(),
                ))
            }
        };
        Ok(rows.first().map(|r| {
            let read = ReadPoint {
                read_seq: r.get::<_, i64>(1) as u64,
                skipped: r.get::<_, i32>(2) as u32,
            };
            ReadState {
                unread: read.unread_at(r.get::<_, i64>(0) as u64),
                mentions: r.get::<_, i32>(3).max(0) as u32,
            }
        }))
    }

    async fn forget_messages(&mut self, chat: ChatId, deleted: &[MessageRow]) -> StoreResult<()> {
        let chat = chat.get() as i64;
        let mut writes: Vec<Pending<'_>> = Vec::new();
        // One statement per message, its condition on the member row itself,
        // so a read pointer that moves meanwhile is seen as it is at the lock.
        for message in deleted {
            writes.push(self.pending(
                "UPDATE members SET skipped = skipped + 1,
                     mentions = CASE WHEN user_id = ANY($4) THEN GREATEST(mentions - 1, 0) ELSE mentions END
                 WHERE chat_id = $1 AND read_seq < $2 AND user_id <> $3",
                vec![
                    Box::new(chat),
                    Box::new(message.ordinal as i64),
                    Box::new(message.author.get() as i64),
                    Box::new(ids(&message.mentions, UserId::get)),
                ],
            ).await?);
        }
        let ordinals: Vec<i64> = deleted.iter().map(|m| m.ordinal as i64).collect();
        let authors: Vec<i64> = deleted.iter().map(|m| m.author.get() as i64).collect();
        writes.push(
            self.pending(
                "INSERT INTO message_deletions (chat_id, ordinal, author_id)
             SELECT $1, * FROM unnest($2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING",
                vec![
                    Box::new(chat),
                    Box::new(ordinals.clone()),
                    Box::new(authors),
                ],
            )
            .await?,
        );
        writes.push(
            self.pending(
                "DELETE FROM message_mentions WHERE chat_id = $1 AND ordinal = ANY($2)",
                vec![Box::new(chat), Box::new(ordinals)],
            )
            .await?,
        );
        let (begun, written) = tokio::join!(self.begin_now(), join_all(writes));
        begun?;
        all_ok(written).map(|_| ())
    }

    async fn remention(
        &mut self,
        message: &MessageRow,
        removed: &[UserId],
        added: &[UserId],
    ) -> StoreResult<()> {
        let chat = message.chat_id.get() as i64;
        let ordinal = message.ordinal as i64;
        let removed = ids(removed, UserId::get);
        let added = ids(added, UserId::get);
        let writes: Vec<Pending<'_>> = vec![
            self.pending(
                "UPDATE members SET mentions = CASE WHEN user_id = ANY($4) THEN mentions + 1
                                                    ELSE GREATEST(mentions - 1, 0) END
                 WHERE chat_id = $1 AND read_seq < $2 AND (user_id = ANY($3) OR user_id = ANY($4))",
                vec![
                    Box::new(chat),
                    Box::new(ordinal),
                    Box::new(removed.clone()),
                    Box::new(added.clone()),
                ],
            ).await?,
            self.pending(
                "DELETE FROM message_mentions WHERE chat_id = $1 AND ordinal = $2 AND user_id = ANY($3)",
                vec![Box::new(chat), Box::new(ordinal), Box::new(removed)],
            ).await?,
            self.pending(
                "INSERT INTO message_mentions (chat_id, user_id, ordinal)
                 SELECT $1, u, $2 FROM unnest($3::bigint[]) AS u ON CONFLICT DO NOTHING",
                vec![Box::new(chat), Box::new(ordinal), Box::new(added)],
            ).await?,
        ];
        let (begun, written) = tokio::join!(self.begin_now(), join_all(writes));
        begun?;
        all_ok(written).map(|_| ())
    }
}
