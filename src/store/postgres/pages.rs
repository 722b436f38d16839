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
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::rows::*;
use super::tx::PgTx;
use crate::model::{ChatKey, UserId};
use crate::store::{
    ChatEntry, ConversationRange, HistoryPage, HistoryRange, LastMessage, PageStore, StoreError,
    StoreResult,
};

/// A chat's columns, its member's, its last message's and its participants,
/// all from the chat's and the member's rows, then `also`: the shape every
/// [`ChatEntry`] is read from. `c` is the chat and `m` the member.
///
/// Nothing the reader already knows is sent: not the keys (the chat's id
/// and the asking user), not the unread count (the chat's `msg_seq` and the
/// member's read state give it), not the last message's id (the chat's
/// `last_message_id`). Each column costs the server a call per row to
/// encode it, and encoding is half of what a page costs it: these five
/// took a fifth of the page's throughput under pgbench.
fn entry_select(also: &str, from: &str) -> String {
    format!(
        "SELECT {chat}, {MEMBER_STATE_OF_M}, {LAST_MESSAGE_COPY}, c.roster{also} FROM {from}",
        chat = prefixed("c", CHAT_COLUMNS),
    )
}

/// A chat's last message from the copy its row keeps (migration V7): its
/// author and body, no body when there is none. Only what is rendered:
/// the copy's client id, mentions and ordinal cost the page statement
/// about a tenth of its throughput under pgbench at 32 clients, for
/// nothing a reply shows.
const LAST_MESSAGE_COPY: &str = "c.last_author_id, c.last_body";

/// The statements, built once; public through [`sql`] for the load
/// benchmark, whose pgbench runs must measure the very statements sent here.
static CHAT_PAGE: LazyLock<String> = LazyLock::new(|| {
    entry_select("", "members m JOIN chats c ON c.id = m.chat_id")
        + " WHERE m.user_id = $1 AND m.sort_key < $2 AND m.sort_key > $3
            ORDER BY m.sort_key DESC LIMIT $4"
});

/// GetChats for several readers at once: each question's page is the
/// statement for one, run for that question's values ($1 readers, $2
/// below, $3 above, $4 limits, as arrays), then the question's number
/// (`n`, from 1). $5 is how many questions there are (see [`OneAndMany`]).
static CHAT_PAGES: LazyLock<String> = LazyLock::new(|| {
    let page = CHAT_PAGE
        .replace("$1", "k.u")
        .replace("$2", "k.below")
        .replace("$3", "k.above")
        .replace("$4", "k.lim");
    format!(
        "SELECT p.*, k.n FROM
         (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])
          WITH ORDINALITY LIMIT $5) AS k(u, below, above, lim, n)
         CROSS JOIN LATERAL ({page}) p"
    )
});

/// A read's statement for one question, and for a list of them.
///
/// `one` takes the question's values as parameters. `many` takes each as
/// an array of one element per question, in the same order, then how many
/// questions there are; each row says which it answers (`n`, from 1). Its
/// LIMIT holds nothing back: it is there for the plan. The planner guesses
/// 10 rows for `unnest` of a parameter but counts a constant array, so
/// without it every plan made for the values at hand looks cheaper than the
/// generic one, and the statement is planned anew on every call, which
/// costs more than running it (0.3 ms against 0.06). A question asked
/// alone takes `one`, which costs Postgres about a tenth less.
struct OneAndMany {
    one: String,
    many: String,
}

/// Parameters: the key ($1: a group's id, a direct chat's lower user; $2:
/// 0, the higher user), the reader ($3).
static CHAT_ENTRY: LazyLock<[OneAndMany; 2]> = LazyLock::new(|| {
    [group_key(), direct_key()].map(|on| {
        let one = entry_select(
            "",
            "chats c JOIN members m ON m.chat_id = c.id AND m.user_id = $3",
        ) + &format!(" WHERE {on} AND $2::bigint IS NOT NULL");
        let on = on.replace("$1", "k.a").replace("$2", "k.b");
        let many = entry_select(
            ", k.n",
            &format!(
                "(SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
                  WITH ORDINALITY LIMIT $4) AS k(a, b, u, n)
                 JOIN chats c ON {on}
                 JOIN members m ON m.chat_id = c.id AND m.user_id = k.u"
            ),
        );
        OneAndMany { one, many }
    })
});

