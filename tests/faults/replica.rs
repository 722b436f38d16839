//! A replica as production runs it: a separate process of the service
//! binary, killed (SIGKILL) or stopped (SIGTERM) and started again on the
//! same port with the same settings.
//!
//! The process runs under a small shell wrapper whose stdin is a pipe only
//! this test holds; when the test ends, however it ends, the wrapper kills the
//! replica. The wrapper exits with the replica's own exit status.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin};
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const BINARY: &str = env!("CARGO_BIN_EXE_osmium-chat");
/// How long a replica may take to answer SERVING (a loaded 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the replica (`$2...`) with its output appended to `$1`, prints its
/// pid, kills it when stdin reaches end of file, and exits with its status.
const WRAPPER: &str = r#"
log=$1; shift
exec 3<&0 0</dev/null
"$@" >>"$log" 2>&1 3<&- &
pid=$!
echo "$pid"
{ read -r _ignored <&3; kill -KILL "$pid" 2>/dev/null; } &
reader=$!
exec 3<&-
wait "$pid"; status=$?
kill "$reader" 2>/dev/null
exit "$status"
"#;

pub struct Replica {
    pub index: usize,
    pub port: u16,
    pub metrics_port: u16,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    running: Option<Running>,
}

struct Running {
    pid: u32,
    wrapper: Child,
    _stdin: ChildStdin,
}

impl Replica {
    /// A replica with `env` (beside its ports), logging to `log`; not started.
    pub fn new(index: usize, env: Vec<(&'static str, String)>, log: PathBuf) -> Self {
        Self {
            index,
            port: free_port(),
            metrics_port: free_port(),
            env,
            log,
            running: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until its health service says SERVING.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "replica {} is running", self.index);
        let mut wrapper = tokio::process::Command::new("sh")
            .args(["-c", WRAPPER, "osmium-faults-replica"])
            .arg(&self.log)
            .arg(BINARY)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("OSMIUM_LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
            .env(
                "OSMIUM_METRICS_ADDR",
                format!("127.0.0.1:{}", self.metrics_port),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The shell's own "Killed" notice after a SIGKILL.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the replica wrapper starts");
        let stdin = wrapper.stdin.take().expect("piped stdin");
        let stdout = wrapper.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("the wrapper prints a pid");
        let pid = line.trim().parse().expect("a pid");
        self.running = Some(Running {
            pid,
            wrapper,
            _stdin: stdin,
        });
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let endpoint = Endpoint::from_shared(self.url())
            .expect("a valid uri")
            .connect_timeout(Duration::from_secs(1));
        loop {
            if let Ok(channel) = endpoint.connect().await {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(reply) = HealthClient::new(channel).check(request).await {
                    if reply.into_inner().status == ServingStatus::Serving as i32 {
                        return;
                    }
                }
            }
            let running = self.running.as_mut().expect("started");
            if let Ok(Some(status)) = running.wrapper.try_wait() {
                panic!(
                    "replica {} exited during start-up ({status}); {}:\n{}",
                    self.index,
                    self.log.display(),
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "replica {} not SERVING within {READY_TIMEOUT:?}; {}:\n{}",
                self.index,
                self.log.display(),
                self.log_tail()
            );
            // Readiness polling of another process: nothing to await but time.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends `signal` to the replica and waits (bounded) until it has exited.
    pub async fn signal(&mut self, signal: &str) -> ExitStatus {
        let mut running = self.running.take().expect("running");
        let sent = tokio::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(running.pid.to_string())
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {} failed", running.pid);
        tokio::time::timeout(Duration::from_secs(60), running.wrapper.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "replica {} still running a minute after SIG{signal}",
                    self.index
                )
            })
            .expect("the wrapper is waited for")
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
