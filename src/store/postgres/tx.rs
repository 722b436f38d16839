//! A transaction: a pooled connection between `BEGIN` and `COMMIT`, with
//! every statement prepared once per connection and traced.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use deadpool_postgres::Object;
use futures_util::future::{join_all, try_join_all};
use prost::Message as _;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use tracing::Instrument as _;

use super::rows::*;
use crate::model::{
    ChatId, ChatKey, ChatKind, ChatRow, InviteRow, LoggedUpdate, MemberRow, MessageId, MessageRow,
    NewChange, ReadState, UserId,
};
use crate::proto::types;
use crate::store::{
    ConversationRange, Flush, PostWrites, ReadContext, SendContext, StoreError, StoreResult, Tx,
};

pub struct PgTx {
    /// `None` once committed.
    client: Option<Object>,
    /// False for a reader: no transaction is open, nothing to roll back.
    in_transaction: bool,
    /// The statement that opens the transaction, until it is sent: it goes
    /// out with the first statement, in the same round trip.
    begin: std::sync::Mutex<Option<&'static str>>,
}

/// Commits without waiting for the WAL flush: the locks go at once.
const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off; COMMIT";
/// After an asynchronous COMMIT (its locks already released), a transaction
/// that must write a commit record and wait for its flush: the WAL is
/// flushed in order, so when it returns the earlier commit is durable too.
const FLUSH: &str = "BEGIN; SELECT txid_current(); COMMIT";

