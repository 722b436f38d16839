//! The end-state checks, against Postgres read directly: acknowledged sends
//! stored exactly once, each user's stream equal to their log, unread
//! counts equal to a recount of the messages, and no stream left open.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use osmium_chat::proto::service::UpdateEnvelope;
use osmium_chat::proto::updates::update;
use osmium_chat::proto::{chats, refs};
use tokio_postgres::NoTls;

use crate::load::Client;

/// A plain SQL session beside the replicas' pools.
pub async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("the test's Postgres accepts a session");
    tokio::spawn(connection);
    client
}

/// Each user's log head (`update_heads`; 0 for a user with no entry yet).
pub async fn heads(sql: &tokio_postgres::Client, users: &[u64]) -> BTreeMap<u64, u64> {
    let ids: Vec<i64> = users.iter().map(|&u| u as i64).collect();
    let rows = sql
        .query(
            "SELECT user_id, seq FROM update_heads WHERE user_id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("heads");
    let mut heads: BTreeMap<u64, u64> = users.iter().map(|&u| (u, 0)).collect();
    for row in rows {
        heads.insert(row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
    }
    heads
}

/// Every acknowledged send is stored exactly once, under the id it was
/// acknowledged with; no (author, client_id) is stored twice. Returns how
/// many messages with a `client_id` are stored.
pub async fn acked_sends_stored_once(
    sql: &tokio_postgres::Client,
    acked: &[(u64, u64, u64)],
) -> usize {
    let rows = sql
        .query(
            "SELECT author_id, client_id, id FROM messages WHERE client_id IS NOT NULL",
            &[],
        )
        .await
        .expect("messages");
    let mut stored: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    for row in &rows {
        let key = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
        stored
            .entry(key)
            .or_default()
            .push(row.get::<_, i64>(2) as u64);
    }
    let twice: Vec<_> = stored.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "sends stored more than once: {twice:?}");
    let mut answered = BTreeSet::new();
    let mut wrong = Vec::new();
    for &(author, client_id, message_id) in acked {
        assert!(
            answered.insert((author, client_id)),
            "({author}, {client_id}) acknowledged twice"
        );
        let found = stored.get(&(author, client_id));
        if found != Some(&vec![message_id]) {
            wrong.push(format!(
                "author {author} client_id {client_id}: acknowledged as {message_id}, stored as {found:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged sends are not stored as acknowledged:\n{}",
        wrong.len(),
        acked.len(),
        wrong.join("\n")
    );
    rows.len()
}

/// The user's stream, over all its resumes, is their log: seqs 1..=head in
/// order, each once, and its MessageCreated updates are exactly the
/// messages of the user's chats. Returns how many envelopes were compared.
pub async fn stream_equals_log(
    sql: &tokio_postgres::Client,
    user: u64,
    head: u64,
    received: &[UpdateEnvelope],
) -> usize {
    let seqs: Vec<u64> = received.iter().map(|e| e.seq).collect();
    let log: Vec<u64> = sql
        .query(
            "SELECT seq FROM updates WHERE user_id = $1 ORDER BY seq",
            &[&(user as i64)],
        )
        .await
        .expect("the log")
        .iter()
        .map(|row| row.get::<_, i64>(0) as u64)
        .collect();
    let expected: Vec<u64> = (1..=head).collect();
    assert_eq!(
        log, expected,
        "user {user}'s log is gap-free up to its head"
    );
    if seqs != expected {
        let first_bad = seqs
            .iter()
            .zip(&expected)
            .position(|(got, want)| got != want)
            .unwrap_or(seqs.len().min(expected.len()));
        panic!(
            "user {user}'s stream is not its log 1..={head}: {} envelopes, first difference at \
             index {first_bad}: {:?} where the log has {:?}",
            seqs.len(),
            seqs.get(first_bad..(first_bad + 5).min(seqs.len())),
            expected.get(first_bad..(first_bad + 5).min(expected.len()))
        );
    }
    let created: Vec<u64> = received
        .iter()
        .filter_map(|e| match e.update.as_ref()?.update.as_ref()? {
            update::Update::MessageCreated(created) => Some(created.message.as_ref()?.message_id),
            _ => None,
        })
        .collect();
    let mut streamed = created.clone();
    streamed.sort_unstable();
    streamed.dedup();
    assert_eq!(
        streamed.len(),
        created.len(),
        "user {user} got a message twice"
    );
    let stored: Vec<u64> = sql
        .query(
            "SELECT m.id FROM messages m JOIN members mb ON mb.chat_id = m.chat_id \
             WHERE mb.user_id = $1 ORDER BY m.id",
            &[&(user as i64)],
        )
        .await
        .expect("the user's messages")
        .iter()
        .map(|row| row.get::<_, i64>(0) as u64)
        .collect();
    assert_eq!(
        streamed, stored,
        "user {user}'s MessageCreated updates are the messages of their chats"
    );
    received.len()
}

/// Where a conversation is, as the user names it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chat {
    Direct(u64),
    Group(u64),
}

/// GetChats' unread_count of every conversation of `user` equals a recount
/// of the messages after their read pointer not written by them. Returns how
/// many conversations were compared.
pub async fn unread_counts_match(
    sql: &tokio_postgres::Client,
    user: u64,
    client: &mut Client,
) -> usize {
    let rows = sql
        .query(
            "SELECT c.kind, c.id, c.dm_low, c.dm_high, \
                    (SELECT count(*) FROM messages m WHERE m.chat_id = c.id \
                       AND m.id > mb.last_read AND m.author_id <> mb.user_id) \
             FROM members mb JOIN chats c ON c.id = mb.chat_id WHERE mb.user_id = $1",
            &[&(user as i64)],
        )
        .await
        .expect("a recount");
    let recount: BTreeMap<Chat, u32> = rows
        .iter()
        .map(|row| {
            let kind: i16 = row.get(0);
            let chat = if kind == 1 {
                Chat::Group(row.get::<_, i64>(1) as u64)
            } else {
                let low = row.get::<_, Option<i64>>(2).unwrap_or_default() as u64;
                let high = row.get::<_, Option<i64>>(3).unwrap_or_default() as u64;
                Chat::Direct(if low == user { high } else { low })
            };
            (chat, row.get::<_, i64>(4) as u32)
        })
        .collect();
    let page = client
        .get_chats(chats::GetChats {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .expect("GetChats answers once the faults are over")
        .into_inner();
    let served: BTreeMap<Chat, u32> = page
        .chats
        .iter()
        .map(|c| {
            let chat = match c.chat_ref.as_ref().and_then(|r| r.r#ref.as_ref()) {
                Some(refs::chat_ref::Ref::User(u)) => Chat::Direct(u.user_id),
                Some(refs::chat_ref::Ref::Group(g)) => Chat::Group(g.group_id),
                other => panic!("an unexpected conversation {other:?}"),
            };
            (chat, c.unread_count)
        })
        .collect();
    assert_eq!(
        served, recount,
        "user {user}'s unread counts: GetChats against a recount"
    );
    served.len()
}

/// Both replicas' `subscribe_streams_open` gauge falls to zero once every
/// subscriber has hung up (bounded poll).
pub async fn no_stream_left_open(metrics_ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut open = Vec::new();
        for &port in metrics_ports {
            open.push(streams_open(port).await);
        }
        if open.iter().all(|&n| n == 0.0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "streams still open 30 s after every subscriber hung up: {open:?}"
        );
        // Polling another process's gauge: nothing to await but time.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn streams_open(port: u16) -> f64 {
    let response = crate::metrics::scrape(port).await;
    crate::metrics::sample(&response, "osmium_subscribe_streams_open")
        .unwrap_or_else(|| panic!("no subscribe_streams_open gauge in:\n{response}"))
}
