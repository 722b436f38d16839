//! Pages on Postgres: each read RPC's rows in one statement, sent without
//! a transaction around it (a single statement reads one snapshot), on a
//! statement prepared once per connection.
//!
//! Every statement walks an index from the caller's key and is bounded by
//! the page: `members_by_user` for a list of conversations, the chat's key
//! and the member's primary key for one chat, `messages_by_chat` for
//! history. A conversation's last message and a group's participants come
//! from copies on its chat row, which the database keeps in step with the
//! messages and the members (migrations V6 and V7).

use std::sync::LazyLock;

use async_trait::async_trait;
use tokio_postgres::Row;

use super::rows::*;
use super::tx::PgTx;
use crate::model::{ChatKey, UserId};
use crate::store::{
    ChatEntry, ConversationRange, HistoryPage, HistoryRange, PageStore, StoreError, StoreResult,
};

/// A chat's columns, its member's, its last message's and its participants,
/// all from the chat's and the member's rows, then `also`: the shape every
/// [`ChatEntry`] is read from. `c` is the chat and `m` the member.
fn entry_select(also: &str, from: &str) -> String {
    format!(
        "SELECT {chat}, {member}, {LAST_MESSAGE_COPY}, c.roster{also} FROM {from}",
        chat = prefixed("c", CHAT_COLUMNS),
        member = MEMBER_COLUMNS_OF_M,
    )
}

/// [`MESSAGE_COLUMNS`] of a chat's last message, from the copy its row
/// keeps (migration V7); no id when there is none.
const LAST_MESSAGE_COPY: &str =
    "c.id, CASE WHEN c.last_body IS NOT NULL THEN c.last_message_id END,
     c.last_author_id, c.last_client_id, c.last_mentions, c.last_body, c.last_ordinal";

/// The statements, built once; public through [`sql`] for the load
/// benchmark, whose pgbench runs must measure the very statements sent here.
static CHAT_PAGE: LazyLock<String> = LazyLock::new(|| {
    entry_select("", "members m JOIN chats c ON c.id = m.chat_id")
        + " WHERE m.user_id = $1 AND m.sort_key < $2 AND m.sort_key > $3
            ORDER BY m.sort_key DESC LIMIT $4"
});

/// Parameters: the keys' first halves ($1: a group's id, a direct chat's
/// lower user), their second halves ($2: 0, the higher user), the readers
/// ($3) and how many there are ($4). Each row says which it answers (`n`,
/// from 1). The LIMIT holds nothing back: it is there for the plan. The
/// planner guesses 10 rows for `unnest` of a parameter but counts a
/// constant array, so without it every plan made for the values at hand
/// looks cheaper than the generic one, and the statement is planned anew
/// on every call, which costs more than running it (0.3 ms against 0.06).
static CHAT_ENTRIES: LazyLock<[String; 2]> = LazyLock::new(|| {
    [group_key(), direct_key()].map(|on| {
        let on = on.replace("$1", "k.a").replace("$2", "k.b");
        entry_select(
            ", k.n",
            &format!(
                "(SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
                  WITH ORDINALITY LIMIT $4) AS k(a, b, u, n)
                 JOIN chats c ON {on}
                 JOIN members m ON m.chat_id = c.id AND m.user_id = k.u"
            ),
        )
    })
});

/// Parameters: the key ($1, $2), the reader ($3), below ($4) and how many
/// ($5), above ($6) and how many ($7). A branch with a limit of 0 reads nothing.
static HISTORY_PAGE: LazyLock<[String; 2]> = LazyLock::new(|| {
    [group_key(), direct_key()].map(|on| {
        format!(
            "SELECT {chat}, m.user_id IS NOT NULL, {page}
             FROM chats c
             LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = $3
             LEFT JOIN LATERAL (
                 (SELECT {MESSAGE_COLUMNS} FROM messages
                  WHERE chat_id = c.id AND id < $4 ORDER BY id DESC LIMIT $5)
                 UNION ALL
                 (SELECT {MESSAGE_COLUMNS} FROM messages
                  WHERE chat_id = c.id AND id > $6 ORDER BY id LIMIT $7)
             ) x ON c.kind = 0 OR m.user_id IS NOT NULL
             WHERE {on} AND $2::bigint IS NOT NULL",
            chat = prefixed("c", CHAT_COLUMNS),
            page = prefixed("x", MESSAGE_COLUMNS),
        )
    })
});

/// Any group's key: which statement a group takes.
const GROUP: ChatKey = ChatKey::Group(crate::model::ChatId(0));

fn group_key() -> &'static str {
    key_join(GROUP).0
}

fn direct_key() -> &'static str {
    key_join(ChatKey::Direct {
        low: UserId(0),
        high: UserId(0),
    })
    .0
}

/// The statement for a key: [0] for a group, [1] for a direct chat.
fn by_key(statements: &[String; 2], key: ChatKey) -> &str {
    let [group, direct] = statements;
    match key {
        ChatKey::Group(_) => group,
        ChatKey::Direct { .. } => direct,
    }
}

