//! Measuring: the window a load point counts, the latencies and errors it
//! collected, and their percentiles.

use std::time::{Duration, Instant};

use crate::{Result, WARMUP};

/// Calls started at or after `start` and finished by `end` are counted.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

impl Window {
    pub(crate) fn after_warmup(secs: Duration) -> Self {
        let start = Instant::now() + WARMUP;
        Self {
            start,
            end: start + secs,
        }
    }

    pub(crate) fn contains(&self, started: Instant, done: Instant) -> bool {
        started >= self.start && done <= self.end
    }

    pub(crate) fn secs(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

#[derive(Default)]
pub(crate) struct Samples {
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Samples {
    pub(crate) fn record<T, E: std::fmt::Display>(
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

    pub(crate) fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(crate) fn rate(&self, window: &Window) -> f64 {
        self.latencies_us.len() as f64 / window.secs()
    }

    pub(crate) fn summary(&self) -> Latencies {
        Latencies::of(self.latencies_us.clone())
    }
}

pub(crate) struct Latencies {
    pub(crate) sorted_us: Vec<u64>,
}

impl Latencies {
    pub(crate) fn of(mut us: Vec<u64>) -> Self {
        us.sort_unstable();
        Self { sorted_us: us }
    }

    /// Nearest rank; NaN when there is nothing to rank.
    pub(crate) fn ms(&self, quantile: f64) -> f64 {
        if self.sorted_us.is_empty() {
            return f64::NAN;
        }
        let rank = (quantile * self.sorted_us.len() as f64).ceil() as usize;
        self.sorted_us[rank.clamp(1, self.sorted_us.len()) - 1] as f64 / 1000.0
    }

    /// The tail beyond p99, where a stall of a few calls shows: p99.9, the
    /// slowest call, and how many took longer than `slow_ms`.
    pub(crate) fn tail(&self, slow_ms: u64) -> String {
        let slow =
            self.sorted_us.len() - self.sorted_us.partition_point(|&us| us <= slow_ms * 1000);
        format!(
            "p99.9 {:.2} ms, max {:.2} ms, {slow} over {slow_ms} ms",
            self.ms(0.999),
            self.ms(1.0)
        )
    }
}
