//! The mixed load a gateway would put on the replicas: users sending direct
//! and group messages with `client_id`s through either replica and retrying
//! a failed send with the same `client_id`, marking chats read now and then,
//! and subscribers that resume with `since_seq` on either replica after any
//! stream error. Everything acknowledged or received is recorded for the
//! end-state checks.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::{SubscribeRequest, UpdateEnvelope};
use osmium_chat::proto::{chats, messages, refs};
use tokio::sync::watch;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Longest one unary call may take before it counts as DEADLINE_EXCEEDED.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between one user's sends: a steady load that leaves the two cores
/// room for the faults and the recovery.
const PACE: Duration = Duration::from_millis(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl Bearer {
    pub fn new(token: &str) -> Self {
        Self(format!("Bearer {token}").parse().expect("ascii header"))
    }
}

pub type Client = ChatServiceClient<InterceptedService<Channel, Bearer>>;

/// A channel to `url` that connects on first use and reconnects after a
/// replica comes back; HTTP/2 pings notice a peer gone silent.
pub fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .expect("a valid uri")
        .connect_timeout(Duration::from_secs(2))
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy()
}

pub fn with_token(channel: Channel, token: &str) -> Client {
    ChatServiceClient::with_interceptor(channel, Bearer::new(token))
}

/// What the load saw, shared by its tasks.
pub struct Tally {
    /// When the load began; refusals are stamped from it.
    pub began: Instant,
    /// Failed calls by method and status code.
    pub failures: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Repeated SendMessage calls (same `client_id`).
    pub retries: AtomicU64,
    /// Sends given up on at the end without an answer.
    pub unacked: AtomicU64,
    pub marked_read: AtomicU64,
    /// Subscribe streams opened again after the first.
    pub resumes: AtomicU64,
    /// Statuses of calls refused for good (not retryable), with their messages.
    pub refused: Mutex<Vec<String>>,
    /// `(author, client_id, message_id)` of every acknowledged send.
    pub acked: Mutex<Vec<(u64, u64, u64)>>,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            began: Instant::now(),
            failures: Mutex::default(),
            retries: AtomicU64::default(),
            unacked: AtomicU64::default(),
            marked_read: AtomicU64::default(),
            resumes: AtomicU64::default(),
            refused: Mutex::default(),
            acked: Mutex::default(),
        }
    }

    fn failed(&self, method: &'static str, code: Code) {
        let mut failures = self.failures.lock().expect("not poisoned");
        *failures.entry((method, format!("{code:?}"))).or_default() += 1;
    }
}

/// A unary call bounded by [`CALL_TIMEOUT`], its failures counted.
async fn call<T>(
    tally: &Tally,
    method: &'static str,
    future: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Code> {
    let code = match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(Ok(response)) => return Ok(response.into_inner()),
        Ok(Err(status)) => {
            // tonic reports some connections broken mid-call as INTERNAL
            // "h2 protocol error": the transport's failure, not the service's.
            let code = if status.code() == Code::Internal
                && status.message().starts_with("h2 protocol error")
            {
                Code::Unknown
            } else {
                status.code()
            };
            if !retryable(code) {
                let mut refused = tally.refused.lock().expect("not poisoned");
                refused.push(format!(
                    "at {:.1}s {method}: {:?}: {}",
                    tally.began.elapsed().as_secs_f64(),
                    status.code(),
                    status.message()
                ));
            }
            code
        }
        Err(_) => Code::DeadlineExceeded,
    };
    tally.failed(method, code);
    Err(code)
}

/// What a retry may cure: the outcome is unknown or the refusal transient.
/// (A connection lost mid-call surfaces as UNKNOWN or CANCELLED.)
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
    )
}

/// One sending user: its id, a client on each replica, and the chats it
/// writes to.
pub struct Sender {
    pub user: u64,
    pub clients: [Client; 2],
    pub targets: Vec<refs::ChatRef>,
}

