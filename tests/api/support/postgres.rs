//! A throwaway PostgreSQL for the integration tests.
//!
//! Every test asks [`fresh_schema_url`] for a database URL of its own. All such URLs point
//! at one server, but each selects a new, empty schema through `search_path`, so tests run
//! in parallel without seeing each other's tables.
//!
//! The server is the one named by `OSMIUM_TEST_DATABASE_URL` when that is set (its schemas
//! are left behind: point it at a database you can throw away). Otherwise one private server
//! is started lazily per test process, in a temporary directory, and it is stopped and the
//! directory removed when the test process exits, however it exits.
//!
//! [`tls::tls_server`] is a second throwaway server, started on first use, that
//! also accepts TLS with a certificate for `localhost` from a CA made at
//! test time (`postgres_tls.rs`).

use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

// Beside this file for every crate that includes it by path.
#[path = "postgres_tls.rs"]
pub mod tls;
use tls::write_certificates;

/// Names an existing server to use instead of starting a throwaway one.
const DATABASE_URL_ENV: &str = "OSMIUM_TEST_DATABASE_URL";
/// Set (to anything) to start the throwaway server with its default
/// durability settings: what benchmarks of commits must measure.
pub const DURABLE_ENV: &str = "OSMIUM_TEST_POSTGRES_DURABLE";

/// How long a freshly started server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs postgres (`$2...`) and stops it once stdin, a pipe whose write end only the test
/// process holds, reaches end of file: that happens when the test process exits, even
/// though the static that holds the pipe is never dropped. The wrapper also exits when
/// postgres dies on its own, so a failed start is noticed at once. `$1` is the temporary
/// directory, removed after a clean shutdown and kept (with its log) after a failure.
const WRAPPER_SCRIPT: &str = r#"
dir=$1; shift
exec 3<&0 0</dev/null
"$@" 3<&- &
pid=$!
{ read -r _ignored <&3; kill -INT "$pid" 2>/dev/null; } &
reader=$!
exec 3<&-
wait "$pid"; status=$?
kill "$reader" 2>/dev/null
if [ "$status" -eq 0 ]; then
    rm -rf "$dir"
else
    echo "postgres exited with status $status; keeping $dir" >&2
fi
exit "$status"
"#;

/// A database URL whose connections use a fresh, empty schema of their own (selected with search_path), on a shared throwaway server.
pub async fn fresh_schema_url() -> String {
    let (base_url, server_name) = match std::env::var(DATABASE_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => (url, format!("the server in {DATABASE_URL_ENV}")),
        _ => {
            let url = throwaway_server().await.url.clone();
            let name = format!("the throwaway server at {url}");
            (url, name)
        }
    };
    fresh_schema_on(&base_url, &server_name).await
}

async fn fresh_schema_on(base_url: &str, server_name: &str) -> String {
    let schema = unique_schema_name();
    create_schema(base_url, server_name, &schema).await;
    with_search_path(base_url, &schema)
}

