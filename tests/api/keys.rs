//! Token keys while the service runs: `<kid>.pem` files and JWKS documents
//! (a file, or a URL served here by a tiny HTTP server) rotate without a
//! restart, and a JWKS URL that fails keeps the last good keys. And at
//! start: no public or guessable key anywhere but on loopback.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use osmium_chat::proto::chats;
use tokio::process::Command;
use tokio::time::Instant;
use tonic::Code;

use crate::helpers::{Engine, TestApp};
use crate::support::tokens::{jwks, key_dir, Signer};

/// How long a reload may take to show; a bound, not a wait.
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);
/// The reload interval of tests that wait for one.
const FAST_RELOAD: Duration = Duration::from_millis(50);

/// Whether a call with `token` gets past authentication.
async fn accepted(app: &TestApp, token: &str) -> bool {
    let mut client = app.client_with_token(token).await;
    match client.get_chats(chats::GetChats::default()).await {
        Ok(_) => true,
        Err(status) if status.code() == Code::Unauthenticated => false,
        Err(status) => panic!("unexpected {status:?}"),
    }
}

/// Polls until `token` is accepted (or refused), as the next reload makes it.
async fn until_accepted(app: &TestApp, token: &str, want: bool) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    while accepted(app, token).await != want {
        assert!(
            Instant::now() < deadline,
            "a reload did not make the token {}",
            if want { "accepted" } else { "refused" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pem_keys_added_changed_or_removed_while_running_take_effect_without_a_restart() {
    let (old, new) = (Signer::new("2026-11"), Signer::new("2026-12"));
    let dir = key_dir();
    std::fs::write(dir.join("2026-11.pem"), old.public_pem()).expect("written");
    let app = TestApp::spawn_tuned(Engine::Memory, |s| {
        s.jwt_public_keys = Some(dir.clone());
        s.jwt_keys_reload = FAST_RELOAD;
    })
    .await;
    let user = app.user("Ann").await.id;
    assert!(accepted(&app, &old.token(user)).await);
    assert!(!accepted(&app, &new.token(user)).await, "not published yet");

    std::fs::write(dir.join("2026-12.pem"), new.public_pem()).expect("written");
    until_accepted(&app, &new.token(user), true).await;

    std::fs::remove_file(dir.join("2026-11.pem")).expect("removed");
    until_accepted(&app, &old.token(user), false).await;

    // The same kid, another key: only the new one verifies.
    let replacement = Signer::new("2026-12");
    std::fs::write(dir.join("2026-12.pem"), replacement.public_pem()).expect("written");
    until_accepted(&app, &replacement.token(user), true).await;
    assert!(!accepted(&app, &new.token(user)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_jwks_file_is_read_at_start_and_reloaded() {
    let (first, second) = (Signer::new("first"), Signer::new("second"));
    let dir = key_dir();
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks(&[&first])).expect("written");
    let app = TestApp::spawn_tuned(Engine::Memory, |s| {
        s.jwt_jwks = Some(file.display().to_string());
        s.jwt_keys_reload = FAST_RELOAD;
    })
    .await;
    let user = app.user("Ann").await.id;
    assert!(accepted(&app, &first.token(user)).await);

    std::fs::write(&file, jwks(&[&second])).expect("written");
    until_accepted(&app, &second.token(user), true).await;
    until_accepted(&app, &first.token(user), false).await;

    let _ = std::fs::remove_dir_all(&dir);
}

/// A JWKS endpoint whose document the test changes, counting its fetches.
#[derive(Clone, Default)]
struct Published {
    /// The document served; `None` answers 503.
    body: Arc<Mutex<Option<String>>>,
    fetches: Arc<AtomicUsize>,
}

impl Published {
    fn set(&self, body: Option<String>) {
        *self.body.lock().expect("not poisoned") = body;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Serves the document at `http://127.0.0.1:<port>/jwks.json`.
    async fn serve(&self) -> String {
        use axum::extract::State;
        use axum::http::StatusCode;
        async fn jwks(State(published): State<Published>) -> (StatusCode, String) {
            published.fetches.fetch_add(1, Ordering::SeqCst);
            match published.body.lock().expect("not poisoned").clone() {
                Some(body) => (StatusCode::OK, body),
                None => (StatusCode::SERVICE_UNAVAILABLE, "down".into()),
            }
        }
        let router = axum::Router::new()
            .route("/jwks.json", axum::routing::get(jwks))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}/jwks.json")
    }
}

#[tokio::test]
async fn a_jwks_url_is_fetched_again_for_an_unknown_kid_at_most_once_per_window() {
    let (first, second, stranger) = (Signer::new("a"), Signer::new("b"), Signer::new("c"));
    let published = Published::default();
    published.set(Some(jwks(&[&first])));
    let url = published.serve().await;
    let app = TestApp::spawn_tuned(Engine::Memory, |s| {
        s.jwt_jwks = Some(url);
        // No periodic reload during the test: only unknown kids fetch.
        s.jwt_keys_reload = Duration::from_secs(3600);
    })
    .await;
    let user = app.user("Ann").await.id;
    assert!(accepted(&app, &first.token(user)).await);
    assert_eq!(published.fetches(), 1, "read once at start");

    // Published after start: its first token makes the service fetch.
    published.set(Some(jwks(&[&first, &second])));
    assert!(accepted(&app, &second.token(user)).await);
    assert_eq!(published.fetches(), 2);

    // Another unknown kid in the same window does not fetch again.
    assert!(!accepted(&app, &stranger.token(user)).await);
    assert!(!accepted(&app, &stranger.token(user)).await);
    assert_eq!(published.fetches(), 2);
}

#[tokio::test]
async fn a_failing_jwks_url_keeps_the_last_good_keys() {
    let signer = Signer::new("only");
    let published = Published::default();
    published.set(Some(jwks(&[&signer])));
    let url = published.serve().await;
    let app = TestApp::spawn_tuned(Engine::Memory, |s| {
        s.jwt_jwks = Some(url);
        s.jwt_keys_reload = FAST_RELOAD;
    })
    .await;
    let user = app.user("Ann").await.id;
    assert!(accepted(&app, &signer.token(user)).await);

    for failure in [None, Some("<html>maintenance</html>".to_owned())] {
        published.set(failure);
        let seen = published.fetches();
        let deadline = Instant::now() + RELOAD_DEADLINE;
        while published.fetches() < seen + 2 {
            assert!(Instant::now() < deadline, "the service refetches");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(accepted(&app, &signer.token(user)).await);
    }
}

/// Runs the binary with `env` and no other configuration, to its exit.
async fn start_with(env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_osmium-chat"));
    command
        .env_clear()
        .env("OSMIUM_METRICS_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("exits in time")
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn off_loopback_the_service_refuses_to_start_without_a_key_of_its_own() {
    let public = ("OSMIUM_LISTEN_ADDR", "0.0.0.0:0");
    let (code, output) = start_with(&[public]).await;
    assert_eq!(code, 64, "{output}");
    for named in [
        "0.0.0.0:0",
        "OSMIUM_JWT_SECRET",
        "OSMIUM_JWT_JWKS",
        "loopback",
    ] {
        assert!(output.contains(named), "{named} in {output}");
    }
    let dev = ("OSMIUM_JWT_SECRET", osmium_chat::auth::DEV_SECRET);
    let (code, output) = start_with(&[public, dev]).await;
    assert_eq!(code, 64, "{output}");
    assert!(output.contains("development secret"), "{output}");
}

#[tokio::test]
async fn empty_or_short_secrets_refuse_to_start_even_on_loopback() {
    let local = ("OSMIUM_LISTEN_ADDR", "127.0.0.1:0");
    for (secret, says) in [("", "empty"), ("hunter2", "7 bytes")] {
        let (code, output) = start_with(&[local, ("OSMIUM_JWT_SECRET", secret)]).await;
        assert_eq!(code, 64, "{output}");
        assert!(output.contains(says), "{says} in {output}");
        assert!(output.contains("32"), "{output}");
    }
}

#[tokio::test]
async fn an_unreachable_jwks_url_exits_69_and_an_unreadable_jwks_file_64() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let local = ("OSMIUM_LISTEN_ADDR", "127.0.0.1:0");
    let (code, output) = start_with(&[local, ("OSMIUM_JWT_JWKS", &url)]).await;
    assert_eq!(code, 69, "{output}");
    assert!(output.contains(&url), "{output}");
    let (code, output) = start_with(&[local, ("OSMIUM_JWT_JWKS", "/nonexistent/jwks.json")]).await;
    assert_eq!(code, 64, "{output}");
    assert!(output.contains("/nonexistent/jwks.json"), "{output}");
}