/// Parameters: the key ($1, $2, as for [`CHAT_ENTRY`]), the reader ($3),
/// below ($4) and how many ($5), above ($6) and how many ($7). A branch
/// with a limit of 0 reads nothing.
static HISTORY_PAGE: LazyLock<[OneAndMany; 2]> = LazyLock::new(|| {
    [group_key(), direct_key()].map(|on| {
        let page =
            |from: &str, key: &str, also: &str, [reader, below, older, above, newer]: [&str; 5]| {
                format!(
                    "SELECT {chat}, m.user_id IS NOT NULL, {page}{also}
                 FROM {from}
                 LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = {reader}
                 LEFT JOIN LATERAL (
                     (SELECT {MESSAGE_COLUMNS_IN_CHAT} FROM messages
                      WHERE chat_id = c.id AND id < {below} ORDER BY id DESC LIMIT {older})
                     UNION ALL
                     (SELECT {MESSAGE_COLUMNS_IN_CHAT} FROM messages
                      WHERE chat_id = c.id AND id > {above} ORDER BY id LIMIT {newer})
                 ) x ON c.kind = 0 OR m.user_id IS NOT NULL{key}",
                    chat = prefixed("c", CHAT_COLUMNS),
                    page = prefixed("x", MESSAGE_COLUMNS_IN_CHAT),
                )
            };
        let one = page(
            "chats c",
            &format!(" WHERE {on} AND $2::bigint IS NOT NULL"),
            "",
            ["$3", "$4", "$5", "$6", "$7"],
        );
        let on = on.replace("$1", "k.a").replace("$2", "k.b");
        let many = page(
            &format!(
                "(SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[],
                   $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
                 WITH ORDINALITY LIMIT $8) AS k(a, b, u, below, older, above, newer, n)
                 JOIN chats c ON {on}"
            ),
            "",
            ", k.n",
            ["k.u", "k.below", "k.older", "k.above", "k.newer"],
        );
        OneAndMany { one, many }
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

/// The read RPCs' statements, as the service sends them (parameters as
/// documented on each).
pub mod sql {
    /// GetChats: $1 user, $2 below sort key, $3 above sort key, $4 limit.
    pub fn chat_page() -> &'static str {
        &super::CHAT_PAGE
    }
    /// GetChats of readers asked together: the same as arrays of one
    /// length, $5 that length.
    pub fn chat_pages() -> &'static str {
        &super::CHAT_PAGES
    }
    /// GetChat of a group: $1 group id, $2 0, $3 user.
    pub fn group_entry() -> &'static str {
        &super::group_statements(&super::CHAT_ENTRY).one
    }
    /// GetChat of groups asked together: the same as arrays of one length,
    /// $4 that length.
    pub fn group_entries() -> &'static str {
        &super::group_statements(&super::CHAT_ENTRY).many
    }
    /// GetHistory in a group: $1 group id, $2 0, $3 user, $4 below, $5
    /// older count, $6 above, $7 newer count.
    pub fn group_history() -> &'static str {
        &super::group_statements(&super::HISTORY_PAGE).one
    }
    /// GetHistory in groups asked together: the same as arrays of one
    /// length, $8 that length.
    pub fn group_histories() -> &'static str {
        &super::group_statements(&super::HISTORY_PAGE).many
    }
}

fn group_statements(statements: &[OneAndMany; 2]) -> &OneAndMany {
    let [group, _] = statements;
    group
}

