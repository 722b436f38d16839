//! A transaction: a pooled connection between `BEGIN` and `COMMIT`, with
//! every statement prepared once per connection and traced.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::Object;
use prost::Message as _;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tracing::Instrument as _;

use super::rows::*;
use crate::domain::ids::{ChatId, MessageId, UserId};
use crate::proto::{types, updates};
use crate::store::{
    ChatKind, ChatRow, ConversationRange, InviteRow, LoggedUpdate, MemberRow, MessageRow,
    StoreError, StoreResult, Tx,
};

pub struct PgTx {
    /// `None` once committed.
    client: Option<Object>,
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // Dropped mid-transaction (an error, or the caller went away): roll
        // back before the connection goes back to the pool, or discard it
        // when there is no runtime left to do that on.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        let _ = Object::take(client);
                    }
                });
            }
            Err(_) => {
                let _ = Object::take(client);
            }
        }
    }
}

impl PgTx {
    /// Wraps a connection on which `BEGIN` has run.
    pub(super) fn new(client: Object) -> Self {
        Self {
            client: Some(client),
        }
    }

    fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("a transaction is used only until it commits")
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let client = self.client();
        async {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query(&statement, params).await?)
        }
        .instrument(statement_span(sql))
        .await
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let client = self.client();
        async {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.execute(&statement, params).await?)
        }
        .instrument(statement_span(sql))
        .await
    }
}

/// A span per statement, under the RPC's. The SQL is this file's constant
/// text; values travel as parameters and are never recorded.
fn statement_span(sql: &str) -> tracing::Span {
    let operation = sql.split_whitespace().next().unwrap_or("SQL");
    tracing::info_span!(
        "db",
        otel.name = %format!("{operation} postgres"),
        otel.kind = "client",
        db.system = "postgresql",
        db.operation.name = %operation,
        db.query.text = %sql,
    )
}

