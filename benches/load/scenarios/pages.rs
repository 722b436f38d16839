//! Scenario (f): the read RPCs at 32 calls in flight, each beside pgbench
//! running the very statement the RPC sends (at the same concurrency, on
//! the same server and data): the RPC's own ceiling in the same run.

use std::time::{Duration, Instant};

use osmium_chat::model::clock::now_ms;
use osmium_chat::model::snowflake::EPOCH_MS;
use osmium_chat::proto::{chats, messages, refs, types};
use osmium_chat::store::postgres::page_sql;
use prost::Message as _;

use crate::clients::{authorization, group_ref, send_text, Client};
use crate::cpu::{self, CpuWatch};
use crate::env::Env;
use crate::h2load::{self, H2load};
use crate::replicas::Replica;
use crate::report::{ms, Report};
use crate::scenarios::spread::Pgbench;
use crate::stats::{Latencies, Samples, Window};
use crate::{BoxError, Result};

const IN_FLIGHT: usize = 32;
const PAGE: u32 = 50;
const DIRECT_CHATS: usize = 40;
const GROUPS: usize = 20;
const HISTORY: usize = 100_000;
/// `before` this far from the oldest message: 90,000 newer ones above it.
const DEEP: usize = 10_000;
/// Calls slower than this are counted apart: at several times the p99
/// target they are stalls, not queueing.
const SLOW_MS: u64 = 100;

/// One read RPC, as every caller of a load point makes it.
#[derive(Clone, Copy)]
enum Read {
    Chats,
    History { group: u64, before: Option<u64> },
    Chat { group: u64 },
}

struct Point {
    name: &'static str,
    read: Read,
    caller: u64,
    /// The RPC's main statement and its parameters, for pgbench.
    sql: &'static str,
    params: Vec<i64>,
}

