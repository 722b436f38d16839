//! Row shapes: the column lists every query selects, and their conversion
//! into the store's rows.

use prost::Message as _;
use tokio_postgres::Row;

use crate::model::{
    Change, ChatId, ChatKey, ChatKind, ChatRow, InviteRow, LoggedUpdate, MemberRow, MessageId,
    MessageRow, Personal, UserId,
};
use crate::proto::{types, updates};
use crate::store::{StoreError, StoreResult};

pub(super) fn ids<T: Copy>(values: &[T], get: impl Fn(T) -> u64) -> Vec<i64> {
    values.iter().map(|v| get(*v) as i64).collect()
}

pub(super) fn photo(file_id: Option<i64>, preview: Option<Vec<u8>>) -> Option<types::ChatPhoto> {
    file_id.map(|id| types::ChatPhoto {
        file_id: id as u64,
        preview: preview.unwrap_or_default(),
    })
}

pub(super) const USER_COLUMNS: &str =
    "id, name, username, photo_file_id, photo_preview, bot, icon, color";

pub(super) fn user_from(row: &Row) -> types::User {
    user_at(row, 0)
}

/// A user from [`USER_COLUMNS`] starting at column `at`.
pub(super) fn user_at(row: &Row, at: usize) -> types::User {
    types::User {
        id: row.get::<_, i64>(at) as u64,
        name: row.get(at + 1),
        username: row.get(at + 2),
        photo: photo(row.get(at + 3), row.get(at + 4)),
        bot: row.get(at + 5),
        icon: row.get::<_, Option<i64>>(at + 6).map(|v| v as u64),
        color: row.get::<_, Option<i64>>(at + 7).map(|v| v as u32),
    }
}

/// A column list with every column qualified by `table`.
pub(super) fn prefixed(table: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) const CHAT_COLUMNS: &str = "id, kind, dm_low, dm_high, name, owner_id, photo_file_id, photo_preview, highlighted_msg_id, last_message_id, msg_seq";

pub(super) fn chat_from(row: &Row) -> StoreResult<ChatRow> {
    chat_at(row, 0)
}

/// A chat from [`CHAT_COLUMNS`] starting at column `at`.
pub(super) fn chat_at(row: &Row, at: usize) -> StoreResult<ChatRow> {
    let kind = match row.get::<_, i16>(at + 1) {
        0 => ChatKind::Direct {
            low: UserId(row.get::<_, Option<i64>>(at + 2).unwrap_or_default() as u64),
            high: UserId(row.get::<_, Option<i64>>(at + 3).unwrap_or_default() as u64),
        },
        1 => ChatKind::Group,
        other => return Err(StoreError::Corrupt(format!("chat kind {other}"))),
    };
    Ok(ChatRow {
        id: ChatId(row.get::<_, i64>(at) as u64),
        kind,
        name: row.get(at + 4),
        owner: row.get::<_, Option<i64>>(at + 5).map(|v| UserId(v as u64)),
        photo: photo(row.get(at + 6), row.get(at + 7)),
        highlighted: row
            .get::<_, Option<i64>>(at + 8)
            .map(|v| MessageId(v as u64)),
        last_message: row
            .get::<_, Option<i64>>(at + 9)
            .map(|v| MessageId(v as u64)),
        msg_seq: row.get::<_, i64>(at + 10) as u64,
    })
}

/// How many columns [`CHAT_COLUMNS`] has.
pub(super) const CHAT_COLUMN_COUNT: usize = 11;

/// A member's own columns, after its keys and before its unread count.
macro_rules! member_state {
    () => {
        "m.joined, m.sort_key, m.last_read, m.read_seq, m.skipped, m.mentions, m.draft, m.notif"
    };
}

/// A member's columns, `m` the member and `c` its chat, then the chat's
/// `msg_seq`: the replica derives the unread count from it with
/// [`MemberRow::unread_at`](crate::model::MemberRow::unread_at), the one
/// definition every engine and read shares.
macro_rules! member_columns {
    () => {
        concat!("m.chat_id, m.user_id, ", member_state!(), ", c.msg_seq")
    };
}

/// Members with their unread count, derived from their chat's `msg_seq`:
/// `m` is the member, `c` its chat.
pub(super) const MEMBER_SELECT: &str = concat!(
    "SELECT ",
    member_columns!(),
    " FROM members m JOIN chats c ON c.id = m.chat_id"
);

