//! A throwaway PostgreSQL of this test alone, run by `pg_ctl` so that it can
//! be restarted underneath the replicas (`pg_ctl restart -m fast` or
//! `-m immediate`, a crash and its recovery).
//!
//! The cluster is made with the helpers of the API suite's throwaway server
//! (`tests/api/support/postgres.rs`). A guard process holds a pipe whose
//! write end only this test holds: when the test ends, however it ends, the
//! guard stops the server and removes its directory.
//!
//! Unlike the API suite's server this one keeps `synchronous_commit` on: an
//! immediate shutdown loses WAL not yet written, and a commit the service
//! acknowledged must survive it. `fsync` stays off, since the machine itself
//! does not crash.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use crate::support_postgres::{
    free_port, log_tail, postgres_bin_dir, postgres_user_command, run, running_as_root,
};

/// Waits for end of file on stdin, then stops the server at once (`$2` is
/// pg_ctl) and removes the directory `$1`.
const GUARD: &str = r#"
dir=$1; pg_ctl=$2
read -r _ignored
"$pg_ctl" stop -D "$dir/data" -m immediate >/dev/null 2>&1
rm -rf "$dir"
"#;

pub struct Postgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
    guard: Option<(Child, ChildStdin)>,
}

impl Postgres {
    /// Makes a cluster in a temporary directory and starts it on a free port.
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// [`Postgres::start`] with more server `options` (`-c name=value ...`).
    pub async fn start_with(options: &str) -> Self {
        let bin = postgres_bin_dir().expect("a PostgreSQL server is installed");
        let as_root = running_as_root();
        // Tests of this binary run at once, each with a server of its own.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "osmium-faults-pg-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a temporary directory");
        if as_root {
            run(std::process::Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(&dir))
            .expect("chown to postgres");
        }
        let mut guard = postgres_user_command(as_root, Path::new("sh"))
            .arg("-c")
            .arg(GUARD)
            .arg("osmium-faults-postgres")
            .arg(&dir)
            .arg(bin.join("pg_ctl"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("the guard starts");
        let stdin = guard.stdin.take().expect("piped stdin");
        let server = Self {
            port: free_port().expect("a free port"),
            dir,
            bin,
            as_root,
            guard: Some((guard, stdin)),
        };
        run(postgres_user_command(as_root, &server.bin.join("initdb"))
            .arg("-D")
            .arg(server.dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"])
            .current_dir(&server.dir))
        .expect("initdb");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 {options}",
            server.port,
            server.dir.display()
        );
        server.pg_ctl(&["start", "-o", &options]).await;
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m <mode>`: `fast` rolls back open transactions and
    /// closes every session; `immediate` kills the server, which recovers
    /// from its WAL on the way up. Returns once it accepts connections.
    pub async fn restart(&self, mode: &str) {
        self.pg_ctl(&["restart", "-m", mode]).await;
    }

    /// Runs pg_ctl on the cluster, waiting (`-w`) for the outcome.
    async fn pg_ctl(&self, args: &[&str]) {
        let log = self.dir.join("postgres.log");
        let mut command = tokio::process::Command::from(postgres_user_command(
            self.as_root,
            &self.bin.join("pg_ctl"),
        ));
        let output = command
            .args(args)
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("pg_ctl runs");
        assert!(
            output.status.success(),
            "pg_ctl {args:?} failed ({}): {}{}\nlog:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            log_tail(&log)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((mut guard, stdin)) = self.guard.take() {
            drop(stdin);
            let _ = guard.wait();
        }
    }
}
