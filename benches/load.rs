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
//!
//! Each load point runs `LOAD_SECS` seconds (default 10) after a 1 s
//! warm-up; a full run takes about two minutes on 2 cores. Everything runs
//! on one machine, so the load generator, both replicas, PostgreSQL and Redis
//! share its cores: the figures are a floor for the service, not a
//! capacity plan. PostgreSQL runs as the harness starts it: the throwaway
//! server of the tests trades durability for speed unless
//! `OSMIUM_TEST_POSTGRES_DURABLE=1`, which measures commits as production
//! pays for them. The run prints `fsync` and `synchronous_commit`; pgbench
//! sees the same server.
//!
//! Environment: `LOAD_SCENARIOS` (e.g. `a,d`; default all), `LOAD_SECS`,
//! `LOAD_DATABASE_URL` (an existing server: the run creates a schema in it
//! and leaves it behind), `LOAD_REDIS_URL` (an existing Redis; keys get a
//! prefix of their own), `LOAD_RUST_LOG` (the replicas' log filter, default
//! `warn`; their logs go to a temporary directory, printed at start). Other
//! `OSMIUM_*` variables reach the replicas as they are, e.g.
//! `OSMIUM_DB_POOL_SIZE` or `OSMIUM_MAX_GROUP_MEMBERS`.
//!
//! Run by `cargo test --all-targets` (without `--bench`), it only says what
//! it is and exits.

#[path = "../tests/api/support/postgres.rs"]
mod postgres;
// The tests also stop and restart their Redis; here it only starts and ends.
#[allow(dead_code)]
#[path = "../tests/api/support/redis.rs"]
mod redis_server;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::{SubscribeRequest, UpdateEnvelope, UpsertUsers};
use osmium_chat::proto::types::message_entity::{Entity, TextUrlEntity};
use osmium_chat::proto::{chats, messages, refs, types, updates};
use prost::Message as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The release binary; cargo builds it before a bench of this package.
const BINARY: &str = env!("CARGO_BIN_EXE_osmium-chat");
const SECRET: &str = "load-bench-secret";
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

// ------------------------------------------------------------------ replicas

/// Runs the replica (`$2...`) with its output in the file `$1`, prints its
/// pid, and kills it when stdin, a pipe only this process holds, reaches end
/// of file: on drop, and also when this process dies however it dies.
const WRAPPER: &str = r#"
log=$1; shift
"$@" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read -r _ignored
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"#;

struct Replica {
    index: usize,
    /// The replica's own pid (not the wrapper's), for /proc.
    pid: u32,
    port: u16,
    log: PathBuf,
    wrapper: Child,
    stdin: Option<ChildStdin>,
}

struct ReplicaConfig<'a> {
    database_url: &'a str,
    redis_url: &'a str,
    redis_prefix: &'a str,
    log_dir: &'a Path,
}

impl Replica {
    fn spawn(index: usize, config: &ReplicaConfig<'_>) -> Result<Self> {
        let port = free_port()?;
        let metrics_port = free_port()?;
        let log = config.log_dir.join(format!("replica-{index}.log"));
        let log_filter = std::env::var("LOAD_RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut wrapper = Command::new("sh")
            .args(["-c", WRAPPER, "osmium-load-replica"])
            .arg(&log)
            .arg(BINARY)
            .env("DATABASE_URL", config.database_url)
            .env("REDIS_URL", config.redis_url)
            .env("OSMIUM_REDIS_PREFIX", config.redis_prefix)
            .env("OSMIUM_JWT_SECRET", SECRET)
            .env("OSMIUM_JWT_AUDIENCE", AUDIENCE)
            .env("OSMIUM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("OSMIUM_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("RUST_LOG", log_filter)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OSMIUM_JWT_PUBLIC_KEYS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {BINARY}: {e}"))?;
        let stdin = wrapper.stdin.take();
        let stdout = wrapper.stdout.take().ok_or("the wrapper has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let pid = line
            .trim()
            .parse()
            .map_err(|_| format!("the replica wrapper printed {line:?}, not a pid"))?;
        Ok(Self {
            index,
            pid,
            port,
            log,
            wrapper,
            stdin,
        })
    }

    fn alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/status", self.pid)) {
            Ok(status) => !status
                .lines()
                .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X'))),
            Err(_) => false,
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until the health service answers SERVING.
    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(channel) = self.endpoint()?.connect().await {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(reply) = HealthClient::new(channel).check(request).await {
                    if reply.into_inner().status == ServingStatus::Serving as i32 {
                        return Ok(());
                    }
                }
            }
            if !self.alive() {
                return Err(format!(
                    "replica {} exited during start-up; {} ends with:\n{}",
                    self.index,
                    self.log.display(),
                    self.log_tail()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "replica {} not SERVING within {READY_TIMEOUT:?}; {} ends with:\n{}",
                    self.index,
                    self.log.display(),
                    self.log_tail()
                )
                .into());
            }
            // Readiness polling of another process: nothing to await but time.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn endpoint(&self) -> Result<tonic::transport::Endpoint> {
        Ok(Channel::from_shared(format!(
            "http://127.0.0.1:{}",
            self.port
        ))?)
    }

    /// `(VmRSS, VmHWM)` in bytes.
    fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| format!("no {name} in /proc/{}/status", self.pid))?;
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("cannot read {line:?}"))?;
            Ok(kb * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Resets VmHWM to the current RSS.
    fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .map_err(|e| format!("cannot reset the peak RSS of pid {}: {e}", self.pid).into())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.wrapper.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

// ------------------------------------------------------------------- clients

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
type Directory = UserDirectoryClient<InterceptedService<Channel, Bearer>>;

fn bearer(user: u64, service: bool) -> Result<Bearer> {
    let token =
        osmium_chat::auth::issue(SECRET.as_bytes(), AUDIENCE, user, None, service, 6 * 3600)?;
    Ok(Bearer(format!("Bearer {token}").parse()?))
}

fn group_ref(group_id: u64) -> refs::ChatRef {
    refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::Group(refs::GroupRef { group_id })),
    }
}

