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

#[path = "../tests/api/support/postgres.rs"]
mod postgres;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use osmium_chat::bus::local::LocalBus;
use osmium_chat::config::{Secret, Settings};
use osmium_chat::domain::messages::Anchor;
use osmium_chat::domain::target::ChatTarget;
use osmium_chat::domain::Core;
use osmium_chat::ephemeral::local::LocalEphemeral;
use osmium_chat::model::{Snowflakes, UserId};
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::{chats, messages, refs, types};
use osmium_chat::startup::{open_store, Application};
use osmium_chat::store::ConversationRange;
use prost::Message as _;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Status;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const SECRET: &str = "scaling-bench-secret";
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

// ---------------------------------------------------------------- the service

#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = ChatServiceClient<InterceptedService<Channel, Bearer>>;

struct App {
    port: u16,
    /// Dropping it stops the server.
    _stop: oneshot::Sender<()>,
}

impl App {
    async fn start(database_url: Option<String>) -> Result<Self> {
        let settings = Settings {
            database_url: database_url.map(Secret::new),
            jwt_secret: Some(Secret::new(SECRET)),
            ..Settings::default()
        };
        let app = Application::build(settings).await?;
        let port = app.port();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Ok(Self { port, _stop: stop })
    }

    async fn channel(&self) -> Result<Channel> {
        Ok(
            Channel::from_shared(format!("http://127.0.0.1:{}", self.port))?
                .connect()
                .await?,
        )
    }

    fn bearer(user: u64, service: bool) -> Result<Bearer> {
        let token =
            osmium_chat::auth::issue(SECRET.as_bytes(), AUDIENCE, user, None, service, 3600)?;
        Ok(Bearer(format!("Bearer {token}").parse()?))
    }

    async fn client(&self, user: u64) -> Result<Client> {
        Ok(ChatServiceClient::with_interceptor(
            self.channel().await?,
            Self::bearer(user, false)?,
        ))
    }

    async fn upsert_users(&self, ids: impl IntoIterator<Item = u64>) -> Result<()> {
        let mut directory =
            UserDirectoryClient::with_interceptor(self.channel().await?, Self::bearer(1, true)?);
        let users = ids
            .into_iter()
            .map(|id| types::User {
                id,
                name: format!("user {id}"),
                ..Default::default()
            })
            .collect();
        directory.upsert_users(UpsertUsers { users }).await?;
        Ok(())
    }
}

fn dm(user_id: u64) -> Option<refs::ChatRef> {
    Some(refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::User(refs::UserRef { user_id })),
    })
}

