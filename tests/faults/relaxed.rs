//! A read marker or a draft commits without waiting for its WAL flush, and
//! a crash may take it back. Its update must then never have reached a stream: the lost
//! entry's seq goes to the next entry, and a client that had seen the lost
//! one would drop the next as a repeat (or resume after it and skip it).
//!
//! This server keeps asynchronous commits in its WAL buffers for up to
//! 10 s (`wal_writer_delay`), where the default leaves them there for a
//! fraction of a second, so an immediate restart right after the update
//! arrives loses any entry whose publish did not wait for a flush.

use std::time::{Duration, Instant};

use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::{SetDraft, SubscribeRequest, UpdateEnvelope};
use osmium_chat::proto::updates::update::Update as U;
use osmium_chat::proto::{chats, messages, types};
use tonic::Streaming;

use crate::load::{channel, with_token, Bearer, Client};
use crate::postgres::Postgres;
use crate::replica::Replica;
use crate::{dm, token, SECRET};

/// How long the replica may take to serve again after the restart.
const RECOVERY: Duration = Duration::from_secs(60);
const NEXT_UPDATE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_marker_a_stream_delivered_survives_a_database_crash() {
    let pg = Postgres::start_with("-c wal_writer_delay=10000").await;
    let logs = std::env::temp_dir().join(format!("osmium-relaxed-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("a log directory");
    let mut replica = Replica::new(
        0,
        vec![
            ("DATABASE_URL", pg.url()),
            ("OSMIUM_JWT_SECRET", SECRET.to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ],
        logs.join("replica.log"),
    );
    replica.start().await;
    let channel = channel(&replica.url());
    let (reader, writer) = (9_100_001, 9_100_002);
    UserDirectoryClient::with_interceptor(channel.clone(), Bearer::new(&token(1, true)))
        .upsert_users(osmium_chat::proto::service::UpsertUsers {
            users: [reader, writer]
                .map(|id| types::User {
                    id,
                    name: format!("user {id}"),
                    ..Default::default()
                })
                .to_vec(),
        })
        .await
        .expect("users are upserted");
    let mut reading = with_token(channel.clone(), &token(reader, false));
    let mut writing = with_token(channel.clone(), &token(writer, false));

    let sent = send(&mut writing, reader, "before the crash").await;
    let mut stream = subscribe(&mut reading, 0).await;
    let created = next(&mut stream).await;
    assert_eq!(
        kind(&created),
        "MessageCreated",
        "the log starts with it: {created:?}"
    );
    reading
        .mark_chat_read(chats::MarkChatRead {
            chat_ref: Some(dm(writer)),
            message_id: sent,
            read_amount: None,
        })
        .await
        .expect("the chat is marked read");
    let marked = next(&mut stream).await;
    expect(&marked, created.seq + 1, "ConversationLastRead");

    reading
        .set_draft(SetDraft {
            chat_ref: Some(dm(writer)),
            draft: Some("unsent".into()),
        })
        .await
        .expect("the draft is set");
    let drafted = next(&mut stream).await;
    expect(&drafted, marked.seq + 1, "Chat");

    pg.restart("immediate").await;

    // A new entry for the reader: the seq after the draft's, unless the
    // crash took those back and handed their seqs on.
    let deadline = Instant::now() + RECOVERY;
    loop {
        let attempt = writing
            .send_message(messages::SendMessage {
                chat_ref: Some(dm(reader)),
                message: "after the crash".into(),
                client_id: Some(1),
                ..Default::default()
            })
            .await;
        match attempt {
            Ok(_) => break,
            Err(status) => assert!(
                Instant::now() < deadline,
                "no send served within {RECOVERY:?} of the restart: {status:?}; {}",
                replica.log_tail()
            ),
        }
        // Polling a database on its way up: nothing to await but time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What the stream delivered before the crash is still in the log, at
    // the same seqs, and the new message comes after it.
    let mut resumed = subscribe(&mut reading, created.seq).await;
    expect(
        &next(&mut resumed).await,
        marked.seq,
        "ConversationLastRead",
    );
    expect(&next(&mut resumed).await, drafted.seq, "Chat");
    expect(&next(&mut resumed).await, drafted.seq + 1, "MessageCreated");
    let _ = std::fs::remove_dir_all(&logs);
}

/// The update's kind, as its field in `Update` is named.
fn kind(envelope: &UpdateEnvelope) -> &'static str {
    match envelope.update.as_ref().and_then(|u| u.update.as_ref()) {
        Some(U::MessageCreated(_)) => "MessageCreated",
        Some(U::ConversationLastRead(_)) => "ConversationLastRead",
        Some(U::Chat(_)) => "Chat",
        Some(_) => "another update",
        None => "no update",
    }
}

fn expect(envelope: &UpdateEnvelope, seq: u64, what: &str) {
    assert_eq!(
        (envelope.seq, kind(envelope)),
        (seq, what),
        "expected {what} at seq {seq}: {envelope:?}"
    );
}

async fn send(client: &mut Client, to: u64, text: &str) -> u64 {
    client
        .send_message(messages::SendMessage {
            chat_ref: Some(dm(to)),
            message: text.into(),
            ..Default::default()
        })
        .await
        .expect("the message is sent")
        .into_inner()
        .message_id
}

async fn subscribe(client: &mut Client, since: u64) -> Streaming<UpdateEnvelope> {
    client
        .subscribe(SubscribeRequest {
            since_seq: Some(since),
        })
        .await
        .expect("the stream opens")
        .into_inner()
}

async fn next(stream: &mut Streaming<UpdateEnvelope>) -> UpdateEnvelope {
    tokio::time::timeout(NEXT_UPDATE, stream.message())
        .await
        .expect("an update arrives in time")
        .expect("the stream stays open")
        .expect("the stream goes on")
}