pub(crate) async fn scenario_f(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
    println!("(f) read RPCs at {IN_FLIGHT} in flight, each beside pgbench running its statement");
    // A reader with 60 conversations, each with a message: 40 direct, 20 groups of 10.
    let reader = env.users(1).await?[0];
    let mut client = env.client(reader, 0).await?;
    for peer in env.users(DIRECT_CHATS).await? {
        send_text(&mut client, &direct_ref(peer), "hello").await?;
    }
    let mut groups = Vec::new();
    for _ in 0..GROUPS {
        let mut members = vec![reader];
        members.extend(env.users(9).await?);
        let group = env.group_with(members).await?;
        send_text(&mut client, &group.chat_ref(), "hello all").await?;
        groups.push(group.id);
    }
    populate(env).await?;
    // A group of 5 others with 100,000 messages.
    let long = env.group_of(5).await?;
    let started = Instant::now();
    let first = fill_history(env, long.id, &long.members).await?;
    println!(
        "  {HISTORY} messages written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let deep = first + DEEP as i64;
    let (group, history_reader) = (long.id as i64, long.members[1]);
    let points = [
        Point {
            name: "GetChats limit 50 (60 conversations)",
            read: Read::Chats,
            caller: reader,
            sql: page_sql::chat_page(),
            params: vec![reader as i64, i64::MAX, 0, PAGE.into()],
        },
        Point {
            name: "GetHistory latest 50 of 100k",
            read: Read::History {
                group: long.id,
                before: None,
            },
            caller: history_reader,
            sql: page_sql::group_history(),
            params: vec![group, 0, history_reader as i64, i64::MAX, PAGE.into(), 0, 0],
        },
        Point {
            name: "GetHistory 50 before #10k of 100k",
            read: Read::History {
                group: long.id,
                before: Some(deep as u64),
            },
            caller: history_reader,
            sql: page_sql::group_history(),
            params: vec![group, 0, history_reader as i64, deep, PAGE.into(), 0, 0],
        },
        Point {
            name: "GetChat of a group of 10",
            read: Read::Chat { group: groups[0] },
            caller: reader,
            sql: page_sql::group_entry(),
            params: vec![groups[0] as i64, 0, reader as i64],
        },
    ];

    let pgbench = match Pgbench::find() {
        Some(mut pgbench) => {
            // The service's own schema: pgbench reads the same rows.
            pgbench.schema = env
                .db
                .query_one("SELECT current_schema()", &[])
                .await?
                .get(0);
            Some(pgbench)
        }
        None => {
            report.note("(f) pgbench not found: no ceilings".into());
            None
        }
    };
    let generator = H2load::find();
    report.info(
        "f",
        "load generator",
        match &generator {
            Some(_) => "h2load (8 connections, 4 streams each)".to_owned(),
            None => format!("tonic, in this process ({IN_FLIGHT} connections)"),
        },
    );
    report.info(
        "f",
        "reads at once per replica (OSMIUM_DB_READ_CONCURRENCY)",
        match (
            env.reads_at_once,
            std::env::var("OSMIUM_DB_READ_CONCURRENCY"),
        ) {
            (Some(n), _) => format!("{n}, sized: 2 x this machine's cores / replicas"),
            (None, Ok(set)) => format!("{set}, as set for the run"),
            (None, Err(_)) => "the default".into(),
        },
    );
    let postmaster = cpu::postmaster(&env.db).await;
    let (alone, alone_reads) = env.spawn_alone().await?;
    report.info(
        "f",
        "reads at once of the replica loaded alone",
        match alone_reads {
            Some(n) => format!("{n}, sized: 2 x this machine's cores"),
            None => "as the other replicas'".into(),
        },
    );
    let both: Vec<&Replica> = env.replicas.iter().collect();
    let pids: Vec<u32> = both.iter().chain([&&alone]).map(|r| r.pid).collect();
    let loader = Loader {
        env,
        generator: generator.as_ref(),
        pids: &pids,
        postmaster,
        secs,
    };
    for (index, point) in points.iter().enumerate() {
        let name = point.name;
        // The issue's own setup: one replica takes all 32 calls, the others
        // idle. Then the two replicas, 16 calls each: two processes sharing
        // the cores Postgres needs, and the side-by-side A/B of two builds.
        let one = loader.load(point, &[&alone]).await?;
        one.report(report, name, "", true);
        let shared = loader.load(point, &both).await?;
        shared.report(report, name, " (both replicas)", false);
        let Some(pgbench) = &pgbench else {
            continue;
        };
        let script = env.log_dir.join(format!("pgbench-f{index}.sql"));
        std::fs::write(&script, pgbench_script(point.sql, &point.params))?;
        // CPU is read while pgbench's backends live: from 1 s in to 1 s before the end.
        let watching = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let watch = CpuWatch::start(pids.clone(), postmaster);
            tokio::time::sleep(secs.saturating_sub(Duration::from_secs(2))).await;
            watch.split()
        };
        let (tps, split) =
            tokio::join!(pgbench.run_script(env, secs, IN_FLIGHT, &script), watching);
        let (tps, own) = tps?;
        report.info(
            "f",
            &format!("{name}: pgbench tps of its statement (-c {IN_FLIGHT})"),
            format!("{tps:.0}; cpu: {split}"),
        );
        report.info(
            "f",
            &format!("{name}: pgbench p50 / p99 of its statement"),
            format!("{} / {}", ms(own.ms(0.5)), ms(own.ms(0.99))),
        );
        report.info(
            "f",
            &format!("{name}: pgbench tail of its statement"),
            own.tail(SLOW_MS),
        );
        let ratio = one.rate / tps;
        report.check(
            "f",
            &format!("{name}: calls/s ÷ pgbench tps"),
            format!("{ratio:.2}"),
            ">= 0.5",
            ratio >= 0.5,
        );
        report.info(
            "f",
            &format!("{name} (both replicas): calls/s ÷ pgbench tps"),
            format!("{:.2}", shared.rate / tps),
        );
    }
    Ok(())
}

/// Runs the load points of (f).
struct Loader<'a> {
    env: &'a Env,
    generator: Option<&'a H2load>,
    pids: &'a [u32],
    postmaster: Option<u32>,
    secs: Duration,
}