const MEMBER_AT: usize = CHAT_COLUMN_COUNT;
/// The last message copy's author, then its body ([`LAST_MESSAGE_COPY`]).
const LAST_AT: usize = MEMBER_AT + MEMBER_STATE_COUNT;
const LAST_BODY_AT: usize = LAST_AT + 1;
const PARTICIPANTS_AT: usize = LAST_AT + 2;
/// Which question a row of an entry list answers, from 1: the column after
/// the entry, in [`CHAT_ENTRY`]'s list form (a key) and in [`CHAT_PAGES`]
/// (a page).
const ENTRY_ANSWERS_AT: usize = PARTICIPANTS_AT + 1;
/// The member's `sort_key`, second of [`MEMBER_STATE_OF_M`].
const SORT_KEY_AT: usize = MEMBER_AT + 1;
/// Which page a row of [`HISTORY_PAGE`]'s list form belongs to, from 1.
const PAGE_ANSWERS_AT: usize = CHAT_COLUMN_COUNT + 1 + MESSAGE_COLUMN_IN_CHAT_COUNT;

/// The questions of one kind (about groups, or about direct chats) among
/// those asked, as a list statement takes them: one array per parameter.
struct Columns<const N: usize> {
    /// Where each was asked in the whole list.
    asked: Vec<usize>,
    values: [Vec<i64>; N],
}

impl<const N: usize> Columns<N> {
    /// The questions about groups and those about direct chats, each as
    /// `values` gives its parameters.
    fn split<T>(wanted: &[T], values: impl Fn(&T) -> (ChatKey, [i64; N])) -> [Self; 2] {
        let mut groups = Self::default();
        let mut directs = Self::default();
        for (at, question) in wanted.iter().enumerate() {
            let (key, row) = values(question);
            let columns = match key {
                ChatKey::Group(_) => &mut groups,
                ChatKey::Direct { .. } => &mut directs,
            };
            columns.asked.push(at);
            for (column, value) in columns.values.iter_mut().zip(row) {
                column.push(value);
            }
        }
        [groups, directs]
    }

    /// The rows answering these questions; none asked, no statement.
    async fn read(&self, tx: &PgTx, sql: &OneAndMany) -> StoreResult<Vec<Row>> {
        match self.asked.len() {
            0 => Ok(Vec::new()),
            1 => {
                let one: Vec<i64> = self
                    .values
                    .iter()
                    .filter_map(|v| v.first().copied())
                    .collect();
                let params: Vec<&(dyn ToSql + Sync)> =
                    one.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                tx.query(&sql.one, &params).await
            }
            count => {
                let count = count as i64;
                let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(N + 1);
                params.extend(self.values.iter().map(|v| v as &(dyn ToSql + Sync)));
                params.push(&count);
                tx.query(&sql.many, &params).await
            }
        }
    }

    /// Where the question a row answers was asked in the whole list: its
    /// number among these (from 1) is in column `at`, unless it was asked
    /// alone.
    fn answered(&self, row: &Row, at: usize) -> StoreResult<usize> {
        if let [alone] = self.asked.as_slice() {
            return Ok(*alone);
        }
        let n = row.get::<_, i64>(at);
        usize::try_from(n - 1)
            .ok()
            .and_then(|i| self.asked.get(i))
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("answer {n} was not asked")))
    }
}

impl<const N: usize> Default for Columns<N> {
    fn default() -> Self {
        Self {
            asked: Vec::new(),
            values: std::array::from_fn(|_| Vec::new()),
        }
    }
}

/// Both kinds' statements together: the connection pipelines them, one
/// round trip for both.
async fn read_both<const N: usize>(
    tx: &PgTx,
    [groups, directs]: &[Columns<N>; 2],
    [group_sql, direct_sql]: &[OneAndMany; 2],
) -> StoreResult<[Vec<Row>; 2]> {
    let (groups_read, directs_read) =
        tokio::try_join!(groups.read(tx, group_sql), directs.read(tx, direct_sql))?;
    Ok([groups_read, directs_read])
}

