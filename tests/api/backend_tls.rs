//! TLS from the service to Postgres and Redis, against servers that speak
//! it with certificates made here: what each `sslmode` checks, a verified
//! replica serving calls, and a certificate from the wrong CA stopping the
//! start with a reason and exit code 64.

use std::path::{Path, PathBuf};

use osmium_chat::config::{Secret, Settings};
use osmium_chat::proto::chats;
use osmium_chat::proto::updates::update::Update as U;
use osmium_chat::startup::{open_store, Application};
use osmium_chat::store::postgres::PostgresStore;

use crate::helpers::{dm, next, Engine, TestApp, TestUser};
use crate::startup::{assert_no_secret, binary, failure, run};
use crate::support::pki::{temp_dir, Ca};
use crate::support::postgres::fresh_schema_url;
use crate::support::postgres::tls::tls_server;
use crate::support::redis::RedisServer;

/// `url` with more query parameters.
fn with(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

fn verify(url: &str, mode: &str, ca: &Path) -> String {
    with(url, &format!("sslmode={mode}&sslrootcert={}", ca.display()))
}

/// A CA file of a CA that signed nothing the servers present.
fn stranger_ca(dir: &Path) -> PathBuf {
    Ca::new().write(dir, "stranger.crt")
}

/// Whether the store's connections are encrypted, as the server sees them.
async fn encrypted(url: &str) -> bool {
    let store = PostgresStore::connect(url, 1, Default::default()).expect("a pool");
    let client = store.pool().get().await.expect("a connection");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl answers")
        .get(0)
}

/// Settings whose only store is the URL given.
fn settings_for(database_url: &str) -> Settings {
    Settings {
        database_url: Some(Secret::new(database_url)),
        jwt_secret: Some(Secret::new(crate::helpers::SECRET)),
        ..Settings::default()
    }
}

/// Why opening the store failed, on one line.
async fn refusal(database_url: &str) -> (u8, String) {
    match open_store(&settings_for(database_url)).await {
        Ok(_) => panic!("the store opened"),
        Err(error) => (error.exit_code(), error.report()),
    }
}

#[tokio::test]
async fn each_sslmode_encrypts_and_verifies_as_libpq_does() {
    let (url, ca) = tls_server().await;
    let dir = temp_dir("pg-modes");
    // The server's certificate names localhost, not 127.0.0.1.
    let by_ip = url.replacen("localhost", "127.0.0.1", 1);

    assert!(
        encrypted(&url).await,
        "prefer, the default, takes TLS when offered"
    );
    assert!(
        encrypted(&with(&url, "sslmode=require")).await,
        "require encrypts without a CA"
    );
    assert!(encrypted(&verify(&url, "verify-full", &ca)).await);
    assert!(
        encrypted(&verify(&by_ip, "verify-ca", &ca)).await,
        "verify-ca ignores the name"
    );
    assert!(!encrypted(&with(&url, "sslmode=disable")).await);

    let (code, report) = refusal(&verify(&by_ip, "verify-full", &ca)).await;
    assert_eq!(code, 64, "{report}");
    assert!(report.contains("does not name the host"), "{report}");
    // require with a CA checks the chain, as libpq's does.
    let (code, report) = refusal(&verify(&url, "require", &stranger_ca(&dir))).await;
    assert_eq!(code, 64, "{report}");
    assert!(
        report.contains("not signed by the CA in sslrootcert"),
        "{report}"
    );

    // PGSSLMODE and PGSSLROOTCERT apply where the URL is silent.
    let mut settings = settings_for(&url);
    settings.pg_ssl_mode = Some("verify-full".into());
    settings.pg_ssl_root_cert = Some(stranger_ca(&dir).display().to_string());
    let refused = open_store(&settings).await.err().map(|e| e.report());
    assert!(
        refused
            .as_deref()
            .is_some_and(|r| r.contains("not signed by the CA")),
        "{refused:?}"
    );

    // A CA file that is not there is named, with the setting to check.
    let (code, report) = refusal(&verify(&url, "verify-full", &dir.join("absent.crt"))).await;
    assert_eq!(code, 64, "{report}");
    assert!(
        report.contains("sslrootcert (or PGSSLROOTCERT)"),
        "{report}"
    );
    assert!(report.contains("absent.crt"), "{report}");

    let plain = fresh_schema_url().await;
    assert!(!encrypted(&plain).await, "prefer falls back to plaintext");
    let (code, report) = refusal(&with(&plain, "sslmode=require")).await;
    assert_eq!(code, 64, "{report}");
    assert!(
        report.contains("which the server does not offer"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn replicas_serve_over_verified_tls_to_postgres_and_redis() {
    let (url, pg_ca) = tls_server().await;
    let dir = temp_dir("redis-tls");
    let ca = Ca::new();
    let ca_file = ca.write(&dir, "ca.crt");
    let leaf = ca.leaf(&["127.0.0.1"], &dir, "redis");
    let redis = RedisServer::start_tls(leaf.cert, leaf.key, ca_file.clone()).await;
    let mut settings = TestApp::settings(Engine::Memory).await;
    // As the chart sets it: the URL as is, the mode and CA from libpq's
    // environment variables.
    settings.database_url = Some(Secret::new(url));
    settings.pg_ssl_mode = Some("verify-full".into());
    settings.pg_ssl_root_cert = Some(pg_ca.display().to_string());
    settings.redis_url = Some(Secret::new(redis.url()));
    settings.redis_ca_file = Some(ca_file);
    // Two replicas: an update crosses from one to the other over Redis.
    let one = TestApp::spawn_with(settings.clone()).await;
    let two = TestApp::spawn_with(settings).await;

    let mut ann = one.user("Ann").await;
    let bob_id = one.user("Bob").await.id;
    let mut bob = TestUser {
        id: bob_id,
        client: two.client(bob_id).await,
    };
    let mut stream = bob.subscribe(None).await;
    let sent = ann.send(dm(bob.id), "over TLS").await;
    match next(&mut stream).await.update.and_then(|u| u.update) {
        Some(U::MessageCreated(created)) => {
            assert_eq!(created.message.map(|m| m.message_id), Some(sent));
        }
        other => panic!("expected the message on the other replica, got {other:?}"),
    }
    let chats = bob
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("GetChats answers")
        .into_inner();
    assert_eq!(
        chats.chats.first().map(|c| c.last_message_id),
        Some(sent),
        "{chats:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_postgres_certificate_from_another_ca_stops_the_start_with_exit_64() {
    let (url, _) = tls_server().await;
    let dir = temp_dir("pg-stranger");
    let port = url
        .split(['/', ':'])
        .nth(4)
        .expect("the test URL has a port")
        .to_owned();
    let (code, output) = run(binary().env(
        "DATABASE_URL",
        verify(&url, "verify-full", &stranger_ca(&dir)),
    ))
    .await;
    assert_eq!(code, 64, "{output}");
    let line = failure(&output);
    for expected in [
        format!("Postgres at postgres://postgres@localhost:{port}/postgres"),
        "not signed by the CA in sslrootcert".to_owned(),
        "invalid peer certificate".to_owned(),
    ] {
        assert!(line.contains(&expected), "{expected:?} in {line}");
    }
    assert_no_secret(&output);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_redis_certificate_from_another_ca_stops_the_start_with_exit_64() {
    let dir = temp_dir("redis-stranger");
    let ca = Ca::new();
    let ca_file = ca.write(&dir, "ca.crt");
    let leaf = ca.leaf(&["127.0.0.1"], &dir, "redis");
    let redis = RedisServer::start_tls(leaf.cert, leaf.key, ca_file).await;
    let (code, output) = run(binary()
        .env("REDIS_URL", redis.url())
        .env("OSMIUM_REDIS_CA_FILE", stranger_ca(&dir)))
    .await;
    assert_eq!(code, 64, "{output}");
    let line = failure(&output);
    for expected in [
        format!("Redis at rediss://127.0.0.1:{}", redis.port),
        "not signed by the CA in OSMIUM_REDIS_CA_FILE".to_owned(),
        "invalid peer certificate".to_owned(),
    ] {
        assert!(line.contains(&expected), "{expected:?} in {line}");
    }

    // `#insecure` is the redis crate's way to skip verification.
    let mut settings = TestApp::settings(Engine::Memory).await;
    settings.redis_url = Some(Secret::new(format!("{}#insecure", redis.url())));
    assert!(
        Application::build(settings).await.is_ok(),
        "#insecure starts"
    );
    // A CA file with a plaintext URL is a mistake worth naming.
    let mut settings = TestApp::settings(Engine::Memory).await;
    settings.redis_url = Some(Secret::new(format!("redis://127.0.0.1:{}/", redis.port)));
    settings.redis_ca_file = Some(dir.join("ca.crt"));
    match Application::build(settings).await {
        Ok(_) => panic!("a CA file with redis:// starts"),
        Err(error) => assert!(
            error.report().contains("not a rediss://"),
            "{}",
            error.report()
        ),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
