//! Posting on Postgres: a send's checks in one round trip, and a batch's
//! writes, log append and commit all in flight at once.

use async_trait::async_trait;

use futures_util::future::join_all;
use prost::Message as _;

use super::members::{member_params, INSERT_MEMBER};
use super::rows::*;
use super::tx::{duplicate_on_unique, is_aborted, Pending, PgTx, APPEND};
use crate::model::{ChatKey, LoggedUpdate, MessageId, NewChange, UserId};
use crate::store::{PostStore, PostWrites, SendContext, StoreError, StoreResult};

impl PgTx {
    /// A batch's writes besides the log, prepared and ready to run together.
    pub(super) async fn post_writes<'a>(
        &'a self,
        w: &'a PostWrites,
    ) -> StoreResult<Vec<Pending<'a>>> {
        let chat = w.chat.get() as i64;
        let newest = w.last_message.map(|m| m.get() as i64);
        let sort_key = w.messages.iter().map(|m| m.id.get()).max().unwrap_or(0) as i64;
        let mut writes: Vec<Pending<'_>> = Vec::new();
        for m in &w.new_members {
            writes.push(self.pending(INSERT_MEMBER, member_params(m)).await?);
        }
        writes.push(self.pending(
            "INSERT INTO messages (chat_id, id, author_id, client_id, mentions, body, ordinal)
             SELECT $1, id, author, client, mentions::bigint[], body, ordinal
             FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::bytea[], $7::bigint[])
                  AS t(id, author, client, mentions, body, ordinal)",
            vec![
                Box::new(chat),
                Box::new(w.messages.iter().map(|m| m.id.get() as i64).collect::<Vec<_>>()),
                Box::new(w.messages.iter().map(|m| m.author.get() as i64).collect::<Vec<_>>()),
                Box::new(
                    w.messages
                        .iter()
                        .map(|m| m.client_id.map(|c| c as i64))
                        .collect::<Vec<_>>(),
                ),
                Box::new(
                    w.messages
                        .iter()
                        .map(|m| mention_list(&m.mentions))
                        .collect::<Vec<_>>(),
                ),
                Box::new(w.messages.iter().map(|m| m.body.encode_to_vec()).collect::<Vec<_>>()),
                Box::new(w.messages.iter().map(|m| m.ordinal as i64).collect::<Vec<_>>()),
            ],
        ).await?);
        writes.push(
            self.pending(
                "UPDATE chats SET msg_seq = $2, last_message_id = $3 WHERE id = $1",
                vec![Box::new(chat), Box::new(w.msg_seq as i64), Box::new(newest)],
            )
            .await?,
        );
        writes.push(
            self.pending(
                "UPDATE members SET sort_key = $2 WHERE chat_id = $1 AND sort_key < $2",
                vec![Box::new(chat), Box::new(sort_key)],
            )
            .await?,
        );
        if !w.readers.is_empty() {
            writes.push(
                self.pending(
                    "UPDATE members m SET last_read = GREATEST(m.last_read, r.last_read),
                     read_seq = GREATEST(m.read_seq, r.read_seq), skipped = 0,
                     mentions = r.mentions, draft = NULL
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::int[])
                      AS r(user_id, last_read, read_seq, mentions)
                 WHERE m.chat_id = $1 AND m.user_id = r.user_id",
                    vec![
                        Box::new(chat),
                        Box::new(
                            w.readers
                                .iter()
                                .map(|r| r.user.get() as i64)
                                .collect::<Vec<_>>(),
                        ),
                        Box::new(
                            w.readers
                                .iter()
                                .map(|r| r.last_read.get() as i64)
                                .collect::<Vec<_>>(),
                        ),
                        Box::new(
                            w.readers
                                .iter()
                                .map(|r| r.read_seq as i64)
                                .collect::<Vec<_>>(),
                        ),
                        Box::new(
                            w.readers
                                .iter()
                                .map(|r| r.mentions as i32)
                                .collect::<Vec<_>>(),
                        ),
                    ],
                )
                .await?,
            );
        }
        if !w.mentioned.is_empty() {
            writes.push(
                self.pending(
                    "UPDATE members m SET mentions = m.mentions + x.n
                 FROM unnest($2::bigint[], $3::int[]) AS x(user_id, n)
                 WHERE m.chat_id = $1 AND m.user_id = x.user_id",
                    vec![
                        Box::new(chat),
                        Box::new(
                            w.mentioned
                                .iter()
                                .map(|(u, _)| u.get() as i64)
                                .collect::<Vec<_>>(),
                        ),
                        Box::new(
                            w.mentioned
                                .iter()
                                .map(|(_, n)| *n as i32)
                                .collect::<Vec<_>>(),
                        ),
                    ],
                )
                .await?,
            );
        }
        let (mention_users, mention_ordinals): (Vec<i64>, Vec<i64>) = w
            .messages
            .iter()
            .flat_map(|m| {
                m.mentions
                    .iter()
                    .map(|u| (u.get() as i64, m.ordinal as i64))
            })
            .unzip();
        if !mention_users.is_empty() {
            writes.push(
                self.pending(
                    "INSERT INTO message_mentions (chat_id, user_id, ordinal)
                 SELECT $1, * FROM unnest($2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING",
                    vec![
                        Box::new(chat),
                        Box::new(mention_users),
                        Box::new(mention_ordinals),
                    ],
                )
                .await?,
            );
        }
        Ok(writes)
    }

    /// Runs a batch's writes, its log append and, when given, its commit,
    /// all in flight at once: one round trip for the batch. After a failure
    /// the later statements fail only because the transaction is aborted
    /// (and a COMMIT then rolls back): the first failure is the one reported.
    pub(super) async fn run_posts(
        &self,
        w: &PostWrites,
        changes: &[NewChange],
        commit: Option<&str>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let writes = self.post_writes(w).await?;
        let append = self.client().prepare_cached(APPEND).await?;
        let end = async {
            if let Some(commit) = commit {
                self.client().batch_execute(commit).await?;
            }
            Ok::<_, StoreError>(())
        };
        let (begun, written, logged, ended) = tokio::join!(
            self.begin_now(),
            join_all(writes),
            self.append_prepared(&append, changes),
            end
        );
        begun?;
        let mut failures = written.into_iter().filter_map(Result::err);
        let cause = failures.find(|e| !is_aborted(e));
        match (cause, logged) {
            (None, Ok(logged)) => ended.map(|()| logged),
            (Some(cause), _) | (None, Err(cause)) => Err(duplicate_on_unique(cause)),
        }
    }
}

