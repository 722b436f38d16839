//! Metrics, traces and health as operations see them.

use std::time::Duration;

use osmium_chat::proto::chats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::helpers::{Engine, TestApp};

async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics port open");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

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
    assert!(text.contains("osmium_typing_rate_limited_total 0"));
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