async fn send(client: &mut Client, to: u64, text: &str) -> Result<u64> {
    Ok(client
        .send_message(messages::SendMessage {
            chat_ref: dm(to),
            message: text.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .message_id)
}

async fn get_chats(client: &mut Client, limit: u32) -> Result<chats::Chats> {
    Ok(client
        .get_chats(chats::GetChats {
            limit: Some(limit),
            ..Default::default()
        })
        .await?
        .into_inner())
}

async fn latest_history(client: &mut Client, peer: u64) -> Result<messages::Messages> {
    Ok(client
        .get_history(messages::GetHistory {
            chat_ref: dm(peer),
            limit: Some(50),
            offset: None,
        })
        .await?
        .into_inner())
}

async fn get_chat(client: &mut Client, peer: u64) -> Result<chats::Chat> {
    Ok(client
        .get_chat(chats::GetChat { chat_ref: dm(peer) })
        .await?
        .into_inner())
}

// The measured gRPC calls. Each takes its own clone of a client (a channel
// handle): the same small cost on every side of a ratio.

async fn get_chats_call(mut client: Client) -> Result<()> {
    std::hint::black_box(get_chats(&mut client, 20).await?);
    Ok(())
}

async fn history_call(mut client: Client, peer: u64) -> Result<()> {
    std::hint::black_box(latest_history(&mut client, peer).await?);
    Ok(())
}

async fn get_chat_call(mut client: Client, peer: u64) -> Result<()> {
    std::hint::black_box(get_chat(&mut client, peer).await?);
    Ok(())
}

// ------------------------------------------------------------------ bulk data

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Ids in the service's snowflake layout, one day in the past: below every
/// id the service hands out during the run, so bulk messages are older
/// history, and in a millisecond the service never used, so nothing collides.
/// Offsets stay below 2^22, inside that millisecond.
fn bulk_id_base() -> i64 {
    let now = osmium_chat::model::clock::now_ms();
    ((now - 86_400_000 - EPOCH_MS) << 22) as i64
}
const OTHER_CHAT_IDS: i64 = 0; // + 0 .. OTHER_CHATS
const OTHER_MESSAGE_IDS: i64 = 1_000_000; // + 0 .. 2 * OTHER_CHATS
const CHAT_MESSAGE_IDS: i64 = 2_000_000; // + 0 .. sum of the measured chats' bulk

/// 200k memberships and 200k messages of other users: 20k users, each in 10
/// direct chats (user i with i+1..i+5, mod 20k), two messages per chat.
async fn load_other_data(db: &tokio_postgres::Client, base: i64) -> Result<()> {
    let body = types::Message {
        message: "bulk message of another conversation".into(),
        ..Default::default()
    }
    .encode_to_vec();
    db.execute(
        "INSERT INTO users (id, name) SELECT $1::bigint + g, 'bulk user ' || g
         FROM generate_series(0, $2::bigint - 1) g",
        &[&BULK_USER_BASE, &OTHER_USERS],
    )
    .await?;
    db.execute(
        "INSERT INTO chats (id, kind, dm_low, dm_high, last_message_id)
         SELECT $1::bigint + k, 0, $3::bigint + least(a, b), $3::bigint + greatest(a, b),
                $2::bigint + 2 * k + 1
         FROM (SELECT k, k % $4::bigint AS a, (k % $4::bigint + 1 + k / $4::bigint) % $4::bigint AS b
               FROM generate_series(0, $5::bigint - 1) k) pairs",
        &[
            &(base + OTHER_CHAT_IDS),
            &(base + OTHER_MESSAGE_IDS),
            &BULK_USER_BASE,
            &OTHER_USERS,
            &OTHER_CHATS,
        ],
    )
    .await?;
    db.execute(
        "INSERT INTO members (chat_id, user_id, joined, sort_key, last_read)
         SELECT c.id, u.user_id, c.id, c.last_message_id, c.last_message_id
         FROM chats c CROSS JOIN LATERAL (VALUES (c.dm_low), (c.dm_high)) u(user_id)
         WHERE c.id >= $1::bigint AND c.id < $1::bigint + $2::bigint",
        &[&(base + OTHER_CHAT_IDS), &OTHER_CHATS],
    )
    .await?;
    db.execute(
        "INSERT INTO messages (id, chat_id, author_id, body)
         SELECT $2::bigint + 2 * (c.id - $1::bigint) + m.n, c.id,
                CASE m.n WHEN 0 THEN c.dm_low ELSE c.dm_high END, $4::bytea
         FROM chats c CROSS JOIN (VALUES (0), (1)) m(n)
         WHERE c.id >= $1::bigint AND c.id < $1::bigint + $3::bigint",
        &[
            &(base + OTHER_CHAT_IDS),
            &(base + OTHER_MESSAGE_IDS),
            &OTHER_CHATS,
            &body,
        ],
    )
    .await?;
    Ok(())
}

/// Fills `chat` with `count` messages older than its API-sent one, alternating
/// between `authors` (their bodies encoded as the service encodes them), then
/// recounts every member's unread and mention counters from the messages, so
/// the counters the read path returns are the true ones.
async fn fill_chat(
    db: &tokio_postgres::Client,
    chat: i64,
    first_id: i64,
    count: usize,
    authors: &[i64],
) -> Result<()> {
    const CHUNK: usize = 25_000;
    let mut start = 0;
    while start < count {
        let end = (start + CHUNK).min(count);
        let ids: Vec<i64> = (start..end).map(|i| first_id + i as i64).collect();
        let author: Vec<i64> = (start..end).map(|i| authors[i % authors.len()]).collect();
        let body: Vec<Vec<u8>> = ids
            .iter()
            .zip(&author)
            .map(|(id, author)| {
                types::Message {
                    message_id: *id as u64,
                    author_id: *author as u64,
                    message: format!("history message number {id}"),
                    ..Default::default()
                }
                .encode_to_vec()
            })
            .collect();
        db.execute(
            "INSERT INTO messages (id, chat_id, author_id, body)
             SELECT id, $1, author, body FROM unnest($2::bigint[], $3::bigint[], $4::bytea[])
                 AS t(id, author, body)",
            &[&chat, &ids, &author, &body],
        )
        .await?;
        start = end;
    }
    db.execute(
        "UPDATE members m SET
             unread = (SELECT count(*) FROM messages x WHERE x.chat_id = m.chat_id
                       AND x.id > m.last_read AND x.author_id <> m.user_id),
             mentions = (SELECT count(*) FROM messages x WHERE x.chat_id = m.chat_id
                         AND x.id > m.last_read AND x.author_id <> m.user_id
                         AND m.user_id = ANY(x.mentions))
         WHERE m.chat_id = $1",
        &[&chat],
    )
    .await?;
    Ok(())
}

async fn direct_chat_id(db: &tokio_postgres::Client, a: u64, b: u64) -> Result<i64> {
    let (low, high) = (a.min(b) as i64, a.max(b) as i64);
    let row = db
        .query_one(
            "SELECT id FROM chats WHERE kind = 0 AND dm_low = $1 AND dm_high = $2",
            &[&low, &high],
        )
        .await?;
    Ok(row.get(0))
}

async fn table_sizes(db: &tokio_postgres::Client) -> Result<String> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM chats),
                    (SELECT count(*) FROM members), (SELECT count(*) FROM messages)",
            &[],
        )
        .await?;
    Ok(format!(
        "users {}, chats {}, members {}, messages {}",
        row.get::<_, i64>(0),
        row.get::<_, i64>(1),
        row.get::<_, i64>(2),
        row.get::<_, i64>(3)
    ))
}