/// Unique across the run: every send carries its own client id.
static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

async fn send_text(client: &mut Client, chat: &refs::ChatRef, text: &str) -> Result<u64, Status> {
    let request = messages::SendMessage {
        chat_ref: Some(*chat),
        message: text.into(),
        client_id: Some(CLIENT_IDS.fetch_add(1, Ordering::Relaxed)),
        ..Default::default()
    };
    Ok(client.send_message(request).await?.into_inner().message_id)
}

/// The message id of an `UpdateMessageCreated` in `group_id`, if that is what it is.
fn created_in(envelope: &UpdateEnvelope, group_id: u64) -> Option<u64> {
    let Some(updates::update::Update::MessageCreated(created)) =
        envelope.update.as_ref()?.update.as_ref()
    else {
        return None;
    };
    let message = created.message.as_ref()?;
    match message.chat_ref.as_ref()?.r#ref.as_ref()? {
        refs::chat_ref::Ref::Group(g) if g.group_id == group_id => Some(message.message_id),
        _ => None,
    }
}

// --------------------------------------------------------------- environment

struct Group {
    id: u64,
    /// The creator first.
    members: Vec<u64>,
}

impl Group {
    fn chat_ref(&self) -> refs::ChatRef {
        group_ref(self.id)
    }
}

struct Env {
    replicas: Vec<Replica>,
    /// On the service's schema.
    db: tokio_postgres::Client,
    /// The server without the schema option, for pgbench.
    server_url: String,
    log_dir: PathBuf,
    next_user: AtomicU64,
    _redis: Option<redis_server::RedisServer>,
}

impl Env {
    async fn start() -> Result<Self> {
        let (database_url, server_url) = match non_empty_var("LOAD_DATABASE_URL") {
            Some(server) => {
                let schema = format!("load_{}_{}", std::process::id(), unix_secs());
                let (db, connection) = tokio_postgres::connect(&server, NoTls).await?;
                let connection = tokio::spawn(connection);
                db.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
                drop(db);
                let _ = connection.await;
                (with_search_path(&server, &schema), server)
            }
            None => {
                let url = postgres::fresh_schema_url().await;
                let server = without_search_path(&url);
                (url, server)
            }
        };
        let (redis, redis_url) = match non_empty_var("LOAD_REDIS_URL") {
            Some(url) => (None, url),
            None => {
                let server = redis_server::RedisServer::start().await;
                let url = server.url();
                (Some(server), url)
            }
        };
        let log_dir = std::env::temp_dir().join(format!("osmium-load-{}", std::process::id()));
        std::fs::create_dir_all(&log_dir)?;
        let prefix = format!("osmium-load-{}-{}", std::process::id(), unix_secs());
        let config = ReplicaConfig {
            database_url: &database_url,
            redis_url: &redis_url,
            redis_prefix: &prefix,
            log_dir: &log_dir,
        };
        let replicas = vec![Replica::spawn(0, &config)?, Replica::spawn(1, &config)?];
        for replica in &replicas {
            replica.wait_ready().await?;
        }
        let (db, connection) = tokio_postgres::connect(&database_url, NoTls).await?;
        tokio::spawn(connection);
        let durability = db
            .query_one(
                "SELECT current_setting('fsync'), current_setting('synchronous_commit')",
                &[],
            )
            .await?;
        println!(
            "postgres: fsync={}, synchronous_commit={}",
            durability.get::<_, String>(0),
            durability.get::<_, String>(1)
        );
        println!(
            "replicas: pids {} and {} on ports {} and {}; logs in {}",
            replicas[0].pid,
            replicas[1].pid,
            replicas[0].port,
            replicas[1].port,
            log_dir.display()
        );
        Ok(Self {
            replicas,
            db,
            server_url,
            log_dir,
            next_user: AtomicU64::new(10_000),
            _redis: redis,
        })
    }

    /// A channel of its own (one HTTP/2 connection) to `replica`.
    async fn channel(&self, replica: usize, bounded: bool) -> Result<Channel> {
        let mut endpoint = self.replicas[replica % self.replicas.len()].endpoint()?;
        if bounded {
            endpoint = endpoint.timeout(CALL_TIMEOUT);
        }
        Ok(endpoint.connect().await?)
    }

    async fn client(&self, user: u64, replica: usize) -> Result<Client> {
        Ok(ChatServiceClient::with_interceptor(
            self.channel(replica, true).await?,
            bearer(user, false)?,
        ))
    }

    /// A client whose calls are not bounded in time: for Subscribe.
    async fn stream_client(&self, user: u64, replica: usize) -> Result<Client> {
        Ok(ChatServiceClient::with_interceptor(
            self.channel(replica, false).await?,
            bearer(user, false)?,
        ))
    }

    async fn directory(&self) -> Result<Directory> {
        Ok(UserDirectoryClient::with_interceptor(
            self.channel(0, true).await?,
            bearer(1, true)?,
        ))
    }

    /// `count` new users, registered through UserDirectory.
    async fn users(&self, count: usize) -> Result<Vec<u64>> {
        let first = self.next_user.fetch_add(count as u64, Ordering::Relaxed);
        let ids: Vec<u64> = (first..first + count as u64).collect();
        let mut directory = self.directory().await?;
        for chunk in ids.chunks(500) {
            let users = chunk
                .iter()
                .map(|&id| types::User {
                    id,
                    name: format!("load user {id}"),
                    ..Default::default()
                })
                .collect();
            directory.upsert_users(UpsertUsers { users }).await?;
        }
        Ok(ids)
    }