/// One load point's figures.
struct Loaded {
    rate: f64,
    latencies: Latencies,
    split: cpu::CpuSplit,
    per_call: Vec<f64>,
    statements: f64,
    samples: Samples,
}

impl Loader<'_> {
    /// [`IN_FLIGHT`] calls of `point` at once over `replicas`.
    async fn load(&self, point: &Point, replicas: &[&Replica]) -> Result<Loaded> {
        let env = self.env;
        let name = point.name;
        let tonic_clients = if self.generator.is_some() {
            1
        } else {
            IN_FLIGHT
        };
        let mut clients = Vec::new();
        for replica in replicas.iter().cycle().take(tonic_clients) {
            clients.push(env.client_of(point.caller, replica).await?);
        }
        // The reply's shape, checked once here: h2load cannot read replies.
        call(&mut clients[0], point.read)
            .await
            .map_err(|status| format!("{name}: {status}"))?;
        let bearer = authorization(point.caller, false)?;
        let (method, request) = request(point.read);
        let window = Window::after_warmup(self.secs);
        let loading = async {
            match self.generator {
                // Its own window: the same warm-up, then `secs`.
                Some(h2load) => {
                    let call = h2load::Call {
                        method,
                        request,
                        bearer: &bearer,
                    };
                    h2load.run(env, &call, IN_FLIGHT, replicas, self.secs).await
                }
                None => load(clients, point.read, window).await,
            }
        };
        // CPU is read over the load window, after its warm-up.
        let measuring = async {
            tokio::time::sleep_until(window.start.into()).await;
            let watch = CpuWatch::start(self.pids.to_vec(), self.postmaster);
            let per_replica = PerReplica::start(replicas, method).await?;
            let statements = statements_run(env).await?;
            tokio::time::sleep_until(window.end.into()).await;
            let split = watch.split();
            let per_call = per_replica.cpu_per_call(replicas, method).await?;
            Ok::<_, BoxError>((split, per_call, statements_run(env).await? - statements))
        };
        let (samples, measured) = tokio::join!(loading, measuring);
        let (samples, (split, per_call, statements)) = (samples?, measured?);
        let rate = samples.rate(&window);
        Ok(Loaded {
            rate,
            latencies: samples.summary(),
            split,
            per_call,
            statements: statements as f64 / (rate * window.secs()),
            samples,
        })
    }
}

impl Loaded {
    /// Its figures under `name` and `how`; the p99 against the target when
    /// `judged`, for information otherwise.
    fn report(&self, report: &mut Report, name: &str, how: &str, judged: bool) {
        let (p50, p99) = (self.latencies.ms(0.5), self.latencies.ms(0.99));
        let named = |figure: &str| format!("{name}{how}: {figure}");
        report.info("f", &named("calls/s"), format!("{:.0}", self.rate));
        report.info("f", &named("p50"), ms(p50));
        if judged {
            report.check("f", &named("p99"), ms(p99), "< 15 ms", p99 < 15.0);
        } else {
            report.info("f", &named("p99"), ms(p99));
        }
        report.info("f", &named("tail"), self.latencies.tail(SLOW_MS));
        report.info(
            "f",
            &named(&format!("{IN_FLIGHT} in flight ÷ calls/s (Little's law)")),
            ms(IN_FLIGHT as f64 / self.rate * 1000.0),
        );
        report.info("f", &named("cpu"), self.split.to_string());
        report.info(
            "f",
            &named("replica cpu per call, by replica"),
            self.per_call
                .iter()
                .map(|ms| format!("{ms:.4} ms"))
                .collect::<Vec<_>>()
                .join(" / "),
        );
        report.info(
            "f",
            &named("statements per call"),
            format!("{:.2}", self.statements),
        );
        report.errors("f", &named("calls"), &self.samples);
    }
}

/// Each replica's CPU and answered calls at the start of a window: the
/// replica's own cost per call, which compares two builds run side by side
/// (`LOAD_BINARY_B`) under the same load at the same moment.
struct PerReplica(Vec<(u32, u64, u64)>);

