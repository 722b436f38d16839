//! The replicas under load: each a separate process of the release binary
//! behind a wrapper that kills it when this process ends, with its health
//! check, its log and its memory readings.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::{Result, AUDIENCE, BINARY, READY_TIMEOUT, SECRET};

/// Runs the replica (`$2...`) with its output in the file `$1`, prints its
/// pid, and kills it when stdin, a pipe only this process holds, reaches end
/// of file: on drop, and also when this process dies however it dies.
pub(crate) const WRAPPER: &str = r#"
log=$1; shift
"$@" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read -r _ignored
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"#;

pub(crate) struct Replica {
    pub(crate) index: usize,
    /// The replica's own pid (not the wrapper's), for /proc.
    pub(crate) pid: u32,
    pub(crate) port: u16,
    pub(crate) metrics_port: u16,
    pub(crate) log: PathBuf,
    pub(crate) wrapper: Child,
    pub(crate) stdin: Option<ChildStdin>,
}

pub(crate) struct ReplicaConfig<'a> {
    pub(crate) database_url: &'a str,
    pub(crate) redis_url: &'a str,
    pub(crate) redis_prefix: &'a str,
    pub(crate) log_dir: &'a Path,
    /// `OSMIUM_DB_READ_CONCURRENCY` for each replica, when the run sizes it.
    pub(crate) reads_at_once: Option<usize>,
}

/// Reads at once per replica as the README sizes them: replicas x this near
/// twice the database's cores. The throwaway server shares this machine,
/// so its cores are this machine's; a server named in `LOAD_DATABASE_URL`
/// has cores of its own, unknown here, and the replicas keep their
/// default. An `OSMIUM_DB_READ_CONCURRENCY` set for the run wins.
pub(crate) fn sized_reads_at_once(replicas: usize, server_here: bool) -> Option<usize> {
    if !server_here || std::env::var_os("OSMIUM_DB_READ_CONCURRENCY").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((2 * cores / replicas.max(1)).max(1))
}

impl Replica {
    pub(crate) fn spawn(index: usize, config: &ReplicaConfig<'_>) -> Result<Self> {
        let port = free_port()?;
        let metrics_port = free_port()?;
        let log = config.log_dir.join(format!("replica-{index}.log"));
        let log_filter = std::env::var("LOAD_RUST_LOG").unwrap_or_else(|_| "warn".into());
        let binary = binary(index);
        let mut wrapper = Command::new("sh")
            .args(["-c", WRAPPER, "osmium-load-replica"])
            .arg(&log)
            .arg(&binary)
            .env("DATABASE_URL", config.database_url)
            .env("REDIS_URL", config.redis_url)
            .env("OSMIUM_REDIS_PREFIX", config.redis_prefix)
            .env("OSMIUM_JWT_SECRET", SECRET)
            .env("OSMIUM_JWT_AUDIENCE", AUDIENCE)
            .env("OSMIUM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("OSMIUM_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("RUST_LOG", log_filter)
            // Closed-loop senders measure capacity, not the per-user limits.
            .env("OSMIUM_RATE_SEND", "off")
            .env("OSMIUM_RATE_CREATE_CHAT", "off")
            .env("OSMIUM_RATE_ADD_MEMBER", "off")
            .env("OSMIUM_RATE_TYPING", "off")
            .envs(
                config
                    .reads_at_once
                    .map(|n| ("OSMIUM_DB_READ_CONCURRENCY", n.to_string())),
            )
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OSMIUM_JWT_PUBLIC_KEYS")
            .env_remove("OSMIUM_JWT_JWKS")
            .env_remove("OSMIUM_JWT_ISSUER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let stdin = wrapper.stdin.take();
        let stdout = wrapper.stdout.take().ok_or("the wrapper has no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let pid = line
            .trim()
            .parse()
            .map_err(|_| format!("the replica wrapper printed {line:?}, not a pid"))?;
        Ok(Self {
            index,
            pid,
            port,
            metrics_port,
            log,
            wrapper,
            stdin,
        })
    }

    /// Calls of `method` this replica has answered so far, by gRPC code
    /// (`osmium_rpc_requests_total`).
    pub(crate) async fn answered_by_code(&self, method: &str) -> Result<BTreeMap<String, u64>> {
        let prefix = format!("osmium_rpc_requests_total{{method=\"{method}\",code=\"");
        let text = self.scrape().await?;
        let mut counts = BTreeMap::new();
        for (code, value) in text
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix)?.split_once("\"} "))
        {
            *counts.entry(code.to_owned()).or_default() +=
                value.parse::<f64>().unwrap_or(0.0) as u64;
        }
        Ok(counts)
    }

    /// Calls of `method` this replica has answered so far, whatever their code.
    pub(crate) async fn answered(&self, method: &str) -> Result<u64> {
        Ok(self.answered_by_code(method).await?.values().sum())
    }

    pub(crate) fn alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/status", self.pid)) {
            Ok(status) => !status
                .lines()
                .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X'))),
            Err(_) => false,
        }
    }

    /// The Prometheus text the replica serves at `/metrics`.
    pub(crate) async fn scrape(&self) -> Result<String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        if !response.starts_with("HTTP/1.1 200") {
            return Err(format!("replica {} /metrics: {response}", self.index).into());
        }
        Ok(response)
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until the health service answers SERVING.
    pub(crate) async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(channel) = self.endpoint()?.connect().await {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(reply) = HealthClient::new(channel).check(request).await {
                    if reply.into_inner().status == ServingStatus::Serving as i32 {
                        return Ok(());
                    }
                }
            }
            if !self.alive() {
                return Err(format!(
                    "replica {} exited during start-up; {} ends with:\n{}",
                    self.index,
                    self.log.display(),
                    self.log_tail()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "replica {} not SERVING within {READY_TIMEOUT:?}; {} ends with:\n{}",
                    self.index,
                    self.log.display(),
                    self.log_tail()
                )
                .into());
            }
            // Readiness polling of another process: nothing to await but time.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn endpoint(&self) -> Result<tonic::transport::Endpoint> {
        Ok(Channel::from_shared(format!(
            "http://127.0.0.1:{}",
            self.port
        ))?)
    }

    /// `(VmRSS, VmHWM)` in bytes.
    pub(crate) fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| format!("no {name} in /proc/{}/status", self.pid))?;
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("cannot read {line:?}"))?;
            Ok(kb * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Resets VmHWM to the current RSS.
    pub(crate) fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .map_err(|e| format!("cannot reset the peak RSS of pid {}: {e}", self.pid).into())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.wrapper.wait();
    }
}

/// A port free now and not handed out before in this run. The kernel may
/// hand a port it just freed out again, so two replicas of one run could
/// otherwise be given the same one: the second then fails to listen while
/// its readiness check reaches the first.
pub(crate) fn free_port() -> Result<u16> {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        if given.insert(port) {
            return Ok(port);
        }
    }
}

/// The build replica `index` runs: the second replica runs `LOAD_BINARY_B`
/// when it is set, so that two builds are compared under the same load at
/// the same moment (the machine's speed drifts between runs by more than
/// most changes are worth); every other replica runs this checkout's.
fn binary(index: usize) -> String {
    match std::env::var("LOAD_BINARY_B") {
        Ok(b) if index == 1 && !b.trim().is_empty() => b,
        _ => BINARY.to_owned(),
    }
}
