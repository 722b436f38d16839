//! Connections that go silent without closing (a frozen network path, played
//! by [`Proxy::freeze`]): only a keepalive PING notices them, on the Redis
//! pub/sub connection and on clients' HTTP/2 connections alike.

use std::time::{Duration, Instant};

use osmium_chat::config::{LimitSettings, Secret};
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::SubscribeRequest;
use osmium_chat::proto::updates::update::Update as U;
use tonic::transport::Channel;

use crate::helpers::{dm, next, sample, scrape, Bearer, Engine, TestApp, TestUser};
use crate::support::proxy::Proxy;
use crate::support::redis::RedisServer;

/// Far longer than any of these tests waits: the settings under test, not
/// the service's other safety nets, must be what recovers.
const NEVER: Duration = Duration::from_secs(3600);

/// Polls the metric `name` of the replica until `holds`, or fails the test
/// at the deadline.
async fn metric_until(app: &TestApp, name: &str, what: &str, holds: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(app.metrics_port).await;
        let value = sample(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        if holds(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {name} is {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_silent_redis_pubsub_connection_is_noticed_by_ping_and_replaced() {
    let redis = RedisServer::start().await;
    let proxy = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let mut settings = TestApp::settings(Engine::Postgres).await;
    settings.redis_url = Some(Secret::new(redis.url()));
    let direct = TestApp::spawn_with(settings.clone()).await;
    settings.redis_url = Some(Secret::new(proxy.url("redis")));
    settings.redis_ping_interval = Duration::from_millis(300);
    settings.redis_ping_timeout = Duration::from_millis(300);
    // Else the sweep would deliver what the bus does not.
    settings.stream_sweep_interval = NEVER;
    let proxied = TestApp::spawn_with(settings).await;

    let mut ann = direct.user("Ann").await;
    let bob = direct.user("Bob").await;
    let mut bob = TestUser {
        id: bob.id,
        client: proxied.client(bob.id).await,
    };
    let mut stream = bob.subscribe(None).await;
    ann.send(dm(bob.id), "before").await;
    next(&mut stream).await;
    let reconnects = "osmium_redis_reconnects_total";
    let before = sample(&scrape(proxied.metrics_port).await, reconnects).expect("counted");

    proxy.freeze();
    metric_until(
        &proxied,
        reconnects,
        "the frozen pub/sub connection is replaced",
        |n| n > before,
    )
    .await;

    let id = ann.send(dm(bob.id), "after").await;
    let Some(U::MessageCreated(created)) = next(&mut stream).await.update.and_then(|u| u.update)
    else {
        panic!("the message crosses over the new pub/sub connection");
    };
    assert_eq!(created.message.map(|m| m.message_id), Some(id));
}

#[tokio::test]
async fn a_subscribe_stream_on_a_silent_client_connection_ends_by_http2_keepalive() {
    let app = TestApp::spawn_tuned(Engine::Memory, |s| {
        s.http2_keepalive_interval = Duration::from_millis(300);
        s.http2_keepalive_timeout = Duration::from_millis(300);
    })
    .await;
    let bob = app.user("Bob").await;
    let proxy = Proxy::start(([127, 0, 0, 1], app.port).into()).await;
    let channel = Channel::from_shared(proxy.url("http"))
        .expect("a valid uri")
        .connect()
        .await
        .expect("the proxy forwards");
    let token = format!("Bearer {}", app.token(bob.id, None, false));
    let mut client =
        ChatServiceClient::with_interceptor(channel, Bearer(token.parse().expect("ascii")));
    let _stream = client
        .subscribe(SubscribeRequest { since_seq: None })
        .await
        .expect("subscribed")
        .into_inner();
    let open = "osmium_subscribe_streams_open";
    metric_until(&app, open, "the stream is open", |n| n == 1.0).await;

    proxy.freeze();
    metric_until(
        &app,
        open,
        "the stream on the silent connection ends",
        |n| n == 0.0,
    )
    .await;
}

#[tokio::test]
async fn a_replica_stops_within_its_bound_with_a_publish_stuck_on_a_silent_redis() {
    let redis = RedisServer::start().await;
    let proxy = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let mut settings = TestApp::settings(Engine::Postgres).await;
    settings.redis_url = Some(Secret::new(proxy.url("redis")));
    // Bounds the wait for queued publishes too (with the service's 5 s).
    settings.shutdown_timeout = Duration::from_millis(50);
    // So that sends touch Redis only to publish.
    settings.limits = LimitSettings::without_rates();
    let app = TestApp::spawn_with(settings).await;
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    ann.send(dm(bob.id), "before").await;

    proxy.freeze();
    ann.send(dm(bob.id), "stuck").await;
    let stopping = Instant::now();
    app.stop().await;
    // The stuck publish would hold the stop for the service's command
    // timeout (500 ms) if the drain waited for it.
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_millis(400),
        "the stop gave up on the publish within its bound: took {took:?}"
    );
}

#[tokio::test]
async fn a_zero_redis_ping_interval_is_refused_at_start() {
    let redis = RedisServer::start().await;
    let mut settings = TestApp::settings(Engine::Postgres).await;
    settings.redis_url = Some(Secret::new(redis.url()));
    settings.redis_ping_interval = Duration::ZERO;
    let Err(error) = osmium_chat::startup::Application::build(settings).await else {
        panic!("a replica that would never PING starts");
    };
    assert!(
        error.to_string().contains("OSMIUM_REDIS_PING_INTERVAL"),
        "{error}"
    );
}
