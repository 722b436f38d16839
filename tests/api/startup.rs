//! Start-up as an operator meets it: every failure names what failed,
//! where (host and port, never the password) and why, with one exit code
//! per class; secrets appear in no help text and no log line.

use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_postgres::NoTls;

use crate::support::postgres::fresh_schema_url;

const BIN: &str = env!("CARGO_BIN_EXE_osmium-chat");
/// Planted in every URL and key: it must never come out.
pub(crate) const PASSWORD: &str = "pw-hunter2-do-not-print";
/// How long a failing start may take (a refused connection fails at once).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary with a clean environment and ephemeral ports.
pub(crate) fn binary() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("RUST_LOG", "trace")
        .env("OSMIUM_LISTEN_ADDR", "127.0.0.1:0")
        .env("OSMIUM_METRICS_ADDR", "127.0.0.1:0")
        .env("OSMIUM_JWT_SECRET", format!("jwt-secret-{PASSWORD}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs the binary to its exit: the exit code and stdout with stderr.
pub(crate) async fn run(command: &mut Command) -> (i32, String) {
    let output = tokio::time::timeout(START_TIMEOUT, command.output())
        .await
        .expect("the process exits in time")
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Starts the server on `database_url` and expects it to give up.
async fn start_failing(database_url: &str) -> (i32, String) {
    run(binary().env("DATABASE_URL", database_url)).await
}

/// The failure line, for assertion messages.
pub(crate) fn failure(output: &str) -> &str {
    output
        .lines()
        .find(|line| line.contains("osmium-chat failed"))
        .unwrap_or(output)
}

pub(crate) fn assert_no_secret(output: &str) {
    assert!(
        !output.contains(PASSWORD),
        "a secret was printed:\n{output}"
    );
}

/// The test server's address and a superuser connection to it.
struct Server {
    host: String,
    port: u16,
    /// The URL of a fresh schema, as the other tests get it.
    url: String,
}

impl Server {
    async fn new() -> Self {
        let url = fresh_schema_url().await;
        let config = tokio_postgres::Config::from_str(&url).expect("the test URL parses");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the test server is not on TCP: {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Self { host, port, url }
    }

    async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("the test server accepts its superuser");
        tokio::spawn(connection);
        client
    }

    fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@{}:{}/{database}",
            self.host, self.port
        )
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        crate::helpers::next_user_id()
    )
}

/// Makes the server ask members of `osmium_password_login` for a password
/// (the throwaway server trusts everyone else). Returns false, changing
/// nothing, for a server of `OSMIUM_TEST_DATABASE_URL`: its pg_hba.conf is
/// not the tests' to edit.
async fn require_passwords(admin: &tokio_postgres::Client) -> bool {
    const GROUP: &str = "osmium_password_login";
    if std::env::var("OSMIUM_TEST_DATABASE_URL").is_ok_and(|url| !url.trim().is_empty()) {
        return false;
    }
    let _ = admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {GROUP} NOLOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .await;
    let hba: String = admin
        .query_one("SHOW hba_file", &[])
        .await
        .expect("hba_file")
        .get(0);
    let line = format!("host all +{GROUP} 127.0.0.1/32 scram-sha-256\n");
    let Ok(current) = std::fs::read_to_string(&hba) else {
        return false;
    };
    if !current.contains(&line) && std::fs::write(&hba, format!("{line}{current}")).is_err() {
        return false;
    }
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reloads");
    true
}

#[tokio::test]
async fn a_wrong_password_names_the_server_the_user_and_the_refusal() {
    let server = Server::new().await;
    let admin = server.admin().await;
    if !require_passwords(&admin).await {
        eprintln!("skipped: cannot make the test server ask for passwords");
        return;
    }
    let role = unique("osmium_pw");
    admin
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE {role} LOGIN PASSWORD 'the-right-one' IN ROLE osmium_password_login"
        ))
        .await
        .expect("creates the role");
    let url = server.url_as(&role, PASSWORD, "postgres");
    // A reload reaches new connections a moment later: wait until it does.
    let mut refused = false;
    for _ in 0..100 {
        if tokio_postgres::connect(&url, NoTls).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the server asks {role} for a password");

    let (code, output) = start_failing(&url).await;
    assert_eq!(code, 64, "{output}");
    let line = failure(&output);
    for expected in [
        format!(
            "Postgres at postgres://{role}@{}:{}/postgres",
            server.host, server.port
        ),
        "refused the login".to_owned(),
        format!("password authentication failed for user \"{role}\""),
        "SQLSTATE 28P01".to_owned(),
    ] {
        assert!(line.contains(&expected), "{expected:?} in {line}");
    }
    assert_no_secret(&output);
}

