//! Scenario (c): `MarkChatRead` by 8 members of a group while another member
//! keeps sending into it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osmium_chat::proto::chats;

use crate::clients::send_text;
use crate::env::Env;
use crate::report::{ms, Report};
use crate::stats::{Samples, Window};
use crate::{Result, BUSY_SENDS_PER_SEC};

pub(crate) async fn scenario_c(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
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