    /// A group created by `members[0]` with all the others.
    async fn group_with(&self, members: Vec<u64>) -> Result<Group> {
        let mut creator = self.client(members[0], 0).await?;
        let users = members[1..]
            .iter()
            .map(|&user_id| refs::UserRef { user_id })
            .collect();
        let group = creator
            .create_chat(chats::CreateChat {
                users,
                name: "load group".into(),
            })
            .await?
            .into_inner();
        Ok(Group {
            id: group.id,
            members,
        })
    }

    async fn group_of(&self, size: usize) -> Result<Group> {
        let members = self.users(size).await?;
        self.group_with(members).await
    }

    /// Bytes of the update log tables (whichever of them exist).
    async fn log_bytes(&self) -> Result<i64> {
        let row = self
            .db
            .query_one(
                "SELECT coalesce(pg_total_relation_size(to_regclass('updates')), 0)
                      + coalesce(pg_total_relation_size(to_regclass('changes')), 0)",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn messages_bytes(&self) -> Result<i64> {
        let row = self
            .db
            .query_one(
                "SELECT coalesce(pg_total_relation_size(to_regclass('messages')), 0)",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Resets every replica's peak RSS and returns their current RSS.
    fn memory_before(&self) -> Result<Vec<u64>> {
        self.replicas
            .iter()
            .map(|r| {
                r.reset_peak()?;
                Ok(r.memory()?.0)
            })
            .collect()
    }

    /// The largest peak growth over the replicas since [`Self::memory_before`].
    fn peak_growth(&self, before: &[u64]) -> Result<u64> {
        let mut growth = 0;
        for (replica, rss_before) in self.replicas.iter().zip(before) {
            let (_, peak) = replica.memory()?;
            growth = growth.max(peak.saturating_sub(*rss_before));
        }
        Ok(growth)
    }
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `server` with connections on `schema`, as the tests' harness does it.
fn with_search_path(server: &str, schema: &str) -> String {
    if server.starts_with("postgres://") || server.starts_with("postgresql://") {
        let separator = if server.contains('?') { '&' } else { '?' };
        format!("{server}{separator}options=-csearch_path%3D{schema}")
    } else {
        format!("{server} options=-csearch_path={schema}")
    }
}

/// The inverse of [`with_search_path`].
fn without_search_path(url: &str) -> String {
    for marker in ["?options=", "&options=", " options="] {
        if let Some(at) = url.find(marker) {
            let rest = &url[at + marker.len()..];
            let tail = rest.find(['&', ' ']).map(|end| &rest[end..]).unwrap_or("");
            let tail = match (marker, tail.strip_prefix('&')) {
                ("?options=", Some(more)) => format!("?{more}"),
                _ => tail.to_owned(),
            };
            return format!("{}{tail}", &url[..at]);
        }
    }
    url.to_owned()
}

// ----------------------------------------------------------------- measuring

/// Calls started at or after `start` and finished by `end` are counted.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn after_warmup(secs: Duration) -> Self {
        let start = Instant::now() + WARMUP;
        Self {
            start,
            end: start + secs,
        }
    }

    fn contains(&self, started: Instant, done: Instant) -> bool {
        started >= self.start && done <= self.end
    }

    fn secs(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

#[derive(Default)]
struct Samples {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Samples {
    fn record<T, E: std::fmt::Display>(
        &mut self,
        window: &Window,
        started: Instant,
        result: &Result<T, E>,
    ) {
        let done = Instant::now();
        match result {
            Ok(_) if window.contains(started, done) => {
                self.latencies_us.push((done - started).as_micros() as u64)
            }
            Ok(_) => {}
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }

    fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn rate(&self, window: &Window) -> f64 {
        self.latencies_us.len() as f64 / window.secs()
    }

    fn summary(&self) -> Latencies {
        Latencies::of(self.latencies_us.clone())
    }
}

struct Latencies {
    sorted_us: Vec<u64>,
}

impl Latencies {
    fn of(mut us: Vec<u64>) -> Self {
        us.sort_unstable();
        Self { sorted_us: us }
    }

    /// Nearest rank; NaN when there is nothing to rank.
    fn ms(&self, quantile: f64) -> f64 {
        if self.sorted_us.is_empty() {
            return f64::NAN;
        }
        let rank = (quantile * self.sorted_us.len() as f64).ceil() as usize;
        self.sorted_us[rank.clamp(1, self.sorted_us.len()) - 1] as f64 / 1000.0
    }
}

// -------------------------------------------------------------------- report

enum Verdict {
    Pass,
    Miss,
    Info,
}

struct Row {
    scenario: String,
    figure: String,
    value: String,
    target: String,
    verdict: Verdict,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    /// A figure with a target: `pass` says whether it is met.
    fn check(&mut self, scenario: &str, figure: &str, value: String, target: &str, pass: bool) {
        self.push(
            scenario,
            figure,
            value,
            target,
            if pass { Verdict::Pass } else { Verdict::Miss },
        );
    }

    fn info(&mut self, scenario: &str, figure: &str, value: String) {
        self.push(scenario, figure, value, "", Verdict::Info);
    }

    fn push(&mut self, scenario: &str, figure: &str, value: String, target: &str, v: Verdict) {
        println!("  {scenario} {figure}: {value}");
        self.rows.push(Row {
            scenario: scenario.into(),
            figure: figure.into(),
            value,
            target: target.into(),
            verdict: v,
        });
    }

    fn note(&mut self, note: String) {
        println!("  note: {note}");
        self.notes.push(note);
    }

    fn errors(&mut self, scenario: &str, what: &str, samples: &Samples) {
        if samples.errors > 0 {
            self.check(
                scenario,
                &format!("{what} errors"),
                samples.errors.to_string(),
                "0",
                false,
            );
            self.note(format!(
                "({scenario}) first {what} error: {}",
                samples.first_error.as_deref().unwrap_or("?")
            ));
        }
    }

    /// A failure whose details go to the notes, to keep the table narrow.
    fn failed(&mut self, scenario: &str, figure: &str, details: String) {
        self.check(scenario, figure, "failed (see notes)".into(), "", false);
        self.note(format!("({scenario}) {figure}: {details}"));
    }

    fn print(&self, secs: u64, elapsed: Duration) {
        let header = ["scenario", "figure", "measured", "target", ""];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.scenario.clone(),
                    r.figure.clone(),
                    r.value.clone(),
                    r.target.clone(),
                    match r.verdict {
                        Verdict::Pass => "ok",
                        Verdict::Miss => "MISSED",
                        Verdict::Info => "",
                    }
                    .into(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |row: &[String]| {
            let padded: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        println!();
        println!(
            "osmium-chat load: 2 replicas, {secs} s per point after {} s warm-up, {} cores, run took {:.0} s",
            WARMUP.as_secs(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            elapsed.as_secs_f64()
        );
        println!("{}", line(&header.map(String::from)));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("{}", line(&rule).replace(' ', "-"));
        for row in &cells {
            println!("{}", line(row));
        }
        let missed = self
            .rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Miss))
            .count();
        let met = self
            .rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Pass))
            .count();
        println!("targets met: {met}, missed: {missed}");
        for note in &self.notes {
            println!("note: {note}");
        }
    }
}

fn ms(value: f64) -> String {
    format!("{value:.2} ms")
}

fn mib(bytes: f64) -> String {
    if bytes.abs() >= MIB {
        format!("{:.1} MiB", bytes / MIB)
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
    }
}

// ------------------------------------------------------------------- senders

struct Sender {
    client: Client,
    replica: usize,
    chats: Vec<refs::ChatRef>,
}

struct Sent {
    message_id: u64,
    replica: usize,
    started: Instant,
    acked: Instant,
}

/// Each sender on a replica of its own turn (`index % 2`), on its own connection.
async fn senders(env: &Env, plan: Vec<(u64, Vec<refs::ChatRef>)>) -> Result<Vec<Sender>> {
    let mut senders = Vec::new();
    for (index, (user, chats)) in plan.into_iter().enumerate() {
        let replica = index % env.replicas.len();
        senders.push(Sender {
            client: env.client(user, replica).await?,
            replica,
            chats,
        });
    }
    Ok(senders)
}

/// Closed loop: every sender sends, round robin over its chats, until the
/// window ends.
async fn send_load(senders: Vec<Sender>, window: Window) -> Result<(Samples, Vec<Sent>)> {
    let tasks: Vec<JoinHandle<(Samples, Vec<Sent>)>> = senders
        .into_iter()
        .map(|mut sender| {
            tokio::spawn(async move {
                let mut samples = Samples::default();
                let mut sent = Vec::new();
                let mut turn = 0;
                while Instant::now() < window.end {
                    let chat = &sender.chats[turn % sender.chats.len()];
                    turn += 1;
                    let started = Instant::now();
                    let result = send_text(&mut sender.client, chat, "load test message").await;
                    samples.record(&window, started, &result);
                    if let Ok(message_id) = result {
                        sent.push(Sent {
                            message_id,
                            replica: sender.replica,
                            started,
                            acked: Instant::now(),
                        });
                    }
                }
                (samples, sent)
            })
        })
        .collect();
    let mut samples = Samples::default();
    let mut sent = Vec::new();
    for task in tasks {
        let (s, m) = task.await?;
        samples.merge(s);
        sent.extend(m);
    }
    Ok((samples, sent))
}

// ---------------------------------------------------------------- scenarios

async fn scenario_a(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
    println!("(a) SendMessage into one group of 10");
    let group = env.group_of(10).await?;
    for count in [1, 4, 8] {
        let plan = group.members[..count]
            .iter()
            .map(|&user| (user, vec![group.chat_ref()]))
            .collect();
        let window = Window::after_warmup(secs);
        let (samples, _) = send_load(senders(env, plan).await?, window).await?;
        let latencies = samples.summary();
        let (rate, p50, p99) = (samples.rate(&window), latencies.ms(0.5), latencies.ms(0.99));
        let scenario = format!("a/{count}");
        if count == 8 {
            report.check(
                &scenario,
                "msg/s",
                format!("{rate:.0}"),
                ">= 1500",
                rate >= 1500.0,
            );
            report.info(&scenario, "p50", ms(p50));
            report.check(&scenario, "p99", ms(p99), "< 20 ms", p99 < 20.0);
        } else {
            report.info(&scenario, "msg/s", format!("{rate:.0}"));
            report.info(&scenario, "p50", ms(p50));
            report.info(&scenario, "p99", ms(p99));
        }
        report.errors(&scenario, "send", &samples);
    }
    Ok(())
}

async fn scenario_b(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
    const SENDERS: usize = 16;
    const GROUPS: usize = 100;
    println!("(b) SendMessage over {GROUPS} groups of 10 at {SENDERS} senders, and pgbench");
    let pgbench = Pgbench::find();
    if let Some(pgbench) = &pgbench {
        pgbench.init(env).await?;
    }

    // Sender g % 16 is in group g with 9 members of that group alone.
    let sender_ids = env.users(SENDERS).await?;
    let others = env.users(GROUPS * 9).await?;
    let mut chats_of: Vec<Vec<refs::ChatRef>> = vec![Vec::new(); SENDERS];
    for g in 0..GROUPS {
        let mut members = vec![sender_ids[g % SENDERS]];
        members.extend_from_slice(&others[g * 9..(g + 1) * 9]);
        let group = env.group_with(members).await?;
        chats_of[g % SENDERS].push(group.chat_ref());
    }
    let plan = sender_ids.into_iter().zip(chats_of).collect();
    let window = Window::after_warmup(secs);
    let (samples, _) = send_load(senders(env, plan).await?, window).await?;
    let latencies = samples.summary();
    let rate = samples.rate(&window);
    report.info("b", "msg/s (16 senders, 100 groups)", format!("{rate:.0}"));
    report.info("b", "p50", ms(latencies.ms(0.5)));
    report.info("b", "p99", ms(latencies.ms(0.99)));
    report.errors("b", "send", &samples);

    let Some(pgbench) = pgbench else {
        report.note("(b) pgbench not found (PATH, /usr/lib/postgresql/*/bin): no ratio".into());
        return Ok(());
    };
    let tps = pgbench.run(env, secs).await?;
    report.info(
        "b",
        "pgbench tps (-c 16 -j 2, scale 16)",
        format!("{tps:.0}"),
    );
    let ratio = rate / tps;
    report.check(
        "b",
        "msg/s ÷ pgbench tps",
        format!("{ratio:.2}"),
        ">= 1.0",
        ratio >= 1.0,
    );
    pgbench.drop_schema(env).await;
    Ok(())
}

struct Pgbench {
    binary: PathBuf,
    schema: String,
}

impl Pgbench {
    /// The newest `/usr/lib/postgresql/*/bin/pgbench`, else the one on PATH.
    fn find() -> Option<Self> {
        let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry
                    .file_name()
                    .to_str()?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()?;
                let binary = entry.path().join("bin/pgbench");
                binary.is_file().then_some((version, binary))
            })
            .collect();
        versioned.sort();
        let on_path = || {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("pgbench"))
                    .find(|candidate| candidate.is_file())
            })
        };
        let binary = versioned.pop().map(|(_, b)| b).or_else(on_path)?;
        Some(Self {
            binary,
            schema: format!("pgbench_{}_{}", std::process::id(), unix_secs()),
        })
    }

