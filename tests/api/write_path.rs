//! The write path under load: concurrent sends batched per chat (group
//! commit), ids that grow within a chat whatever the replicas' clocks say,
//! unread counts from per-chat ordinals, and an update log that stores each
//! change's payload once plus one small entry per recipient.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt as _};
use osmium_chat::config::{Secret, Settings};
use osmium_chat::domain::limits::{
    MAX_MESSAGE_BYTES, MAX_PREVIEW_BYTES, MAX_TEXT_CHARS, MAX_URL_BYTES,
};
use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::types::message_entity::{Entity, TextUrlEntity};
use osmium_chat::proto::updates::update::Update as U;
use osmium_chat::proto::updates::UpdateMessageCreated;
use osmium_chat::proto::{chats, messages, refs, types};
use prost::Message as _;
use tokio::sync::Notify;
use tonic::Code;

use crate::helpers::{
    assert_code, both_engines, group, next, next_user_id, sample, scrape, Client, Engine, TestApp,
    TestUser,
};
use crate::support::redis::RedisServer;

// ---------------------------------------------------------------------------
// Helpers

/// Two replicas on one Postgres schema and one Redis.
struct Pair {
    one: TestApp,
    two: TestApp,
    redis: RedisServer,
}

/// Two replicas whose clocks are off by `skew_one` and `skew_two` ms when
/// they make ids.
async fn pair_with_skews(skew_one: i64, skew_two: i64) -> Pair {
    let redis = RedisServer::start().await;
    let mut settings = TestApp::settings(Engine::Postgres).await;
    settings.redis_url = Some(Secret::new(redis.url()));
    let with_skew = |skew| Settings {
        clock_skew_ms: skew,
        ..settings.clone()
    };
    let one = TestApp::spawn_with(with_skew(skew_one)).await;
    let two = TestApp::spawn_with(with_skew(skew_two)).await;
    Pair { one, two, redis }
}

async fn pair() -> Pair {
    pair_with_skews(0, 0).await
}

/// A user with a client on each of two replicas (the same one twice when
/// there is only one).
#[derive(Clone)]
struct Member {
    id: u64,
    clients: [Client; 2],
}

impl Member {
    async fn new(one: &TestApp, two: &TestApp, name: &str) -> Self {
        let user = one.user(name).await;
        Self {
            id: user.id,
            clients: [user.client, two.client(user.id).await],
        }
    }

    /// The client on replica `at` (0 or 1, taken modulo 2).
    fn via(&self, at: usize) -> Client {
        self.clients[at % 2].clone()
    }

    fn on(&self, at: usize) -> TestUser {
        TestUser {
            id: self.id,
            client: self.via(at),
        }
    }
}

fn text_message(chat: u64, text: String, client_id: Option<u64>) -> messages::SendMessage {
    messages::SendMessage {
        chat_ref: group(chat),
        message: text,
        client_id,
        ..Default::default()
    }
}

async fn send(mut client: Client, request: messages::SendMessage) -> Result<u64, tonic::Status> {
    client
        .send_message(request)
        .await
        .map(|r| r.into_inner().message_id)
}

/// Every message of a chat, oldest first, paging back with `before`.
async fn all_messages(client: &mut Client, chat: Option<refs::ChatRef>) -> Vec<types::Message> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = client
            .get_history(messages::GetHistory {
                chat_ref: chat,
                limit: Some(100),
                offset: before.map(messages::get_history::Offset::Before),
            })
            .await
            .expect("history loads")
            .into_inner()
            .messages;
        let Some(oldest) = page.iter().map(|m| m.message_id).min() else {
            break;
        };
        all.extend(page);
        before = Some(oldest);
    }
    all.reverse();
    all
}

/// Asserts each id occurs once in `messages` and returns them by id.
fn once_each(messages: &[types::Message]) -> HashMap<u64, &types::Message> {
    let mut by_id = HashMap::new();
    for message in messages {
        assert!(
            by_id.insert(message.message_id, message).is_none(),
            "message {} is in the history twice",
            message.message_id
        );
    }
    by_id
}

