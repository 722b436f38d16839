//! Throwaway Redis servers for the integration tests: one per test that
//! needs it, on a free port, stoppable and restartable to play outages.
//!
//! Each server runs under a small shell wrapper whose stdin is a pipe held by
//! the test: closing it (on stop, on drop, or when the test process exits
//! however it exits) makes the wrapper kill the server.
//!
//! [`RedisServer::start_tls`] starts one that speaks only TLS, with
//! certificate files of the caller's.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const WRAPPER: &str = r#"
"$@" &
pid=$!
read -r _ignored
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"#;

pub struct RedisServer {
    pub port: u16,
    /// The server's certificate, key and the CA that signed it, for TLS.
    tls: Option<[PathBuf; 3]>,
    running: Option<(Child, ChildStdin)>,
}

fn redis_server() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .expect("redis-server is installed (scripts/test.sh installs it)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server that speaks TLS only, with this certificate and key; `ca`
    /// is what the harness's own client trusts.
    pub async fn start_tls(cert: PathBuf, key: PathBuf, ca: PathBuf) -> Self {
        Self::start_with(Some([cert, key, ca])).await
    }

    async fn start_with(tls: Option<[PathBuf; 3]>) -> Self {
        let mut server = Self {
            port: free_port(),
            tls,
            running: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    fn client(&self) -> redis::Client {
        match &self.tls {
            None => redis::Client::open(self.url()),
            Some([_, _, ca]) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).expect("the CA file")),
                },
            ),
        }
        .expect("a valid url")
    }

    /// Where the server listens, and how: plaintext or TLS only.
    fn listen_args(&self) -> Vec<OsString> {
        let port = self.port.to_string();
        let Some([cert, key, ca]) = &self.tls else {
            return ["--port", &port].map(OsString::from).to_vec();
        };
        let mut args: Vec<OsString> = ["--port", "0", "--tls-port", &port]
            .map(OsString::from)
            .to_vec();
        args.extend([
            "--tls-cert-file".into(),
            cert.into(),
            "--tls-key-file".into(),
        ]);
        args.extend([key.into(), "--tls-auth-clients".into(), "no".into()]);
        // Redis wants a CA even when it asks clients for no certificate.
        args.extend(["--tls-ca-cert-file".into(), ca.into()]);
        args
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "already running");
        let mut child = Command::new("sh")
            .args(["-c", WRAPPER, "sh"])
            .arg(redis_server())
            .args(self.listen_args())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let stdin = child.stdin.take().expect("piped stdin");
        self.running = Some((child, stdin));
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            // Readiness polling of an external process.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server, as an outage would, and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some((mut child, mut stdin)) = self.running.take() {
            let _ = stdin.write_all(b"stop\n");
            drop(stdin);
            let _ = child.wait();
        }
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("redis answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
