//! Per-request costs depend on the page returned, not on table sizes.
//!
//! `cargo bench --bench scaling` starts the service in-process on a throwaway
//! PostgreSQL (the integration tests' harness; `OSMIUM_TEST_DATABASE_URL`
//! selects an existing server instead), fills tables directly with SQL, and
//! prints, as ratios of medians measured in the same run:
//!
//! 1. GetChats (limit 20) of a user with 20 conversations, in a nearly empty
//!    database vs one that also holds 200k memberships and 200k messages of
//!    other users (two schemas on one server, each served by its own app);
//! 2. GetHistory (latest 50) in a chat of 100 messages vs one of 100k;
//! 3. GetChat of a conversation with 10 unread messages vs 50k unread;
//!
//! and, for information only, absolute medians and p99s and sequential
//! SendMessage throughput (direct chat) on Postgres and on the memory engine.
//!
//! Each claim is measured twice: end to end over gRPC (a client of the
//! in-process server), and on the in-process core (`domain::Core` on the same
//! database: the use-case and its SQL without the transport), so that a
//! transport effect cannot hide or fake a database one. The four kinds of
//! call of a claim (two sides, two layers) are measured interleaved, in a
//! fresh random order every round, so that load from elsewhere on the
//! machine, and what one call leaves for the next, hit all of them alike. Nothing here asserts a threshold: the ratios are printed to
//! be read.
//!
//! `SCALING_ITERS` sets the measured calls per row (default 200).

// Test and bench code: a panic is how a failed expectation is reported.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

// The TLS server is the API tests'.
#[allow(dead_code)]
#[path = "../../tests/api/support/postgres.rs"]
mod postgres;

mod bulk;
mod in_process;
mod report;
mod scenarios;
mod service;
mod stats;

use std::time::Instant;

use crate::report::{print, Report};
use crate::scenarios::{memory_scenarios, postgres_scenarios};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const SECRET: &str = "scaling-bench-secret-of-thirty-two-bytes";
const AUDIENCE: &str = "osmium-chat";
const WARMUP: usize = 20;
const DEFAULT_ITERS: usize = 200;
const SENDS: usize = 300;

/// Same as the service's snowflakes (src/model/snowflake.rs): ms since
/// 2020-01-01 above 22 bits of worker and sequence.
const EPOCH_MS: u64 = 1_577_836_800_000;

// The users the measurements act as; ids are the caller's to choose.
const GETCHATS_USER: u64 = 1_001;
const GETCHATS_PEERS: std::ops::Range<u64> = 1_101..1_121; // 20 conversations
const HISTORY_USER: u64 = 2_001;
const HISTORY_SMALL_PEER: u64 = 2_002;
const HISTORY_LARGE_PEER: u64 = 2_003;
const READER: u64 = 3_001;
const FEW_UNREAD_PEER: u64 = 3_002;
const MANY_UNREAD_PEER: u64 = 3_003;
const SENDER: u64 = 4_001;
const RECIPIENT: u64 = 4_002;

// Sizes (the brief: 200k members, 200k messages elsewhere; 100 vs 100k; 10 vs 50k).
const OTHER_USERS: i64 = 20_000;
const OTHER_CHATS: i64 = 100_000; // direct chats, 2 members and 2 messages each
const HISTORY_SMALL: usize = 100;
const HISTORY_LARGE: usize = 100_000;
const FEW_UNREAD: usize = 10;
const MANY_UNREAD: usize = 50_000;
const BULK_USER_BASE: i64 = 1_000_000_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, and a benchmark is no test: say so and stop.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scaling: a benchmark; run it with `cargo bench --bench scaling`");
        return Ok(());
    }
    let iters = std::env::var("SCALING_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERS)
        .max(1);
    let started = Instant::now();
    let mut report = Report {
        rows: Vec::new(),
        ratios: Vec::new(),
        notes: Vec::new(),
    };
    postgres_scenarios(&mut report, iters).await?;
    memory_scenarios(&mut report, iters).await?;
    print(&report, iters, started.elapsed());
    Ok(())
}
