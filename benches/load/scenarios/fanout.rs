//! Scenario (d): fan-out delay through Redis to the other replica's streams,
//! and deliveries missing or duplicated after the run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osmium_chat::proto::service::{SubscribeRequest, UpdateEnvelope};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Streaming;

use crate::clients::{created_in, send_text};
use crate::env::Env;
use crate::report::{ms, Report};
use crate::senders::{send_load, senders, Sent};
use crate::stats::{Latencies, Window};
use crate::{Result, DRAIN};

pub(crate) struct Arrival {
    pub(crate) seq: u64,
    /// Set for an `UpdateMessageCreated` of the measured group.
    pub(crate) message_id: Option<u64>,
    pub(crate) at: Instant,
}

pub(crate) struct StreamLog {
    pub(crate) replica: usize,
    pub(crate) arrivals: Vec<Arrival>,
    /// Why the stream ended before it was stopped, if it did.
    pub(crate) ended: Option<String>,
}

/// Reads a stream until told to stop, counting the group's new messages.
pub(crate) fn read_stream(
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
pub(crate) async fn wait_for_all(
    counters: &[Arc<AtomicU64>],
    expected: u64,
    timeout: Duration,
) -> bool {
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
pub(crate) struct FanOut {
    pub(crate) cross_us: Vec<u64>,
    /// From the acknowledgement instead of the start of the send.
    pub(crate) cross_after_ack_us: Vec<u64>,
    pub(crate) same_us: Vec<u64>,
    pub(crate) missing: u64,
    pub(crate) duplicate_seqs: u64,
    pub(crate) duplicate_messages: u64,
    pub(crate) ended: Vec<String>,
}

pub(crate) fn analyse(sent: &[Sent], streams: &[StreamLog], window: &Window) -> FanOut {
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

pub(crate) async fn scenario_d(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
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
