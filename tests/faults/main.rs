//! The fault test: two replicas, each a process of the service binary, on
//! one throwaway Postgres and one Redis, under a mixed load of sends with
//! `client_id`s, read marks and resuming subscribers, while Redis is killed
//! and restarted, Postgres restarted fast and immediate, one replica killed
//! with SIGKILL and one stopped with SIGTERM, each started again. Once the
//! load has stopped and every stream has caught up, the end state must show
//! nothing lost and nothing twice. About a minute; run it alone with
//! `cargo test --test faults -- --nocapture` to see its figures.

// Test code: a panic is how a failed expectation is reported.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

mod check;
mod load;
mod postgres;
mod relaxed;
mod replica;

// The API suite's helpers, shared by path.
#[path = "../api/support/metrics.rs"]
mod metrics;
#[path = "../api/support/redis.rs"]
#[allow(dead_code)]
mod redis_server;
#[path = "../api/support/postgres.rs"]
#[allow(dead_code)]
mod support_postgres;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::{chats, refs, types};
use tokio::sync::watch;

use crate::load::{channel, with_token, Bearer, Sender, Subscriber, Tally};
use crate::postgres::Postgres;
use crate::redis_server::RedisServer;
use crate::replica::Replica;

const SECRET: &str = "faults-test-secret-of-thirty-two-bytes-or-more";
const AUDIENCE: &str = "osmium-chat";
const USERS: u64 = 6;
/// The load lasts at least this long, and goes on a while after the last fault.
const LOAD: Duration = Duration::from_secs(45);
const AFTER_LAST_FAULT: Duration = Duration::from_secs(5);
/// How long senders keep retrying once the load has stopped.
const RETRY_GRACE: Duration = Duration::from_secs(20);
/// How long every stream may take to reach its user's log head.
const QUIESCENCE: Duration = Duration::from_secs(60);

fn token(user: u64, service: bool) -> String {
    osmium_chat::auth::issue(SECRET.as_bytes(), AUDIENCE, user, None, service, 3600).expect("signs")
}

fn dm(user: u64) -> refs::ChatRef {
    refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::User(refs::UserRef { user_id: user })),
    }
}

fn group(id: u64) -> refs::ChatRef {
    refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::Group(refs::GroupRef { group_id: id })),
    }
}

