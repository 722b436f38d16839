//! Metrics, traces and health as operations see them.

use std::time::Duration;

use osmium_chat::proto::chats;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::helpers::{dm, sample, scrape, Engine, TestApp};

#[tokio::test]
async fn metrics_expose_rpc_counts_and_latency_by_method_and_code() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let mut ann = app.user("Ann").await;
    ann.client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists");
    let _ = ann.client.get_chat(chats::GetChat { chat_ref: None }).await;
    let _stream = ann.subscribe(None).await;

    let text = scrape(app.metrics_port).await;
    assert!(
        text.contains(
            r#"osmium_rpc_requests_total{method="osmium.chat.v1.ChatService/GetChats",code="0"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"osmium_rpc_requests_total{method="osmium.chat.v1.ChatService/GetChat",code="3"} 1"#
    ));
    assert!(text.contains(r#"osmium_rpc_duration_seconds_bucket{le="#));
    assert!(text.contains(r#"osmium_db_pool_connections{state="size"}"#));
    assert!(text.contains("osmium_subscribe_streams_open 1"), "{text}");
    for limit in ["send", "typing", "use_invite"] {
        assert!(
            text.contains(&format!(
                r#"osmium_rate_limited_total{{limit="{limit}"}} 0"#
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn user_cache_hits_and_misses_are_counted_and_sweeps_timed() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    ann.send(dm(bob.id), "hi").await;
    let counts = || async {
        let text = scrape(app.metrics_port).await;
        let value = |name: &str| {
            sample(&text, name).unwrap_or_else(|| panic!("{name} is exposed:\n{text}"))
        };
        (
            value("osmium_user_cache_hits_total"),
            value("osmium_user_cache_misses_total"),
        )
    };

    let (hits, misses) = counts().await;
    ann.client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists");
    let (hits_after_first, misses_after_first) = counts().await;
    assert!(
        misses_after_first > misses,
        "the first listing reads Bob's profile from the store"
    );
    ann.client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists");
    let (hits_after_second, misses_after_second) = counts().await;
    assert!(
        hits_after_second > hits_after_first.max(hits),
        "the second listing finds it cached"
    );
    assert_eq!(misses_after_second, misses_after_first);

    let _stream = ann.subscribe(None).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(app.metrics_port).await;
        if sample(&text, "osmium_sweep_duration_seconds_count").is_some_and(|n| n > 0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sweep was timed:\n{text}"
        );
        // The sweep runs on its own timer: nothing to await but time.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_request_to_a_path_the_server_does_not_serve_is_counted_as_unknown() {
    let app = TestApp::spawn(Engine::Memory).await;
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    for path in ["/evil.Probe/Method123", "/osmium.chat.v1.ChatService/Bogus"] {
        grpc.ready().await.expect("ready");
        grpc.unary(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await
        .expect_err("no such method");
    }

    let text = scrape(app.metrics_port).await;
    let unknown: u64 = text
        .lines()
        .filter(|l| l.starts_with(r#"osmium_rpc_requests_total{method="unknown","#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(unknown, 2, "{text}");
    assert!(!text.contains("evil") && !text.contains("Bogus"), "{text}");
}

#[tokio::test]
async fn health_turns_not_serving_as_soon_as_shutdown_begins() {
    let mut app = TestApp::spawn(Engine::Memory).await;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "osmium.chat.v1.ChatService".into(),
        })
        .await
        .expect("watching")
        .into_inner();
    let first = watch.message().await.expect("healthy").expect("a status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    app.signal_stop();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a status change arrives")
        .expect("healthy")
        .expect("a status");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(watch);
    app.stop().await;
}

/// Lists the services through one version of server reflection.
macro_rules! reflected_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection answers")
            .into_inner();
        let reply = replies.message().await.expect("healthy").expect("a reply");
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("expected a service list, got {other:?}"),
        }
    }};
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    let app = TestApp::spawn(Engine::Memory).await;
    let v1 = reflected_services!(v1, app.channel().await);
    let v1alpha = reflected_services!(v1alpha, app.channel().await);
    for services in [v1, v1alpha] {
        for expected in [
            "osmium.chat.v1.ChatService",
            "osmium.chat.v1.UserDirectory",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.iter().any(|s| s == expected),
                "{expected} in {services:?}"
            );
        }
    }
}