// ------------------------------------------------------- the in-process core

/// A second `Core` on an app's database, as a second replica would have: the
/// use-cases and their SQL, without gRPC in front.
async fn core_on(url: &str) -> Result<Arc<Core>> {
    let settings = Settings {
        database_url: Some(Secret::new(url)),
        jwt_secret: Some(Secret::new(SECRET)),
        ..Settings::default()
    };
    let store = open_store(&settings).await?;
    let worker = store.lease_worker_id().await?;
    Ok(Core::new(
        store,
        Arc::new(LocalBus::default()),
        Arc::new(LocalEphemeral::default()),
        Snowflakes::new(worker),
        settings.limits(),
    ))
}

async fn core_get_chats(core: Arc<Core>, user: u64) -> Result<()> {
    let range = ConversationRange {
        before: None,
        after: None,
        limit: 20,
    };
    let page = core
        .get_chats(UserId(user), range)
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(page);
    Ok(())
}

async fn core_history(core: Arc<Core>, user: u64, peer: u64) -> Result<()> {
    let page = core
        .get_history(
            UserId(user),
            ChatTarget::Direct(UserId(peer)),
            Anchor::Latest,
            50,
        )
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(page);
    Ok(())
}

async fn core_get_chat(core: Arc<Core>, user: u64, peer: u64) -> Result<()> {
    let chat = core
        .get_chat(UserId(user), ChatTarget::Direct(UserId(peer)))
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(chat);
    Ok(())
}

// ---------------------------------------------------------------- measurement

struct Stats {
    label: String,
    engine: &'static str,
    layer: &'static str,
    samples: Vec<Duration>,
}

impl Stats {
    fn new(
        label: &str,
        engine: &'static str,
        layer: &'static str,
        mut samples: Vec<Duration>,
    ) -> Self {
        samples.sort();
        Self {
            label: label.into(),
            engine,
            layer,
            samples,
        }
    }

    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> Duration {
        let rank = ((p / 100.0) * self.samples.len() as f64).ceil() as usize;
        self.samples[rank.clamp(1, self.samples.len()) - 1]
    }

    fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    /// The share of calls that took `STALL` or longer, in percent.
    fn stalled(&self) -> f64 {
        let slow = self.samples.iter().filter(|d| **d >= STALL).count();
        100.0 * slow as f64 / self.samples.len() as f64
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// One kind of call to measure, made afresh for every call.
type Call<'a> = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<()>> + 'a>> + 'a>;

fn call<'a, F, Fut>(mut f: F) -> Call<'a>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<()>> + 'a,
{
    Box::new(move || Box::pin(f()))
}

/// Runs the calls in turn, `WARMUP` rounds unmeasured and then `iters`
/// measured ones, in a fresh random order every round: whatever else loads
/// the machine meanwhile, and whatever a call leaves behind for the next one
/// (a 40 ms transport stall leaves everything idle), falls on all alike.
async fn interleaved(iters: usize, mut calls: Vec<Call<'_>>) -> Result<Vec<Vec<Duration>>> {
    let n = calls.len();
    let mut times = vec![Vec::with_capacity(iters); n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..WARMUP + iters {
        rng.shuffle(&mut order);
        for &which in &order {
            let start = Instant::now();
            calls[which]().await?;
            let elapsed = start.elapsed();
            if round >= WARMUP {
                times[which].push(elapsed);
            }
        }
    }
    Ok(times)
}

/// Enough randomness to shuffle call orders, reproducibly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher-Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

async fn single<F, Fut>(iters: usize, mut f: F) -> Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut times = Vec::with_capacity(iters);
    for round in 0..WARMUP + iters {
        let start = Instant::now();
        f().await?;
        if round >= WARMUP {
            times.push(start.elapsed());
        }
    }
    Ok(times)
}

/// `SENDS` sequential SendMessage calls in one direct chat, after a warm-up.
async fn send_throughput(app: &App) -> Result<(Vec<Duration>, f64)> {
    let mut client = app.client(SENDER).await?;
    for i in 0..WARMUP {
        send(&mut client, RECIPIENT, &format!("warm-up {i}")).await?;
    }
    let mut times = Vec::with_capacity(SENDS);
    let started = Instant::now();
    for i in 0..SENDS {
        let start = Instant::now();
        send(&mut client, RECIPIENT, &format!("message {i}")).await?;
        times.push(start.elapsed());
    }
    let rate = SENDS as f64 / started.elapsed().as_secs_f64();
    Ok((times, rate))
}

fn check(what: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("setup is not what the benchmark expects: {what}").into())
    }
}

struct Report {
    rows: Vec<Stats>,
    /// (claim, layer, ratio of medians large/small, whether either side stalled).
    ratios: Vec<(&'static str, &'static str, f64, bool)>,
    notes: Vec<String>,
}

impl Report {
    fn pair(&mut self, claim: &'static str, layer: &'static str, small: Stats, large: Stats) {
        let ratio = large.median().as_secs_f64() / small.median().as_secs_f64();
        let stalled = small.stalled().max(large.stalled()) >= 5.0;
        self.ratios.push((claim, layer, ratio, stalled));
        self.rows.push(small);
        self.rows.push(large);
    }

    /// Measures one claim on both layers, all four kinds of call interleaved.
    async fn claim<'a>(
        &mut self,
        iters: usize,
        claim: &'static str,
        labels: (&str, &str),
        grpc: (Call<'a>, Call<'a>),
        core: (Call<'a>, Call<'a>),
    ) -> Result<()> {
        let mut times = interleaved(iters, vec![grpc.0, grpc.1, core.0, core.1])
            .await?
            .into_iter();
        let mut next = || times.next().unwrap_or_default();
        let (grpc_a, grpc_b, core_a, core_b) = (next(), next(), next(), next());
        self.pair(
            claim,
            "grpc",
            Stats::new(labels.0, "postgres", "grpc", grpc_a),
            Stats::new(labels.1, "postgres", "grpc", grpc_b),
        );
        self.pair(
            claim,
            "core",
            Stats::new(labels.0, "postgres", "core", core_a),
            Stats::new(labels.1, "postgres", "core", core_b),
        );
        Ok(())
    }
}

// ----------------------------------------------------------------- scenarios

