//! Several replicas behaving as one service: Postgres and Redis shared, a
//! change on one replica seen on another, outages survived.

use std::time::Duration;

use osmium_chat::config::{Secret, Settings};
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::{SubscribeRequest, UpsertUsers};
use osmium_chat::proto::updates::update::Update as U;
use osmium_chat::proto::{chats, messages, types};
use tonic::Code;

use crate::helpers::{both_engines_custom, dm, next, Bearer, Engine, TestApp, TestUser};
use crate::support::redis::RedisServer;

/// Two replicas on one Postgres schema and one Redis.
struct Pair {
    one: TestApp,
    two: TestApp,
    settings: Settings,
    redis: RedisServer,
}

async fn pair() -> Pair {
    let redis = RedisServer::start().await;
    let mut settings = TestApp::settings(Engine::Postgres).await;
    settings.redis_url = Some(Secret::new(redis.url()));
    let one = TestApp::spawn_with(settings.clone()).await;
    let two = TestApp::spawn_with(settings.clone()).await;
    Pair {
        one,
        two,
        settings,
        redis,
    }
}

/// The same user, acting through another replica.
async fn on(app: &TestApp, user: &TestUser) -> TestUser {
    TestUser {
        id: user.id,
        client: app.client(user.id).await,
    }
}

