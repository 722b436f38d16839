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
    ChatEntry, ConversationRange, HistoryPage, HistoryRange, PageStore, StoreResult,
};

/// A chat's columns, its member's, its last message's and its participants,
/// all from the chat's and the member's rows: the shape every [`ChatEntry`]
/// is read from. `c` is the chat and `m` the member.
macro_rules! entry_select {
    () => {
        format!(
            "SELECT {chat}, {member}, {LAST_MESSAGE_COPY}, c.roster FROM {{from}}",
            chat = prefixed("c", CHAT_COLUMNS),
            member = MEMBER_COLUMNS_OF_M,
        )
    };
}

/// [`MESSAGE_COLUMNS`] of a chat's last message, from the copy its row
/// keeps (migration V7); no id when there is none.
const LAST_MESSAGE_COPY: &str =
    "c.id, CASE WHEN c.last_body IS NOT NULL THEN c.last_message_id END,
     c.last_author_id, c.last_client_id, c.last_mentions, c.last_body, c.last_ordinal";

/// The statements, built once; public through [`sql`] for the load
/// benchmark, whose pgbench runs must measure the very statements sent here.
static CHAT_PAGE: LazyLock<String> = LazyLock::new(|| {
    entry_select!().replace("{from}", "members m JOIN chats c ON c.id = m.chat_id")
        + " WHERE m.user_id = $1 AND m.sort_key < $2 AND m.sort_key > $3
            ORDER BY m.sort_key DESC LIMIT $4"
});

static CHAT_ENTRY: LazyLock<[String; 2]> = LazyLock::new(|| {
    [group_key(), direct_key()].map(|on| {
        entry_select!().replace(
            "{from}",
            "chats c JOIN members m ON m.chat_id = c.id AND m.user_id = $3",
        ) + &format!(" WHERE {on} AND $2::bigint IS NOT NULL")
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
    /// GetChat of a group: $1 group id, $2 0, $3 user.
    pub fn group_entry() -> &'static str {
        super::by_key(&super::CHAT_ENTRY, super::GROUP)
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

    async fn chat_entry(&mut self, chat: ChatKey, user: UserId) -> StoreResult<Option<ChatEntry>> {
        let (_, low_or_id, high) = key_join(chat);
        let rows = self
            .query(
                by_key(&CHAT_ENTRY, chat),
                &[&low_or_id, &high, &(user.get() as i64)],
            )
            .await?;
        rows.first().map(entry_from).transpose()
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
