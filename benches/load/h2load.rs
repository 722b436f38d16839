//! h2load (nghttp2's HTTP/2 benchmark client, written in C) as the load
//! generator of the read scenario: beside pgbench, whose client takes
//! almost no CPU, a generator that takes a third of the machine per call
//! would measure the generator. It sends one fixed gRPC request over and
//! over; it cannot read gRPC statuses (they travel in trailers), so the
//! replicas' own `osmium_rpc_requests_total` counts, scraped before the run
//! and a moment before its end (h2load stops with calls in flight, which
//! the replicas count as UNKNOWN), tell how many calls did not answer OK.
//!
//! Found on PATH (Debian's `nghttp2-client`); `LOAD_GENERATOR=tonic` keeps
//! the in-process tonic clients instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::process::Command;

use crate::env::Env;
use crate::replicas::Replica;
use crate::stats::Samples;
use crate::{Result, WARMUP};

/// The end of a run whose calls are not checked against the replicas'
/// counts (see [`H2load::run`]).
const UNCHECKED_TAIL: Duration = Duration::from_millis(250);

pub(crate) struct H2load {
    binary: PathBuf,
    /// Runs so far: each keeps its per-call logs under a number of its own,
    /// for a look at its slowest calls after the bench.
    runs: AtomicUsize,
}

/// One RPC as h2load repeats it.
pub(crate) struct Call<'a> {
    /// `package.Service/Method`.
    pub(crate) method: &'a str,
    /// The encoded request message.
    pub(crate) request: Vec<u8>,
    pub(crate) bearer: &'a str,
}

impl H2load {
    pub(crate) fn find() -> Option<Self> {
        if std::env::var("LOAD_GENERATOR").is_ok_and(|g| g == "tonic") {
            return None;
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("h2load"))
            .find(|candidate| candidate.is_file())
            .map(|binary| Self {
                binary,
                runs: AtomicUsize::new(0),
            })
    }

    /// `in_flight` calls at once for `secs` after the warm-up, split evenly
    /// over `replicas`, each over a quarter as many connections (8 for 32,
    /// as the issue's own h2load runs).
    pub(crate) async fn run(
        &self,
        env: &Env,
        call: &Call<'_>,
        in_flight: usize,
        replicas: &[&Replica],
        secs: Duration,
    ) -> Result<Samples> {
        let body = env.log_dir.join("h2load-request.bin");
        let mut framed = Vec::with_capacity(call.request.len() + 5);
        framed.push(0); // not compressed
        framed.extend_from_slice(&(call.request.len() as u32).to_be_bytes());
        framed.extend_from_slice(&call.request);
        std::fs::write(&body, framed)?;
        let per_replica = in_flight / replicas.len().max(1);
        let connections = (per_replica / 4).max(1);
        let streams = per_replica / connections;
        let refused_before = not_ok(replicas, call.method).await?;
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let runs = replicas.iter().map(|replica| {
            let log = env
                .log_dir
                .join(format!("h2load-{run}-{}.log", replica.index));
            let url = format!("http://127.0.0.1:{}/{}", replica.port, call.method);
            let mut command = Command::new(&self.binary);
            command
                .arg(format!("--duration={}", secs.as_secs()))
                .arg(format!("--warm-up-time={}", WARMUP.as_secs()))
                .arg(format!("--clients={connections}"))
                .arg(format!("--max-concurrent-streams={streams}"))
                .arg(format!("--data={}", body.display()))
                .args(["--header", "content-type: application/grpc"])
                .args(["--header", "te: trailers"])
                .args(["--header", &format!("authorization: {}", call.bearer)])
                .arg(format!("--log-file={}", log.display()))
                .arg(url);
            async move {
                let output = command.output().await?;
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                if !output.status.success() {
                    return Err(format!(
                        "h2load failed ({}): {stdout}{}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                    )
                    .into());
                }
                Ok::<_, crate::BoxError>((stdout, log))
            }
        });
        let checked = async {
            tokio::time::sleep((WARMUP + secs).saturating_sub(UNCHECKED_TAIL)).await;
            not_ok(replicas, call.method).await
        };
        let (outputs, refused) = tokio::join!(futures_util::future::try_join_all(runs), checked);
        let (outputs, mut refused) = (outputs?, refused?);
        let mut samples = Samples::default();
        for (stdout, log) in outputs {
            let counts = Counts::parse(&stdout)?;
            samples
                .latencies_us
                .extend(measured_latencies(&log, counts.done)?);
            let failed = counts.done - counts.succeeded + counts.errored;
            if failed > 0 {
                samples.errors += failed;
                samples
                    .first_error
                    .get_or_insert_with(|| format!("h2load: {failed} requests failed: {stdout}"));
            }
        }
        for (code, before) in refused_before {
            if let Some(count) = refused.get_mut(&code) {
                *count -= before;
            }
        }
        refused.retain(|_, count| *count > 0);
        if !refused.is_empty() {
            samples.errors += refused.values().sum::<u64>();
            samples.first_error.get_or_insert_with(|| {
                format!(
                    "calls not answered OK, by gRPC code (osmium_rpc_requests_total): {refused:?}"
                )
            });
        }
        Ok(samples)
    }
}

/// What h2load's summary says of its measured requests.
struct Counts {
    done: u64,
    succeeded: u64,
    errored: u64,
}

impl Counts {
    /// From `requests: N total, N started, N done, N succeeded, N failed,
    /// N errored, N timeout`.
    fn parse(stdout: &str) -> Result<Self> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("requests:"))
            .ok_or_else(|| format!("no request counts in h2load's output: {stdout}"))?;
        let count = |what: &str| -> Result<u64> {
            line.split(',')
                .find_map(|part| {
                    part.trim()
                        .strip_suffix(what)?
                        .trim()
                        .rsplit(' ')
                        .next()?
                        .parse()
                        .ok()
                })
                .ok_or_else(|| format!("no `{what}` in {line:?}").into())
        };
        Ok(Self {
            done: count("done")?,
            succeeded: count("succeeded")?,
            errored: count("errored")?,
        })
    }
}

/// The durations of the last `done` requests of the log (the measured
/// ones; the warm-up's come first): lines of start time, status and
/// duration in microseconds.
fn measured_latencies(log: &Path, done: u64) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(log)?;
    let lines: Vec<&str> = text.lines().collect();
    let measured = &lines[lines.len().saturating_sub(done as usize)..];
    measured
        .iter()
        .map(|line| {
            line.split('\t')
                .nth(2)
                .and_then(|us| us.trim().parse().ok())
                .ok_or_else(|| format!("an h2load log line without a duration: {line:?}").into())
        })
        .collect()
}

/// Calls of `method` the replicas answered with a status other than OK,
/// by gRPC code.
async fn not_ok(replicas: &[&Replica], method: &str) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for replica in replicas {
        for (code, count) in replica.answered_by_code(method).await? {
            if code != "0" {
                *counts.entry(code).or_default() += count;
            }
        }
    }
    Ok(counts)
}