fn created(update: Option<U>) -> u64 {
    match update {
        Some(U::MessageCreated(created)) => created.message.map_or(0, |m| m.message_id),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn changes_on_one_replica_reach_subscribers_on_another() {
    let pair = pair().await;
    let mut ann = pair.one.user("Ann").await;
    let mut bob = on(&pair.two, &pair.one.user("Bob").await).await;
    let mut stream = bob.subscribe(None).await;

    let id = ann.send(dm(bob.id), "across").await;
    let envelope = next(&mut stream).await;
    assert_eq!(envelope.seq, 1);
    let Some(U::MessageCreated(update)) = envelope.update.and_then(|u| u.update) else {
        panic!("bob gets the message on the other replica");
    };
    assert_eq!(
        update.message.map(|m| (m.message_id, m.chat_ref)),
        Some((id, dm(ann.id)))
    );

    ann.client
        .edit_message(messages::EditMessage {
            chat_ref: dm(bob.id),
            message_id: id,
            message: Some("edited".into()),
            ..Default::default()
        })
        .await
        .expect("edited");
    let Some(U::Message(edit)) = next(&mut stream).await.update.and_then(|u| u.update) else {
        panic!("the edit crosses too");
    };
    assert_eq!(edit.message.map(|m| m.message), Some("edited".to_owned()));

    let group = ann.create_group("g", &[bob.id]).await;
    let Some(U::Group(update)) = next(&mut stream).await.update.and_then(|u| u.update) else {
        panic!("the group change crosses too");
    };
    let seen = update.group.expect("group");
    assert_eq!((seen.id, seen.owner), (group, false));
}

#[tokio::test]
async fn typing_crosses_replicas_and_lives_in_redis_with_a_ttl() {
    let pair = pair().await;
    let mut ann = pair.one.user("Ann").await;
    let mut bob = on(&pair.two, &pair.one.user("Bob").await).await;
    let mut stream = bob.subscribe(None).await;
    ann.client
        .set_typing(chats::SetTyping {
            chat_ref: dm(bob.id),
            typing: true,
            action: None,
        })
        .await
        .expect("typing");
    let Some(U::ChatTyping(update)) = next(&mut stream).await.update.and_then(|u| u.update) else {
        panic!("typing crosses replicas");
    };
    assert_eq!(
        (update.user_id, update.typing, update.chat_ref),
        (ann.id, true, dm(ann.id))
    );

    let mut redis = pair.redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("osmium:typing:*")
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut redis)
        .await
        .expect("ttl");
    assert!(ttl > 0 && ttl <= 6_000, "ttl {ttl}");
}

#[tokio::test]
async fn a_stream_resumes_on_a_restarted_replica_with_every_missed_update_once() {
    let Pair {
        one,
        two,
        settings,
        redis: _redis,
    } = pair().await;
    let mut ann = one.user("Ann").await;
    let bob = one.user("Bob").await;
    let mut bob_two = on(&two, &bob).await;
    let mut stream = bob_two.subscribe(None).await;
    ann.send(dm(bob.id), "before").await;
    assert_eq!(next(&mut stream).await.seq, 1);
    two.stop().await;

    let mut missed = Vec::new();
    for i in 0..3 {
        missed.push(ann.send(dm(bob.id), &format!("while down {i}")).await);
    }
    let two = TestApp::spawn_with(settings).await;
    let mut bob_two = on(&two, &bob).await;
    let mut resumed = bob_two.subscribe(Some(1)).await;
    let mut got = Vec::new();
    for seq in 2..=4 {
        let envelope = next(&mut resumed).await;
        assert_eq!(envelope.seq, seq);
        got.push(created(envelope.update.and_then(|u| u.update)));
    }
    assert_eq!(got, missed);
    let live = ann.send(dm(bob.id), "live").await;
    let envelope = next(&mut resumed).await;
    assert_eq!(
        (
            envelope.seq,
            created(envelope.update.and_then(|u| u.update))
        ),
        (5, live)
    );
}

#[tokio::test]
async fn a_redis_outage_loses_nothing_and_delivery_resumes_by_itself() {
    let mut pair = pair().await;
    let mut ann = pair.one.user("Ann").await;
    let bob = pair.one.user("Bob").await;
    let mut bob_two = on(&pair.two, &bob).await;
    let mut stream = bob_two.subscribe(None).await;
    let first = ann.send(dm(bob.id), "before").await;
    assert_eq!(
        created(next(&mut stream).await.update.and_then(|u| u.update)),
        first
    );

    pair.redis.stop();
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(ann.send(dm(bob.id), &format!("during {i}")).await);
    }
    assert_eq!(
        ann.history(dm(bob.id), None, None).await.len(),
        4,
        "reads work without redis"
    );
    bob_two
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("so do reads on the other replica");

    pair.redis.restart().await;
    sent.push(ann.send(dm(bob.id), "after").await);
    let mut got = Vec::new();
    for seq in 2..=5 {
        let envelope = next(&mut stream).await;
        assert_eq!(envelope.seq, seq, "in order, no gap, no repeat");
        got.push(created(envelope.update.and_then(|u| u.update)));
    }
    assert_eq!(got, sent);
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_ended_and_others_are_not() {
    let redis = RedisServer::start().await;
    let mut settings = TestApp::settings(Engine::Postgres).await;
    settings.redis_url = Some(Secret::new(redis.url()));
    settings.stream_buffer = 8;
    let app = TestApp::spawn_with(settings).await;
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;

    // A client with a tiny flow-control window that reads nothing.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", app.port))
        .expect("uri")
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .expect("connects");
    let token = format!("Bearer {}", app.token(bob.id, None, false))
        .parse()
        .expect("ascii");
    let mut slow_client = ChatServiceClient::with_interceptor(channel, Bearer(token));
    let mut slow = slow_client
        .subscribe(SubscribeRequest { since_seq: None })
        .await
        .expect("subscribed")
        .into_inner();
    let mut healthy = bob.subscribe(None).await;

    let text = "x".repeat(3500);
    const SENT: u64 = 80;
    for _ in 0..SENT {
        ann.send(dm(bob.id), &text).await;
    }
    for seq in 1..=SENT {
        assert_eq!(
            next(&mut healthy).await.seq,
            seq,
            "the healthy stream gets everything"
        );
    }
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.message())
            .await
            .expect("the slow stream answers")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the slow stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert!(ended.message().contains("since_seq"));
}