    /// pgbench with `args` on the service's server, in the schema of its own.
    async fn output(&self, env: &Env, args: &[&str]) -> Result<String> {
        let output = tokio::process::Command::new(&self.binary)
            .env("PGOPTIONS", format!("-c search_path={}", self.schema))
            .args(args)
            // The database name: libpq takes a URL there too.
            .arg(&env.server_url)
            .kill_on_drop(true)
            .output()
            .await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            return Err(format!("pgbench {args:?} failed ({}):\n{text}", output.status).into());
        }
        Ok(text)
    }

    async fn init(&self, env: &Env) -> Result<()> {
        env.db
            .batch_execute(&format!("CREATE SCHEMA {}", self.schema))
            .await?;
        let started = Instant::now();
        self.output(env, &["-i", "-s", "16", "-q"]).await?;
        env.db.batch_execute("CHECKPOINT").await?;
        println!(
            "  pgbench -i -s 16 into schema {} took {:.1} s",
            self.schema,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn run(&self, env: &Env, secs: Duration) -> Result<f64> {
        let seconds = secs.as_secs().max(1).to_string();
        let text = self
            .output(env, &["-c", "16", "-j", "2", "-T", &seconds, "-n"])
            .await?;
        text.lines()
            .find_map(|line| {
                line.trim()
                    .strip_prefix("tps = ")?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| format!("no tps in pgbench's output:\n{text}").into())
    }

    async fn drop_schema(&self, env: &Env) {
        let _ = env
            .db
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

async fn scenario_c(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
    const READERS: usize = 8;
    println!("(c) MarkChatRead by {READERS} members of a busy group");
    let group = env.group_of(READERS + 1).await?;
    let chat = group.chat_ref();
    let mut sender = env.client(group.members[0], 0).await?;
    let newest = Arc::new(AtomicU64::new(
        send_text(&mut sender, &chat, "first").await?,
    ));
    let window = Window::after_warmup(secs);

    let sending = {
        let (newest, chat) = (newest.clone(), chat);
        tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / BUSY_SENDS_PER_SEC));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < window.end {
                tick.tick().await;
                let started = Instant::now();
                let result = send_text(&mut sender, &chat, "busy").await;
                samples.record(&window, started, &result);
                if let Ok(id) = result {
                    newest.fetch_max(id, Ordering::Relaxed);
                }
            }
            samples
        })
    };
    let mut readers = Vec::new();
    for (index, &user) in group.members[1..].iter().enumerate() {
        let mut client = env.client(user, index).await?;
        let (newest, chat) = (newest.clone(), chat);
        readers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            while Instant::now() < window.end {
                let request = chats::MarkChatRead {
                    chat_ref: Some(chat),
                    message_id: newest.load(Ordering::Relaxed),
                    read_amount: None,
                };
                let started = Instant::now();
                let result = client.mark_chat_read(request).await;
                samples.record(&window, started, &result);
            }
            samples
        }));
    }
    let mut samples = Samples::default();
    for reader in readers {
        samples.merge(reader.await?);
    }
    let sends = sending.await?;
    let latencies = samples.summary();
    let (rate, p99) = (samples.rate(&window), latencies.ms(0.99));
    report.check(
        "c",
        "MarkChatRead ops/s",
        format!("{rate:.0}"),
        ">= 5000",
        rate >= 5000.0,
    );
    report.info("c", "p50", ms(latencies.ms(0.5)));
    report.check("c", "p99", ms(p99), "< 10 ms", p99 < 10.0);
    report.info(
        "c",
        "meanwhile sent msg/s (1 sender)",
        format!("{:.0}", sends.rate(&window)),
    );
    report.errors("c", "MarkChatRead", &samples);
    report.errors("c", "send", &sends);
    Ok(())
}

