//! Faults a caller should retry look retryable: a cancelled call leaves no
//! session inside a transaction, a write stuck behind a lock times out with
//! UNAVAILABLE and writes nothing, batches of users never deadlock, and a
//! replica still starting answers UNAVAILABLE.

use std::time::Duration;

use osmium_chat::config::{Secret, Settings};
use osmium_chat::proto::service::{SetDraft, UpsertUsers};
use osmium_chat::proto::{chats, messages, refs, types};
use osmium_chat::startup::Application;
use tokio_postgres::NoTls;
use tonic::{Code, Request};

use crate::helpers::{dm, group, next_user_id, Engine, TestApp};

/// A plain SQL session on the app's schema, beside the app's pool.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("the test server accepts a session");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn cancelled_calls_leave_no_pooled_session_inside_a_transaction() {
    let mut settings = TestApp::settings(Engine::Postgres).await;
    let name = format!("osmium_cancel_{}_{}", std::process::id(), next_user_id());
    let url = format!(
        "{}&application_name={name}",
        settings.database_url.as_ref().expect("postgres").expose()
    );
    settings.database_url = Some(Secret::new(url.clone()));
    // Few connections, so that later calls reuse the ones cancelled calls held.
    settings.db_pool_size = 3;
    // 140 groups in a minute: more than a person makes, so no limit here.
    settings.limits.rate_create_chat = osmium_chat::domain::limits::Rate::OFF;
    let app = TestApp::spawn_with(settings).await;
    let mut alice = app.user("alice").await;
    let bob = app.user("bob").await;
    alice.send(dm(bob.id), "hello").await;

    // One after another, with deadlines from 1 ms up: the server drops each
    // handler at a different point of its transaction. Each dropped
    // transaction's connection is rolled back (or closed) a moment later;
    // one pooled inside its transaction would stay so until a later call
    // reused it, so the check comes before the next call.
    let watcher = sql(&url).await;
    for round in 0..120u64 {
        let deadline = Duration::from_micros(1_000 + 100 * (round % 40));
        let mut draft = Request::new(SetDraft {
            chat_ref: dm(bob.id),
            draft: Some(format!("draft {round}")),
        });
        draft.set_timeout(deadline);
        let _ = alice.client.set_draft(draft).await;
        assert_eq!(settled(&watcher, &name).await, 0, "after SetDraft {round}");
        let mut create = Request::new(chats::CreateChat {
            users: vec![refs::UserRef { user_id: bob.id }],
            name: format!("group {round}"),
        });
        create.set_timeout(deadline);
        let _ = alice.client.create_chat(create).await;
        assert_eq!(
            settled(&watcher, &name).await,
            0,
            "after CreateChat {round}"
        );
    }

    for round in 0..20 {
        alice
            .client
            .set_draft(SetDraft {
                chat_ref: dm(bob.id),
                draft: Some(format!("after {round}")),
            })
            .await
            .expect("a later call succeeds");
        alice
            .create_group(&format!("later {round}"), &[bob.id])
            .await;
    }
    assert_eq!(
        settled(&watcher, &name).await,
        0,
        "sessions left in a transaction"
    );
}

/// How many of the app's sessions are busy or inside a transaction: 0 as
/// soon as none is, else the count when the bound (5 s) runs out. Polled:
/// the rollback runs on the server's task, which the test cannot await.
async fn settled(watcher: &tokio_postgres::Client, app_name: &str) -> i64 {
    let mut inside = 0;
    for _ in 0..100 {
        inside = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND state <> 'idle'
                   AND pid <> pg_backend_pid()",
                &[&app_name],
            )
            .await
            .expect("pg_stat_activity reads")
            .get(0);
        if inside == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    inside
}

#[tokio::test]
async fn a_write_stuck_behind_a_row_lock_gets_unavailable_and_writes_nothing() {
    stuck_write_is_unavailable_then_retried(|settings| {
        settings.db_lock_timeout = Duration::from_millis(200);
    })
    .await;
}

#[tokio::test]
async fn a_statement_that_runs_out_of_time_gets_unavailable_and_writes_nothing() {
    // No lock timeout: the statement timeout is what ends the wait.
    stuck_write_is_unavailable_then_retried(|settings| {
        settings.db_lock_timeout = Duration::ZERO;
        settings.db_statement_timeout = Duration::from_millis(200);
    })
    .await;
}