fn message_created(
    update: Option<osmium_chat::proto::updates::Update>,
) -> Option<UpdateMessageCreated> {
    match update.and_then(|u| u.update) {
        Some(U::MessageCreated(created)) => Some(created),
        _ => None,
    }
}

/// A user's whole log from seq 1, read until every id of `expected` has
/// arrived as an `UpdateMessageCreated`: asserts the seqs run 1, 2, 3, ...
/// with no gap and no repeat and that each expected message comes once and
/// nothing else does; returns the creations in log order.
async fn log_until(user: &mut TestUser, expected: &[u64]) -> Vec<UpdateMessageCreated> {
    let expected: HashSet<u64> = expected.iter().copied().collect();
    let mut stream = user.subscribe(Some(0)).await;
    let mut seen = HashSet::new();
    let mut created = Vec::new();
    let mut seq = 0;
    while seen.len() < expected.len() {
        let envelope = next(&mut stream).await;
        seq += 1;
        assert_eq!(
            envelope.seq, seq,
            "user {}'s log runs 1, 2, 3, ... with no gap or repeat",
            user.id
        );
        if let Some(update) = message_created(envelope.update) {
            let id = update.message.as_ref().map_or(0, |m| m.message_id);
            assert!(
                expected.contains(&id),
                "user {} got message {id}, which was never acknowledged",
                user.id
            );
            assert!(
                seen.insert(id),
                "user {} got message {id} twice (seq {seq})",
                user.id
            );
            created.push(update);
        }
    }
    created
}

/// The update log's two counters, as `/metrics` shows them now.
#[derive(Clone, Copy, Debug)]
struct LogCounters {
    entries: u64,
    payload_bytes: u64,
}

async fn log_counters(app: &TestApp) -> LogCounters {
    let text = scrape(app.metrics_port).await;
    let value = |name: &str| -> u64 {
        sample(&text, name).unwrap_or_else(|| panic!("{name} is exposed:\n{text}")) as u64
    };
    LogCounters {
        entries: value("osmium_update_log_entries_total"),
        payload_bytes: value("osmium_update_log_payload_bytes_total"),
    }
}

fn link(start: u32, url: String) -> types::MessageEntity {
    types::MessageEntity {
        start_index: start,
        length: 1,
        entity: Some(Entity::TextUrl(TextUrlEntity { url })),
    }
}

fn url(bytes: usize) -> String {
    let head = "https://example.org/";
    let tail: String = (0..bytes - head.len())
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    format!("{head}{tail}")
}

/// Text of `chars` ASCII characters that is not one repeated letter.
fn varied_text(chars: usize) -> String {
    (0..chars)
        .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz .,0123456789"[i % 39]))
        .collect()
}

/// The whole-message measure the service documents (README, Limits): the
/// message as stored and sent out, ids, chat ref and edit time at their largest.
fn encoded_as_stored(text: &str, entities: &[types::MessageEntity]) -> usize {
    types::Message {
        chat_ref: group(u64::MAX),
        message_id: u64::MAX,
        author_id: u64::MAX,
        message: text.into(),
        entities: entities.to_vec(),
        edited_at: Some(u64::MAX),
        ..Default::default()
    }
    .encoded_len()
}

