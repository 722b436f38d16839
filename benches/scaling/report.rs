//! The report: rows of figures and ratios of medians, printed at the end.

use std::time::Duration;

use crate::stats::{interleaved, ms, Call, Stats};
use crate::{Result, WARMUP};

pub(crate) struct Report {
    pub(crate) rows: Vec<Stats>,
    /// (claim, layer, ratio of medians large/small, whether either side stalled).
    pub(crate) ratios: Vec<(&'static str, &'static str, f64, bool)>,
    pub(crate) notes: Vec<String>,
}

impl Report {
    pub(crate) fn pair(
        &mut self,
        claim: &'static str,
        layer: &'static str,
        small: Stats,
        large: Stats,
    ) {
        let ratio = large.median().as_secs_f64() / small.median().as_secs_f64();
        let stalled = small.stalled().max(large.stalled()) >= 5.0;
        self.ratios.push((claim, layer, ratio, stalled));
        self.rows.push(small);
        self.rows.push(large);
    }

    /// Measures one claim on both layers, all four kinds of call interleaved.
    pub(crate) async fn claim<'a>(
        &mut self,
        iters: usize,
        claim: &'static str,
        labels: (&str, &str),
        grpc: (Call<'a>, Call<'a>),
        core: (Call<'a>, Call<'a>),
    ) -> Result<()> {
        let mut times = interleaved(iters, vec![grpc.0, grpc.1, core.0, core.1])
            .await?
            .into_iter();
        let mut next = || times.next().unwrap_or_default();
        let (grpc_a, grpc_b, core_a, core_b) = (next(), next(), next(), next());
        self.pair(
            claim,
            "grpc",
            Stats::new(labels.0, "postgres", "grpc", grpc_a),
            Stats::new(labels.1, "postgres", "grpc", grpc_b),
        );
        self.pair(
            claim,
            "core",
            Stats::new(labels.0, "postgres", "core", core_a),
            Stats::new(labels.1, "postgres", "core", core_b),
        );
        Ok(())
    }
}

/// Loopback round trips take well under a millisecond; gRPC calls near
/// 40 ms are Nagle's algorithm on the server's socket waiting for the
/// client's delayed ACK, a transport stall that swamps the work measured.
pub(crate) const STALL: Duration = Duration::from_millis(35);

pub(crate) fn print(report: &Report, iters: usize, elapsed: Duration) {
    println!();
    println!(
        "osmium-chat scaling: {iters} measured calls per latency row after {WARMUP} warm-up calls; \
         latencies in ms; grpc = a client of the in-process server, core = domain::Core on the same database"
    );
    for note in &report.notes {
        println!("  {note}");
    }
    println!();
    let width = report
        .rows
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(10);
    println!(
        "{:<width$}  {:<8}  {:<5}  {:>5}  {:>8}  {:>8}  {:>8}",
        "case", "engine", "layer", "n", "median", "p99", ">=35ms"
    );
    for row in &report.rows {
        println!(
            "{:<width$}  {:<8}  {:<5}  {:>5}  {:>8}  {:>8}  {:>7.0}%",
            row.label,
            row.engine,
            row.layer,
            row.samples.len(),
            ms(row.median()),
            ms(row.percentile(99.0)),
            row.stalled()
        );
    }
    println!();
    println!("ratios of medians, large side / small side (about 1: the cost does not grow with the data):");
    for (claim, layer, ratio, stalled) in &report.ratios {
        let layer = match *layer {
            "grpc" => "gRPC end to end",
            _ => "core: use-case + Postgres, no transport",
        };
        let stalled = if *stalled {
            "; transport stalls, see the warning"
        } else {
            ""
        };
        println!("{claim} = {ratio:.2}   ({layer}{stalled})");
    }
    let stalled: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.layer == "grpc" && r.stalled() >= 5.0)
        .map(|r| format!("{} ({}, {:.0}%)", r.label, r.engine, r.stalled()))
        .collect();
    if !stalled.is_empty() {
        println!();
        println!(
            "warning: gRPC calls taking 35+ ms, in: {}. On loopback that is a transport stall, \
             not work: ~40 ms is Linux's delayed ACK, which a server socket without TCP_NODELAY \
             (Nagle) waits for before sending the rest of a response. gRPC ratios of rows \
             stalled most of the time compare two stalls; the core ratios are the ones to read.",
            stalled.join("; ")
        );
    }
    println!();
    println!("total {:.1}s", elapsed.as_secs_f64());
}