/// `user`'s entry of the chat in `row`.
fn entry_from(row: &Row, user: UserId) -> StoreResult<ChatEntry> {
    let chat = chat_at(row, 0)?;
    let last = match (chat.last_message, row.get::<_, Option<&[u8]>>(LAST_BODY_AT)) {
        (Some(id), Some(body)) => Some(LastMessage {
            id,
            author: UserId(row.get::<_, i64>(LAST_AT) as u64),
            body: body_from(body)?,
        }),
        _ => None,
    };
    Ok(ChatEntry {
        member: member_in(&chat, user, row, MEMBER_AT),
        chat,
        last,
        participants: row
            .get::<_, Option<Vec<i64>>>(PARTICIPANTS_AT)
            .unwrap_or_default()
            .into_iter()
            .map(|u| UserId(u as u64))
            .collect(),
    })
}

/// The rows of `user`'s page of conversations in `range`.
pub(super) async fn chat_page_rows(
    tx: &PgTx,
    user: UserId,
    range: ConversationRange,
) -> StoreResult<Vec<Row>> {
    let before = range.before.map_or(i64::MAX, clamp);
    let after = range.after.map_or(0, clamp);
    tx.query_sized(
        &CHAT_PAGE,
        &[&(user.get() as i64), &before, &after, &(range.limit as i64)],
        range.limit,
    )
    .await
}

/// The rows of each page asked, in the order asked: pages asked together
/// share one statement ([`CHAT_PAGES`]); one asked alone takes the
/// statement for one.
pub(super) async fn chat_page_row_sets(
    tx: &PgTx,
    asked: &[(UserId, ConversationRange)],
) -> StoreResult<Vec<Vec<Row>>> {
    let [(user, range)] = asked else {
        return chat_pages_rows(tx, asked).await;
    };
    Ok(vec![chat_page_rows(tx, *user, *range).await?])
}

async fn chat_pages_rows(
    tx: &PgTx,
    asked: &[(UserId, ConversationRange)],
) -> StoreResult<Vec<Vec<Row>>> {
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns: [Vec<i64>; 4] = Default::default();
    let mut expected = 0;
    for (user, range) in asked {
        let [users, below, above, limits] = &mut columns;
        users.push(user.get() as i64);
        below.push(range.before.map_or(i64::MAX, clamp));
        above.push(range.after.map_or(0, clamp));
        limits.push(range.limit as i64);
        expected += range.limit;
    }
    let count = asked.len() as i64;
    let [users, below, above, limits] = &columns;
    let params: [&(dyn ToSql + Sync); 5] = [users, below, above, limits, &count];
    let rows = tx.query_sized(&CHAT_PAGES, &params, expected).await?;
    let mut pages: Vec<Vec<Row>> = asked
        .iter()
        .map(|(_, range)| Vec::with_capacity(range.limit))
        .collect();
    for row in rows {
        let n: i64 = row.get(ENTRY_ANSWERS_AT);
        let page = usize::try_from(n - 1)
            .ok()
            .and_then(|at| pages.get_mut(at))
            .ok_or_else(|| StoreError::Corrupt(format!("page {n} was not asked")))?;
        page.push(row);
    }
    for page in &mut pages {
        // The nested loop yields each page newest first already; SQL
        // promises no order without ORDER BY, so this holds it whatever
        // the plan.
        let key = |row: &Row| std::cmp::Reverse(row.get::<_, i64>(SORT_KEY_AT));
        if !page.is_sorted_by_key(key) {
            page.sort_by_key(key);
        }
    }
    Ok(pages)
}

/// `user`'s conversations from the rows of [`chat_page_rows`].
pub(super) fn chat_page_entries(rows: &[Row], user: UserId) -> StoreResult<Vec<ChatEntry>> {
    // Sized up front: collecting through `Result` starts small and would
    // move the page's entries several times as it grows.
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        entries.push(entry_from(row, user)?);
    }
    Ok(entries)
}