#[tokio::test]
async fn a_replica_subscribes_to_a_users_channel_only_while_it_has_their_stream() {
    let pair = pair().await;
    let bob = pair.one.user("Bob").await;
    let mut bob_two = on(&pair.two, &bob).await;
    let redis = pair.redis.connection().await;
    let channel = format!("osmium:u:{}", bob.id);
    let subscribed = |mut redis: redis::aio::MultiplexedConnection, channel: String| async move {
        let channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg(&channel)
            .query_async(&mut redis)
            .await
            .expect("pubsub channels");
        !channels.is_empty()
    };
    assert!(!subscribed(redis.clone(), channel.clone()).await);
    let first = bob_two.subscribe(None).await;
    let second = bob_two.subscribe(None).await;
    assert!(
        subscribed(redis.clone(), channel.clone()).await,
        "subscribed before Subscribe returned"
    );
    drop(first);
    drop(second);
    // Unsubscribing follows the last stream's end; wait for it, bounded.
    let mut gone = false;
    for _ in 0..200 {
        if !subscribed(redis.clone(), channel.clone()).await {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "unsubscribed after the last stream closed");
}

async fn entries_past_retention_are_pruned_and_old_seqs_must_resync(engine: Engine) {
    let app = TestApp::spawn_tuned(engine, |s| {
        s.update_retention = Duration::from_millis(300);
        s.prune_interval = Duration::from_millis(50);
    })
    .await;
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    ann.send(dm(bob.id), "soon gone").await;
    // Wait, bounded, for the pruner to run past the retention.
    let mut status = None;
    for _ in 0..100 {
        match bob
            .client
            .subscribe(SubscribeRequest { since_seq: Some(0) })
            .await
        {
            Err(refused) => {
                status = Some(refused);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let status = status.expect("the old entry was pruned");
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(status.message().contains("resync"), "{status:?}");

    // Seqs continue after pruning: a fresh stream gets the next one.
    let mut stream = bob.subscribe(None).await;
    ann.send(dm(bob.id), "new").await;
    assert_eq!(next(&mut stream).await.seq, 2);
}

both_engines_custom!(entries_past_retention_are_pruned_and_old_seqs_must_resync);

#[tokio::test]
async fn a_profile_changed_through_one_replica_is_what_the_other_serves_next() {
    let pair = pair().await;
    let mut ann = pair.one.user("Ann").await;
    let mut bob = on(&pair.two, &pair.one.user("Bob").await).await;
    ann.send(dm(bob.id), "hello").await;
    let mut stream = bob.subscribe(None).await;
    let ann_id = ann.id;
    let name_of_ann = |chats: chats::Chats| {
        chats
            .users
            .into_iter()
            .find(|u| u.id == ann_id)
            .map(|u| u.name)
    };
    // Bob's replica reads Ann, which keeps her in its cache.
    let page = bob.client.get_chats(chats::GetChats::default()).await;
    assert_eq!(
        name_of_ann(page.expect("chats").into_inner()),
        Some("Ann".into())
    );

    pair.one
        .directory()
        .await
        .upsert_users(UpsertUsers {
            users: vec![types::User {
                id: ann.id,
                name: "Ann Renamed".into(),
                ..Default::default()
            }],
        })
        .await
        .expect("upserted");
    // The bus carries the word of the change before this message, which
    // the same replica publishes after it: once Bob's stream has the
    // message, his replica has dropped the old profile.
    let id = ann.send(dm(bob.id), "renamed").await;
    assert_eq!(
        created(next(&mut stream).await.update.and_then(|u| u.update)),
        id
    );

    let page = bob.client.get_chats(chats::GetChats::default()).await;
    assert_eq!(
        name_of_ann(page.expect("chats").into_inner()),
        Some("Ann Renamed".into())
    );
    let history = bob
        .client
        .get_history(messages::GetHistory {
            chat_ref: dm(ann.id),
            limit: None,
            offset: None,
        })
        .await
        .expect("history")
        .into_inner();
    let authors: Vec<String> = history.users.into_iter().map(|u| u.name).collect();
    assert_eq!(authors, vec!["Ann Renamed".to_owned()]);
}