struct Arrival {
    seq: u64,
    /// Set for an `UpdateMessageCreated` of the measured group.
    message_id: Option<u64>,
    at: Instant,
}

struct StreamLog {
    replica: usize,
    arrivals: Vec<Arrival>,
    /// Why the stream ended before it was stopped, if it did.
    ended: Option<String>,
}

/// Reads a stream until told to stop, counting the group's new messages.
fn read_stream(
    mut stream: Streaming<UpdateEnvelope>,
    replica: usize,
    group_id: u64,
    seen: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<StreamLog> {
    tokio::spawn(async move {
        let mut log = StreamLog {
            replica,
            arrivals: Vec::new(),
            ended: None,
        };
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                item = stream.message() => match item {
                    Ok(Some(envelope)) => {
                        let message_id = created_in(&envelope, group_id);
                        if message_id.is_some() {
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        log.arrivals.push(Arrival { seq: envelope.seq, message_id, at: Instant::now() });
                    }
                    Ok(None) => {
                        log.ended = Some("the server ended the stream".into());
                        break;
                    }
                    Err(status) => {
                        log.ended = Some(status.to_string());
                        break;
                    }
                },
            }
        }
        log
    })
}

/// Waits until every counter reaches `expected`, or `timeout`.
async fn wait_for_all(counters: &[Arc<AtomicU64>], expected: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if counters
            .iter()
            .all(|c| c.load(Ordering::Relaxed) >= expected)
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Polling counters that stream tasks advance.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Default)]
struct FanOut {
    cross_us: Vec<u64>,
    /// From the acknowledgement instead of the start of the send.
    cross_after_ack_us: Vec<u64>,
    same_us: Vec<u64>,
    missing: u64,
    duplicate_seqs: u64,
    duplicate_messages: u64,
    ended: Vec<String>,
}

