//! The subscribing half of the Redis bus: a task that owns the replica's
//! one pub/sub connection, follows the streams that open and close,
//! reconnects with backoff and resyncs every stream after connecting; and
//! the decoding of each message received, fetching a named payload once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::PubSub;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tracing::Instrument as _;

use super::{Inner, INLINE, RESYNC, SUBSCRIBE_TIMEOUT, USERS};
use crate::bus::Delivery;
use crate::model::{clock::now_ms, Change, Personal, UserId};
use crate::redis_conn::{redis_span, COMMAND_TIMEOUT, CONNECT_TIMEOUT, MAX_BACKOFF};

/// Named payloads a replica keeps after fetching them, for its other streams.
const PAYLOAD_CACHE: usize = 256;

/// What the bus asks of the subscriber task as streams open and close.
pub(super) enum Command {
    Subscribe(UserId, oneshot::Sender<()>),
    Unsubscribe(UserId),
}

impl Inner {
    async fn receive(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let payload = message.get_payload_bytes();
        if channel == self.control_channel() {
            if payload == RESYNC.as_bytes() {
                self.resync_everything();
            } else if let Some(rest) = payload.strip_prefix(USERS) {
                self.receive_users_changed(rest);
            }
            return;
        }
        let Some(user) = channel
            .rsplit(':')
            .next()
            .and_then(|id| id.parse::<u64>().ok())
            .map(UserId)
        else {
            return;
        };
        let Some((head, body)) = Header::read(payload) else {
            return;
        };
        if head.origin == self.origin {
            return;
        }
        let delay_ms = now_ms().saturating_sub(head.sent_ms);
        self.lag.delivery.observe(delay_ms as f64 / 1000.0);
        let (seq, id, personal) = (
            head.seq,
            head.change,
            Personal {
                unread: head.unread,
            },
        );
        let change = match head.form {
            INLINE => Change::decode(id, body)
                .map(Arc::new)
                .map_err(|e| e.to_string()),
            _ => self.fetch(id).await,
        };
        match change {
            Ok(change) => self.hub.deliver(Delivery {
                user,
                seq,
                change,
                personal,
            }),
            Err(error) => {
                tracing::warn!(%error, %user, "update payload unavailable on the bus; the user's streams catch up from the log");
                self.hub.resync(user);
            }
        }
    }

    /// Users changed on another replica: ours are dropped already.
    fn receive_users_changed(&self, message: &[u8]) {
        let Some((origin, mut ids)) = message.split_first_chunk::<8>() else {
            return;
        };
        if u64::from_le_bytes(*origin) == self.origin {
            return;
        }
        let mut users = Vec::with_capacity(ids.len() / 8);
        while let Some((id, rest)) = ids.split_first_chunk::<8>() {
            users.push(UserId(u64::from_le_bytes(*id)));
            ids = rest;
        }
        self.tell_users_changed(Some(&users));
    }

    /// A named payload: from this replica's recent ones, else from Redis.
    async fn fetch(&self, id: u64) -> Result<Arc<Change>, String> {
        let cached = self
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| c.id == id)
            .cloned();
        if let Some(change) = cached {
            return Ok(change);
        }
        let mut connection = self.publisher().await.map_err(|e| e.to_string())?;
        let mut command = redis::cmd("GET");
        command.arg(self.payload_key(id));
        let bytes: Option<Vec<u8>> =
            tokio::time::timeout(COMMAND_TIMEOUT, command.query_async(&mut connection))
                .instrument(redis_span("GET"))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        let bytes = bytes.ok_or_else(|| format!("payload {id} expired"))?;
        let change = Arc::new(Change::decode(id, &bytes).map_err(|e| e.to_string())?);
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        if fetched.len() >= PAYLOAD_CACHE {
            fetched.pop_front();
        }
        fetched.push_back(change.clone());
        Ok(change)
    }
}