/// The 20 conversations of `GETCHATS_USER`, through the API; returns a client acting as them.
async fn getchats_user(app: &App) -> Result<Client> {
    app.upsert_users(std::iter::once(GETCHATS_USER).chain(GETCHATS_PEERS))
        .await?;
    let mut client = app.client(GETCHATS_USER).await?;
    for peer in GETCHATS_PEERS {
        send(&mut client, peer, &format!("hello {peer}")).await?;
        let mut peer_client = app.client(peer).await?;
        send(&mut peer_client, GETCHATS_USER, "hello back").await?;
    }
    let page = get_chats(&mut client, 20).await?;
    check("GetChats returns 20 conversations", page.chats.len() == 20)?;
    Ok(client)
}

async fn postgres_scenarios(report: &mut Report, iters: usize) -> Result<()> {
    let t0 = Instant::now();
    let small_url = postgres::fresh_schema_url().await;
    let large_url = postgres::fresh_schema_url().await;
    let small = App::start(Some(small_url.clone())).await?;
    let large = App::start(Some(large_url.clone())).await?;
    let small_core = core_on(&small_url).await?;
    let large_core = core_on(&large_url).await?;
    let small_db = connect(&small_url).await?;
    let db = connect(&large_url).await?;
    report.notes.push(format!(
        "postgres, two apps and two cores up in {:.1}s",
        t0.elapsed().as_secs_f64()
    ));

    // The same 20 conversations in both databases, made through the API.
    let chats_small = getchats_user(&small).await?;
    let chats_large = getchats_user(&large).await?;

    // The measured chats of claims 2 and 3, created through the API (one
    // message each, or ten for the few-unread chat), then filled with SQL.
    large
        .upsert_users([
            HISTORY_USER,
            HISTORY_SMALL_PEER,
            HISTORY_LARGE_PEER,
            READER,
            FEW_UNREAD_PEER,
            MANY_UNREAD_PEER,
            SENDER,
            RECIPIENT,
        ])
        .await?;
    small.upsert_users([SENDER, RECIPIENT]).await?;
    let mut history = large.client(HISTORY_USER).await?;
    send(&mut history, HISTORY_SMALL_PEER, "newest").await?;
    send(&mut history, HISTORY_LARGE_PEER, "newest").await?;
    let mut reader = large.client(READER).await?;
    let mut few = large.client(FEW_UNREAD_PEER).await?;
    for i in 0..FEW_UNREAD {
        send(&mut few, READER, &format!("unread {i}")).await?;
    }
    let mut many = large.client(MANY_UNREAD_PEER).await?;
    send(&mut many, READER, "newest unread").await?;

    let t1 = Instant::now();
    let base = bulk_id_base();
    load_other_data(&db, base).await?;
    let history_small_chat = direct_chat_id(&db, HISTORY_USER, HISTORY_SMALL_PEER).await?;
    let history_large_chat = direct_chat_id(&db, HISTORY_USER, HISTORY_LARGE_PEER).await?;
    let many_unread_chat = direct_chat_id(&db, READER, MANY_UNREAD_PEER).await?;
    let mut next_id = base + CHAT_MESSAGE_IDS;
    let pair = |a: u64, b: u64| [a as i64, b as i64];
    fill_chat(
        &db,
        history_small_chat,
        next_id,
        HISTORY_SMALL - 1,
        &pair(HISTORY_USER, HISTORY_SMALL_PEER),
    )
    .await?;
    next_id += HISTORY_SMALL as i64;
    fill_chat(
        &db,
        history_large_chat,
        next_id,
        HISTORY_LARGE - 1,
        &pair(HISTORY_USER, HISTORY_LARGE_PEER),
    )
    .await?;
    next_id += HISTORY_LARGE as i64;
    fill_chat(
        &db,
        many_unread_chat,
        next_id,
        MANY_UNREAD - 1,
        &[MANY_UNREAD_PEER as i64],
    )
    .await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    small_db.batch_execute("VACUUM ANALYZE").await?;
    report.notes.push(format!(
        "bulk load + VACUUM ANALYZE in {:.1}s",
        t1.elapsed().as_secs_f64()
    ));
    report
        .notes
        .push(format!("small db: {}", table_sizes(&small_db).await?));
    report
        .notes
        .push(format!("large db: {}", table_sizes(&db).await?));

    // What the API now says about the measured chats.
    let h_small = latest_history(&mut history, HISTORY_SMALL_PEER).await?;
    let h_large = latest_history(&mut history, HISTORY_LARGE_PEER).await?;
    check(
        "history pages of 50",
        h_small.messages.len() == 50 && h_large.messages.len() == 50,
    )?;
    let c_few = get_chat(&mut reader, FEW_UNREAD_PEER).await?;
    let c_many = get_chat(&mut reader, MANY_UNREAD_PEER).await?;
    let unread = |c: &chats::Chat| c.chat.as_ref().map_or(0, |c| c.unread_count) as usize;
    check(
        "unread counts 10 and 50k",
        unread(&c_few) == FEW_UNREAD && unread(&c_many) == MANY_UNREAD,
    )?;
    let page_small = get_chats(&mut chats_small.clone(), 20).await?;
    let page_large = get_chats(&mut chats_large.clone(), 20).await?;
    report.notes.push(format!(
        "unread counts {} vs {}; history pages {} vs {} messages; response bytes: \
         GetChats {}/{}, GetHistory {}/{}, GetChat {}/{}",
        unread(&c_few),
        unread(&c_many),
        h_small.messages.len(),
        h_large.messages.len(),
        page_small.encoded_len(),
        page_large.encoded_len(),
        h_small.encoded_len(),
        h_large.encoded_len(),
        c_few.encoded_len(),
        c_many.encoded_len(),
    ));

    // 1. GetChats: the same page in a nearly empty and in a large database.
    report
        .claim(
            iters,
            "GetChats large/small",
            (
                "GetChats limit 20, nearly empty db",
                "GetChats limit 20, +200k members/msgs",
            ),
            (
                call(|| get_chats_call(chats_small.clone())),
                call(|| get_chats_call(chats_large.clone())),
            ),
            (
                call(|| core_get_chats(small_core.clone(), GETCHATS_USER)),
                call(|| core_get_chats(large_core.clone(), GETCHATS_USER)),
            ),
        )
        .await?;

    // 2. GetHistory: latest 50 of 100 vs of 100k messages (one user, two chats).
    report
        .claim(
            iters,
            "GetHistory large/small",
            (
                "GetHistory latest 50, chat of 100",
                "GetHistory latest 50, chat of 100k",
            ),
            (
                call(|| history_call(history.clone(), HISTORY_SMALL_PEER)),
                call(|| history_call(history.clone(), HISTORY_LARGE_PEER)),
            ),
            (
                call(|| core_history(large_core.clone(), HISTORY_USER, HISTORY_SMALL_PEER)),
                call(|| core_history(large_core.clone(), HISTORY_USER, HISTORY_LARGE_PEER)),
            ),
        )
        .await?;

    // 3. GetChat: 10 vs 50k unread (one user, two chats).
    report
        .claim(
            iters,
            "GetChat unread 50k/10",
            ("GetChat, 10 unread", "GetChat, 50k unread"),
            (
                call(|| get_chat_call(reader.clone(), FEW_UNREAD_PEER)),
                call(|| get_chat_call(reader.clone(), MANY_UNREAD_PEER)),
            ),
            (
                call(|| core_get_chat(large_core.clone(), READER, FEW_UNREAD_PEER)),
                call(|| core_get_chat(large_core.clone(), READER, MANY_UNREAD_PEER)),
            ),
        )
        .await?;

    // 4. Information: sequential SendMessage in a direct chat.
    for (app, label) in [(&small, "nearly empty db"), (&large, "large db")] {
        let (times, rate) = send_throughput(app).await?;
        report.notes.push(format!(
            "SendMessage throughput, postgres, {label}: {rate:.0} msg/s (sequential, one client)"
        ));
        let label = format!("SendMessage DM, {label}");
        report
            .rows
            .push(Stats::new(&label, "postgres", "grpc", times));
    }
    Ok(())
}