#[tokio::test]
async fn a_missing_database_is_named_with_its_server() {
    let server = Server::new().await;
    let database = unique("osmium_missing");
    let url = server.url_as("postgres", PASSWORD, &database);
    let (code, output) = start_failing(&url).await;
    assert_eq!(code, 64, "{output}");
    let line = failure(&output);
    for expected in [
        format!(
            "Postgres at postgres://postgres@{}:{}/{database}",
            server.host, server.port
        ),
        "the database does not exist".to_owned(),
        format!("database \"{database}\" does not exist"),
        "SQLSTATE 3D000".to_owned(),
    ] {
        assert!(line.contains(&expected), "{expected:?} in {line}");
    }
    assert_no_secret(&output);
}

#[tokio::test]
async fn a_refused_connection_names_host_port_and_cause_and_exits_69() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    // Nothing listens there any more.
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/app");
    let (code, output) = start_failing(&url).await;
    assert_eq!(code, 69, "{output}");
    let line = failure(&output);
    for expected in [
        format!("Postgres at postgres://app@127.0.0.1:{port}/app"),
        "cannot connect".to_owned(),
        "Connection refused".to_owned(),
    ] {
        assert!(line.contains(&expected), "{expected:?} in {line}");
    }
    assert_no_secret(&output);
}

#[tokio::test]
async fn an_unparsable_database_url_says_why_and_exits_64() {
    let url = format!("postgres://app:{PASSWORD}@db.example:not-a-port/app");
    let (code, output) = start_failing(&url).await;
    assert_eq!(code, 64, "{output}");
    let line = failure(&output);
    assert!(line.contains("DATABASE_URL"), "{line}");
    assert!(line.contains("invalid value for option `port`"), "{line}");
    assert_no_secret(&output);
}

#[tokio::test]
async fn an_unparsable_redis_url_exits_64_without_its_password() {
    let (code, output) =
        run(binary().env("REDIS_URL", format!("redis://:{PASSWORD}@cache:port"))).await;
    assert_eq!(code, 64, "{output}");
    assert!(failure(&output).contains("REDIS_URL"), "{output}");
    assert_no_secret(&output);
}

#[tokio::test]
async fn missing_privileges_for_migrations_are_named() {
    let server = Server::new().await;
    let admin = server.admin().await;
    let role = unique("osmium_ro");
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .expect("creates the role");
    // The fresh schema belongs to the superuser: the role may use it, but
    // not create tables in it.
    let schema_options = server.url.split_once('?').map(|(_, query)| query);
    let schema = server
        .url
        .rsplit_once("search_path%3D")
        .map(|(_, schema)| schema)
        .expect("the test URL names its schema");
    admin
        .batch_execute(&format!("GRANT USAGE ON SCHEMA {schema} TO {role}"))
        .await
        .expect("grants");
    let url = format!(
        "{}?{}",
        server.url_as(&role, PASSWORD, "postgres"),
        schema_options.expect("the test URL selects a schema")
    );
    let (code, output) = start_failing(&url).await;
    assert_eq!(code, 64, "{output}");
    let line = failure(&output);
    assert!(line.contains("permission denied"), "{line}");
    assert!(line.contains("SQLSTATE 42501"), "{line}");
    assert_no_secret(&output);
}

#[tokio::test]
async fn help_never_prints_secret_values_from_the_environment() {
    for args in [
        &["--help"][..],
        &["token", "--help"],
        &["migrate", "--help"],
    ] {
        let (code, output) = run(binary()
            .args(args)
            .env(
                "DATABASE_URL",
                format!("postgres://app:{PASSWORD}@db:5432/app"),
            )
            .env("REDIS_URL", format!("redis://:{PASSWORD}@cache:6379")))
        .await;
        assert_eq!(code, 0, "{output}");
        assert!(output.contains("DATABASE_URL"), "{output}");
        assert_no_secret(&output);
    }
    let (_, help) = run(binary().arg("--help")).await;
    for listed in ["RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT", "Exit codes"] {
        assert!(help.contains(listed), "{listed} in --help");
    }
}

#[tokio::test]
async fn a_running_replica_logs_its_addresses_and_no_secret() {
    let server = Server::new().await;
    // Trusted logins ignore the password: the server starts with it in its URL.
    let url = server
        .url
        .replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    let mut child = binary()
        .env("DATABASE_URL", &url)
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let ready = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = stdout.next_line().await.expect("reads") {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("serving Prometheus metrics") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(ready, Ok(true)), "the replica starts:\n{seen}");
    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(START_TIMEOUT, child.wait())
        .await
        .expect("stops in time")
        .expect("waited");
    assert_eq!(status.code(), Some(0));
    // Everything, stderr included, once the process is gone.
    while let Some(line) = stdout.next_line().await.expect("reads") {
        seen.push_str(&line);
        seen.push('\n');
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr).await;
    }
    seen.push_str(&stderr);

    assert!(seen.contains("serving gRPC"), "{seen}");
    assert!(
        seen.contains(&format!(
            "target=postgres://postgres@{}:{}/postgres",
            server.host, server.port
        )),
        "the Postgres target is logged:\n{seen}"
    );
    assert!(!seen.contains("relation already exists"), "{seen}");
    assert!(!seen.contains('\u{1b}'), "no colour codes in a pipe");
    assert_no_secret(&seen);
}
