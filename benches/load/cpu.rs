//! Where the machine's CPU goes during a load point: the replicas, the
//! PostgreSQL server (its postmaster and every backend, pgbench's included),
//! this load generator, and everything else, read from `/proc`.

use std::time::Instant;

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
pub(crate) const TICKS_PER_SEC: f64 = 100.0;

/// CPU ticks used so far, by whom.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ticks {
    replicas: u64,
    postgres: u64,
    generator: u64,
    machine_busy: u64,
}

pub(crate) struct CpuWatch {
    replicas: Vec<u32>,
    postmaster: Option<u32>,
    start: Ticks,
    started: Instant,
}

/// Cores used over a stretch, by whom.
pub(crate) struct CpuSplit {
    pub(crate) replicas: f64,
    pub(crate) postgres: f64,
    pub(crate) generator: f64,
    pub(crate) other: f64,
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replicas {:.2}, postgres {:.2}, load generator {:.2}, other {:.2} cores",
            self.replicas, self.postgres, self.generator, self.other
        )
    }
}

impl CpuWatch {
    pub(crate) fn start(replicas: Vec<u32>, postmaster: Option<u32>) -> Self {
        let mut watch = Self {
            replicas,
            postmaster,
            start: Ticks::default(),
            started: Instant::now(),
        };
        watch.start = watch.read();
        watch
    }

    pub(crate) fn split(&self) -> CpuSplit {
        let now = self.read();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let cores = |a: u64, b: u64| a.saturating_sub(b) as f64 / TICKS_PER_SEC / secs;
        let replicas = cores(now.replicas, self.start.replicas);
        let postgres = cores(now.postgres, self.start.postgres);
        let generator = cores(now.generator, self.start.generator);
        let busy = cores(now.machine_busy, self.start.machine_busy);
        CpuSplit {
            replicas,
            postgres,
            generator,
            other: (busy - replicas - postgres - generator).max(0.0),
        }
    }

    fn read(&self) -> Ticks {
        let replicas = self.replicas.iter().map(|p| own_ticks(*p)).sum();
        // Backends that ended were reaped by the postmaster: their time is
        // in its children's columns.
        let postgres = self.postmaster.map_or(0, |pm| {
            with_children(pm) + children_of(pm).into_iter().map(own_ticks).sum::<u64>()
        });
        Ticks {
            replicas,
            postgres,
            generator: own_ticks(std::process::id()),
            machine_busy: machine_busy(),
        }
    }
}

/// `/proc/<pid>/stat` from ppid on: [0] ppid, [10] utime, [11] stime,
/// [12] cutime, [13] cstime (fields 4, 14 to 17 of proc(5)).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// CPU ticks `pid` has used so far.
pub(crate) fn own_ticks(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| f[10] + f[11])
}

fn with_children(pid: u32) -> u64 {
    stat_fields(pid).map_or(0, |f| f[10] + f[11] + f[12] + f[13])
}

fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f[0] == u64::from(parent)))
        .collect()
}

/// Busy ticks of the whole machine (all but idle and iowait).
fn machine_busy() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    total.saturating_sub(fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0))
}

/// The postmaster of the server `db` is connected to, when it runs here.
pub(crate) async fn postmaster(db: &tokio_postgres::Client) -> Option<u32> {
    let row = db.query_one("SELECT pg_backend_pid()", &[]).await.ok()?;
    let backend = row.get::<_, i32>(0) as u32;
    stat_fields(backend).map(|f| f[0] as u32)
}

/// Whether the kernel schedules each session as a group of its own
/// (`kernel.sched_autogroup_enabled`); `None` where it cannot tell.
pub(crate) fn autogroup() -> Option<bool> {
    let setting = std::fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").ok()?;
    Some(setting.trim() == "1")
}

/// Why a run with autogroups on is no measure of the service.
pub(crate) const AUTOGROUP_NOTE: &str = "kernel.sched_autogroup_enabled=1: the kernel \
    shares the CPU between sessions, and every Postgres backend starts one of its own \
    (setsid), so each backend competes as a group against the replicas, h2load and this \
    process together. On this 2-core machine that leaves a backend runnable but unrun for \
    up to 3 s now and then, and the calls it serves wait as long (GetHistory's and \
    GetChat's most: the calls waiting together share a backend). With 0, sixteen runs \
    had no read call over 65 ms. For figures that reflect the service, run \
    `sysctl kernel.sched_autogroup_enabled=0` first.";