impl Sender {
    /// Sends until `stop` turns true, retrying each unanswered send (same
    /// `client_id`, alternating replicas, growing backoff) until `give_up`
    /// does.
    pub async fn run(
        mut self,
        tally: Arc<Tally>,
        stop: watch::Receiver<bool>,
        give_up: watch::Receiver<bool>,
    ) {
        let mut n: u64 = 0;
        while !*stop.borrow() {
            n += 1;
            let client_id = n;
            let target = self.targets[n as usize % self.targets.len()];
            let request = messages::SendMessage {
                chat_ref: Some(target),
                message: format!("from {} #{client_id}", self.user),
                client_id: Some(client_id),
                ..Default::default()
            };
            let mut replica = n as usize % 2;
            let mut backoff = FIRST_BACKOFF;
            loop {
                let sent = call(
                    &tally,
                    "SendMessage",
                    self.clients[replica].send_message(request.clone()),
                )
                .await;
                match sent {
                    Ok(sent) => {
                        let mut acked = tally.acked.lock().expect("not poisoned");
                        acked.push((self.user, client_id, sent.message_id));
                        break;
                    }
                    Err(code) if retryable(code) && !*give_up.borrow() => {
                        tally.retries.fetch_add(1, Ordering::Relaxed);
                        replica ^= 1;
                        // Backoff before a retry: the pause is the point.
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(_) => {
                        tally.unacked.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            if n.is_multiple_of(8) {
                self.mark_read(&tally, target, n as usize % 2).await;
            }
            // Pacing of the load, not synchronisation.
            tokio::time::sleep(PACE).await;
        }
    }

    /// Marks `target` read up to its newest message; a failure is only counted.
    async fn mark_read(&mut self, tally: &Tally, target: refs::ChatRef, replica: usize) {
        let client = &mut self.clients[replica];
        let history = messages::GetHistory {
            chat_ref: Some(target),
            limit: Some(1),
            offset: None,
        };
        let Ok(page) = call(tally, "GetHistory", client.get_history(history)).await else {
            return;
        };
        let Some(newest) = page.messages.first() else {
            return;
        };
        let request = chats::MarkChatRead {
            chat_ref: Some(target),
            message_id: newest.message_id,
            read_amount: None,
        };
        if call(tally, "MarkChatRead", client.mark_chat_read(request))
            .await
            .is_ok()
        {
            tally.marked_read.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One user's subscriber: every envelope it received, in order, over all
/// its streams.
pub struct Subscriber {
    pub clients: [Client; 2],
    /// The last seq received, for the quiescence check.
    pub last: Arc<AtomicU64>,
}

impl Subscriber {
    /// Subscribes from the start of the log and resumes after every stream
    /// error or end, alternating replicas, until `stop` turns true.
    pub async fn run(
        mut self,
        tally: Arc<Tally>,
        mut stop: watch::Receiver<bool>,
    ) -> Vec<UpdateEnvelope> {
        let mut received = Vec::new();
        let mut attempt = 0_usize;
        let mut backoff = FIRST_BACKOFF;
        while !*stop.borrow() {
            let replica = attempt % 2;
            if attempt > 0 {
                tally.resumes.fetch_add(1, Ordering::Relaxed);
            }
            attempt += 1;
            let request = SubscribeRequest {
                since_seq: Some(self.last.load(Ordering::Relaxed)),
            };
            let opened = call(
                &tally,
                "Subscribe",
                self.clients[replica].subscribe(request),
            )
            .await;
            if let Ok(mut stream) = opened {
                backoff = FIRST_BACKOFF;
                loop {
                    let item = tokio::select! {
                        _ = stop.changed() => return received,
                        item = stream.message() => item,
                    };
                    match item {
                        Ok(Some(envelope)) if envelope.seq == 0 => {}
                        Ok(Some(envelope)) => {
                            self.last.store(envelope.seq, Ordering::Relaxed);
                            received.push(envelope);
                        }
                        Ok(None) => {
                            tally.failed("Subscribe (stream ended)", Code::Ok);
                            break;
                        }
                        Err(status) => {
                            tally.failed("Subscribe (stream)", status.code());
                            break;
                        }
                    }
                }
            }
            // Backoff before resuming: the pause is the point.
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        received
    }
}
