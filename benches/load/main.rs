//! Throughput, latency, fan-out and payload costs of two replicas under load.
//!
//! `cargo bench --bench load` starts two replicas of the release binary
//! (`target/release/osmium-chat`, which cargo builds for a bench of the same
//! package) as separate processes on one throwaway PostgreSQL schema (the
//! integration tests' harness: `initdb` in a temporary directory, or the
//! server in `OSMIUM_TEST_DATABASE_URL`) and one throwaway `redis-server`,
//! drives them over gRPC from this process, and prints every figure beside
//! its target:
//!
//! - **a** `SendMessage` into one group of 10 at 1, 4 and 8 concurrent
//!   senders (members, each on its own connection, alternating between the
//!   replicas, every call with its own `client_id`): msg/s, p50, p99.
//! - **b** `SendMessage` spread over 100 groups of 10 at 16 senders: msg/s;
//!   then `pgbench` (TPC-B-like, scale 16, 16 clients) on the same server,
//!   in a schema of its own: tps, and the ratio msg/s ÷ tps.
//! - **c** `MarkChatRead` by 8 members of a group while another member
//!   keeps sending into it (about 100 msg/s); each reader marks the newest
//!   acknowledged message: ops/s, p99.
//! - **d** the 8-sender run of (a) again, on a fresh group, with every member
//!   subscribed (`since_seq` unset) on both replicas: the delay from the
//!   start of a send to `UpdateMessageCreated` on the streams of the replica
//!   the message was NOT sent through (through Redis), p50 and p99; the same
//!   for the sender's replica for information; deliveries missing a few
//!   seconds after the run and duplicate seqs, over all streams.
//! - **e** a group of 249 members. (e1) the largest message accepted: 4000
//!   characters of text with 100 `text_url` entities whose urls start at
//!   9000 characters, are halved until the service accepts the send, then
//!   bisected between the accepted and the refused length (each refusal's
//!   reason is printed: the service's own bounds decide the size), with
//!   its peak memory growth (`VmHWM` after, reset through `clear_refs`,
//!   minus `VmRSS` before; the larger of the two replicas) and the bytes it
//!   added to the update log tables. (e2) all members get 16 KB photo
//!   previews (halved until `UpsertUsers` accepts them), then a 250th member
//!   is added: latency, peak memory growth, log bytes.
//! - **f** the read RPCs, each at 32 calls in flight, driven by `h2load`
//!   when it is on PATH (Debian's `nghttp2-client`, a client in C that
//!   takes little CPU, as pgbench's does; `LOAD_GENERATOR=tonic` or no
//!   h2load: 32 tonic connections from this process). Each point runs
//!   twice: on one replica, 8 connections of 4 streams, the setup the
//!   issue measured its figures in and the one its targets are checked
//!   against (a third replica of the main build, started for this, its
//!   reads at once sized for a replica alone: 2 x the cores; the two
//!   others idle); then on the two, 4 connections of 4 streams to each,
//!   two replica processes sharing the cores Postgres needs (for
//!   information, and the A/B of `LOAD_BINARY_B`);
//!   the reply's shape is checked once, and calls not answered OK are
//!   read from the replicas' metrics), each followed by `pgbench -M
//!   prepared -c 32 -j 2` running the one statement that RPC sends alone,
//!   with the RPC's parameters, on the service's own schema and rows
//!   (GetChat and GetHistory calls waiting together share a statement that
//!   reads a list; a call alone sends this one, the cheaper): calls/s,
//!   p50, p99, pgbench tps and the ratio calls/s ÷ tps, and where the CPU
//!   went during each (replicas, the Postgres server, this generator,
//!   the rest). The points: GetChats limit 50 of a user with 60
//!   conversations (40 direct, 20 groups of 10, each with a message);
//!   GetHistory limit 50, latest and `before` the 10,000th of 100,000
//!   messages (written by a bulk INSERT, ordinals in id order as the write
//!   path takes them); GetChat of a group of 10.
//!
//! Each load point runs `LOAD_SECS` seconds (default 10) after a 1 s
//! warm-up; a full run takes about two minutes on 2 cores. Everything runs
//! on one machine, so the load generator, both replicas, PostgreSQL and Redis
//! share its cores: the figures are a floor for the service, not a
//! capacity plan. PostgreSQL runs as the harness starts it: the throwaway
//! server of the tests trades durability for speed unless
//! `OSMIUM_TEST_POSTGRES_DURABLE=1`, which measures commits as production
//! pays for them. The run prints `fsync` and `synchronous_commit`; pgbench
//! sees the same server. It also prints the kernel's
//! `sched_autogroup_enabled`, and notes when it is on: every Postgres
//! backend is then a scheduling group of its own, which on a shared machine
//! stalls reads for seconds (README, "Stalls past p99").
//!
//! Environment: `LOAD_SCENARIOS` (e.g. `a,d`; default all), `LOAD_SECS`,
//! `LOAD_DATABASE_URL` (an existing server: the run creates a schema in it
//! and leaves it behind), `LOAD_REDIS_URL` (an existing Redis; keys get a
//! prefix of their own), `LOAD_RUST_LOG` (the replicas' log filter, default
//! `warn`; their logs go to a temporary directory, printed at start, removed
//! at the end unless the run failed or `LOAD_KEEP_LOGS` is set: it also holds
//! h2load's per-call logs, `h2load-<point>-<replica>.log`, start and duration
//! of every call, for a look at the slowest). Other
//! `OSMIUM_*` variables reach the replicas as they are, e.g.
//! `OSMIUM_DB_POOL_SIZE` or `OSMIUM_MAX_GROUP_MEMBERS`. Unless set, the
//! replicas' `OSMIUM_DB_READ_CONCURRENCY` is sized as the README says for a
//! database sharing this machine (2 x its cores / the 2 replicas), not left
//! at the default, which is for a database with cores of its own; with
//! `LOAD_DATABASE_URL` it keeps the default. `LOAD_BINARY_B` (a
//! path to another build of the service) runs the second replica on that
//! build: (f) prints each replica's CPU per call, an A/B of two builds under
//! the same load at the same moment (the points on both replicas).
//!
//! Run by `cargo test --all-targets` (without `--bench`), it only says what
//! it is and exits.