/// The read RPCs' statements, as the service sends them (parameters as
/// documented on each).
pub mod sql {
    /// GetChats: $1 user, $2 below sort key, $3 above sort key, $4 limit.
    pub fn chat_page() -> &'static str {
        &super::CHAT_PAGE
    }
    /// GetChat of groups: $1 group ids, $2 zeros, $3 users (arrays of one
    /// length), $4 that length.
    pub fn group_entries() -> &'static str {
        super::by_key(&super::CHAT_ENTRIES, super::GROUP)
    }
    /// GetHistory in a group: $1 group id, $2 0, $3 user, $4 below, $5
    /// older count, $6 above, $7 newer count.
    pub fn group_history() -> &'static str {
        super::by_key(&super::HISTORY_PAGE, super::GROUP)
    }
}

const MEMBER_AT: usize = CHAT_COLUMN_COUNT;
const LAST_AT: usize = MEMBER_AT + MEMBER_COLUMN_COUNT;
const PARTICIPANTS_AT: usize = LAST_AT + MESSAGE_COLUMN_COUNT;
/// Which of the keys asked a row of [`CHAT_ENTRIES`] answers, from 1.
const ANSWERS_AT: usize = PARTICIPANTS_AT + 1;

/// The keys of one kind among those asked, as [`CHAT_ENTRIES`] takes them.
struct KeyColumns {
    /// Where each was asked in the whole list.
    asked: Vec<usize>,
    first: Vec<i64>,
    second: Vec<i64>,
    users: Vec<i64>,
}

impl KeyColumns {
    fn of(wanted: &[(ChatKey, UserId)], kind: impl Fn(&ChatKey) -> bool) -> Self {
        let mut columns = Self {
            asked: Vec::new(),
            first: Vec::new(),
            second: Vec::new(),
            users: Vec::new(),
        };
        for (at, (key, user)) in wanted.iter().enumerate().filter(|(_, (k, _))| kind(k)) {
            let (_, first, second) = key_join(*key);
            columns.asked.push(at);
            columns.first.push(first);
            columns.second.push(second);
            columns.users.push(user.get() as i64);
        }
        columns
    }

    /// The rows of these keys' entries; none asked, no statement.
    async fn read(&self, tx: &PgTx, sql: &str) -> StoreResult<Vec<Row>> {
        if self.asked.is_empty() {
            return Ok(Vec::new());
        }
        tx.query(
            sql,
            &[
                &self.first,
                &self.second,
                &self.users,
                &(self.asked.len() as i64),
            ],
        )
        .await
    }
}

fn entry_from(row: &Row) -> StoreResult<ChatEntry> {
    Ok(ChatEntry {
        chat: chat_at(row, 0)?,
        member: member_at(row, MEMBER_AT),
        last: optional_message_at(row, LAST_AT)?,
        participants: row
            .get::<_, Option<Vec<i64>>>(PARTICIPANTS_AT)
            .unwrap_or_default()
            .into_iter()
            .map(|u| UserId(u as u64))
            .collect(),
    })
}

#[async_trait]
impl PageStore for PgTx {
    async fn chat_page(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<ChatEntry>> {
        let before = range.before.map_or(i64::MAX, clamp);
        let after = range.after.map_or(0, clamp);
        let rows = self
            .query(
                &CHAT_PAGE,
                &[&(user.get() as i64), &before, &after, &(range.limit as i64)],
            )
            .await?;
        rows.iter().map(entry_from).collect()
    }

    async fn chat_entries(
        &mut self,
        wanted: &[(ChatKey, UserId)],
    ) -> StoreResult<Vec<Option<ChatEntry>>> {
        let mut entries = vec![None; wanted.len()];
        let [group_sql, direct_sql] = &*CHAT_ENTRIES;
        let groups = KeyColumns::of(wanted, |key| matches!(key, ChatKey::Group(_)));
        let directs = KeyColumns::of(wanted, |key| matches!(key, ChatKey::Direct { .. }));
        // Both kinds in one round trip: the connection pipelines them.
        let (groups_read, directs_read) =
            tokio::try_join!(groups.read(self, group_sql), directs.read(self, direct_sql),)?;
        for (columns, rows) in [(&groups, groups_read), (&directs, directs_read)] {
            for row in &rows {
                let n = row.get::<_, i64>(ANSWERS_AT);
                let at = usize::try_from(n - 1)
                    .ok()
                    .and_then(|i| columns.asked.get(i))
                    .ok_or_else(|| StoreError::Corrupt(format!("entry {n} was not asked")))?;
                if let Some(entry) = entries.get_mut(*at) {
                    *entry = Some(entry_from(row)?);
                }
            }
        }
        Ok(entries)
    }

    async fn history_page(
        &mut self,
        chat: ChatKey,
        user: UserId,
        range: HistoryRange,
    ) -> StoreResult<HistoryPage> {
        let (_, low_or_id, high) = key_join(chat);
        let below = range.below.map_or(i64::MAX, |b| clamp(b.get()));
        let rows = self
            .query(
                by_key(&HISTORY_PAGE, chat),
                &[
                    &low_or_id,
                    &high,
                    &(user.get() as i64),
                    &below,
                    &(range.older as i64),
                    &clamp(range.above.get()),
                    &(range.newer as i64),
                ],
            )
            .await?;
        let Some(first) = rows.first() else {
            return Ok(HistoryPage::default());
        };
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(message) = optional_message_at(row, CHAT_COLUMN_COUNT + 1)? {
                messages.push(message);
            }
        }
        messages.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
        Ok(HistoryPage {
            chat: Some(chat_at(first, 0)?),
            member: first.get(CHAT_COLUMN_COUNT),
            messages,
        })
    }
}