/// The small side of each claim, and SendMessage, on the memory engine (gRPC only).
async fn memory_scenarios(report: &mut Report, iters: usize) -> Result<()> {
    let app = App::start(None).await?;
    let chats_client = getchats_user(&app).await?;
    app.upsert_users([
        HISTORY_USER,
        HISTORY_SMALL_PEER,
        READER,
        FEW_UNREAD_PEER,
        SENDER,
        RECIPIENT,
    ])
    .await?;
    let mut history = app.client(HISTORY_USER).await?;
    for i in 0..HISTORY_SMALL {
        send(&mut history, HISTORY_SMALL_PEER, &format!("history {i}")).await?;
    }
    let mut few = app.client(FEW_UNREAD_PEER).await?;
    for i in 0..FEW_UNREAD {
        send(&mut few, READER, &format!("unread {i}")).await?;
    }
    let reader = app.client(READER).await?;

    let times = single(iters, || get_chats_call(chats_client.clone())).await?;
    report.rows.push(Stats::new(
        "GetChats limit 20, 20 conversations",
        "memory",
        "grpc",
        times,
    ));
    let times = single(iters, || history_call(history.clone(), HISTORY_SMALL_PEER)).await?;
    report.rows.push(Stats::new(
        "GetHistory latest 50, chat of 100",
        "memory",
        "grpc",
        times,
    ));
    let times = single(iters, || get_chat_call(reader.clone(), FEW_UNREAD_PEER)).await?;
    report
        .rows
        .push(Stats::new("GetChat, 10 unread", "memory", "grpc", times));
    let (times, rate) = send_throughput(&app).await?;
    report.notes.push(format!(
        "SendMessage throughput, memory: {rate:.0} msg/s (sequential, one client)"
    ));
    report
        .rows
        .push(Stats::new("SendMessage DM", "memory", "grpc", times));
    Ok(())
}

