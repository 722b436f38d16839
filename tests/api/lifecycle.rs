//! The process as operations sees it: restarts, health, SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::helpers::{dm, Engine, TestApp};

#[tokio::test]
async fn data_survives_a_restart_on_postgres() {
    let settings = TestApp::settings(Engine::Postgres).await;
    let app = TestApp::spawn_with(settings.clone()).await;
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let id = ann.send(dm(bob.id), "durable").await;
    let mut stream = ann.subscribe(None).await;
    app.stop().await;
    // The open stream is ended by the shutdown rather than left hanging.
    assert!(stream.message().await.is_err() || stream.message().await.ok().flatten().is_none());

    let app = TestApp::spawn_with(settings).await;
    let mut ann = crate::helpers::TestUser {
        id: ann.id,
        client: app.client(ann.id).await,
    };
    assert_eq!(ann.history(dm(bob.id), None, None).await, vec![id]);
    let mut resumed = ann.subscribe(Some(0)).await;
    assert_eq!(
        crate::helpers::next(&mut resumed).await.seq,
        1,
        "the update log survives too"
    );
}

#[tokio::test]
async fn health_reports_serving() {
    let app = TestApp::spawn(Engine::Memory).await;
    let mut health = HealthClient::new(app.channel().await);
    let reply = health
        .check(HealthCheckRequest {
            service: "osmium.chat.v1.ChatService".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("addr").port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_osmium-chat"))
        .env_clear()
        .env("OSMIUM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("OSMIUM_METRICS_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    // Readiness polling of a separate process, not synchronisation of our own code.
    let mut ready = false;
    for _ in 0..600 {
        if let Ok(channel) =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("uri")
                .connect()
                .await
        {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if status.is_ok() {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the service became ready");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("joined")
        .expect("waited");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn postgres_without_a_jwt_secret_refuses_to_start() {
    let mut settings = TestApp::settings(Engine::Postgres).await;
    settings.jwt_secret = None;
    let error = osmium_chat::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("OSMIUM_JWT_SECRET"), "{error}");
}

#[tokio::test]
async fn health_is_not_serving_while_the_store_is_still_being_reached() {
    // A "database" that accepts connections and never answers keeps start-up
    // waiting, as a slow migration would.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let db_port = black_hole.local_addr().expect("addr").port();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let settings = osmium_chat::config::Settings {
        listen_addr: ([127, 0, 0, 1], port).into(),
        database_url: Some(osmium_chat::config::Secret::new(format!(
            "postgres://postgres@127.0.0.1:{db_port}/postgres"
        ))),
        jwt_secret: Some(osmium_chat::config::Secret::new(crate::helpers::SECRET)),
        ..osmium_chat::config::Settings::default()
    };
    let starting = tokio::spawn(osmium_chat::startup::Application::build(settings));

    // Readiness polling of the starting server, bounded.
    let mut status = None;
    for _ in 0..200 {
        if let Ok(channel) =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("uri")
                .connect()
                .await
        {
            let reply = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: "osmium.chat.v1.ChatService".into(),
                })
                .await;
            if let Ok(reply) = reply {
                status = Some(reply.into_inner().status);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        status,
        Some(tonic_health::pb::health_check_response::ServingStatus::NotServing as i32),
        "a starting replica answers probes with NOT_SERVING"
    );
    assert!(!starting.is_finished(), "still waiting for its database");
    starting.abort();
    drop(black_hole);
}