/// The columns of [`MEMBER_SELECT`], for a query that joins `members m`
/// and `chats c` itself.
pub(super) const MEMBER_COLUMNS_OF_M: &str = member_columns!();
/// How many columns [`MEMBER_COLUMNS_OF_M`] has: the keys, the state, the
/// chat's `msg_seq`.
pub(super) const MEMBER_COLUMN_COUNT: usize = 2 + MEMBER_STATE_COUNT + 1;

/// A member's columns without its keys or its unread count, for a page
/// that knows whose rows it reads and has the chat's `msg_seq` at hand: a
/// page's columns cost the server more to encode than its rows to find.
pub(super) const MEMBER_STATE_OF_M: &str = member_state!();
/// How many columns [`MEMBER_STATE_OF_M`] has.
pub(super) const MEMBER_STATE_COUNT: usize = 8;

pub(super) fn member_from(row: &Row) -> MemberRow {
    member_at(row, 0)
}

/// A member from [`MEMBER_COLUMNS_OF_M`] starting at column `at`.
pub(super) fn member_at(row: &Row, at: usize) -> MemberRow {
    let chat_id = ChatId(row.get::<_, i64>(at) as u64);
    let user_id = UserId(row.get::<_, i64>(at + 1) as u64);
    let member = member_state_at(chat_id, user_id, row, at + 2);
    let msg_seq = row.get::<_, i64>(at + 2 + MEMBER_STATE_COUNT) as u64;
    MemberRow {
        unread: member.unread_at(msg_seq),
        ..member
    }
}

/// `user`'s member row in `chat` from [`MEMBER_STATE_OF_M`] at `at`, its
/// unread count derived from the chat's.
pub(super) fn member_in(chat: &ChatRow, user: UserId, row: &Row, at: usize) -> MemberRow {
    let member = member_state_at(chat.id, user, row, at);
    MemberRow {
        unread: member.unread_at(chat.msg_seq),
        ..member
    }
}

/// A member from [`MEMBER_STATE_OF_M`] at `at`, its unread count not yet set.
fn member_state_at(chat_id: ChatId, user_id: UserId, row: &Row, at: usize) -> MemberRow {
    MemberRow {
        chat_id,
        user_id,
        joined: row.get::<_, i64>(at) as u64,
        sort_key: row.get::<_, i64>(at + 1) as u64,
        last_read: row.get::<_, i64>(at + 2) as u64,
        read_seq: row.get::<_, i64>(at + 3) as u64,
        skipped: row.get::<_, i32>(at + 4) as u32,
        unread: 0,
        mentions: row.get::<_, i32>(at + 5).max(0) as u32,
        draft: row.get(at + 6),
        notif: i32::from(row.get::<_, i16>(at + 7)),
    }
}

pub(super) const MESSAGE_COLUMNS: &str =
    "chat_id, id, author_id, client_id, mentions, body, ordinal";

/// [`MESSAGE_COLUMNS`] without the chat's id, for a page of one chat.
pub(super) const MESSAGE_COLUMNS_IN_CHAT: &str =
    "id, author_id, client_id, mentions, body, ordinal";
/// How many columns [`MESSAGE_COLUMNS_IN_CHAT`] has: the id, then the parts.
pub(super) const MESSAGE_COLUMN_IN_CHAT_COUNT: usize = 1 + MESSAGE_PARTS_COUNT;

/// How many columns [`message_parts_at`] reads, and where among them the
/// body is.
pub(super) const MESSAGE_PARTS_COUNT: usize = 5;
pub(super) const BODY_IN_PARTS: usize = 3;

pub(super) fn message_from(row: &Row) -> StoreResult<MessageRow> {
    message_at(row, 0)
}

/// A message from [`MESSAGE_COLUMNS`] starting at column `at`.
pub(super) fn message_at(row: &Row, at: usize) -> StoreResult<MessageRow> {
    let chat = ChatId(row.get::<_, i64>(at) as u64);
    let id = MessageId(row.get::<_, i64>(at + 1) as u64);
    message_parts_at(chat, id, row, at + 2)
}

