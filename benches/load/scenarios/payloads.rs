//! Scenario (e): the largest message accepted in a group of 249 and a 250th
//! member joining after large photo previews: latency, peak memory, log bytes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::types::message_entity::{Entity, TextUrlEntity};
use osmium_chat::proto::{chats, messages, refs, types};
use prost::Message as _;
use tonic::{Code, Status};

use crate::clients::{Client, CLIENT_IDS};
use crate::env::Env;
use crate::report::{mib, ms, Report};
use crate::{Result, LARGE_CALL_TIMEOUT, MIB};

/// xorshift64*: incompressible filler, so TOAST compression cannot hide bytes.
pub(crate) struct Filler(u64);

impl Filler {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    pub(crate) fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// 4000 characters with `entities` text_url entities of `url_len` characters.
pub(crate) fn large_message(
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
pub(crate) fn refused(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::FailedPrecondition
    )
}

/// What one call did to the replicas and the log.
pub(crate) struct Footprint {
    pub(crate) peak_growth: u64,
    pub(crate) log_bytes: i64,
    pub(crate) message_bytes: i64,
    /// The chats table's share: the copy of each chat's last message.
    pub(crate) chat_bytes: i64,
}

/// Runs `call` between measurements of memory and table sizes.
pub(crate) async fn footprint<T, F>(env: &Env, call: F) -> Result<(T, Footprint)>
where
    F: std::future::Future<Output = T>,
{
    let log_before = env.log_bytes().await?;
    let messages_before = env.table_bytes("messages").await?;
    let chats_before = env.table_bytes("chats").await?;
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
            message_bytes: env.table_bytes("messages").await? - messages_before,
            chat_bytes: env.table_bytes("chats").await? - chats_before,
        },
    ))
}

/// Sends large messages into a group and measures each send's footprint.
pub(crate) struct LargeSender<'a> {
    pub(crate) env: &'a Env,
    pub(crate) owner: &'a mut Client,
    pub(crate) filler: &'a mut Filler,
    pub(crate) chat: refs::ChatRef,
}

impl LargeSender<'_> {
    /// `Ok(Ok((encoded size, footprint)))` when accepted, `Ok(Err(why))`
    /// when refused, `Err` when the call failed otherwise.
    pub(crate) async fn send(
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

pub(crate) async fn scenario_e(env: &Env, report: &mut Report) -> Result<()> {
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
            report.info(
                "e1",
                "chats table bytes added (its last-message copy)",
                mib(print.chat_bytes as f64),
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