fn analyse(sent: &[Sent], streams: &[StreamLog], window: &Window) -> FanOut {
    let mut out = FanOut::default();
    for stream in streams {
        let mut seqs = HashSet::new();
        let mut first: HashMap<u64, Instant> = HashMap::new();
        for arrival in &stream.arrivals {
            if arrival.seq != 0 && !seqs.insert(arrival.seq) {
                out.duplicate_seqs += 1;
            }
            if let Some(id) = arrival.message_id {
                if first.insert(id, arrival.at).is_some() {
                    out.duplicate_messages += 1;
                }
            }
        }
        for message in sent {
            let Some(at) = first.get(&message.message_id) else {
                out.missing += 1;
                continue;
            };
            if message.started < window.start || message.started > window.end {
                continue;
            }
            let delay = at.saturating_duration_since(message.started).as_micros() as u64;
            if stream.replica == message.replica {
                out.same_us.push(delay);
            } else {
                out.cross_us.push(delay);
                let after_ack = at.saturating_duration_since(message.acked).as_micros() as u64;
                out.cross_after_ack_us.push(after_ack);
            }
        }
        if let Some(reason) = &stream.ended {
            out.ended.push(reason.clone());
        }
    }
    out
}

async fn scenario_d(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
    const SENDERS: usize = 8;
    println!("(d) fan-out: (a) at {SENDERS} senders with every member subscribed on both replicas");
    let group = env.group_of(10).await?;
    let (stop, stopped) = watch::channel(false);
    let mut counters = Vec::new();
    let mut readers = Vec::new();
    for &member in &group.members {
        for replica in 0..env.replicas.len() {
            let mut client = env.stream_client(member, replica).await?;
            let stream = client
                .subscribe(SubscribeRequest { since_seq: None })
                .await?
                .into_inner();
            let seen = Arc::new(AtomicU64::new(0));
            counters.push(seen.clone());
            readers.push(read_stream(
                stream,
                replica,
                group.id,
                seen,
                stopped.clone(),
            ));
        }
    }
    // A probe: every stream is live once it has seen it.
    let mut probe = env.client(group.members[0], 0).await?;
    send_text(&mut probe, &group.chat_ref(), "probe").await?;
    if !wait_for_all(&counters, 1, DRAIN).await {
        report.note("(d) not every stream saw the probe message within 5 s".into());
    }

    let plan = group.members[..SENDERS]
        .iter()
        .map(|&user| (user, vec![group.chat_ref()]))
        .collect();
    let window = Window::after_warmup(secs);
    let (samples, sent) = send_load(senders(env, plan).await?, window).await?;
    let drained = wait_for_all(&counters, 1 + sent.len() as u64, DRAIN).await;
    let _ = stop.send(true);
    let mut streams = Vec::new();
    for reader in readers {
        streams.push(reader.await?);
    }
    let fan = analyse(&sent, &streams, &window);
    let cross = Latencies::of(fan.cross_us);
    let same = Latencies::of(fan.same_us);
    let after_ack = Latencies::of(fan.cross_after_ack_us);
    let (p50, p99) = (cross.ms(0.5), cross.ms(0.99));
    report.info(
        "d",
        "msg/s (8 senders, 20 streams open)",
        format!("{:.0}", samples.rate(&window)),
    );
    report.check(
        "d",
        "delivery via other replica p50",
        ms(p50),
        "< 5 ms",
        p50 < 5.0,
    );
    report.check(
        "d",
        "delivery via other replica p99",
        ms(p99),
        "< 20 ms",
        p99 < 20.0,
    );
    report.info(
        "d",
        "same, counted from the ack p50 / p99",
        format!("{} / {}", ms(after_ack.ms(0.5)), ms(after_ack.ms(0.99))),
    );
    report.info(
        "d",
        "delivery on sender's replica p50 / p99",
        format!("{} / {}", ms(same.ms(0.5)), ms(same.ms(0.99))),
    );
    report.check(
        "d",
        "missing deliveries",
        format!("{} of {}", fan.missing, sent.len() * streams.len()),
        "0",
        fan.missing == 0,
    );
    report.check(
        "d",
        "duplicate seqs",
        fan.duplicate_seqs.to_string(),
        "0",
        fan.duplicate_seqs == 0,
    );
    if fan.duplicate_messages > 0 {
        report.info(
            "d",
            "messages delivered twice on a stream",
            fan.duplicate_messages.to_string(),
        );
    }
    if !fan.ended.is_empty() {
        report.check(
            "d",
            "streams ended early",
            format!("{} (first: {})", fan.ended.len(), fan.ended[0]),
            "0",
            false,
        );
    }
    if !drained {
        report.note(format!(
            "(d) some streams were still short of the {} acknowledged messages {} s after the run",
            sent.len() + 1,
            DRAIN.as_secs()
        ));
    }
    report.errors("d", "send", &samples);
    Ok(())
}