/// A send waits on a chat row the test holds locked until a session
/// timeout (set by `limit`) ends it: UNAVAILABLE, nothing stored; once the
/// lock is gone, the same send succeeds once.
async fn stuck_write_is_unavailable_then_retried(limit: impl FnOnce(&mut Settings)) {
    let mut settings = TestApp::settings(Engine::Postgres).await;
    limit(&mut settings);
    let url = settings
        .database_url
        .as_ref()
        .expect("postgres")
        .expose()
        .to_owned();
    let app = TestApp::spawn_with(settings).await;
    let mut alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let chat = alice.create_group("locked", &[bob.id]).await;

    let holder = sql(&url).await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM chats WHERE id = {} FOR UPDATE",
            chat as i64
        ))
        .await
        .expect("the test holds the chat's row lock");
    let send = || messages::SendMessage {
        chat_ref: group(chat),
        message: "through the lock".into(),
        client_id: Some(77),
        ..Default::default()
    };
    let refused = alice
        .client
        .send_message(send())
        .await
        .expect_err("the lock is held");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("retry"), "{refused:?}");

    holder.batch_execute("ROLLBACK").await.expect("released");
    let sent = alice
        .client
        .send_message(send())
        .await
        .expect("the retry succeeds")
        .into_inner()
        .message_id;
    let history = alice.history(group(chat), None, None).await;
    assert!(history.contains(&sent), "{history:?}");
    let stored: i64 = sql(&url)
        .await
        .query_one(
            "SELECT count(*) FROM messages WHERE chat_id = $1 AND client_id = 77",
            &[&(chat as i64)],
        )
        .await
        .expect("counts")
        .get(0);
    assert_eq!(stored, 1, "the timed-out send left nothing behind");
}

#[tokio::test]
async fn upserts_of_the_same_users_in_opposite_orders_never_deadlock() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let ids: Vec<u64> = (0..40).map(|_| next_user_id()).collect();
    let batch = |round: usize, reversed: bool| {
        let mut users: Vec<types::User> = ids
            .iter()
            .map(|id| types::User {
                id: *id,
                name: format!("user {id} round {round}"),
                ..Default::default()
            })
            .collect();
        if reversed {
            users.reverse();
        }
        UpsertUsers { users }
    };
    app.directory()
        .await
        .upsert_users(batch(0, false))
        .await
        .expect("the users exist");
    let (mut up, mut down) = (app.directory().await, app.directory().await);
    for round in 1..=30 {
        let (a, b) = tokio::join!(
            up.upsert_users(batch(round, false)),
            down.upsert_users(batch(round, true))
        );
        a.expect("the ascending batch succeeds");
        b.expect("the descending batch succeeds");
    }
}

#[tokio::test]
async fn calls_to_a_replica_still_starting_get_unavailable() {
    // A "Postgres" that accepts connections and never answers: the replica
    // stays in its start-up phase while the test calls it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let silent_port = silent.local_addr().expect("bound").port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut settings = TestApp::settings(Engine::Memory).await;
    settings.database_url = Some(Secret::new(format!(
        "postgres://app@127.0.0.1:{silent_port}/app"
    )));
    settings.listen_addr = ([127, 0, 0, 1], port).into();
    let building = tokio::spawn(Application::build(settings));

    // Waiting for the replica's bind, as a client dialling it would.
    let mut channel = None;
    for _ in 0..200 {
        if let Ok(connected) =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("a valid uri")
                .connect()
                .await
        {
            channel = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let channel = channel.expect("the replica binds its port while starting");
    let mut client =
        osmium_chat::proto::service::chat_service_client::ChatServiceClient::new(channel.clone());
    let status = client
        .get_chats(chats::GetChats::default())
        .await
        .expect_err("not serving yet");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retry"), "{status:?}");
    let mut directory =
        osmium_chat::proto::service::user_directory_client::UserDirectoryClient::new(channel);
    let status = directory
        .upsert_users(UpsertUsers::default())
        .await
        .expect_err("not serving yet");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    building.abort();
    held.abort();
}