impl PerReplica {
    async fn start(replicas: &[&Replica], method: &str) -> Result<Self> {
        let mut at = Vec::new();
        for replica in replicas {
            let answered = replica.answered(method).await?;
            at.push((replica.pid, cpu::own_ticks(replica.pid), answered));
        }
        Ok(Self(at))
    }

    /// Milliseconds of CPU per answered call since [`PerReplica::start`], by replica.
    async fn cpu_per_call(&self, replicas: &[&Replica], method: &str) -> Result<Vec<f64>> {
        let mut per_call = Vec::new();
        for (replica, &(pid, ticks, answered)) in replicas.iter().zip(&self.0) {
            let calls = replica
                .answered(method)
                .await?
                .saturating_sub(answered)
                .max(1);
            let used = cpu::own_ticks(pid).saturating_sub(ticks) as f64 / cpu::TICKS_PER_SEC;
            per_call.push(used * 1000.0 / calls as f64);
        }
        Ok(per_call)
    }
}

/// Statements the server has run so far: each read RPC's statement, and
/// each pgbench transaction, runs on its own (autocommit) and counts once.
async fn statements_run(env: &Env) -> Result<i64> {
    let row = env
        .db
        .query_one(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database
             WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Closed loop: each client keeps one call in flight until the window ends.
async fn load(clients: Vec<Client>, read: Read, window: Window) -> Result<Samples> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut samples = Samples::default();
                while Instant::now() < window.end {
                    let started = Instant::now();
                    let result = call(&mut client, read).await;
                    samples.record(&window, started, &result);
                }
                samples
            })
        })
        .collect();
    let mut samples = Samples::default();
    for task in tasks {
        samples.merge(task.await?);
    }
    Ok(samples)
}

async fn call(client: &mut Client, read: Read) -> Result<(), tonic::Status> {
    match read {
        Read::Chats => {
            let page = client
                .get_chats(chats::GetChats {
                    limit: Some(PAGE),
                    ..Default::default()
                })
                .await?
                .into_inner();
            expect(page.chats.len() == PAGE as usize, "a page of 50")
        }
        Read::History { group, before } => {
            let page = client
                .get_history(messages::GetHistory {
                    chat_ref: Some(group_ref(group)),
                    limit: Some(PAGE),
                    offset: before.map(messages::get_history::Offset::Before),
                })
                .await?
                .into_inner();
            expect(page.messages.len() == PAGE as usize, "a page of 50")
        }
        Read::Chat { group } => {
            let chat = client
                .get_chat(chats::GetChat {
                    chat_ref: Some(group_ref(group)),
                })
                .await?
                .into_inner();
            expect(chat.group.is_some(), "the group")
        }
    }
}