#[async_trait]
impl PageStore for PgTx {
    async fn chat_page(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<ChatEntry>> {
        chat_page_entries(&chat_page_rows(self, user, range).await?, user)
    }

    async fn chat_entries(
        &mut self,
        wanted: &[(ChatKey, UserId)],
    ) -> StoreResult<Vec<Option<ChatEntry>>> {
        chat_entries_each(self, wanted).await?.into_iter().collect()
    }

    async fn history_pages(
        &mut self,
        wanted: &[(ChatKey, UserId, HistoryRange)],
    ) -> StoreResult<Vec<HistoryPage>> {
        history_pages_each(self, wanted)
            .await?
            .into_iter()
            .collect()
    }
}

/// Each chat entry asked, in the order asked, or why it could not be read.
/// A failed statement fails them all; a row that cannot be read fails only
/// the question it answers, not the others asked with it.
pub(super) async fn chat_entries_each(
    tx: &PgTx,
    wanted: &[(ChatKey, UserId)],
) -> StoreResult<Vec<StoreResult<Option<ChatEntry>>>> {
    let kinds = Columns::split(wanted, |&(key, user)| {
        let (_, first, second) = key_join(key);
        (key, [first, second, user.get() as i64])
    });
    let read = read_both(tx, &kinds, &CHAT_ENTRY).await?;
    let mut entries: Vec<StoreResult<Option<ChatEntry>>> =
        (0..wanted.len()).map(|_| Ok(None)).collect();
    for (columns, rows) in kinds.iter().zip(read) {
        for row in &rows {
            let at = columns.answered(row, ENTRY_ANSWERS_AT)?;
            if let (Some(entry), Some(&(_, user))) = (entries.get_mut(at), wanted.get(at)) {
                *entry = entry_from(row, user).map(Some);
            }
        }
    }
    Ok(entries)
}

/// Each history page asked, in the order asked, or why it could not be
/// read: as [`chat_entries_each`], a row that cannot be read fails only its
/// own page.
pub(super) async fn history_pages_each(
    tx: &PgTx,
    wanted: &[(ChatKey, UserId, HistoryRange)],
) -> StoreResult<Vec<StoreResult<HistoryPage>>> {
    let kinds = Columns::split(wanted, |&(key, user, range)| {
        let (_, first, second) = key_join(key);
        let below = range.below.map_or(i64::MAX, |b| clamp(b.get()));
        let values = [
            first,
            second,
            user.get() as i64,
            below,
            range.older as i64,
            clamp(range.above.get()),
            range.newer as i64,
        ];
        (key, values)
    });
    let read = read_both(tx, &kinds, &HISTORY_PAGE).await?;
    let mut pages: Vec<StoreResult<HistoryPage>> = (0..wanted.len())
        .map(|_| Ok(HistoryPage::default()))
        .collect();
    for (columns, rows) in kinds.iter().zip(read) {
        for row in &rows {
            let at = columns.answered(row, PAGE_ANSWERS_AT)?;
            let Some(slot) = pages.get_mut(at) else {
                continue;
            };
            // A page that failed takes no more rows.
            if let Ok(page) = slot {
                if let Err(error) = add_history_row(page, row) {
                    *slot = Err(error);
                }
            }
        }
    }
    for page in pages.iter_mut().flatten() {
        page.messages
            .sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
    }
    Ok(pages)
}

/// One row of a history page into `page`: the chat and the reader's
/// membership from the first, a message from each that has one.
fn add_history_row(page: &mut HistoryPage, row: &Row) -> StoreResult<()> {
    let chat = match &page.chat {
        Some(chat) => chat.id,
        None => {
            let chat = chat_at(row, 0)?;
            page.member = row.get(CHAT_COLUMN_COUNT);
            page.chat.insert(chat).id
        }
    };
    if let Some(message) = optional_message_in(chat, row, CHAT_COLUMN_COUNT + 1)? {
        page.messages.push(message);
    }
    Ok(())
}
