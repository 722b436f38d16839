//! Scenario (a): `SendMessage` into one group of 10 at 1, 4 and 8
//! concurrent senders.

use std::time::Duration;

use crate::env::Env;
use crate::report::{ms, Report};
use crate::senders::{send_load, senders};
use crate::stats::Window;
use crate::Result;

pub(crate) async fn scenario_a(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
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