/// The URL of this process's throwaway server, started on first use.
///
/// A `tokio::sync::OnceCell` is not tied to a runtime, so the many per-test runtimes share
/// it; the ones that arrive during startup wait for it. A failed start is remembered, so
/// every test reports the same error instead of each trying again.
async fn throwaway_server() -> &'static Server {
    static SERVER: OnceCell<Result<Server, String>> = OnceCell::const_new();
    match SERVER.get_or_init(|| start_server(false)).await {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

struct Server {
    url: String,
    /// The CA of the server's certificate, when it speaks TLS.
    ca: Option<PathBuf>,
    /// The wrapper around postgres. Holding it holds the write end of its stdin pipe,
    /// which keeps postgres running until this process exits.
    _wrapper: Child,
}

async fn start_server(tls: bool) -> Result<Server, String> {
    // initdb and process spawning block; keep them off the async worker.
    let (mut wrapper, port, dir) = tokio::task::spawn_blocking(move || spawn_server(tls))
        .await
        .map_err(|error| format!("starting the throwaway PostgreSQL panicked: {error}"))??;
    wait_until_ready(&mut wrapper, port, &dir).await?;
    // The TLS server's certificate names localhost, as clients that
    // verify it must call it.
    let host = if tls { "localhost" } else { "127.0.0.1" };
    Ok(Server {
        url: format!("postgres://postgres@{host}:{port}/postgres"),
        ca: tls.then(|| dir.join("ca.crt")),
        _wrapper: wrapper,
    })
}

/// Creates the cluster and starts postgres in its wrapper; returns the wrapper, the port
/// and the temporary directory (holding `ca.crt` with `tls`).
fn spawn_server(tls: bool) -> Result<(Child, u16, PathBuf), String> {
    let bin = postgres_bin_dir()?;
    // PostgreSQL refuses to run as root, and CI runs as root.
    let as_root = running_as_root();
    let dir = std::env::temp_dir().join(format!(
        "osmium-chat-test-pg-{}-{}",
        std::process::id(),
        nanos()
    ));
    fs::create_dir_all(&dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    if as_root {
        run(Command::new("chown").arg("-R").arg("postgres:").arg(&dir))?;
    }

    let data = dir.join("data");
    let initdb = run(postgres_user_command(as_root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
        // Independent of the machine's locales, which minimal images often lack.
        .args(["--locale=C", "--no-sync"])
        .current_dir(&dir));
    if let Err(error) = initdb {
        // Everything worth keeping is in the message.
        let _ = fs::remove_dir_all(&dir);
        return Err(error);
    }

    let mut ssl = Vec::new();
    if tls {
        write_certificates(&dir, &data, as_root)?;
        for setting in [
            "ssl=on",
            "ssl_cert_file=server.crt",
            "ssl_key_file=server.key",
        ] {
            ssl.extend(["-c", setting]);
        }
    }

    let port = free_port()?;
    let log_path = dir.join("postgres.log");
    let log = File::create(&log_path)
        .map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
    let log_too = log.try_clone().map_err(|error| {
        format!(
            "cannot duplicate the handle of {}: {error}",
            log_path.display()
        )
    })?;
    // Durability is worthless for a throwaway test database; speed is not.
    // Benchmarks measure commits as production pays for them, WAL flushes included.
    let durable = std::env::var_os(DURABLE_ENV).is_some();
    let speed: &[&str] = if durable {
        &[]
    } else {
        &[
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
    };
    let wrapper = postgres_user_command(as_root, Path::new("sh"))
        .arg("-c")
        .arg(WRAPPER_SCRIPT)
        .arg("osmium-chat-test-postgres")
        .arg(&dir)
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(speed)
        .args(&ssl)
        // Many tests, each with a pool, run at once.
        .args(["-c", "max_connections=500"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log_too)
        // Out of the terminal's process group: a Ctrl-C kills the tests, and the wrapper
        // still gets to stop postgres and clean up when the pipe closes.
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot start the PostgreSQL wrapper: {error}"))?;
    Ok((wrapper, port, dir))
}

/// Polls until the server accepts connections, or fails with its log.
async fn wait_until_ready(wrapper: &mut Child, port: u16, dir: &Path) -> Result<(), String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let error = match config.connect(NoTls).await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let problem = match wrapper.try_wait() {
            Ok(Some(status)) => Some(format!("PostgreSQL exited ({status})")),
            Ok(None) if Instant::now() >= deadline => Some(format!(
                "PostgreSQL did not accept connections within {READY_TIMEOUT:?} (last error: {})",
                with_sources(&error)
            )),
            Ok(None) => None,
            Err(wait_error) => Some(format!("cannot check on PostgreSQL: {wait_error}")),
        };
        if let Some(problem) = problem {
            let log_path = dir.join("postgres.log");
            return Err(format!(
                "{problem}; server log {} (removed at exit unless PostgreSQL failed), ends with:\n{}",
                log_path.display(),
                log_tail(&log_path)
            ));
        }
        // Readiness polling of an external process: nothing to await but time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The directory holding `initdb` and `postgres`: the first on PATH, else the newest
/// Debian-style `/usr/lib/postgresql/<version>/bin`.
pub(crate) fn postgres_bin_dir() -> Result<PathBuf, String> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_both(dir)) {
        return Ok(dir);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or_else(|| {
        format!(
            "no PostgreSQL server found (initdb and postgres, on PATH or under \
             /usr/lib/postgresql/*/bin): install it (scripts/test.sh does) or set {DATABASE_URL_ENV}"
        )
    })
}

/// Whether the effective user is root, from `/proc/self/status`, else `id -u`.
pub(crate) fn running_as_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        // "Uid:  real  effective  saved  filesystem"
        if let Some(line) = status.lines().find(|line| line.starts_with("Uid:")) {
            return line.split_whitespace().nth(2) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command running `program` as the `postgres` system user when we are root, else as us.
pub(crate) fn postgres_user_command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs a command to completion; its output goes into the error if it fails.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// A TCP port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("cannot find a free port: {error}"))
}

pub(crate) fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        }
        Err(error) => format!("(cannot read it: {error})"),
    }
}

/// tokio-postgres keeps the interesting part (refused, auth failed...) in `source()`.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()
}

/// Unique within this process (counter), among concurrent processes (pid) and, on a
/// long-lived server, across runs that reuse a pid (clock).
fn unique_schema_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // 32 bits of nanoseconds keep the name far below PostgreSQL's 63-byte limit.
    let clock = nanos() as u32;
    format!("t_{}_{n}_{clock:08x}", std::process::id())
}

async fn create_schema(base_url: &str, server_name: &str, schema: &str) {
    let (client, connection) = tokio_postgres::connect(base_url, NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!("cannot connect to {server_name}: {}", with_sources(&error))
        });
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot create schema {schema} on {server_name}: {}",
                with_sources(&error)
            )
        });
    // Dropping the client ends the connection; wait for that so no task outlives us.
    drop(client);
    let _ = connection.await;
}

/// `base_url` with its connections' `search_path` set to `schema`, through libpq's
/// `options` parameter, which tokio-postgres understands too.
fn with_search_path(base_url: &str, schema: &str) -> String {
    assert!(
        !base_url.contains("options="),
        "{DATABASE_URL_ENV} must not set `options`; the tests set it to choose their schema"
    );
    if base_url.starts_with("postgres://") || base_url.starts_with("postgresql://") {
        let separator = if base_url.contains('?') { '&' } else { '?' };
        format!("{base_url}{separator}options=-csearch_path%3D{schema}")
    } else {
        // The key=value form.
        format!("{base_url} options=-csearch_path={schema}")
    }
}