/// The gRPC method and encoded request of `read`, as [`call`] sends it.
fn request(read: Read) -> (&'static str, Vec<u8>) {
    match read {
        Read::Chats => (
            "osmium.chat.v1.ChatService/GetChats",
            chats::GetChats {
                limit: Some(PAGE),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        Read::History { group, before } => (
            "osmium.chat.v1.ChatService/GetHistory",
            messages::GetHistory {
                chat_ref: Some(group_ref(group)),
                limit: Some(PAGE),
                offset: before.map(messages::get_history::Offset::Before),
            }
            .encode_to_vec(),
        ),
        Read::Chat { group } => (
            "osmium.chat.v1.ChatService/GetChat",
            chats::GetChat {
                chat_ref: Some(group_ref(group)),
            }
            .encode_to_vec(),
        ),
    }
}

fn expect(holds: bool, what: &str) -> Result<(), tonic::Status> {
    if holds {
        Ok(())
    } else {
        Err(tonic::Status::internal(format!("expected {what}")))
    }
}

fn direct_ref(user_id: u64) -> refs::ChatRef {
    refs::ChatRef {
        r#ref: Some(refs::chat_ref::Ref::User(refs::UserRef { user_id })),
    }
}

/// The statement with its parameters as pgbench variables.
fn pgbench_script(sql: &str, params: &[i64]) -> String {
    let mut script = String::new();
    let mut statement = sql.to_owned();
    for (i, value) in params.iter().enumerate().rev() {
        let n = i + 1;
        script.insert_str(0, &format!("\\set p{n} {value}\n"));
        statement = statement.replace(&format!("${n}"), &format!(":p{n}"));
    }
    script.push_str(&statement);
    script.push_str(";\n");
    script
}

/// Other users' groups, so that the tables are not tiny: on a members table
/// of a few hundred rows the planner reads a group's participants with a
/// sequential scan per group, a plan no production database would get,
/// which made GetChats' statement cost half again what it costs with the
/// index. Chat ids below any snowflake, user ids above the bench's own.
async fn populate(env: &Env) -> Result<()> {
    const GROUPS: i64 = 10_000;
    const MEMBERS: i64 = 10;
    const FIRST_USER: i64 = 1 << 40;
    env.db
        .batch_execute(&format!(
            "INSERT INTO users (id, name)
               SELECT {FIRST_USER} + i, 'user ' || i FROM generate_series(0, {GROUPS} - 1) i;
             INSERT INTO chats (id, kind, name, owner_id)
               SELECT g, 1, 'group ' || g, {FIRST_USER} + g % {GROUPS}
               FROM generate_series(1, {GROUPS}) g;
             INSERT INTO members (chat_id, user_id, joined, sort_key)
               SELECT g, {FIRST_USER} + (g * {MEMBERS} + k) % {GROUPS}, k, k
               FROM generate_series(1, {GROUPS}) g, generate_series(0, {MEMBERS} - 1) k"
        ))
        .await?;
    Ok(())
}

/// Fills `chat` (no messages yet) with [`HISTORY`] messages in one day-old
/// millisecond of the snowflake layout, alternating between its members,
/// bodies encoded as the service encodes them, ordinals in id order as
/// the write path takes them; then the chat's count and newest message and
/// every member's place, as if each had read everything. Returns the
/// oldest id.
async fn fill_history(env: &Env, chat: u64, members: &[u64]) -> Result<i64> {
    const CHUNK: usize = 25_000;
    let base = ((now_ms() - 86_400_000 - EPOCH_MS) << 22) as i64;
    let chat = chat as i64;
    for start in (0..HISTORY).step_by(CHUNK) {
        let end = (start + CHUNK).min(HISTORY);
        let ids: Vec<i64> = (start..end).map(|i| base + i as i64).collect();
        let ordinals: Vec<i64> = (start..end).map(|i| i as i64 + 1).collect();
        let authors: Vec<i64> = (start..end)
            .map(|i| members[i % members.len()] as i64)
            .collect();
        let bodies: Vec<Vec<u8>> = ids
            .iter()
            .zip(&authors)
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
        env.db
            .execute(
                "INSERT INTO messages (id, chat_id, author_id, body, ordinal)
                 SELECT id, $1, author, body, ordinal
                 FROM unnest($2::bigint[], $3::bigint[], $4::bytea[], $5::bigint[])
                      AS t(id, author, body, ordinal)",
                &[&chat, &ids, &authors, &bodies, &ordinals],
            )
            .await?;
    }
    let newest = base + HISTORY as i64 - 1;
    let count = HISTORY as i64;
    env.db
        .execute(
            "UPDATE chats SET msg_seq = $2, last_message_id = $3 WHERE id = $1",
            &[&chat, &count, &newest],
        )
        .await?;
    env.db
        .execute(
            "UPDATE members SET sort_key = $3, last_read = $3, read_seq = $2 WHERE chat_id = $1",
            &[&chat, &count, &newest],
        )
        .await?;
    // As a long-lived table would be: visibility map set, statistics fresh.
    env.db
        .batch_execute("VACUUM (ANALYZE) messages, members, chats")
        .await?;
    Ok(base)
}