#[async_trait]
impl PostStore for PgTx {
    async fn send_context(
        &mut self,
        chat: ChatKey,
        author: UserId,
        client_id: Option<u64>,
    ) -> StoreResult<SendContext> {
        let (on, low_or_id, high) = key_join(chat);
        let sql = format!(
            "SELECT {chat}, {user},
                    EXISTS (SELECT 1 FROM members m WHERE m.chat_id = c.id AND m.user_id = $3),
                    (SELECT id FROM messages WHERE author_id = $3 AND client_id = $4)
             FROM (SELECT 1) AS one
             LEFT JOIN chats c ON {on} AND $2::bigint IS NOT NULL
             LEFT JOIN users u ON u.id = $3",
            chat = prefixed("c", CHAT_COLUMNS),
            user = prefixed("u", USER_COLUMNS),
        );
        let rows = self
            .query(
                &sql,
                &[
                    &low_or_id,
                    &high,
                    &(author.get() as i64),
                    &client_id.map(|c| c as i64),
                ],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(SendContext::default());
        };
        let chat_columns = CHAT_COLUMNS.split(',').count();
        let user_columns = USER_COLUMNS.split(',').count();
        let chat = match row.get::<_, Option<i64>>(0) {
            Some(_) => Some(chat_from(row)?),
            None => None,
        };
        let author = row
            .get::<_, Option<i64>>(chat_columns)
            .map(|_| user_at(row, chat_columns));
        let at = chat_columns + user_columns;
        Ok(SendContext {
            member: chat.is_some() && row.get::<_, Option<bool>>(at).unwrap_or(false),
            chat,
            author,
            sent: row
                .get::<_, Option<i64>>(at + 1)
                .map(|id| MessageId(id as u64)),
        })
    }

    async fn write_posts(
        &mut self,
        w: &PostWrites,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        self.run_posts(w, &changes, None).await
    }
}

/// A message's mentions as an array literal, so that a batch can pass one
/// list per message through a single array parameter.
pub(super) fn mention_list(users: &[UserId]) -> String {
    let ids: Vec<String> = users.iter().map(|u| u.get().to_string()).collect();
    format!("{{{}}}", ids.join(","))
}
