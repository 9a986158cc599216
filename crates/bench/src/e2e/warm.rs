//! Item 11: warm start (issue #18). A cache with a cache directory starts from the file its
//! previous run left, serves it at once (unverified) and becomes ready after one LIST; a cold
//! cache starts from nothing and answers its first read only after its initial sync. Measured
//! twice against the same apisim: in this process (a fresh `kube::Client` each, alternately;
//! "start" is the `ReflectorBuilder::start()` call, so the warm figure includes reading,
//! checking and decoding the file and publishing its snapshot), and from process start, the
//! target's measure: one `repocache-bench-start` process per start, timed from `spawn` to the
//! line it prints at its first answered read, on mimalloc (as the `repocache` CLI ships) and on
//! the system allocator (`repocache-bench-start-system`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use glasskube_api::PackageRepository;
use kube::Api;
use repocache::persist::Persist;
use repocache::{Cache, ReflectorBuilder, ReflectorHandle};

use super::sim::{Sim, counts_on_resource, wait_for_watch_requests};
use super::sync::SYNC_TIMEOUT;

/// What the warm-start part measured.
#[derive(Clone, Debug)]
pub struct WarmResult {
    /// Objects on the server (and in the file).
    pub objects: usize,
    /// Start → first answered read of a cold cache (its initial sync), sorted.
    pub cold_first_read: Vec<Duration>,
    /// Start → first answered read of a warm cache (from the file), sorted.
    pub warm_first_read: Vec<Duration>,
    /// Start → ready (verified by its LIST) of the warm cache, sorted.
    pub warm_verified: Vec<Duration>,
    /// The `start()` call of the warm cache (load, check, decode, publish), sorted.
    pub warm_load: Vec<Duration>,
    /// The file's size in bytes.
    pub file_bytes: u64,
    /// Requests of one warm start until verified and watching: (LIST, WATCH, other).
    pub warm_requests: (u64, u64, u64),
    /// Requests of one cold start until synced and watching: (LIST, WATCH, other).
    pub cold_requests: (u64, u64, u64),
    /// Process start (`spawn`) → first answered read of a cold `repocache-bench-start`
    /// process (mimalloc, as the CLI ships), sorted.
    pub process_cold: Vec<Duration>,
    /// Process start (`spawn`) → first answered read of a warm `repocache-bench-start`
    /// process (mimalloc, as the CLI ships), sorted.
    pub process_warm: Vec<Duration>,
    /// The same, cold, of `repocache-bench-start-system` (the system allocator), sorted.
    pub process_cold_system: Vec<Duration>,
    /// The same, warm, of `repocache-bench-start-system` (the system allocator), sorted.
    pub process_warm_system: Vec<Duration>,
}

fn median(v: &[Duration]) -> Duration {
    v.get(v.len() / 2).copied().unwrap_or_default()
}

impl WarmResult {
    /// The median of sorted durations.
    pub fn median_of(v: &[Duration]) -> Duration {
        median(v)
    }

    /// Median start → first read, cold.
    pub fn cold(&self) -> Duration {
        median(&self.cold_first_read)
    }

    /// Median start → first read, warm.
    pub fn warm(&self) -> Duration {
        median(&self.warm_first_read)
    }

