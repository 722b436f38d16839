//! Bulk data written straight into the tables with SQL: other users'
//! chats and messages, and the large chats of the claims.

use osmium_chat::proto::types;
use prost::Message as _;
use tokio_postgres::NoTls;

use crate::{Result, BULK_USER_BASE, EPOCH_MS, OTHER_CHATS, OTHER_USERS};

pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Ids in the service's snowflake layout, one day in the past: below every
/// id the service hands out during the run, so bulk messages are older
/// history, and in a millisecond the service never used, so nothing collides.
/// Offsets stay below 2^22, inside that millisecond.
pub(crate) fn bulk_id_base() -> i64 {
    let now = osmium_chat::model::clock::now_ms();
    ((now - 86_400_000 - EPOCH_MS) << 22) as i64
}
pub(crate) const OTHER_CHAT_IDS: i64 = 0; // + 0 .. OTHER_CHATS
pub(crate) const OTHER_MESSAGE_IDS: i64 = 1_000_000; // + 0 .. 2 * OTHER_CHATS
pub(crate) const CHAT_MESSAGE_IDS: i64 = 2_000_000; // + 0 .. sum of the measured chats' bulk

/// 200k memberships and 200k messages of other users: 20k users, each in 10
/// direct chats (user i with i+1..i+5, mod 20k), two messages per chat.
pub(crate) async fn load_other_data(db: &tokio_postgres::Client, base: i64) -> Result<()> {
    let body = types::Message {
        message: "bulk message of another conversation".into(),
        ..Default::default()
    }
    .encode_to_vec();
    db.execute(
        "INSERT INTO users (id, name) SELECT $1::bigint + g, 'bulk user ' || g
         FROM generate_series(0, $2::bigint - 1) g",
        &[&BULK_USER_BASE, &OTHER_USERS],
    )
    .await?;
    db.execute(
        "INSERT INTO chats (id, kind, dm_low, dm_high, last_message_id, msg_seq)
         SELECT $1::bigint + k, 0, $3::bigint + least(a, b), $3::bigint + greatest(a, b),
                $2::bigint + 2 * k + 1, 2
         FROM (SELECT k, k % $4::bigint AS a, (k % $4::bigint + 1 + k / $4::bigint) % $4::bigint AS b
               FROM generate_series(0, $5::bigint - 1) k) pairs",
        &[
            &(base + OTHER_CHAT_IDS),
            &(base + OTHER_MESSAGE_IDS),
            &BULK_USER_BASE,
            &OTHER_USERS,
            &OTHER_CHATS,
        ],
    )
    .await?;
    db.execute(
        "INSERT INTO members (chat_id, user_id, joined, sort_key, last_read, read_seq)
         SELECT c.id, u.user_id, c.id, c.last_message_id, c.last_message_id, 2
         FROM chats c CROSS JOIN LATERAL (VALUES (c.dm_low), (c.dm_high)) u(user_id)
         WHERE c.id >= $1::bigint AND c.id < $1::bigint + $2::bigint",
        &[&(base + OTHER_CHAT_IDS), &OTHER_CHATS],
    )
    .await?;
    db.execute(
        "INSERT INTO messages (id, chat_id, author_id, body, ordinal)
         SELECT $2::bigint + 2 * (c.id - $1::bigint) + m.n, c.id,
                CASE m.n WHEN 0 THEN c.dm_low ELSE c.dm_high END, $4::bytea, m.n + 1
         FROM chats c CROSS JOIN (VALUES (0), (1)) m(n)
         WHERE c.id >= $1::bigint AND c.id < $1::bigint + $3::bigint",
        &[
            &(base + OTHER_CHAT_IDS),
            &(base + OTHER_MESSAGE_IDS),
            &OTHER_CHATS,
            &body,
        ],
    )
    .await?;
    Ok(())
}

/// Fills `chat` with `count` messages older than its API-sent one, alternating
/// between `authors` (their bodies encoded as the service encodes them), then
/// recounts every member's unread and mention counters from the messages, so
/// the counters the read path returns are the true ones.
pub(crate) async fn fill_chat(
    db: &tokio_postgres::Client,
    chat: i64,
    first_id: i64,
    count: usize,
    authors: &[i64],
) -> Result<()> {
    const CHUNK: usize = 25_000;
    let mut start = 0;
    while start < count {
        let end = (start + CHUNK).min(count);
        let ids: Vec<i64> = (start..end).map(|i| first_id + i as i64).collect();
        let author: Vec<i64> = (start..end).map(|i| authors[i % authors.len()]).collect();
        let body: Vec<Vec<u8>> = ids
            .iter()
            .zip(&author)
            .map(|(id, author)| {
                types::Message {
                    message_id: *id as u64,
                    author_id: *author as u64,
                    message: format!("history message number {id}"),
                    ..Default::default()
                }
                .encode_to_vec()
            })
            .collect();
        db.execute(
            "INSERT INTO messages (id, chat_id, author_id, body)
             SELECT id, $1, author, body FROM unnest($2::bigint[], $3::bigint[], $4::bytea[])
                 AS t(id, author, body)",
            &[&chat, &ids, &author, &body],
        )
        .await?;
        start = end;
    }
    // Ordinals in id order, the chat's count, and each member's place: the
    // messages after a member's pointer that are theirs are left out of
    // their unread count as the service would (`skipped`).
    db.batch_execute(&format!(
        "UPDATE messages m SET ordinal = o.n
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM messages WHERE chat_id = {chat}) o
         WHERE m.id = o.id;
         UPDATE chats SET msg_seq = (SELECT count(*) FROM messages WHERE chat_id = {chat})
         WHERE id = {chat};
         UPDATE members m SET
             read_seq = COALESCE((SELECT max(ordinal) FROM messages x
                                  WHERE x.chat_id = m.chat_id AND x.id <= m.last_read), 0),
             skipped = (SELECT count(*) FROM messages x WHERE x.chat_id = m.chat_id
                        AND x.id > m.last_read AND x.author_id = m.user_id),
             mentions = (SELECT count(*) FROM messages x WHERE x.chat_id = m.chat_id
                         AND x.id > m.last_read AND x.author_id <> m.user_id
                         AND m.user_id = ANY(x.mentions))
         WHERE m.chat_id = {chat};"
    ))
    .await?;
    Ok(())
}

pub(crate) async fn direct_chat_id(db: &tokio_postgres::Client, a: u64, b: u64) -> Result<i64> {
    let (low, high) = (a.min(b) as i64, a.max(b) as i64);
    let row = db
        .query_one(
            "SELECT id FROM chats WHERE kind = 0 AND dm_low = $1 AND dm_high = $2",
            &[&low, &high],
        )
        .await?;
    Ok(row.get(0))
}

pub(crate) async fn table_sizes(db: &tokio_postgres::Client) -> Result<String> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM chats),
                    (SELECT count(*) FROM members), (SELECT count(*) FROM messages)",
            &[],
        )
        .await?;
    Ok(format!(
        "users {}, chats {}, members {}, messages {}",
        row.get::<_, i64>(0),
        row.get::<_, i64>(1),
        row.get::<_, i64>(2),
        row.get::<_, i64>(3)
    ))
}
