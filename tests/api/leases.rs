//! Snowflake worker numbers are leased: replicas sharing a database hold
//! distinct numbers, an expired lease is taken over and a live one never
//! is, a full table refuses the start, a clean stop gives the number back,
//! and a replica that loses its lease stops.

use std::time::Duration;

use osmium_chat::config::Settings;
use osmium_chat::startup::{Application, LeaseLost, StartError, EXIT_UNAVAILABLE};
use osmium_chat::store::postgres::PostgresStore;
use tokio_postgres::NoTls;

use crate::helpers::{dm, Engine, TestApp};

/// The worker number inside a snowflake id.
fn worker_of(id: u64) -> u64 {
    (id >> 12) & 1023
}

async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("the test server accepts a session");
    tokio::spawn(connection);
    client
}

/// Postgres settings with the schema migrated and a session on it, so a
/// test can arrange the lease table before a replica starts.
async fn prepared() -> (Settings, tokio_postgres::Client) {
    let settings = TestApp::settings(Engine::Postgres).await;
    let url = settings
        .database_url
        .as_ref()
        .expect("postgres")
        .expose()
        .to_owned();
    PostgresStore::connect(&url, 1, Default::default())
        .expect("a pool")
        .migrate()
        .await
        .expect("migrations apply");
    (settings, sql(&url).await)
}

/// Every worker number leased to someone else for an hour, but `except`.
async fn lease_all_but(admin: &tokio_postgres::Client, except: &[i32]) {
    admin
        .execute(
            "INSERT INTO worker_leases (worker, holder, expires_at)
             SELECT w, 'someone else', now() + interval '1 hour'
             FROM generate_series(0, 1023) AS w WHERE w <> ALL($1)",
            &[&except],
        )
        .await
        .expect("the leases are planted");
}

/// The worker a replica mints with, read off the id of a message it sent.
async fn minted_worker(app: &TestApp) -> u64 {
    let mut alice = app.user("alice").await;
    let bob = app.user("bob").await;
    worker_of(alice.send(dm(bob.id), "which worker?").await)
}

#[tokio::test]
async fn replicas_on_one_database_mint_with_distinct_workers() {
    let settings = TestApp::settings(Engine::Postgres).await;
    let first = TestApp::spawn_with(settings.clone()).await;
    let second = TestApp::spawn_with(settings.clone()).await;
    let third = TestApp::spawn_with(settings).await;
    let mut workers = vec![
        minted_worker(&first).await,
        minted_worker(&second).await,
        minted_worker(&third).await,
    ];
    workers.sort();
    workers.dedup();
    assert_eq!(workers.len(), 3, "{workers:?}");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_live_ones_are_not() {
    let (settings, admin) = prepared().await;
    lease_all_but(&admin, &[517]).await;
    admin
        .execute(
            "INSERT INTO worker_leases (worker, holder, expires_at)
             VALUES (517, 'a stopped replica', now() - interval '1 second')",
            &[],
        )
        .await
        .expect("an expired lease");
    let app = TestApp::spawn_with(settings).await;
    assert_eq!(minted_worker(&app).await, 517);
}

#[tokio::test]
async fn start_up_is_refused_when_every_worker_is_leased() {
    let (settings, admin) = prepared().await;
    lease_all_but(&admin, &[]).await;
    let refused = Application::build(settings)
        .await
        .err()
        .expect("no worker number is free");
    assert!(matches!(refused, StartError::NoWorker), "{refused:?}");
    assert_eq!(refused.exit_code(), EXIT_UNAVAILABLE);
    assert!(
        refused
            .report()
            .contains("no snowflake worker number is free"),
        "{}",
        refused.report()
    );
    let held: i64 = admin
        .query_one(
            "SELECT count(*) FROM worker_leases WHERE holder = 'someone else'",
            &[],
        )
        .await
        .expect("counts")
        .get(0);
    assert_eq!(held, 1024, "no live lease was taken over");
}

#[tokio::test]
async fn a_clean_stop_gives_the_worker_back() {
    let (settings, admin) = prepared().await;
    let app = TestApp::spawn_with(settings).await;
    let worker = minted_worker(&app).await as i32;
    let count = |sql: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_one(sql, &[&worker])
                .await
                .expect("counts")
                .get::<_, i64>(0)
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM worker_leases WHERE worker = $1").await,
        1
    );
    app.stop().await;
    assert_eq!(
        count("SELECT count(*) FROM worker_leases WHERE worker = $1").await,
        0
    );
}

#[tokio::test]
async fn a_replica_whose_lease_is_taken_stops_with_exit_code_69() {
    let (mut settings, admin) = prepared().await;
    settings.worker_lease_ttl = Duration::from_millis(600);
    let app = Application::build(settings).await.expect("builds");
    let serving = tokio::spawn(app.run_until_stopped(std::future::pending()));
    admin
        .execute("UPDATE worker_leases SET holder = 'a thief'", &[])
        .await
        .expect("the lease is stolen");
    let stopped = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the replica stops within a renewal or two")
        .expect("the server task ends");
    let error = stopped.expect_err("a lost lease is a failure");
    assert!(
        matches!(error, StartError::LeaseLost(LeaseLost::Taken)),
        "{error:?}"
    );
    assert_eq!(error.exit_code(), EXIT_UNAVAILABLE);
    let thief: i64 = admin
        .query_one(
            "SELECT count(*) FROM worker_leases WHERE holder = 'a thief'",
            &[],
        )
        .await
        .expect("counts")
        .get(0);
    assert_eq!(
        thief, 1,
        "the lost lease is not released from under its new holder"
    );
}

#[tokio::test]
async fn a_replica_that_cannot_renew_its_lease_stops_before_it_expires() {
    let (mut settings, admin) = prepared().await;
    settings.worker_lease_ttl = Duration::from_secs(2);
    let app = Application::build(settings).await.expect("builds");
    let serving = tokio::spawn(app.run_until_stopped(std::future::pending()));
    // Every renewal now fails, as with the database out of reach.
    admin
        .batch_execute("ALTER TABLE worker_leases RENAME TO worker_leases_away")
        .await
        .expect("the table is moved away");
    let stopped = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the replica stops once half the lease has passed")
        .expect("the server task ends");
    let error = stopped.expect_err("an unconfirmed lease is a failure");
    assert!(
        matches!(error, StartError::LeaseLost(LeaseLost::Unconfirmed)),
        "{error:?}"
    );
    let live: bool = admin
        .query_one("SELECT expires_at > now() FROM worker_leases_away", &[])
        .await
        .expect("reads the lease")
        .get(0);
    assert!(live, "the replica stopped while its lease was still live");
}