// Test and bench code: a panic is how a failed expectation is reported.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

// The TLS server is the API tests'.
#[allow(dead_code)]
#[path = "../../tests/api/support/postgres.rs"]
mod postgres;
// The tests also stop and restart their Redis; here it only starts and ends.
#[allow(dead_code)]
#[path = "../../tests/api/support/redis.rs"]
mod redis_server;

mod clients;
mod cpu;
mod env;
mod h2load;
mod replicas;
mod report;
mod scenarios;
mod senders;
mod stats;

use std::time::{Duration, Instant};

use crate::env::{non_empty_var, Env};
use crate::report::Report;
use crate::scenarios::fanout::scenario_d;
use crate::scenarios::pages::scenario_f;
use crate::scenarios::payloads::scenario_e;
use crate::scenarios::reads::scenario_c;
use crate::scenarios::sends::scenario_a;
use crate::scenarios::spread::scenario_b;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The release binary; cargo builds it before a bench of this package.
const BINARY: &str = env!("CARGO_BIN_EXE_osmium-chat");
const SECRET: &str = "load-bench-secret-of-thirty-two-bytes";
const AUDIENCE: &str = "osmium-chat";
const WARMUP: Duration = Duration::from_secs(1);
const DEFAULT_SECS: u64 = 10;
/// How long streams may take to deliver what was acknowledged, after a run.
const DRAIN: Duration = Duration::from_secs(5);
/// How long a replica may take to answer its health check as SERVING.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on any unary call, so a stuck service fails the run instead of hanging it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the single large calls of (e), whose duration is itself a figure.
const LARGE_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Messages per second of the sender in scenario (c).
const BUSY_SENDS_PER_SEC: u64 = 100;

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, and a load test is no unit test: say so and stop.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: a benchmark; run it with `cargo bench --bench load`");
        return Ok(());
    }
    let secs = Duration::from_secs(
        non_empty_var("LOAD_SECS")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_SECS)
            .max(1),
    );
    let scenarios: Vec<String> = non_empty_var("LOAD_SCENARIOS")
        .unwrap_or_else(|| "a,b,c,d,e,f".into())
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(unknown) = scenarios
        .iter()
        .find(|s| !["a", "b", "c", "d", "e", "f"].contains(&s.as_str()))
    {
        return Err(format!("LOAD_SCENARIOS: unknown scenario {unknown:?} (a to f)").into());
    }
    let started = Instant::now();
    let env = Env::start().await?;
    let mut report = Report::default();
    let autogroup = cpu::autogroup();
    println!(
        "kernel: sched_autogroup_enabled={}",
        autogroup.map_or("unknown", |on| if on { "1" } else { "0" })
    );
    if autogroup == Some(true) {
        report.note(cpu::AUTOGROUP_NOTE.into());
    }
    let mut failed = false;
    for name in &scenarios {
        let result = match name.as_str() {
            "a" => scenario_a(&env, secs, &mut report).await,
            "b" => scenario_b(&env, secs, &mut report).await,
            "c" => scenario_c(&env, secs, &mut report).await,
            "d" => scenario_d(&env, secs, &mut report).await,
            "e" => scenario_e(&env, &mut report).await,
            _ => scenario_f(&env, secs, &mut report).await,
        };
        if let Err(error) = result {
            failed = true;
            report.failed(name, "scenario", error.to_string());
            if env.replicas.iter().any(|r| !r.alive()) {
                break;
            }
        }
    }
    for replica in &env.replicas {
        if !replica.alive() {
            failed = true;
            report.note(format!(
                "replica {} died; {} ends with:\n{}",
                replica.index,
                replica.log.display(),
                replica.log_tail()
            ));
        }
    }
    report.print(secs.as_secs(), started.elapsed());
    let log_dir = env.log_dir.clone();
    drop(env);
    if failed || std::env::var_os("LOAD_KEEP_LOGS").is_some() {
        println!("logs kept in {}", log_dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    Ok(())
}