/// xorshift64*: incompressible filler, so TOAST compression cannot hide bytes.
struct Filler(u64);

impl Filler {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// 4000 characters with `entities` text_url entities of `url_len` characters.
fn large_message(
    filler: &mut Filler,
    chat: &refs::ChatRef,
    url_len: usize,
    entities: usize,
) -> messages::SendMessage {
    const TEXT_CHARS: usize = 4000;
    const PREFIX: &str = "https://example.com/";
    let span = TEXT_CHARS / entities.max(1);
    messages::SendMessage {
        chat_ref: Some(*chat),
        message: filler.text(TEXT_CHARS),
        entities: (0..entities)
            .map(|i| types::MessageEntity {
                start_index: (i * span) as u32,
                length: span as u32,
                entity: Some(Entity::TextUrl(TextUrlEntity {
                    url: format!(
                        "{PREFIX}{}",
                        filler.text(url_len.saturating_sub(PREFIX.len()))
                    ),
                })),
            })
            .collect(),
        client_id: Some(CLIENT_IDS.fetch_add(1, Ordering::Relaxed)),
        ..Default::default()
    }
}

/// A refusal of the request's size or shape, as opposed to a failure.
fn refused(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::FailedPrecondition
    )
}

/// What one call did to the replicas and the log.
struct Footprint {
    peak_growth: u64,
    log_bytes: i64,
    message_bytes: i64,
}

/// Runs `call` between measurements of memory and table sizes.
async fn footprint<T, F>(env: &Env, call: F) -> Result<(T, Footprint)>
where
    F: std::future::Future<Output = T>,
{
    let log_before = env.log_bytes().await?;
    let messages_before = env.messages_bytes().await?;
    let rss_before = env.memory_before()?;
    let outcome = call.await;
    // Work that follows the reply (publishing, streams) counts too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak_growth = env.peak_growth(&rss_before)?;
    Ok((
        outcome,
        Footprint {
            peak_growth,
            log_bytes: env.log_bytes().await? - log_before,
            message_bytes: env.messages_bytes().await? - messages_before,
        },
    ))
}

/// Sends large messages into a group and measures each send's footprint.
struct LargeSender<'a> {
    env: &'a Env,
    owner: &'a mut Client,
    filler: &'a mut Filler,
    chat: refs::ChatRef,
}

impl LargeSender<'_> {
    /// `Ok(Ok((encoded size, footprint)))` when accepted, `Ok(Err(why))`
    /// when refused, `Err` when the call failed otherwise.
    async fn send(
        &mut self,
        url_len: usize,
        entities: usize,
    ) -> Result<Result<(usize, Footprint), String>> {
        let request = large_message(self.filler, &self.chat, url_len, entities);
        let size = request.encoded_len();
        let call = tokio::time::timeout(LARGE_CALL_TIMEOUT, self.owner.send_message(request));
        let (result, print) = footprint(self.env, call).await?;
        match result {
            Err(_) => {
                Err(format!("a send of {size} B took over {LARGE_CALL_TIMEOUT:?}; gave up").into())
            }
            Ok(Ok(_)) => Ok(Ok((size, print))),
            Ok(Err(status)) if refused(&status) => Ok(Err(format!(
                "{size} B ({entities} urls of {url_len} chars): {:?} {}",
                status.code(),
                status.message()
            ))),
            Ok(Err(status)) => Err(format!("the large send failed: {status}").into()),
        }
    }
}

