//! What reaches a stream when the bus does not: the sweep that compares
//! each replica's streams with their users' logs, replays that wait for a
//! slow client, the cap on streams per user, and a log with a hole.

use std::time::Duration;

use futures_util::future::join_all;
use osmium_chat::config::Settings;
use tokio_postgres::NoTls;
use tonic::Code;

use crate::helpers::{both_engines_custom, dm, next, sample, scrape, Engine, TestApp, TestUser};

/// Two replicas on one Postgres and no bus between them: only the sweep
/// carries updates from one to the other.
async fn busless_pair() -> (TestApp, TestApp) {
    let mut settings: Settings = TestApp::settings(Engine::Postgres).await;
    settings.stream_sweep_interval = Duration::from_millis(50);
    let one = TestApp::spawn_with(settings.clone()).await;
    let two = TestApp::spawn_with(settings).await;
    (one, two)
}

#[tokio::test]
async fn updates_committed_on_a_replica_that_never_publishes_reach_streams_elsewhere() {
    let (one, two) = busless_pair().await;
    let mut ann = one.user("Ann").await;
    let bob = one.user("Bob").await;
    let mut bob_two = TestUser {
        id: bob.id,
        client: two.client(bob.id).await,
    };
    let mut stream = bob_two.subscribe(None).await;

    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(ann.send(dm(bob.id), &format!("unpublished {i}")).await);
    }
    for seq in 1..=5u64 {
        let envelope = next(&mut stream).await;
        assert_eq!(envelope.seq, seq, "in order, no gap, no repeat");
    }
    let metrics = scrape(two.metrics_port).await;
    let swept = sample(&metrics, "osmium_streams_swept_total").expect("the sweep is counted");
    assert!(swept >= 1.0, "the sweep delivered them: {swept}");
}

#[tokio::test]
async fn a_hole_in_the_log_ends_a_replay_with_out_of_range_not_silence() {
    let settings = TestApp::settings(Engine::Postgres).await;
    let url = settings
        .database_url
        .as_ref()
        .map(|u| u.expose().to_owned())
        .expect("a database");
    let app = TestApp::spawn_with(settings).await;
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    for i in 0..3 {
        ann.send(dm(bob.id), &format!("m{i}")).await;
    }
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("sql");
    tokio::spawn(connection);
    let deleted = client
        .execute(
            "DELETE FROM updates WHERE user_id = $1 AND seq = 2",
            &[&(bob.id as i64)],
        )
        .await
        .expect("delete");
    assert_eq!(deleted, 1, "the middle entry is gone");

    let mut stream = bob.subscribe(Some(0)).await;
    assert_eq!(next(&mut stream).await.seq, 1);
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream answers")
        .expect_err("the stream cannot go on past the hole");
    assert_eq!(ended.code(), Code::OutOfRange, "{ended:?}");
}

async fn a_backlog_of_5000_updates_replays_to_a_client_with_a_default_window(engine: Engine) {
    // 5,000 sends from one user at once: past any per-user rate.
    let app = TestApp::spawn_tuned(engine, |s| {
        s.limits.rate_send = osmium_chat::domain::limits::Rate::OFF
    })
    .await;
    const BACKLOG: u64 = 5_000;
    const IN_FLIGHT: u64 = 50;
    let ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    // Many sends in flight into one chat: they are written in batches.
    join_all((0..IN_FLIGHT).map(|lane| {
        let mut client = ann.client.clone();
        async move {
            for i in 0..BACKLOG / IN_FLIGHT {
                client
                    .send_message(osmium_chat::proto::messages::SendMessage {
                        chat_ref: dm(bob.id),
                        message: format!("backlog {lane}.{i}"),
                        ..Default::default()
                    })
                    .await
                    .expect("sent");
            }
        }
    }))
    .await;

    let mut stream = bob.subscribe(Some(0)).await;
    for seq in 1..=BACKLOG {
        assert_eq!(next(&mut stream).await.seq, seq, "whole and in order");
    }
}

async fn streams_per_user_are_capped_per_replica(engine: Engine) {
    let app = TestApp::spawn_tuned(engine, |s| s.max_streams_per_user = 2).await;
    let mut bob = app.user("Bob").await;
    let first = bob.subscribe(None).await;
    let _second = bob.subscribe(None).await;
    let refused = bob
        .client
        .subscribe(osmium_chat::proto::service::SubscribeRequest { since_seq: None })
        .await
        .expect_err("a third stream is one too many");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("at most 2"), "{refused:?}");

    // The server notices the closed stream on its own time: poll, bounded.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match bob
            .client
            .subscribe(osmium_chat::proto::service::SubscribeRequest { since_seq: None })
            .await
        {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "a closed stream gives its place back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("unexpected {status:?}"),
        }
    }
}

/// Calls cut by their deadline, some during COMMIT: whatever was stored
/// reaches the peer's open stream, each message once.
async fn sends_cut_by_their_deadline_still_reach_open_streams(engine: Engine) {
    let app = TestApp::spawn_tuned(engine, |s| {
        s.stream_sweep_interval = Duration::from_millis(50)
    })
    .await;
    let ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut stream = bob.subscribe(None).await;
    // A connection per call: HTTP/2 servers close a connection on which
    // many streams are reset at once, and that is not what this tests.
    let clients = join_all((0..60u64).map(|_| app.client(ann.id))).await;
    join_all(
        clients
            .into_iter()
            .zip(0u64..)
            .map(|(mut client, i)| async move {
                let mut request = tonic::Request::new(osmium_chat::proto::messages::SendMessage {
                    chat_ref: dm(bob.id),
                    message: format!("hurried {i}"),
                    client_id: Some(i + 1),
                    ..Default::default()
                });
                // Deadlines from under a millisecond to tens of them; every fifth
                // call has none, so some sends are sure to be stored.
                if i % 5 != 0 {
                    request.set_timeout(Duration::from_micros(500 * (i % 61)));
                }
                // Success or DEADLINE_EXCEEDED: either way the message may be stored.
                let outcome = client.send_message(request).await;
                if i % 5 == 0 {
                    outcome.expect("a send without a deadline is stored");
                }
            }),
    )
    .await;

    let stored = bob.history(dm(ann.id), Some(100), None).await.len() as u64;
    assert!(
        stored >= 12,
        "the sends without a deadline, at least: {stored}"
    );
    for seq in 1..=stored {
        assert_eq!(
            next(&mut stream).await.seq,
            seq,
            "every stored message, once"
        );
    }
}

both_engines_custom!(
    a_backlog_of_5000_updates_replays_to_a_client_with_a_default_window,
    streams_per_user_are_capped_per_replica,
    sends_cut_by_their_deadline_still_reach_open_streams,
);