/// Owns the pub/sub connection: reconnects with backoff, follows the
/// streams that open and close, and resyncs every stream after connecting.
pub(super) async fn subscriber(inner: Arc<Inner>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, inner.redis.client().get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                if !first {
                    inner.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("redis pub/sub reconnected; streams catch up from the log");
                }
                first = false;
                backoff = Duration::from_millis(100);
                if serve(&inner, pubsub, &mut commands).await.is_none() {
                    return;
                }
                tracing::warn!("redis pub/sub connection lost; reconnecting");
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot connect to redis pub/sub"),
            Err(_) => tracing::warn!("timed out connecting to redis pub/sub"),
        }
        // While disconnected, subscriptions are acknowledged at once: the
        // reconnect subscribes every open stream and makes it catch up.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                command = commands.recv() => match command {
                    Some(Command::Subscribe(_, ack)) => { let _ = ack.send(()); }
                    Some(Command::Unsubscribe(_)) => {}
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs one connection until it drops (`Some`) or the bus is gone (`None`).
async fn serve(
    inner: &Inner,
    pubsub: PubSub,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<()> {
    let (mut sink, mut stream) = pubsub.split();
    let mut channels = vec![inner.control_channel()];
    channels.extend(inner.hub.users().into_iter().map(|u| inner.user_channel(u)));
    for chunk in channels.chunks(500) {
        if sink.subscribe(chunk).await.is_err() {
            return Some(());
        }
    }
    // Whatever was published while this connection was not listening
    // (on the first connection: nothing) is caught up from the log.
    inner.resync_everything();
    // The pub/sub connection otherwise only listens: one dropped without a
    // word (no FIN, no RST) would look like a quiet one until TCP keepalive
    // gives up. A PONG missing for `ping.timeout` counts as a lost
    // connection: reconnect and resync.
    let mut pings = tokio::time::interval(inner.ping.interval);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pings.reset();
    loop {
        tokio::select! {
            _ = pings.tick() => {
                let pong = tokio::time::timeout(inner.ping.timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    tracing::warn!("redis pub/sub connection did not answer PING");
                    return Some(());
                }
            }
            message = stream.next() => match message {
                Some(message) => inner.receive(&message).await,
                None => return Some(()),
            },
            command = commands.recv() => match command {
                Some(Command::Subscribe(user, ack)) => {
                    if inner.hub.has(user) {
                        let confirmed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(inner.user_channel(user))).await;
                        let _ = ack.send(());
                        if !matches!(confirmed, Ok(Ok(()))) {
                            return Some(());
                        }
                    } else {
                        let _ = ack.send(());
                    }
                }
                Some(Command::Unsubscribe(user)) => {
                    // A stream of the user may have opened since it was queued.
                    if !inner.hub.has(user)
                        && tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(inner.user_channel(user))).await.is_err()
                    {
                        return Some(());
                    }
                }
                None => return None,
            },
        }
    }
}

/// A message's header (see `publish::message`), read without indexing.
struct Header {
    origin: u64,
    seq: u64,
    change: u64,
    form: u8,
    unread: Option<u32>,
    sent_ms: u64,
}

impl Header {
    /// The header and the rest; `None` when the message is too short.
    fn read(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let (origin, rest) = bytes.split_first_chunk::<8>()?;
        let (seq, rest) = rest.split_first_chunk::<8>()?;
        let (change, rest) = rest.split_first_chunk::<8>()?;
        let ([form, has_unread], rest) = rest.split_first_chunk::<2>()?;
        let (unread, rest) = rest.split_first_chunk::<4>()?;
        let (sent_ms, body) = rest.split_first_chunk::<8>()?;
        let header = Self {
            origin: u64::from_le_bytes(*origin),
            seq: u64::from_le_bytes(*seq),
            change: u64::from_le_bytes(*change),
            form: *form,
            unread: (*has_unread == 1).then(|| u32::from_le_bytes(*unread)),
            sent_ms: u64::from_le_bytes(*sent_ms),
        };
        Some((header, body))
    }
}