/// The largest message the bounds let through: the longest text, then as
/// many full-length `textUrl` links as fit, then one more link as long as
/// still fits. Returns the text, the entities, and the last link's url length.
fn largest_message() -> (String, Vec<types::MessageEntity>, usize) {
    let text = varied_text(MAX_TEXT_CHARS);
    let mut entities = Vec::new();
    loop {
        let mut more = entities.clone();
        more.push(link(entities.len() as u32, url(MAX_URL_BYTES)));
        if encoded_as_stored(&text, &more) > MAX_MESSAGE_BYTES {
            break;
        }
        entities = more;
    }
    let with_last = |bytes| {
        let mut all = entities.clone();
        all.push(link(entities.len() as u32, url(bytes)));
        all
    };
    // The longest last url that still fits (the size grows with it).
    let (mut low, mut high) = (32, MAX_URL_BYTES);
    assert!(encoded_as_stored(&text, &with_last(low)) <= MAX_MESSAGE_BYTES);
    while low < high {
        let mid = (low + high).div_ceil(2);
        if encoded_as_stored(&text, &with_last(mid)) <= MAX_MESSAGE_BYTES {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    (text, with_last(low), low)
}

/// Registers `count` users, each with `preview` bytes of photo preview when
/// given, through UpserUsers in requests well below the request size bound.
async fn upsert_many(app: &TestApp, count: usize, preview: Option<usize>) -> Vec<u64> {
    let ids: Vec<u64> = (0..count).map(|_| next_user_id()).collect();
    let mut directory = app.directory().await;
    for chunk in ids.chunks(50) {
        directory
            .upsert_users(UpsertUsers {
                users: chunk
                    .iter()
                    .map(|&id| types::User {
                        id,
                        name: format!("User {id}"),
                        photo: preview.map(|bytes| types::ChatPhoto {
                            file_id: id,
                            preview: vec![(id % 251) as u8; bytes],
                        }),
                        ..Default::default()
                    })
                    .collect(),
            })
            .await
            .expect("users are upserted");
    }
    ids
}

// ---------------------------------------------------------------------------
// 1. Many concurrent senders into one group

const SENDERS: usize = 4;
const PER_SENDER: u64 = 30;

/// One acknowledged send.
#[derive(Clone, Copy, Debug)]
struct Acked {
    sender: usize,
    client_id: u64,
    id: u64,
}

/// A group of six; four of them send 30 messages each, all at once, sender
/// k through replica k mod 2, every fifth send retried concurrently through
/// the other replica with the same client id. `one` and `two` may be the
/// same server.
async fn concurrent_sends_are_each_stored_counted_and_logged_once(one: &TestApp, two: &TestApp) {
    let mut everyone = Vec::new();
    for i in 0..6 {
        everyone.push(Member::new(one, two, &format!("Member {i}")).await);
    }
    let others: Vec<u64> = everyone[1..].iter().map(|m| m.id).collect();
    let chat = everyone[0].on(0).create_group("busy", &others).await;

    let mut calls = Vec::new();
    for (k, sender) in everyone.iter().take(SENDERS).enumerate() {
        for i in 0..PER_SENDER {
            let client_id = (k as u64 + 1) * 1_000 + i;
            let request = text_message(chat, format!("{k}:{i}"), Some(client_id));
            let (home, away) = (sender.via(k), sender.via(k + 1));
            let retried = i % 5 == 0;
            calls.push(tokio::spawn(async move {
                let id = if retried {
                    let (first, again) =
                        tokio::join!(send(home, request.clone()), send(away, request));
                    let (first, again) = (first.expect("sent"), again.expect("retry answered"));
                    assert_eq!(
                        first, again,
                        "a retry with client id {client_id} returns the first id"
                    );
                    first
                } else {
                    send(home, request).await.expect("sent")
                };
                Acked {
                    sender: k,
                    client_id,
                    id,
                }
            }));
        }
    }
    let mut acked = Vec::new();
    for call in calls {
        acked.push(call.await.expect("the send task ends"));
    }
    let ids: HashSet<u64> = acked.iter().map(|a| a.id).collect();
    assert_eq!(
        ids.len(),
        acked.len(),
        "every send has an id of its own: {acked:?}"
    );

    // The history holds every acknowledged message once, and nothing else.
    let history = all_messages(&mut everyone[5].via(1), group(chat)).await;
    let stored = once_each(&history);
    assert_eq!(stored.len(), acked.len(), "nothing more is stored");
    for sent in &acked {
        let message = stored
            .get(&sent.id)
            .unwrap_or_else(|| panic!("{sent:?} is in the history"));
        assert_eq!(message.author_id, everyone[sent.sender].id);
        assert_eq!(
            message.message,
            format!("{}:{}", sent.sender, sent.client_id % 1_000)
        );
    }
    assert!(
        history
            .windows(2)
            .all(|w| w[0].message_id < w[1].message_id),
        "the history pages are in id order"
    );

    for (k, member) in everyone.iter().enumerate() {
        // Conversations: read pointer and unread count, as the history says.
        let conversation = member.on(k).conversation(group(chat)).await;
        let own_newest = history
            .iter()
            .filter(|m| m.author_id == member.id)
            .map(|m| m.message_id)
            .max()
            .unwrap_or(0);
        assert_eq!(
            conversation.last_read_message_id, own_newest,
            "member {k}: sending marks the chat read up to one's newest message"
        );
        let unread = history
            .iter()
            .filter(|m| {
                m.message_id > conversation.last_read_message_id && m.author_id != member.id
            })
            .count();
        assert_eq!(
            conversation.unread_count as usize, unread,
            "member {k}: unread = messages after the pointer not written by them"
        );

        // The log: every message once, in id order, with the unread count
        // and client id as this member sees them.
        let log = log_until(
            &mut member.on(k + 1),
            &history.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        )
        .await;
        let mut unread_so_far = 0;
        for (update, message) in log.iter().zip(&history) {
            let got = update.message.as_ref().expect("a message");
            assert_eq!(
                got.message_id, message.message_id,
                "member {k}: messages are logged in id order"
            );
            assert_eq!(got.chat_ref, group(chat));
            let client_id = acked
                .iter()
                .find(|a| a.id == message.message_id)
                .map(|a| a.client_id);
            if message.author_id == member.id {
                unread_so_far = 0;
                assert_eq!(update.client_id, client_id, "the author sees its client id");
            } else {
                unread_so_far += 1;
                assert_eq!(update.client_id, None, "only the author sees the client id");
            }
            assert_eq!(
                update.channel_unread_count, unread_so_far,
                "member {k}: unread count carried by message {}",
                message.message_id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_through_two_replicas_are_each_stored_counted_and_logged_once() {
    let pair = pair().await;
    concurrent_sends_are_each_stored_counted_and_logged_once(&pair.one, &pair.two).await;
}

async fn concurrent_sends_through_one_replica_are_each_stored_counted_and_logged_once(
    app: TestApp,
) {
    concurrent_sends_are_each_stored_counted_and_logged_once(&app, &app).await;
}

// ---------------------------------------------------------------------------
// 2. Ids grow within a chat whatever the clocks say

#[tokio::test]
async fn ids_grow_within_a_chat_even_when_the_replicas_clocks_disagree() {
    let pair = pair_with_skews(5_000, -5_000).await;
    let ann = Member::new(&pair.one, &pair.two, "Ann").await;
    let bob = Member::new(&pair.one, &pair.two, "Bob").await;
    let chat = ann.on(0).create_group("clocks", &[bob.id]).await;

    let mut sent = Vec::new();
    for i in 0..20 {
        // Alternately through the fast and the slow replica.
        let sender = if i % 4 < 2 { &ann } else { &bob };
        let id = send(sender.via(i), text_message(chat, format!("m{i}"), None))
            .await
            .expect("sent");
        if let Some(&previous) = sent.last() {
            assert!(
                id > previous,
                "send {i} (replica {}) got {id}, not above {previous}",
                i % 2 + 1
            );
        }
        sent.push(id);
    }
    let history: Vec<u64> = all_messages(&mut bob.via(0), group(chat))
        .await
        .iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(history, sent, "the history is in send order");
}

// ---------------------------------------------------------------------------
// 3. A failing request inside a batch fails alone

const EACH: usize = 40;
/// Each member's sends in flight at once: enough that, when Xan's first
/// batch is acknowledged, Xan's next sends are already checked and queued
/// for a batch that the removal then beats to the chat's lock.
const IN_FLIGHT: usize = 8;

/// One member's `EACH` sends, `IN_FLIGHT` at a time; `first_acked` is
/// notified when the first is acknowledged. Each result comes with whether
/// `removed` was already set when its send started.
async fn send_many(
    client: Client,
    chat: u64,
    label: &'static str,
    removed: Arc<AtomicBool>,
    first_acked: Arc<Notify>,
) -> Vec<(bool, Result<u64, tonic::Status>)> {
    stream::iter(0..EACH)
        .map(|i| {
            let client = client.clone();
            let removed = removed.clone();
            let first_acked = first_acked.clone();
            async move {
                let started_after_removal = removed.load(Ordering::SeqCst);
                let result = send(client, text_message(chat, format!("{label}{i}"), None)).await;
                if result.is_ok() {
                    first_acked.notify_one();
                }
                (started_after_removal, result)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

async fn a_send_refused_inside_a_batch_fails_alone(app: TestApp) {
    let mut owner = app.user("Owner").await;
    let amy = app.user("Amy").await;
    let ben = app.user("Ben").await;
    let mut xan = app.user("Xan").await;
    let chat = owner.create_group("g", &[amy.id, ben.id, xan.id]).await;
    let removed = Arc::new(AtomicBool::new(false));
    let xan_acked = Arc::new(Notify::new());

    let sends = |user: &TestUser, label, first_acked| {
        tokio::spawn(send_many(
            user.client.clone(),
            chat,
            label,
            removed.clone(),
            first_acked,
        ))
    };
    let amy_sends = sends(&amy, "a", Arc::new(Notify::new()));
    let ben_sends = sends(&ben, "b", Arc::new(Notify::new()));
    let xan_sends = sends(&xan, "x", xan_acked.clone());
    // Once Xan's first send is acknowledged the owner removes Xan, while
    // Xan's other sends are in flight: some checked before the removal and
    // written in a batch after it, next to Amy's and Ben's.
    xan_acked.notified().await;
    owner
        .client
        .remove_chat_member(chats::RemoveChatMember {
            chat_ref: group(chat),
            user_id: xan.id,
        })
        .await
        .expect("the owner removes Xan");
    removed.store(true, Ordering::SeqCst);

    let mut others = Vec::new();
    for (who, sends) in [("Amy", amy_sends), ("Ben", ben_sends)] {
        for (_, result) in sends.await.expect("joined") {
            others.push(result.unwrap_or_else(|s| panic!("{who}'s send fails: {s:?}")));
        }
    }
    let mut xan_stored = Vec::new();
    let mut xan_refused = 0;
    for (started_after_removal, result) in xan_sends.await.expect("joined") {
        match result {
            Ok(id) => {
                assert!(
                    !started_after_removal,
                    "a send that started after the removal was acknowledged was accepted: {id}"
                );
                xan_stored.push(id);
            }
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
                xan_refused += 1;
            }
        }
    }
    assert!(!xan_stored.is_empty(), "Xan's first send was acknowledged");
    assert_code(
        xan.client
            .send_message(text_message(chat, "too late".into(), None))
            .await,
        Code::NotFound,
        "not found",
    );

    let history = all_messages(&mut owner.client, group(chat)).await;
    let stored = once_each(&history);
    let leave: Vec<&types::Message> = history
        .iter()
        .filter(|m| m.r#type == Some(types::message::MessageType::Leave as i32))
        .collect();
    assert_eq!(leave.len(), 1, "one LEAVE message");
    assert_eq!(leave[0].author_id, xan.id);
    for id in &others {
        assert!(stored.contains_key(id), "{id} is stored");
    }
    for id in &xan_stored {
        assert!(stored.contains_key(id), "Xan's {id} is stored");
        assert!(
            *id < leave[0].message_id,
            "Xan's accepted message {id} precedes the LEAVE"
        );
    }
    let acked: HashSet<u64> = others.iter().chain(&xan_stored).copied().collect();
    assert_eq!(
        acked.len(),
        others.len() + xan_stored.len(),
        "ids are unique"
    );
    assert_eq!(
        history.len(),
        acked.len() + 1,
        "the history is what was acknowledged plus the LEAVE"
    );
    assert_eq!(others.len(), 2 * EACH);
    assert_eq!(xan_stored.len() + xan_refused, EACH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_id_sent_through_two_replicas_at_once_stores_one_message() {
    let pair = pair().await;
    let ann = Member::new(&pair.one, &pair.two, "Ann").await;
    let bob = Member::new(&pair.one, &pair.two, "Bob").await;
    let chat = ann.on(0).create_group("g", &[bob.id]).await;
    let mut calls = Vec::new();
    for i in 0..8 {
        let request = text_message(chat, "once".into(), Some(4242));
        calls.push(tokio::spawn(send(ann.via(i), request)));
    }
    let mut ids = HashSet::new();
    for call in calls {
        ids.insert(
            call.await
                .expect("joined")
                .expect("every attempt is answered"),
        );
    }
    assert_eq!(ids.len(), 1, "one id for all: {ids:?}");
    let history = all_messages(&mut bob.via(1), group(chat)).await;
    assert_eq!(
        history.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        ids.into_iter().collect::<Vec<_>>()
    );
    assert_eq!(bob.on(0).conversation(group(chat)).await.unread_count, 1);
}

// ---------------------------------------------------------------------------
// 4. What one change costs the update log

async fn the_largest_message_to_250_members_is_logged_once_with_an_entry_each(app: TestApp) {
    let mut owner = app.user("Owner").await;
    let others = upsert_many(&app, 249, None).await;
    let chat = owner.create_group("everyone", &others).await;
    let (text, entities, last_url) = largest_message();
    assert!(
        entities.len() < 100,
        "{} entities: the whole-message bound comes first",
        entities.len()
    );
    let request = messages::SendMessage {
        entities: entities.clone(),
        ..text_message(chat, text.clone(), None)
    };
    if last_url < MAX_URL_BYTES {
        // One byte more is over the whole-message bound: this is the largest.
        let mut over = request.clone();
        if let Some(Entity::TextUrl(link)) =
            over.entities.last_mut().and_then(|e| e.entity.as_mut())
        {
            link.url.push('z');
        }
        assert_code(
            owner.client.send_message(over).await,
            Code::InvalidArgument,
            "encoded message",
        );
    }

    let before = log_counters(&app).await;
    let id = send(owner.client.clone(), request)
        .await
        .expect("the largest message is accepted");
    let after = log_counters(&app).await;

    let stored = all_messages(&mut owner.client, group(chat)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (
            stored[0].message_id,
            &stored[0].message,
            &stored[0].entities
        ),
        (id, &text, &entities)
    );
    let size = stored[0].encoded_len() as u64;
    assert!(size > 60_000, "the message is {size} bytes");
    assert_eq!(after.entries - before.entries, 250, "one entry per member");
    let bytes = after.payload_bytes - before.payload_bytes;
    assert!(
        bytes < 2 * size,
        "the payload is logged once: {bytes} bytes for a message of {size}"
    );
}

async fn a_join_into_a_group_of_big_avatars_logs_only_the_joiner(app: TestApp) {
    let users = upsert_many(&app, 250, Some(MAX_PREVIEW_BYTES)).await;
    let (owner_id, members, joiner) = (users[0], &users[1..249], users[249]);
    let mut owner = TestUser {
        id: owner_id,
        client: app.client(owner_id).await,
    };
    let chat = owner.create_group("avatars", members).await;

    let before = log_counters(&app).await;
    owner
        .client
        .add_chat_member(chats::AddChatMember {
            chat_ref: group(chat),
            user_id: joiner,
        })
        .await
        .expect("the 250th member joins");
    let after = log_counters(&app).await;

    // The JOIN message and the UpdateGroup, each to all 250 members (the
    // joiner included); the adder has no draft, so no UpdateChat.
    assert_eq!(after.entries - before.entries, 2 * 250);
    // Both payloads are logged once. The JOIN carries its author (the
    // joiner) and UpdateGroup only the user who changed (the joiner) plus
    // 250 participant ids: about 2 x 8 KiB + 2 KiB. Carrying every
    // member's user would be 250 x 8 KiB = 2 MiB, and copies per recipient
    // far more.
    let bytes = after.payload_bytes - before.payload_bytes;
    assert!(bytes < 1 << 20, "{bytes} bytes logged for a join");
    assert!(bytes < 64 * 1024, "{bytes} bytes logged for a join");

    let chat = owner
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(chat),
        })
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(chat.group.expect("group").participant_ids.len(), 250);
}

// ---------------------------------------------------------------------------
// 5. Large payloads cross replicas by reference

#[tokio::test]
async fn a_large_message_reaches_every_member_on_another_replica_intact() {
    let pair = pair().await;
    let mut everyone = Vec::new();
    for i in 0..10 {
        everyone.push(Member::new(&pair.one, &pair.two, &format!("Member {i}")).await);
    }
    let ann = everyone[0].clone();
    let others: Vec<u64> = everyone[1..].iter().map(|m| m.id).collect();
    let chat = ann.on(0).create_group("big", &others).await;
    // A small message first: members 1 to 4 read it, 5 to 9 do not.
    let hello = send(ann.via(0), text_message(chat, "hello".into(), None))
        .await
        .expect("sent");
    for member in &everyone[1..5] {
        member
            .via(1)
            .mark_chat_read(chats::MarkChatRead {
                chat_ref: group(chat),
                message_id: hello,
                read_amount: None,
            })
            .await
            .expect("read");
    }
    let mut streams = Vec::new();
    for member in &everyone {
        streams.push(member.on(1).subscribe(None).await);
    }

    // About 60 KiB: ten copies would be 600 KiB on the bus.
    let text = varied_text(MAX_TEXT_CHARS);
    let entities: Vec<_> = (0..27).map(|i| link(i * 3, url(MAX_URL_BYTES))).collect();
    let size = encoded_as_stored(&text, &entities);
    assert!((58 * 1024..=MAX_MESSAGE_BYTES).contains(&size), "{size}");
    let id = send(
        ann.via(0),
        messages::SendMessage {
            entities: entities.clone(),
            ..text_message(chat, text.clone(), Some(77))
        },
    )
    .await
    .expect("sent");

    for (k, stream) in streams.iter_mut().enumerate() {
        let envelope = next(stream).await;
        let update = message_created(envelope.update)
            .unwrap_or_else(|| panic!("member {k} gets the message first"));
        let message = update.message.expect("a message");
        assert_eq!(message.message_id, id);
        assert_eq!(message.chat_ref, group(chat), "member {k}");
        assert_eq!(message.author_id, ann.id);
        assert!(message.message == text, "member {k} gets the whole text");
        assert!(message.entities == entities, "member {k} gets every entity");
        assert_eq!(update.author.map(|a| a.id), Some(ann.id));
        let (unread, client_id) = match k {
            0 => (0, Some(77)),
            1..=4 => (1, None),
            _ => (2, None),
        };
        assert_eq!(
            (update.channel_unread_count, update.client_id),
            (unread, client_id),
            "member {k}"
        );
    }

    // It crossed by reference: one payload stored in Redis, named by every
    // member's delivery (the small updates before it all went inline).
    let mut redis = pair.redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("osmium:c:*")
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let stored: usize = redis::cmd("STRLEN")
        .arg(&keys[0])
        .query_async(&mut redis)
        .await
        .expect("strlen");
    assert!(
        (text.len()..2 * size).contains(&stored),
        "{stored} bytes stored for a message of {size}"
    );
}

both_engines!(
    concurrent_sends_through_one_replica_are_each_stored_counted_and_logged_once,
    a_send_refused_inside_a_batch_fails_alone,
    the_largest_message_to_250_members_is_logged_once_with_an_entry_each,
    a_join_into_a_group_of_big_avatars_logs_only_the_joiner,
);