/// A message of `chat` from [`MESSAGE_COLUMNS_IN_CHAT`] at `at` of an outer
/// join: `None` when there was none.
pub(super) fn optional_message_in(
    chat: ChatId,
    row: &Row,
    at: usize,
) -> StoreResult<Option<MessageRow>> {
    match row.get::<_, Option<i64>>(at) {
        Some(id) => message_parts_at(chat, MessageId(id as u64), row, at + 1).map(Some),
        None => Ok(None),
    }
}

/// A stored message body, decoded straight from the row's buffer.
pub(super) fn body_from(body: &[u8]) -> StoreResult<types::Message> {
    types::Message::decode(body).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Message `id` of `chat` from its author, client id, mentions, body and
/// ordinal, in that order from column `at`. The body is decoded straight
/// from the row's buffer, without an intermediate copy.
pub(super) fn message_parts_at(
    chat_id: ChatId,
    id: MessageId,
    row: &Row,
    at: usize,
) -> StoreResult<MessageRow> {
    let body: &[u8] = row.get(at + BODY_IN_PARTS);
    Ok(MessageRow {
        chat_id,
        id,
        author: UserId(row.get::<_, i64>(at) as u64),
        client_id: row.get::<_, Option<i64>>(at + 1).map(|v| v as u64),
        mentions: row
            .get::<_, Vec<i64>>(at + 2)
            .into_iter()
            .map(|v| UserId(v as u64))
            .collect(),
        body: body_from(body)?,
        ordinal: row.get::<_, i64>(at + 4) as u64,
    })
}

pub(super) fn messages_from(rows: &[Row]) -> StoreResult<Vec<MessageRow>> {
    rows.iter().map(message_from).collect()
}

/// A log entry from `seq, payload, change_id, unread, change payload`:
/// entries from before shared changes carry their rendered update.
pub(super) fn logged_from(user: UserId, row: &Row) -> StoreResult<LoggedUpdate> {
    let seq = row.get::<_, i64>(0) as u64;
    let change = match (row.get::<_, Option<&[u8]>>(1), row.get::<_, Option<i64>>(2)) {
        (Some(rendered), _) => Change::rendered(
            updates::Update::decode(rendered).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
        (None, Some(id)) => {
            let payload: Option<&[u8]> = row.get(4);
            let payload = payload.ok_or_else(|| {
                StoreError::Corrupt(format!("log entry {user}/{seq} names a missing change"))
            })?;
            Change::decode(id as u64, payload).map_err(|e| StoreError::Corrupt(e.to_string()))?
        }
        (None, None) => {
            return Err(StoreError::Corrupt(format!(
                "log entry {user}/{seq} has no payload"
            )))
        }
    };
    Ok(LoggedUpdate {
        user,
        seq,
        change: std::sync::Arc::new(change),
        personal: Personal {
            unread: row.get::<_, Option<i32>>(3).map(|v| v.max(0) as u32),
        },
    })
}

pub(super) const INVITE_COLUMNS: &str =
    "code, chat_id, creator_id, created_at, expires_at, max_uses, uses";

pub(super) fn invite_from(row: &Row) -> InviteRow {
    InviteRow {
        code: row.get(0),
        chat_id: ChatId(row.get::<_, i64>(1) as u64),
        creator: UserId(row.get::<_, i64>(2) as u64),
        created_at: row.get::<_, i64>(3) as u64,
        expires_at: row.get::<_, Option<i64>>(4).map(|v| v as u64),
        max_uses: row.get::<_, Option<i32>>(5).map(|v| v as u32),
        uses: row.get::<_, i32>(6) as u32,
    }
}

pub(super) fn lock_clause(lock: bool) -> &'static str {
    if lock {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// An id bound that fits `BIGINT`; ids above it cannot exist.
pub(super) fn clamp(id: u64) -> i64 {
    id.min(i64::MAX as u64) as i64
}

/// How a query joins `chats c` to the chat a key names: the condition, and
/// its parameters `$1` and `$2` (`$2` is unused, but typed, for a group).
pub(super) fn key_join(key: ChatKey) -> (&'static str, i64, i64) {
    match key {
        ChatKey::Group(id) => ("c.id = $1 AND c.kind = 1", id.get() as i64, 0),
        ChatKey::Direct { low, high } => (
            "c.kind = 0 AND c.dm_low = $1 AND c.dm_high = $2",
            low.get() as i64,
            high.get() as i64,
        ),
    }
}
