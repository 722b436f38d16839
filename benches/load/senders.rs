//! Concurrent senders, each on its own connection, driving `SendMessage`
//! through a load window.

use std::time::Instant;

use osmium_chat::proto::refs;
use tokio::task::JoinHandle;

use crate::clients::{send_text, Client};
use crate::env::Env;
use crate::stats::{Samples, Window};
use crate::Result;

pub(crate) struct Sender {
    pub(crate) client: Client,
    pub(crate) replica: usize,
    pub(crate) chats: Vec<refs::ChatRef>,
}

pub(crate) struct Sent {
    pub(crate) message_id: u64,
    pub(crate) replica: usize,
    pub(crate) started: Instant,
    pub(crate) acked: Instant,
}

/// Each sender on a replica of its own turn (`index % 2`), on its own connection.
pub(crate) async fn senders(
    env: &Env,
    plan: Vec<(u64, Vec<refs::ChatRef>)>,
) -> Result<Vec<Sender>> {
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
pub(crate) async fn send_load(
    senders: Vec<Sender>,
    window: Window,
) -> Result<(Samples, Vec<Sent>)> {
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