/// A statement on its way, so that several can be in flight at once: the
/// connection pipelines them, one round trip for the lot.
type Pending<'a> = Pin<Box<dyn Future<Output = StoreResult<u64>> + Send + 'a>>;

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !self.in_transaction || !self.started() {
            return;
        }
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
    /// A transaction that `begin` opens with its first statement.
    pub(super) fn new(client: Object, begin: &'static str) -> Self {
        Self {
            client: Some(client),
            in_transaction: true,
            begin: std::sync::Mutex::new(Some(begin)),
        }
    }

    /// Reads outside any transaction.
    pub(super) fn reader(client: Object) -> Self {
        Self {
            client: Some(client),
            in_transaction: false,
            begin: std::sync::Mutex::new(None),
        }
    }

    /// Sends the transaction's opening statement if it has not gone yet.
    /// Polled first in a join with the first statements, so it precedes them.
    fn begin_now(&self) -> impl Future<Output = StoreResult<()>> + Send + '_ {
        let begin = self.begin.lock().unwrap_or_else(|e| e.into_inner()).take();
        async move {
            if let Some(sql) = begin {
                self.client().batch_execute(sql).await?;
            }
            Ok(())
        }
    }

    /// Whether a statement has run in the transaction.
    fn started(&self) -> bool {
        self.begin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("a transaction is used only until it commits")
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let client = self.client();
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query(&statement, params).await?)
        };
        let (_, rows) = tokio::try_join!(self.begin_now(), run.instrument(statement_span(sql)))?;
        Ok(rows)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let client = self.client();
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.execute(&statement, params).await?)
        };
        let (_, count) = tokio::try_join!(self.begin_now(), run.instrument(statement_span(sql)))?;
        Ok(count)
    }

    /// A write to run together with others (see [`Pending`]). Prepared
    /// here, before anything runs: a statement already prepared on this
    /// connection would otherwise overtake one still being prepared, and
    /// statements must run in the order given (locks are taken in it).
    async fn pending<'a>(
        &'a self,
        sql: &'a str,
        params: Vec<Box<dyn ToSql + Sync + Send + 'a>>,
    ) -> StoreResult<Pending<'a>> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(Box::pin(
            async move {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                Ok(self.client().execute(&statement, &refs).await?)
            }
            .instrument(statement_span(sql)),
        ))
    }

    /// A read to run together with others, prepared first (see [`PgTx::pending`]).
    async fn pending_rows<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> StoreResult<impl Future<Output = StoreResult<Vec<Row>>> + 'a> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(
            async move { Ok(self.client().query(&statement, params).await?) }
                .instrument(statement_span(sql)),
        )
    }

    /// A batch's writes besides the log, prepared and ready to run together.
    async fn post_writes<'a>(&'a self, w: &'a PostWrites) -> StoreResult<Vec<Pending<'a>>> {
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
    async fn run_posts(
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

    /// Appends changes to their recipients' logs in one statement: the
    /// payloads once, the heads bumped in ascending user order (so that
    /// concurrent appends to overlapping users cannot deadlock), one small
    /// row per recipient.
    async fn append(&self, changes: &[NewChange]) -> StoreResult<Vec<LoggedUpdate>> {
        let statement = self.client().prepare_cached(APPEND).await?;
        let (_, logged) =
            tokio::try_join!(self.begin_now(), self.append_prepared(&statement, changes))?;
        Ok(logged)
    }

    async fn append_prepared(
        &self,
        statement: &Statement,
        changes: &[NewChange],
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let mut counts: BTreeMap<UserId, i64> = BTreeMap::new();
        let mut entry_user = Vec::new();
        let mut entry_pos = Vec::new();
        let mut entry_change = Vec::new();
        let mut entry_unread: Vec<Option<i32>> = Vec::new();
        for new in changes {
            for (user, personal) in &new.recipients {
                let count = counts.entry(*user).or_default();
                *count += 1;
                entry_user.push(user.get() as i64);
                entry_pos.push(*count);
                entry_change.push(new.change.id as i64);
                entry_unread.push(personal.unread.map(|u| u.min(i32::MAX as u32) as i32));
            }
        }
        if entry_user.is_empty() {
            return Ok(Vec::new());
        }
        let change_ids: Vec<i64> = changes.iter().map(|c| c.change.id as i64).collect();
        let payloads: Vec<Vec<u8>> = changes.iter().map(|c| c.change.encode()).collect();
        let users: Vec<i64> = counts.keys().map(|u| u.get() as i64).collect();
        let adds: Vec<i64> = counts.values().copied().collect();
        let heads = self
            .client()
            .query(
                statement,
                &[
                    &change_ids,
                    &payloads,
                    &users,
                    &adds,
                    &entry_user,
                    &entry_pos,
                    &entry_change,
                    &entry_unread,
                ],
            )
            .instrument(statement_span(APPEND))
            .await?;
        // The first seq each user's entries take, in the order given.
        let mut next: BTreeMap<UserId, u64> = BTreeMap::new();
        for row in &heads {
            let user = UserId(row.get::<_, i64>(0) as u64);
            let head = row.get::<_, i64>(1) as u64;
            next.insert(user, head + 1 - counts[&user] as u64);
        }
        let mut logged = Vec::with_capacity(entry_user.len());
        for new in changes {
            for (user, personal) in &new.recipients {
                let seq = next.get_mut(user).ok_or_else(|| {
                    StoreError::Corrupt(format!("no update head returned for user {user}"))
                })?;
                logged.push(LoggedUpdate {
                    user: *user,
                    seq: *seq,
                    change: new.change.clone(),
                    personal: *personal,
                });
                *seq += 1;
            }
        }
        Ok(logged)
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
        if !self.in_transaction || !self.started() {
            // Nothing ran: there is no transaction to end.
            return Ok(());
        }
        finish(client, "COMMIT").await
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
        let (_, chat, members) = tokio::try_join!(
            self.begin_now(),
            self.pending_rows(&chat_sql, &params).await?,
            self.pending_rows(&members_sql, &params).await?
        )?;
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
            "{MEMBER_SELECT} WHERE m.chat_id = $1 AND m.user_id = $2{}",
            if lock { " FOR UPDATE OF m" } else { "" }
        );
        let rows = self
            .query(&sql, &[&(chat.get() as i64), &(user.get() as i64)])
            .await?;
        Ok(rows.first().map(member_from))
    }

    async fn members(&mut self, chat: ChatId) -> StoreResult<Vec<MemberRow>> {
        let rows = self
            .query(
                &format!("{MEMBER_SELECT} WHERE m.chat_id = $1 ORDER BY m.joined, m.user_id"),
                &[&(chat.get() as i64)],
            )
            .await?;
        Ok(rows.iter().map(member_from).collect())
    }

    async fn insert_member(&mut self, m: &MemberRow) -> StoreResult<()> {
        self.execute(
            INSERT_MEMBER,
            &[
                &(m.chat_id.get() as i64),
                &(m.user_id.get() as i64),
                &(m.joined as i64),
                &(m.sort_key as i64),
                &(m.last_read as i64),
                &(m.read_seq as i64),
                &(m.skipped as i32),
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
            "UPDATE members SET draft = $3, notif = $4 WHERE chat_id = $1 AND user_id = $2",
            &[
                &(m.chat_id.get() as i64),
                &(m.user_id.get() as i64),
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
                    "{MEMBER_SELECT}
                     WHERE m.user_id = $1 AND m.sort_key < $2 AND m.sort_key > $3
                     ORDER BY m.sort_key DESC LIMIT $4"
                ),
                &[&(user.get() as i64), &before, &after, &(range.limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(member_from).collect())
    }

    async fn write_posts(
        &mut self,
        w: &PostWrites,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        self.run_posts(w, &changes, None).await
    }

    async fn commit_posts(
        mut self: Box<Self>,
        w: &PostWrites,
        changes: Vec<NewChange>,
        unlock_early: bool,
    ) -> StoreResult<(Vec<LoggedUpdate>, Flush)> {
        let end = if unlock_early { ASYNC_COMMIT } else { "COMMIT" };
        let outcome = self.run_posts(w, &changes, Some(end)).await;
        let client = self.client.take().expect("commit happens once");
        let logged = match outcome {
            Ok(logged) => logged,
            Err(error) => {
                // Rolled back by its COMMIT, or its state unknown: never reused.
                let _ = Object::take(client);
                return Err(error);
            }
        };
        if !unlock_early {
            return Ok((logged, Box::pin(async { Ok(()) })));
        }
        Ok((logged, Box::pin(async move { finish(client, FLUSH).await })))
    }

    async fn read_context(
        &mut self,
        chat: ChatKey,
        user: UserId,
        message: MessageId,
    ) -> StoreResult<ReadContext> {
        let (on, low_or_id, high) = match chat {
            ChatKey::Group(id) => ("c.id = $1 AND c.kind = 1", id.get() as i64, 0),
            ChatKey::Direct { low, high } => (
                "c.kind = 0 AND c.dm_low = $1 AND c.dm_high = $2",
                low.get() as i64,
                high.get() as i64,
            ),
        };
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
        // The unread count as `MemberRow::unread_at` defines it (see
        // `member_columns!` in rows.rs).
        let update = self
            .pending_rows(
                "UPDATE members m SET last_read = $3, read_seq = $4,
                 skipped = (SELECT count(*) FROM message_deletions d
                            WHERE d.chat_id = $1 AND d.ordinal > $4 AND d.author_id <> $2),
                 mentions = (SELECT count(*) FROM message_mentions x
                             WHERE x.chat_id = $1 AND x.user_id = $2 AND x.ordinal > $4)
             FROM chats c
             WHERE m.chat_id = $1 AND m.user_id = $2 AND c.id = m.chat_id AND m.last_read < $3
             RETURNING GREATEST(c.msg_seq - m.read_seq - m.skipped, 0), m.mentions",
                &update_params,
            )
            .await?;
        let (_, _, rows) = tokio::try_join!(self.begin_now(), lock, update)?;
        Ok(rows.first().map(|r| ReadState {
            unread: r.get::<_, i64>(0).clamp(0, i64::from(u32::MAX)) as u32,
            mentions: r.get::<_, i32>(1).max(0) as u32,
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
        tokio::try_join!(self.begin_now(), try_join_all(writes))?;
        Ok(())
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
        tokio::try_join!(self.begin_now(), try_join_all(writes))?;
        Ok(())
    }

    async fn insert_message(&mut self, m: &MessageRow) -> StoreResult<()> {
        let inserted = self
            .execute(
                "INSERT INTO messages (chat_id, id, author_id, client_id, mentions, body, ordinal)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &(m.chat_id.get() as i64),
                    &(m.id.get() as i64),
                    &(m.author.get() as i64),
                    &m.client_id.map(|c| c as i64),
                    &ids(&m.mentions, UserId::get),
                    &m.body.encode_to_vec(),
                    &(m.ordinal as i64),
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

    async fn send_context(
        &mut self,
        chat: ChatKey,
        author: UserId,
        client_id: Option<u64>,
    ) -> StoreResult<SendContext> {
        let (on, low_or_id, high) = match chat {
            ChatKey::Group(id) => ("c.id = $1 AND c.kind = 1", id.get() as i64, 0),
            ChatKey::Direct { low, high } => (
                "c.kind = 0 AND c.dm_low = $1 AND c.dm_high = $2",
                low.get() as i64,
                high.get() as i64,
            ),
        };
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

    async fn append_changes(&mut self, changes: Vec<NewChange>) -> StoreResult<Vec<LoggedUpdate>> {
        self.append(&changes).await
    }

    async fn commit_changes(
        mut self: Box<Self>,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        if !self.in_transaction {
            let logged = self.append_changes(changes).await?;
            self.commit().await?;
            return Ok(logged);
        }
        let statement = self.client().prepare_cached(APPEND).await?;
        let end = async {
            self.client().batch_execute("COMMIT").await?;
            Ok::<_, StoreError>(())
        };
        let (begun, logged, ended) = tokio::join!(
            self.begin_now(),
            self.append_prepared(&statement, &changes),
            end
        );
        let client = self.client.take().expect("commit happens once");
        match (begun, logged, ended) {
            (Ok(()), Ok(logged), Ok(())) => Ok(logged),
            (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
                // Rolled back by its COMMIT, or its state unknown: never reused.
                let _ = Object::take(client);
                Err(error)
            }
        }
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
        max_bytes: usize,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        // The page first, then its running size: rows past `max_bytes` are
        // left for the next read (the first row always comes).
        let rows = self
            .query(
                "SELECT seq, payload, change_id, unread, shared FROM (
                     SELECT t.*, sum(t.size) OVER (ORDER BY t.seq) AS running FROM (
                         SELECT u.seq, u.payload, u.change_id, u.unread, c.payload AS shared,
                                COALESCE(octet_length(c.payload), octet_length(u.payload), 0) AS size
                         FROM updates u LEFT JOIN changes c ON c.id = u.change_id
                         WHERE u.user_id = $1 AND u.seq > $2 ORDER BY u.seq LIMIT $3) t) w
                 WHERE running - size < $4 OR running = size ORDER BY seq",
                &[
                    &(user.get() as i64),
                    &clamp(after),
                    &(limit as i64),
                    &(max_bytes.min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        rows.iter().map(|r| logged_from(user, r)).collect()
    }
}

const INSERT_MEMBER: &str = "INSERT INTO members (chat_id, user_id, joined, sort_key, last_read, read_seq, skipped, mentions, draft, notif)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";

fn member_params<'a>(m: &MemberRow) -> Vec<Box<dyn ToSql + Sync + Send + 'a>> {
    vec![
        Box::new(m.chat_id.get() as i64),
        Box::new(m.user_id.get() as i64),
        Box::new(m.joined as i64),
        Box::new(m.sort_key as i64),
        Box::new(m.last_read as i64),
        Box::new(m.read_seq as i64),
        Box::new(m.skipped as i32),
        Box::new(m.mentions as i32),
        Box::new(m.draft.clone()),
        Box::new(m.notif as i16),
    ]
}

/// A message's mentions as an array literal, so that a batch can pass one
/// list per message through a single array parameter.
fn mention_list(users: &[UserId]) -> String {
    let ids: Vec<String> = users.iter().map(|u| u.get().to_string()).collect();
    format!("{{{}}}", ids.join(","))
}

/// Runs the last statements on a connection before it goes back to the
/// pool; one whose state is unknown after an error is never reused.
async fn finish(client: Object, sql: &str) -> StoreResult<()> {
    if let Err(error) = client.batch_execute(sql).await {
        let _ = Object::take(client);
        return Err(error.into());
    }
    Ok(())
}

/// Whether a statement failed only because an earlier one aborted the transaction.
fn is_aborted(error: &StoreError) -> bool {
    matches!(error, StoreError::Postgres(e)
        if e.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION))
}

/// A unique violation in a batch of posts is a client id taken meanwhile.
fn duplicate_on_unique(error: StoreError) -> StoreError {
    match &error {
        StoreError::Postgres(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
        {
            StoreError::Duplicate
        }
        _ => error,
    }
}

/// Chats are locked with `FOR NO KEY UPDATE`: enough against other writers
/// of the row, and no conflict with the key-share locks that inserting
/// members and messages (their foreign keys) take.
fn chat_lock_clause(lock: bool) -> &'static str {
    if lock {
        " FOR NO KEY UPDATE"
    } else {
        ""
    }
}

/// Appends changes to the log: the payloads once, the heads bumped in
/// ascending user order, one small row per recipient.
const APPEND: &str = "WITH c AS (
         INSERT INTO changes (id, payload)
         SELECT * FROM unnest($1::bigint[], $2::bytea[])
     ), h AS (
         INSERT INTO update_heads (user_id, seq)
         SELECT * FROM unnest($3::bigint[], $4::bigint[]) ORDER BY 1
         ON CONFLICT (user_id) DO UPDATE SET seq = update_heads.seq + EXCLUDED.seq
         RETURNING user_id, seq
     ), e AS (
         INSERT INTO updates (user_id, seq, change_id, unread)
         SELECT e.user_id, h.seq - n.cnt + e.pos, e.change_id, e.unread
         FROM unnest($5::bigint[], $6::bigint[], $7::bigint[], $8::int[])
                  AS e(user_id, pos, change_id, unread)
         JOIN h USING (user_id)
         JOIN unnest($3::bigint[], $4::bigint[]) AS n(user_id, cnt) USING (user_id)
     )
     SELECT user_id, seq FROM h";