async fn scenario_e(env: &Env, report: &mut Report) -> Result<()> {
    const MEMBERS: usize = 249;
    const PREVIEW_BYTES: usize = 16 * 1024;
    println!("(e) a group of {MEMBERS} members, then a 250th");
    let users = env.users(MEMBERS + 1).await?;
    let joiner = users[MEMBERS];
    let group = env.group_with(users[..MEMBERS].to_vec()).await?;
    let chat = group.chat_ref();
    // No per-call bound on the connection: these calls get LARGE_CALL_TIMEOUT.
    let mut owner = env.stream_client(group.members[0], 0).await?;
    let mut filler = Filler(0x9e37_79b9_7f4a_7c15);

    // (e1) the largest message accepted: halve the urls until a send is
    // accepted, then bisect between that length and the refused one.
    let mut sender = LargeSender {
        env,
        owner: &mut owner,
        filler: &mut filler,
        chat,
    };
    let mut entities = 100;
    let mut url_len = 9000;
    let mut refusals = Vec::new();
    let mut accepted = None;
    while accepted.is_none() {
        match sender.send(url_len, entities).await? {
            Ok(found) => accepted = Some(found),
            Err(refusal) => {
                refusals.push(refusal);
                if url_len > 16 {
                    url_len /= 2;
                } else if entities > 0 {
                    entities = 0;
                } else {
                    break;
                }
            }
        }
    }
    if entities > 0 && !refusals.is_empty() {
        let (mut low, mut high) = (url_len, url_len * 2);
        while high - low > (low / 64).max(8) {
            let middle = (low + high) / 2;
            match sender.send(middle, entities).await? {
                Ok(found) => {
                    low = middle;
                    accepted = Some(found);
                }
                Err(refusal) => {
                    high = middle;
                    refusals.push(refusal);
                }
            }
        }
        url_len = low;
    }
    if let Some(first) = refusals.first() {
        report.note(format!("(e1) first refusal: {first}"));
    }
    if refusals.len() > 1 {
        if let Some(last) = refusals.last() {
            report.note(format!("(e1) closest refusal: {last}"));
        }
    }
    match accepted {
        Some((size, print)) => {
            report.info(
                "e1",
                "largest accepted message",
                format!("{size} B encoded ({entities} urls of {url_len} chars, 4000-char text)"),
            );
            let growth = print.peak_growth as f64;
            report.check(
                "e1",
                "replica peak memory growth",
                mib(growth),
                "< 64 MiB",
                growth < 64.0 * MIB,
            );
            let limit = 2 * size as i64 + 250 * 200;
            report.check(
                "e1",
                "update log bytes added",
                mib(print.log_bytes as f64),
                &format!("< {} (2 x size + 250 x 200 B)", mib(limit as f64)),
                print.log_bytes < limit,
            );
            report.info(
                "e1",
                "messages table bytes added",
                mib(print.message_bytes as f64),
            );
        }
        None => report.check(
            "e1",
            "largest accepted message",
            "every size refused".into(),
            "one accepted",
            false,
        ),
    }

    // (e2) previews on every user, then the 250th member joins.
    let mut preview = PREVIEW_BYTES;
    let mut directory = env.directory().await?;
    let mut pending: &[u64] = &users;
    while !pending.is_empty() {
        let batch = (600 * 1024 / (preview + 200))
            .clamp(1, 500)
            .min(pending.len());
        let request = UpsertUsers {
            users: pending[..batch]
                .iter()
                .map(|&id| types::User {
                    id,
                    name: format!("load user {id}"),
                    photo: Some(types::ChatPhoto {
                        file_id: id,
                        preview: filler.bytes(preview),
                    }),
                    ..Default::default()
                })
                .collect(),
        };
        match directory.upsert_users(request).await {
            Ok(_) => pending = &pending[batch..],
            Err(status) if refused(&status) && preview > 64 && pending.len() == users.len() => {
                report.note(format!(
                    "(e2) {preview}-byte previews refused ({}); trying {}",
                    status.message(),
                    preview / 2
                ));
                preview /= 2;
            }
            Err(status) => return Err(format!("UpsertUsers with previews: {status}").into()),
        }
    }
    report.info("e2", "photo preview per user", format!("{preview} B"));
    let join = chats::AddChatMember {
        chat_ref: Some(chat),
        user_id: joiner,
    };
    let (outcome, print) = footprint(env, async {
        let started = Instant::now();
        let result = tokio::time::timeout(LARGE_CALL_TIMEOUT, owner.add_chat_member(join)).await;
        (result, started.elapsed())
    })
    .await?;
    match outcome {
        (Ok(Ok(_)), latency) => {
            let latency_ms = latency.as_secs_f64() * 1000.0;
            report.check(
                "e2",
                "join latency",
                ms(latency_ms),
                "< 100 ms",
                latency_ms < 100.0,
            );
        }
        (Ok(Err(status)), _) => report.failed("e2", "join", status.to_string()),
        (Err(_), latency) => {
            report.check(
                "e2",
                "join latency",
                format!("> {:.0} s (gave up)", latency.as_secs_f64()),
                "< 100 ms",
                false,
            );
            report.note(
                "(e2) memory and log bytes are as of giving up on the join; \
                 the replica may still have been working on it"
                    .into(),
            );
        }
    }
    let growth = print.peak_growth as f64;
    report.info("e2", "replica peak memory growth", mib(growth));
    report.check(
        "e2",
        "update log bytes added",
        mib(print.log_bytes as f64),
        "< 1 MiB",
        (print.log_bytes as f64) < MIB,
    );
    Ok(())
}

// ---------------------------------------------------------------------- main

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
        .unwrap_or_else(|| "a,b,c,d,e".into())
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(unknown) = scenarios
        .iter()
        .find(|s| !["a", "b", "c", "d", "e"].contains(&s.as_str()))
    {
        return Err(format!("LOAD_SCENARIOS: unknown scenario {unknown:?} (a to e)").into());
    }
    let started = Instant::now();
    let env = Env::start().await?;
    let mut report = Report::default();
    let mut failed = false;
    for name in &scenarios {
        let result = match name.as_str() {
            "a" => scenario_a(&env, secs, &mut report).await,
            "b" => scenario_b(&env, secs, &mut report).await,
            "c" => scenario_c(&env, secs, &mut report).await,
            "d" => scenario_d(&env, secs, &mut report).await,
            _ => scenario_e(&env, &mut report).await,
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
    if failed {
        println!("replica logs kept in {}", log_dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    Ok(())
}