/// Waits until `at` (the fault schedule), then logs what comes next.
async fn at(start: Instant, seconds: u64) {
    tokio::time::sleep_until((start + Duration::from_secs(seconds)).into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_doubled_through_redis_postgres_and_replica_faults() {
    let began = Instant::now();
    let pg = Postgres::start().await;
    let mut redis = RedisServer::start().await;
    let logs = std::env::temp_dir().join(format!("osmium-faults-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("a log directory");
    println!("replica logs in {} (removed after a pass)", logs.display());
    let env = vec![
        ("DATABASE_URL", pg.url()),
        ("REDIS_URL", redis.url()),
        ("OSMIUM_JWT_SECRET", SECRET.to_owned()),
        ("OSMIUM_STREAM_SWEEP_INTERVAL", "200ms".to_owned()),
        ("OSMIUM_SHUTDOWN_TIMEOUT", "5s".to_owned()),
        ("OSMIUM_RATE_SEND", "off".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    let mut replicas =
        [0, 1].map(|i| Replica::new(i, env.clone(), logs.join(format!("replica-{i}.log"))));
    for replica in &mut replicas {
        replica.start().await;
    }
    let channels = [channel(&replicas[0].url()), channel(&replicas[1].url())];

    // Six users, a direct chat between neighbours, two overlapping groups.
    let users: Vec<u64> = (1..=USERS).map(|i| 9_000_000 + i).collect();
    let mut directory =
        UserDirectoryClient::with_interceptor(channels[0].clone(), Bearer::new(&token(1, true)));
    directory
        .upsert_users(UpsertUsers {
            users: users
                .iter()
                .map(|&id| types::User {
                    id,
                    name: format!("user {id}"),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .expect("users are upserted");
    let clients = |user: u64| channels.clone().map(|c| with_token(c, &token(user, false)));
    let mut groups = Vec::new();
    for members in [[0, 1, 2, 3], [3, 4, 5, 0]] {
        let [owner, others @ ..] = members.map(|i| users[i]);
        let created = clients(owner)[0]
            .create_chat(chats::CreateChat {
                users: others
                    .iter()
                    .map(|&user_id| refs::UserRef { user_id })
                    .collect(),
                name: format!("group of {owner}"),
            })
            .await
            .expect("the group is created")
            .into_inner();
        groups.push((members, created.id));
    }

    let tally = Arc::new(Tally::new());
    let (stop_subscribers, subscribers_stop) = watch::channel(false);
    let mut last_seqs = Vec::new();
    let mut subscribers = Vec::new();
    for &user in &users {
        let last = Arc::new(AtomicU64::new(0));
        last_seqs.push(last.clone());
        let subscriber = Subscriber {
            clients: clients(user),
            last,
        };
        subscribers.push(tokio::spawn(
            subscriber.run(tally.clone(), subscribers_stop.clone()),
        ));
    }
    let (stop_sending, sending_stop) = watch::channel(false);
    let (give_up, giving_up) = watch::channel(false);
    let mut senders = Vec::new();
    for (i, &user) in users.iter().enumerate() {
        let n = users.len();
        let mut targets = vec![dm(users[(i + 1) % n]), dm(users[(i + n - 1) % n])];
        for (members, id) in &groups {
            if members.contains(&i) {
                targets.push(group(*id));
            }
        }
        let sender = Sender {
            user,
            clients: clients(user),
            targets,
        };
        senders.push(tokio::spawn(sender.run(
            tally.clone(),
            sending_stop.clone(),
            giving_up.clone(),
        )));
    }

    // The faults, one after another, under the load.
    let start = tally.began;
    let mut faults = Vec::new();
    let mut note = |what: String| {
        println!("fault at {:>5.1}s: {what}", start.elapsed().as_secs_f64());
        faults.push(what);
    };
    at(start, 4).await;
    redis.stop();
    at(start, 7).await;
    redis.restart().await;
    note("Redis killed, restarted 3 s later".into());
    at(start, 12).await;
    pg.restart("fast").await;
    note("Postgres restarted (pg_ctl restart -m fast)".into());
    at(start, 19).await;
    pg.restart("immediate").await;
    note("Postgres restarted (pg_ctl restart -m immediate)".into());
    at(start, 26).await;
    let killed = replicas[1].signal("KILL").await;
    replicas[1].start().await;
    note(format!(
        "replica 1 killed with SIGKILL ({killed}), started again"
    ));
    at(start, 33).await;
    let stopped = replicas[0].signal("TERM").await;
    assert!(
        stopped.success(),
        "SIGTERM stops a replica cleanly, got {stopped}:\n{}",
        replicas[0].log_tail()
    );
    replicas[0].start().await;
    note(format!(
        "replica 0 stopped with SIGTERM ({stopped}), started again"
    ));
    let load_end = (start + LOAD).max(Instant::now() + AFTER_LAST_FAULT);
    tokio::time::sleep_until(load_end.into()).await;

    // Stop sending; sends still unanswered get a bounded grace.
    stop_sending.send(true).expect("senders listen");
    let grace = tokio::spawn(async move {
        tokio::time::sleep(RETRY_GRACE).await;
        let _ = give_up.send(true);
    });
    for sender in senders {
        sender.await.expect("a sender ends cleanly");
    }
    grace.abort();
    let load_secs = start.elapsed().as_secs_f64();

    // Quiescence: every stream reaches its user's log head.
    let sql = check::sql(&pg.url()).await;
    let deadline = Instant::now() + QUIESCENCE;
    let heads = loop {
        let heads = check::heads(&sql, &users).await;
        let behind: Vec<_> = users
            .iter()
            .zip(&last_seqs)
            .map(|(user, last)| (*user, last.load(Ordering::Relaxed), heads[user]))
            .filter(|(_, last, head)| last != head)
            .collect();
        if behind.is_empty() {
            break heads;
        }
        assert!(
            Instant::now() < deadline,
            "streams left behind their logs after {QUIESCENCE:?} (user, last seq, head): {behind:?}"
        );
        // Polling for a condition, bounded.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop_subscribers.send(true).expect("subscribers listen");
    let mut received = Vec::new();
    for subscriber in subscribers {
        received.push(subscriber.await.expect("a subscriber ends cleanly"));
    }

    // What the load saw, printed before the checks so a failure shows it too.
    let acked = tally.acked.lock().expect("not poisoned").clone();
    println!("faults survived: {}", faults.len());
    for fault in &faults {
        println!("  {fault}");
    }
    println!(
        "load {load_secs:.0}s: acked sends {}, retries {}, unanswered at the end {}, \
         chats marked read {}, subscriber resumes {}",
        acked.len(),
        tally.retries.load(Ordering::Relaxed),
        tally.unacked.load(Ordering::Relaxed),
        tally.marked_read.load(Ordering::Relaxed),
        tally.resumes.load(Ordering::Relaxed),
    );
    println!("failed calls by status code:");
    for ((method, code), count) in tally.failures.lock().expect("not poisoned").iter() {
        println!("  {method:<26} {code}: {count}");
    }
    for refused in tally.refused.lock().expect("not poisoned").iter() {
        println!("  refused for good: {refused}");
    }

    // The end state.
    let stored = check::acked_sends_stored_once(&sql, &acked).await;
    let mut envelopes = 0;
    let mut conversations = 0;
    for (&user, stream) in users.iter().zip(&received) {
        envelopes += check::stream_equals_log(&sql, user, heads[&user], stream).await;
        let mut client = clients(user)[1].clone();
        conversations += check::unread_counts_match(&sql, user, &mut client).await;
    }
    check::no_stream_left_open(&replicas.each_ref().map(|r| r.metrics_port)).await;
    println!(
        "checked: {stored} messages with a client_id stored once each, {envelopes} envelopes \
         equal to the logs, {conversations} unread counts equal to a recount, no stream open"
    );
    println!("wall time {:.0}s", began.elapsed().as_secs_f64());
    drop(replicas);
    let _ = std::fs::remove_dir_all(&logs);
}
