//! Scenario (b): `SendMessage` spread over 100 groups at 16 senders, then
//! `pgbench` on the same server for comparison.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use osmium_chat::proto::refs;

use crate::env::{unix_secs, Env};
use crate::report::{ms, Report};
use crate::senders::{send_load, senders};
use crate::stats::{Latencies, Window};
use crate::Result;

pub(crate) async fn scenario_b(env: &Env, secs: Duration, report: &mut Report) -> Result<()> {
    const SENDERS: usize = 16;
    const GROUPS: usize = 100;
    println!("(b) SendMessage over {GROUPS} groups of 10 at {SENDERS} senders, and pgbench");
    let pgbench = Pgbench::find();
    if let Some(pgbench) = &pgbench {
        pgbench.init(env).await?;
    }

    // Sender g % 16 is in group g with 9 members of that group alone.
    let sender_ids = env.users(SENDERS).await?;
    let others = env.users(GROUPS * 9).await?;
    let mut chats_of: Vec<Vec<refs::ChatRef>> = vec![Vec::new(); SENDERS];
    for g in 0..GROUPS {
        let mut members = vec![sender_ids[g % SENDERS]];
        members.extend_from_slice(&others[g * 9..(g + 1) * 9]);
        let group = env.group_with(members).await?;
        chats_of[g % SENDERS].push(group.chat_ref());
    }
    let plan = sender_ids.into_iter().zip(chats_of).collect();
    let window = Window::after_warmup(secs);
    let (samples, _) = send_load(senders(env, plan).await?, window).await?;
    let latencies = samples.summary();
    let rate = samples.rate(&window);
    report.info("b", "msg/s (16 senders, 100 groups)", format!("{rate:.0}"));
    report.info("b", "p50", ms(latencies.ms(0.5)));
    report.info("b", "p99", ms(latencies.ms(0.99)));
    report.errors("b", "send", &samples);

    let Some(pgbench) = pgbench else {
        report.note("(b) pgbench not found (PATH, /usr/lib/postgresql/*/bin): no ratio".into());
        return Ok(());
    };
    let tps = pgbench.run(env, secs).await?;
    report.info(
        "b",
        "pgbench tps (-c 16 -j 2, scale 16)",
        format!("{tps:.0}"),
    );
    let ratio = rate / tps;
    report.check(
        "b",
        "msg/s ÷ pgbench tps",
        format!("{ratio:.2}"),
        ">= 1.0",
        ratio >= 1.0,
    );
    pgbench.drop_schema(env).await;
    Ok(())
}

pub(crate) struct Pgbench {
    pub(crate) binary: PathBuf,
    pub(crate) schema: String,
}

impl Pgbench {
    /// The newest `/usr/lib/postgresql/*/bin/pgbench`, else the one on PATH.
    pub(crate) fn find() -> Option<Self> {
        let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry
                    .file_name()
                    .to_str()?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()?;
                let binary = entry.path().join("bin/pgbench");
                binary.is_file().then_some((version, binary))
            })
            .collect();
        versioned.sort();
        let on_path = || {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("pgbench"))
                    .find(|candidate| candidate.is_file())
            })
        };
        let binary = versioned.pop().map(|(_, b)| b).or_else(on_path)?;
        Some(Self {
            binary,
            schema: format!("pgbench_{}_{}", std::process::id(), unix_secs()),
        })
    }

    /// pgbench with `args` on the service's server, in the schema of its own.
    pub(crate) async fn output(&self, env: &Env, args: &[&str]) -> Result<String> {
        let output = tokio::process::Command::new(&self.binary)
            .env("PGOPTIONS", format!("-c search_path={}", self.schema))
            .args(args)
            // The database name: libpq takes a URL there too.
            .arg(&env.server_url)
            .kill_on_drop(true)
            .output()
            .await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            return Err(format!("pgbench {args:?} failed ({}):\n{text}", output.status).into());
        }
        Ok(text)
    }

    pub(crate) async fn init(&self, env: &Env) -> Result<()> {
        env.db
            .batch_execute(&format!("CREATE SCHEMA {}", self.schema))
            .await?;
        let started = Instant::now();
        self.output(env, &["-i", "-s", "16", "-q"]).await?;
        env.db.batch_execute("CHECKPOINT").await?;
        println!(
            "  pgbench -i -s 16 into schema {} took {:.1} s",
            self.schema,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    pub(crate) async fn run(&self, env: &Env, secs: Duration) -> Result<f64> {
        let seconds = secs.as_secs().max(1).to_string();
        let text = self
            .output(env, &["-c", "16", "-j", "2", "-T", &seconds, "-n"])
            .await?;
        tps_of(&text)
    }

    /// A custom script, its statements prepared once per client as the
    /// service prepares them, with `clients` in flight: tps, and the
    /// latencies of its transactions (from pgbench's per-transaction log,
    /// written beside `script`).
    pub(crate) async fn run_script(
        &self,
        env: &Env,
        secs: Duration,
        clients: usize,
        script: &std::path::Path,
    ) -> Result<(f64, Latencies)> {
        let seconds = secs.as_secs().max(1).to_string();
        let clients = clients.to_string();
        let prefix = script.with_extension("log");
        let log_prefix = format!("--log-prefix={}", prefix.display());
        let script = script.to_string_lossy();
        let text = self
            .output(
                env,
                &[
                    "-n",
                    "-M",
                    "prepared",
                    "-c",
                    &clients,
                    "-j",
                    "2",
                    "-T",
                    &seconds,
                    "-f",
                    &script,
                    "--log",
                    &log_prefix,
                ],
            )
            .await?;
        Ok((tps_of(&text)?, logged_latencies(&prefix)?))
    }
    pub(crate) async fn drop_schema(&self, env: &Env) {
        let _ = env
            .db
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

/// Every transaction's latency in the logs pgbench wrote at `prefix`
/// (`prefix.<pid>` and `prefix.<pid>.<thread>`): lines of client,
/// transaction, latency in microseconds, and more.
fn logged_latencies(prefix: &std::path::Path) -> Result<Latencies> {
    let dir = prefix.parent().ok_or("a log prefix in a directory")?;
    let name = prefix
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("a log prefix with a name")?;
    let mut us = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name();
        if !file
            .to_str()
            .is_some_and(|f| f.starts_with(&format!("{name}.")))
        {
            continue;
        }
        for line in std::fs::read_to_string(entry.path())?.lines() {
            let latency = line
                .split_whitespace()
                .nth(2)
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| format!("a pgbench log line without a latency: {line:?}"))?;
            us.push(latency);
        }
    }
    Ok(Latencies::of(us))
}

fn tps_of(text: &str) -> Result<f64> {
    text.lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no tps in pgbench's output:\n{text}").into())
}