/// Loopback round trips take well under a millisecond; gRPC calls near
/// 40 ms are Nagle's algorithm on the server's socket waiting for the
/// client's delayed ACK, a transport stall that swamps the work measured.
const STALL: Duration = Duration::from_millis(35);

fn print(report: &Report, iters: usize, elapsed: Duration) {
    println!();
    println!(
        "osmium-chat scaling: {iters} measured calls per latency row after {WARMUP} warm-up calls; \
         latencies in ms; grpc = a client of the in-process server, core = domain::Core on the same database"
    );
    for note in &report.notes {
        println!("  {note}");
    }
    println!();
    let width = report
        .rows
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(10);
    println!(
        "{:<width$}  {:<8}  {:<5}  {:>5}  {:>8}  {:>8}  {:>8}",
        "case", "engine", "layer", "n", "median", "p99", ">=35ms"
    );
    for row in &report.rows {
        println!(
            "{:<width$}  {:<8}  {:<5}  {:>5}  {:>8}  {:>8}  {:>7.0}%",
            row.label,
            row.engine,
            row.layer,
            row.samples.len(),
            ms(row.median()),
            ms(row.percentile(99.0)),
            row.stalled()
        );
    }
    println!();
    println!("ratios of medians, large side / small side (about 1: the cost does not grow with the data):");
    for (claim, layer, ratio, stalled) in &report.ratios {
        let layer = match *layer {
            "grpc" => "gRPC end to end",
            _ => "core: use-case + Postgres, no transport",
        };
        let stalled = if *stalled {
            "; transport stalls, see the warning"
        } else {
            ""
        };
        println!("{claim} = {ratio:.2}   ({layer}{stalled})");
    }
    let stalled: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.layer == "grpc" && r.stalled() >= 5.0)
        .map(|r| format!("{} ({}, {:.0}%)", r.label, r.engine, r.stalled()))
        .collect();
    if !stalled.is_empty() {
        println!();
        println!(
            "warning: gRPC calls taking 35+ ms, in: {}. On loopback that is a transport stall, \
             not work: ~40 ms is Linux's delayed ACK, which a server socket without TCP_NODELAY \
             (Nagle) waits for before sending the rest of a response. gRPC ratios of rows \
             stalled most of the time compare two stalls; the core ratios are the ones to read.",
            stalled.join("; ")
        );
    }
    println!();
    println!("total {:.1}s", elapsed.as_secs_f64());
}

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
