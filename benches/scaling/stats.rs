//! Measuring: medians and p99s of call durations, calls interleaved in a
//! fresh random order every round, and sequential send throughput.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::report::STALL;
use crate::service::{send, App};
use crate::{Result, RECIPIENT, SENDER, SENDS, WARMUP};

pub(crate) struct Stats {
    pub(crate) label: String,
    pub(crate) engine: &'static str,
    pub(crate) layer: &'static str,
    pub(crate) samples: Vec<Duration>,
}

impl Stats {
    pub(crate) fn new(
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
    pub(crate) fn percentile(&self, p: f64) -> Duration {
        let rank = ((p / 100.0) * self.samples.len() as f64).ceil() as usize;
        self.samples[rank.clamp(1, self.samples.len()) - 1]
    }

    pub(crate) fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    /// The share of calls that took `STALL` or longer, in percent.
    pub(crate) fn stalled(&self) -> f64 {
        let slow = self.samples.iter().filter(|d| **d >= STALL).count();
        100.0 * slow as f64 / self.samples.len() as f64
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// One kind of call to measure, made afresh for every call.
pub(crate) type Call<'a> = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<()>> + 'a>> + 'a>;

pub(crate) fn call<'a, F, Fut>(mut f: F) -> Call<'a>
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
pub(crate) async fn interleaved(
    iters: usize,
    mut calls: Vec<Call<'_>>,
) -> Result<Vec<Vec<Duration>>> {
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
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher-Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

pub(crate) async fn single<F, Fut>(iters: usize, mut f: F) -> Result<Vec<Duration>>
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
pub(crate) async fn send_throughput(app: &App) -> Result<(Vec<Duration>, f64)> {
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

pub(crate) fn check(what: &str, ok: bool) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("setup is not what the benchmark expects: {what}").into())
    }
}