    /// Warm as a share of cold (target ≤ 10 %).
    pub fn warm_share(&self) -> f64 {
        self.warm().as_secs_f64() / self.cold().as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Median process start → first read, cold.
    pub fn process_cold(&self) -> Duration {
        median(&self.process_cold)
    }

    /// Median process start → first read, warm.
    pub fn process_warm(&self) -> Duration {
        median(&self.process_warm)
    }

    /// Warm as a share of cold, from process start, on mimalloc as the CLI ships (target ≤ 10 %).
    pub fn process_warm_share(&self) -> f64 {
        self.process_warm_share_of(false)
    }

    /// Median process-start → first read, cold, on the system allocator.
    pub fn process_cold_system(&self) -> Duration {
        median(&self.process_cold_system)
    }

    /// Median process-start → first read, warm, on the system allocator.
    pub fn process_warm_system(&self) -> Duration {
        median(&self.process_warm_system)
    }

    /// Warm over cold from process start, on the system allocator (`system`) or mimalloc.
    pub fn process_warm_share_of(&self, system: bool) -> f64 {
        let (warm, cold) = if system {
            (self.process_warm_system(), self.process_cold_system())
        } else {
            (self.process_warm(), self.process_cold())
        };
        warm.as_secs_f64() / cold.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Objects loaded per second (the warm `start()` call).
    pub fn load_per_sec(&self) -> f64 {
        self.objects as f64 / median(&self.warm_load).as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// File bytes per object.
    pub fn bytes_per_object(&self) -> f64 {
        self.file_bytes as f64 / self.objects.max(1) as f64
    }
}

fn start(
    sim: &Sim,
    dir: Option<&Path>,
) -> anyhow::Result<(Cache<PackageRepository>, ReflectorHandle)> {
    let mut builder = ReflectorBuilder::new(Api::<PackageRepository>::all(sim.client()?));
    if let Some(dir) = dir {
        builder = builder.persist(Persist::new(dir, sim.url()).user("bench"));
    }
    Ok(builder.start())
}

/// The `name` binary (`repocache-bench-start` or `repocache-bench-start-system`), built beside
/// this one.
fn start_binary(name: &str) -> anyhow::Result<PathBuf> {
    let bin =
        std::env::current_exe()?.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        bin.exists(),
        "{} is missing (build it with `cargo build -p repocache-bench --bins`)",
        bin.display()
    );
    Ok(bin)
}

/// Starts a `repocache-bench-start` process (warm from `dir`, or cold) and returns the time from
/// `spawn` to its `answered` line: a start measured from process start, exec and the
/// process's own set-up (runtime, client) included. Waits for it to exit (0).
async fn process_start(
    bin: &Path,
    url: &str,
    probe: &str,
    dir: Option<&Path>,
) -> anyhow::Result<Duration> {
    use tokio::io::AsyncBufReadExt as _;
    let mut command = tokio::process::Command::new(bin);
    command
        .arg(url)
        .arg(probe)
        .args(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let t0 = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut line = String::new();
    tokio::time::timeout(
        SYNC_TIMEOUT,
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .context("no answer from the process")??;
    let answered = t0.elapsed();
    let out = tokio::time::timeout(SYNC_TIMEOUT, child.wait_with_output())
        .await
        .context("the process did not exit")??;
    anyhow::ensure!(
        line.trim() == "answered" && out.status.success(),
        "{} ({}): {}{}",
        bin.display(),
        out.status,
        line.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(answered)
}

/// The requests counted since the last reset: (LIST, WATCH, other) on the resource.
fn requests(sim: &Sim) -> (u64, u64, u64) {
    let counts = counts_on_resource(&sim.control());
    let list = counts.get("list").copied().unwrap_or(0);
    let watch = counts.get("watch").copied().unwrap_or(0);
    let all: u64 = counts.values().sum();
    (list, watch, all - list - watch)
}

/// Runs `reps` cold and `reps` warm starts (alternating) of a cache of `objects` objects.
pub async fn run(sim: &Sim, objects: usize, reps: usize) -> anyhow::Result<WarmResult> {
    let dir = std::env::temp_dir().join(format!("repocache-bench-warm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let probe = crate::fixture::name(objects / 2);
    // The first run writes the file (its stop writes it).
    let (cache, handle) = start(sim, Some(&dir))?;
    cache
        .wait_ready(SYNC_TIMEOUT)
        .await
        .context("the first sync")?;
    handle.stop().await;
    let file = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .context("no warm-start file written")?;
    let file_bytes = std::fs::metadata(&file)?.len();

    let mut result = WarmResult {
        objects,
        cold_first_read: Vec::new(),
        warm_first_read: Vec::new(),
        warm_verified: Vec::new(),
        warm_load: Vec::new(),
        file_bytes,
        warm_requests: (0, 0, 0),
        cold_requests: (0, 0, 0),
        process_cold: Vec::new(),
        process_warm: Vec::new(),
        process_cold_system: Vec::new(),
        process_warm_system: Vec::new(),
    };
    for rep in 0..reps {
        // Cold.
        sim.control().reset_requests();
        let t0 = Instant::now();
        let (cache, handle) = start(sim, None)?;
        cache.wait_ready(SYNC_TIMEOUT).await.context("cold sync")?;
        anyhow::ensure!(cache.get(&probe).is_some(), "cold: {probe} missing");
        result.cold_first_read.push(t0.elapsed());
        wait_for_watch_requests(&sim.control(), 1, SYNC_TIMEOUT).await;
        if rep == 0 {
            result.cold_requests = requests(sim);
        }
        handle.stop().await;

        // Warm.
        sim.control().reset_requests();
        let t0 = Instant::now();
        let (cache, handle) = start(sim, Some(&dir))?;
        let loaded = t0.elapsed();
        anyhow::ensure!(
            cache.state().is_warm_start() || cache.is_ready(),
            "not a warm start"
        );
        while cache.get(&probe).is_none() {
            anyhow::ensure!(t0.elapsed() < SYNC_TIMEOUT, "warm: {probe} never answered");
            tokio::task::yield_now().await;
        }
        result.warm_first_read.push(t0.elapsed());
        result.warm_load.push(loaded);
        cache
            .wait_ready(SYNC_TIMEOUT)
            .await
            .context("warm verification")?;
        result.warm_verified.push(t0.elapsed());
        wait_for_watch_requests(&sim.control(), 1, SYNC_TIMEOUT).await;
        if rep == 0 {
            result.warm_requests = requests(sim);
        }
        handle.stop().await;
    }
    // From process start: a short-lived process per start, alternately cold and warm, and
    // alternately on mimalloc (as the CLI ships) and on the system allocator.
    let bin = start_binary("repocache-bench-start")?;
    let system = start_binary("repocache-bench-start-system")?;
    for _ in 0..reps {
        result
            .process_cold
            .push(process_start(&bin, sim.url(), &probe, None).await?);
        result
            .process_warm
            .push(process_start(&bin, sim.url(), &probe, Some(&dir)).await?);
        result
            .process_cold_system
            .push(process_start(&system, sim.url(), &probe, None).await?);
        result
            .process_warm_system
            .push(process_start(&system, sim.url(), &probe, Some(&dir)).await?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    for v in [
        &mut result.process_cold,
        &mut result.process_warm,
        &mut result.process_cold_system,
        &mut result.process_warm_system,
        &mut result.cold_first_read,
        &mut result.warm_first_read,
        &mut result.warm_verified,
        &mut result.warm_load,
    ] {
        v.sort();
    }
    Ok(result)
}