#[async_trait]
impl Tx for PgTx {
    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let client = self.client.take().expect("commit happens once");
        client.batch_execute("COMMIT").await?;
        Ok(())
    }

    async fn users(&mut self, ids_: &[UserId]) -> StoreResult<Vec<types::User>> {
        let rows = self
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1)"),
                &[&ids(ids_, UserId::get)],
            )
            .await?;
        Ok(rows.iter().map(user_from).collect())
    }

    async fn user_ids_by_username(&mut self, names: &[String]) -> StoreResult<Vec<UserId>> {
        let rows = self
            .query("SELECT id FROM users WHERE username = ANY($1)", &[&names])
            .await?;
        Ok(rows
            .iter()
            .map(|r| UserId(r.get::<_, i64>(0) as u64))
            .collect())
    }

    async fn upsert_users(&mut self, users: &[types::User]) -> StoreResult<()> {
        let id: Vec<i64> = users.iter().map(|u| u.id as i64).collect();
        let name: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        let username: Vec<Option<&str>> = users.iter().map(|u| u.username.as_deref()).collect();
        let photo_id: Vec<Option<i64>> = users
            .iter()
            .map(|u| u.photo.as_ref().map(|p| p.file_id as i64))
            .collect();
        let preview: Vec<Option<&[u8]>> = users
            .iter()
            .map(|u| u.photo.as_ref().map(|p| p.preview.as_slice()))
            .collect();
        let bot: Vec<bool> = users.iter().map(|u| u.bot).collect();
        let icon: Vec<Option<i64>> = users.iter().map(|u| u.icon.map(|v| v as i64)).collect();
        let color: Vec<Option<i64>> = users.iter().map(|u| u.color.map(i64::from)).collect();
        self.execute(
            "INSERT INTO users (id, name, username, photo_file_id, photo_preview, bot, icon, color)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bytea[],
                                  $6::boolean[], $7::bigint[], $8::bigint[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, username = EXCLUDED.username,
                 photo_file_id = EXCLUDED.photo_file_id, photo_preview = EXCLUDED.photo_preview,
                 bot = EXCLUDED.bot, icon = EXCLUDED.icon, color = EXCLUDED.color",
            &[
                &id, &name, &username, &photo_id, &preview, &bot, &icon, &color,
            ],
        )
        .await?;
        Ok(())
    }

    async fn insert_user_if_absent(&mut self, id: UserId, name: &str) -> StoreResult<()> {
        self.execute(
            "INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[&(id.get() as i64), &name],
        )
        .await?;
        Ok(())
    }

    async fn chat(&mut self, id: ChatId, lock: bool) -> StoreResult<Option<ChatRow>> {
        let sql = format!(
            "SELECT {CHAT_COLUMNS} FROM chats WHERE id = $1{}",
            lock_clause(lock)
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

    async fn direct_chat(
        &mut self,
        low: UserId,
        high: UserId,
        lock: bool,
    ) -> StoreResult<Option<ChatRow>> {
        let sql = format!(
            "SELECT {CHAT_COLUMNS} FROM chats WHERE kind = 0 AND dm_low = $1 AND dm_high = $2{}",
            lock_clause(lock)
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
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
            .await?;
        if inserted == 0 {
            return Err(StoreError::Duplicate);
        }
        Ok(())
    }

    async fn set_last_message(&mut self, chat: ChatId, last: Option<MessageId>) -> StoreResult<()> {
        self.execute(
            "UPDATE chats SET last_message_id = $2 WHERE id = $1",
            &[&(chat.get() as i64), &last.map(|m| m.get() as i64)],
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

    async fn members_of(&mut self, chats: &[ChatId]) -> StoreResult<Vec<(ChatId, UserId)>> {
        let rows = self
            .query(
                "SELECT chat_id, user_id FROM members WHERE chat_id = ANY($1)
                 ORDER BY chat_id, joined, user_id",
                &[&ids(chats, ChatId::get)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    ChatId(r.get::<_, i64>(0) as u64),
                    UserId(r.get::<_, i64>(1) as u64),
                )
            })
            .collect())
    }

    async fn remove_member(&mut self, chat: ChatId, user: UserId) -> StoreResult<()> {
        self.execute(
            "DELETE FROM members WHERE chat_id = $1 AND user_id = $2",
            &[&(chat.get() as i64), &(user.get() as i64)],
        )
        .await?;
        Ok(())
    }

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
    ) -> StoreResult<Vec<InviteRow>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {INVITE_COLUMNS} FROM invites
                     WHERE chat_id = $1 AND ($2::bigint IS NULL OR creator_id = $2)
                     ORDER BY created_at, code"
                ),
                &[&(chat.get() as i64), &creator.map(|c| c.get() as i64)],
            )
            .await?;
        Ok(rows.iter().map(invite_from).collect())
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

    async fn member(
        &mut self,
        chat: ChatId,
        user: UserId,
        lock: bool,
    ) -> StoreResult<Option<MemberRow>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE chat_id = $1 AND user_id = $2{}",
            lock_clause(lock)
        );
        let rows = self
            .query(&sql, &[&(chat.get() as i64), &(user.get() as i64)])
            .await?;
        Ok(rows.first().map(member_from))
    }

    async fn members(&mut self, chat: ChatId) -> StoreResult<Vec<MemberRow>> {
        let rows = self
            .query(
                &format!("SELECT {MEMBER_COLUMNS} FROM members WHERE chat_id = $1 ORDER BY joined, user_id"),
                &[&(chat.get() as i64)],
            )
            .await?;
        Ok(rows.iter().map(member_from).collect())
    }

    async fn insert_member(&mut self, m: &MemberRow) -> StoreResult<()> {
        self.execute(
            "INSERT INTO members (chat_id, user_id, joined, sort_key, last_read, unread, mentions, draft, notif)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &(m.chat_id.get() as i64),
                &(m.user_id.get() as i64),
                &(m.joined as i64),
                &(m.sort_key as i64),
                &(m.last_read as i64),
                &(m.unread as i32),
                &(m.mentions as i32),
                &m.draft,
                &(m.notif as i16),
            ],
        )
        .await?;
        Ok(())
    }

    async fn update_member(&mut self, m: &MemberRow) -> StoreResult<()> {
        self.execute(
            "UPDATE members SET sort_key = $3, last_read = $4, unread = $5, mentions = $6, draft = $7, notif = $8
             WHERE chat_id = $1 AND user_id = $2",
            &[
                &(m.chat_id.get() as i64),
                &(m.user_id.get() as i64),
                &(m.sort_key as i64),
                &(m.last_read as i64),
                &(m.unread as i32),
                &(m.mentions as i32),
                &m.draft,
                &(m.notif as i16),
            ],
        )
        .await?;
        Ok(())
    }

    async fn conversations(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<MemberRow>> {
        let before = range.before.map_or(i64::MAX, clamp);
        let after = range.after.map_or(0, clamp);
        let rows = self
            .query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM members
                     WHERE user_id = $1 AND sort_key < $2 AND sort_key > $3
                     ORDER BY sort_key DESC LIMIT $4"
                ),
                &[&(user.get() as i64), &before, &after, &(range.limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(member_from).collect())
    }

    async fn record_message(
        &mut self,
        chat: ChatId,
        message: MessageId,
        author: UserId,
        mentioned: &[UserId],
    ) -> StoreResult<Vec<MemberRow>> {
        let rows = self
            .query(
                "WITH old AS (
                     SELECT chat_id, user_id, joined, sort_key, last_read, unread, mentions, draft, notif
                     FROM members WHERE chat_id = $1 FOR UPDATE)
                 UPDATE members m SET
                     sort_key = GREATEST(m.sort_key, $2),
                     last_read = CASE WHEN m.user_id = $3 THEN GREATEST(m.last_read, $2) ELSE m.last_read END,
                     unread = CASE WHEN m.user_id = $3 THEN 0 ELSE m.unread + 1 END,
                     mentions = CASE WHEN m.user_id = $3 THEN 0
                                     WHEN m.user_id = ANY($4) THEN m.mentions + 1
                                     ELSE m.mentions END,
                     draft = CASE WHEN m.user_id = $3 THEN NULL ELSE m.draft END
                 FROM old WHERE m.chat_id = old.chat_id AND m.user_id = old.user_id
                 RETURNING old.chat_id, old.user_id, old.joined, old.sort_key, old.last_read,
                           old.unread, old.mentions, old.draft, old.notif",
                &[
                    &(chat.get() as i64),
                    &(message.get() as i64),
                    &(author.get() as i64),
                    &ids(mentioned, UserId::get),
                ],
            )
            .await?;
        Ok(rows.iter().map(member_from).collect())
    }

    async fn forget_messages(&mut self, chat: ChatId, deleted: &[MessageRow]) -> StoreResult<()> {
        for message in deleted {
            self.execute(
                "UPDATE members SET unread = GREATEST(unread - 1, 0),
                     mentions = CASE WHEN user_id = ANY($4) THEN GREATEST(mentions - 1, 0) ELSE mentions END
                 WHERE chat_id = $1 AND last_read < $2 AND user_id <> $3",
                &[
                    &(chat.get() as i64),
                    &(message.id.get() as i64),
                    &(message.author.get() as i64),
                    &ids(&message.mentions, UserId::get),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn remention(
        &mut self,
        chat: ChatId,
        message: MessageId,
        removed: &[UserId],
        added: &[UserId],
    ) -> StoreResult<()> {
        self.execute(
            "UPDATE members SET mentions = CASE WHEN user_id = ANY($4) THEN mentions + 1
                                                ELSE GREATEST(mentions - 1, 0) END
             WHERE chat_id = $1 AND last_read < $2 AND (user_id = ANY($3) OR user_id = ANY($4))",
            &[
                &(chat.get() as i64),
                &(message.get() as i64),
                &ids(removed, UserId::get),
                &ids(added, UserId::get),
            ],
        )
        .await?;
        Ok(())
    }

    async fn count_after(
        &mut self,
        chat: ChatId,
        after: MessageId,
        user: UserId,
    ) -> StoreResult<(u32, u32)> {
        let rows = self
            .query(
                "SELECT count(*) FILTER (WHERE author_id <> $3),
                        count(*) FILTER (WHERE author_id <> $3 AND $3 = ANY(mentions))
                 FROM messages WHERE chat_id = $1 AND id > $2",
                &[
                    &(chat.get() as i64),
                    &clamp(after.get()),
                    &(user.get() as i64),
                ],
            )
            .await?;
        let row = &rows[0];
        Ok((row.get::<_, i64>(0) as u32, row.get::<_, i64>(1) as u32))
    }

    async fn insert_message(&mut self, m: &MessageRow) -> StoreResult<()> {
        let inserted = self
            .execute(
                "INSERT INTO messages (chat_id, id, author_id, client_id, mentions, body)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &(m.chat_id.get() as i64),
                    &(m.id.get() as i64),
                    &(m.author.get() as i64),
                    &m.client_id.map(|c| c as i64),
                    &ids(&m.mentions, UserId::get),
                    &m.body.encode_to_vec(),
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Duplicate);
        }
        Ok(())
    }

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

    async fn append_updates(
        &mut self,
        entries: Vec<(UserId, updates::Update)>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Heads are taken in ascending user order so that concurrent appends
        // to overlapping sets of users cannot deadlock.
        let mut counts: BTreeMap<UserId, i64> = BTreeMap::new();
        for (user, _) in &entries {
            *counts.entry(*user).or_default() += 1;
        }
        let users: Vec<i64> = counts.keys().map(|u| u.get() as i64).collect();
        let adds: Vec<i64> = counts.values().copied().collect();
        let heads = self
            .query(
                "INSERT INTO update_heads (user_id, seq)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[]) ORDER BY 1
                 ON CONFLICT (user_id) DO UPDATE SET seq = update_heads.seq + EXCLUDED.seq
                 RETURNING user_id, seq",
                &[&users, &adds],
            )
            .await?;
        // The next seq to hand out per user within this append.
        let mut next: BTreeMap<UserId, u64> = BTreeMap::new();
        for row in &heads {
            let user = UserId(row.get::<_, i64>(0) as u64);
            let head = row.get::<_, i64>(1) as u64;
            next.insert(user, head + 1 - counts[&user] as u64);
        }
        let mut logged = Vec::with_capacity(entries.len());
        for (user, update) in entries {
            let seq = next.get_mut(&user).ok_or_else(|| {
                StoreError::Corrupt(format!("no update head returned for user {user}"))
            })?;
            logged.push(LoggedUpdate {
                user,
                seq: *seq,
                update,
            });
            *seq += 1;
        }
        let user_col: Vec<i64> = logged.iter().map(|e| e.user.get() as i64).collect();
        let seq_col: Vec<i64> = logged.iter().map(|e| e.seq as i64).collect();
        let payload_col: Vec<Vec<u8>> = logged.iter().map(|e| e.update.encode_to_vec()).collect();
        self.execute(
            "INSERT INTO updates (user_id, seq, payload)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])",
            &[&user_col, &seq_col, &payload_col],
        )
        .await?;
        Ok(logged)
    }

    async fn update_head(&mut self, user: UserId) -> StoreResult<u64> {
        let rows = self
            .query(
                "SELECT seq FROM update_heads WHERE user_id = $1",
                &[&(user.get() as i64)],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn oldest_update(&mut self, user: UserId) -> StoreResult<Option<u64>> {
        let rows = self
            .query(
                "SELECT seq FROM updates WHERE user_id = $1 ORDER BY seq LIMIT 1",
                &[&(user.get() as i64)],
            )
            .await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64))
    }

    async fn updates_after(
        &mut self,
        user: UserId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let rows = self
            .query(
                "SELECT seq, payload FROM updates WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&(user.get() as i64), &clamp(after), &(limit as i64)],
            )
            .await?;
        rows.iter().map(|r| logged_from(user, r)).collect()
    }
}
