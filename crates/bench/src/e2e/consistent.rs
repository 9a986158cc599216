//! Item 10: consistent reads against fresh reads. `ReadPolicy::Consistent` learns the server's
//! current resourceVersion with one `LIST limit=1`, waits until the snapshot has reached it and
//! answers from the snapshot (the API server's consistent reads from its watch cache, KEP-2340);
//! `ReadPolicy::Fresh` sends the read itself (a full LIST, or a GET). Both run on the same
//! cache, whose client goes through a counting proxy ([`super::wire`]), so the bytes are the
//! bytes on the wire (HTTP heads and chunk framing included; the cache's open watch is counted
//! too, and it runs through both policies alike).
//!
//! Two server states: quiet (no writes during the reads), and busy (a writer patches other
//! objects of the kind at a steady rate, so the server's resourceVersion keeps moving and
//! `Consistent` must wait for the watch to deliver it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use glasskube_api::PackageRepository;
use kube::Api;
use repocache::{Cache, ReadPolicy, ReflectorBuilder};
use serde_json::json;

use super::sim::{RESOURCE, Sim};
use super::sync::SYNC_TIMEOUT;
use super::wire::CountingProxy;
use crate::fixture;

/// One policy's reads in one server state.
#[derive(Clone, Debug)]
pub struct PolicyRun {
    /// `Consistent` or `Fresh`.
    pub policy: &'static str,
    /// `list` or `get`.
    pub op: &'static str,
    /// `quiet` or `busy`.
    pub server: &'static str,
    /// Latency of each read, sorted.
    pub latencies: Vec<Duration>,
    /// Reads answered from the snapshot (the rest were live reads).
    pub from_snapshot: usize,
    /// Bytes client → server during the reads.
    pub up: u64,
    /// Bytes server → client during the reads.
    pub down: u64,
}

impl PolicyRun {
    /// Reads made.
    pub fn reads(&self) -> usize {
        self.latencies.len()
    }

    /// The latency at quantile `q` (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }

    /// Bytes on the wire per read, both ways.
    pub fn bytes_per_read(&self) -> f64 {
        (self.up + self.down) as f64 / self.reads().max(1) as f64
    }
}

/// Read-your-own-writes through `CacheLayer` on a fault-free loopback: how long a write's
/// snapshot takes to reflect it (the wait the layer adds to the write), and where the read
/// right after the write was answered.
#[derive(Clone, Debug)]
pub struct OwnWritesRun {
    /// Write → read pairs made.
    pub pairs: usize,
    /// For each pair, from the write's response to the snapshot reflecting its
    /// resourceVersion (`Cache::wait_for`), sorted: the read-your-writes wait.
    pub waits: Vec<Duration>,
    /// Each layered write (its wait included), sorted.
    pub layered_writes: Vec<Duration>,
    /// Each write through a client without the layer, sorted.
    pub plain_writes: Vec<Duration>,
    /// Reads right after a layered write that the layer answered from the snapshot.
    pub reads_local: u64,
    /// Reads right after a layered write that passed through (the snapshot was behind).
    pub reads_behind: u64,
}

/// Everything item 10 measured.
#[derive(Clone, Debug)]
pub struct ConsistentResult {
    /// Objects on the server.
    pub objects: usize,
    /// The busy server's write rate, per second.
    pub writes_per_sec: u64,
    /// Writes the busy writer made.
    pub writes: u64,
    /// One run per (server state, op, policy).
    pub runs: Vec<PolicyRun>,
    /// Read-your-own-writes through the layer, quiet server.
    pub own_writes: OwnWritesRun,
}

/// The value at quantile `q` (0..=1) of sorted durations, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Item 10: `lists` LISTs and `gets` GETs per policy and server state.
pub async fn run(
    sim: &Sim,
    n: usize,
    lists: usize,
    gets: usize,
    writes_per_sec: u64,
) -> anyhow::Result<ConsistentResult> {
    let upstream = sim
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = CountingProxy::start(upstream).await?;
    let (cache, handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(proxy.client()?)).start();
    cache.wait_ready(SYNC_TIMEOUT).await?;
    let names: Vec<String> = (0..n).map(fixture::name).collect();

    let mut runs = Vec::new();
    let mut writes = 0;
    for server in ["quiet", "busy"] {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = (server == "busy").then(|| {
            let control = sim.control();
            let stop = stop.clone();
            // The last tenth of the objects is written; reads go to the first.
            let first = n - n / 10;
            std::thread::spawn(move || {
                let period = Duration::from_secs(1) / u32::try_from(writes_per_sec.max(1)).unwrap_or(u32::MAX);
                let mut written = 0u64;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let name = fixture::name(first + (written as usize % (n / 10).max(1)));
                    let patch = json!({"metadata": {"annotations": {"bench.repocache.dev/consistent": written.to_string()}}});
                    if control.merge_patch(RESOURCE, None, &name, &patch).is_ok() {
                        written += 1;
                    }
                    next += period;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                written
            })
        });
        if writer.is_some() {
            // Let the writer reach its rate before timing.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for policy in [ReadPolicy::Consistent, ReadPolicy::Fresh] {
            runs.push(lists_run(&cache, &proxy, server, policy, lists, n).await?);
            runs.push(gets_run(&cache, &proxy, server, policy, gets, &names[..n - n / 10]).await?);
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(writer) = writer {
            let written = writer
                .join()
                .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
            writes += written;
        }
    }
    let own_writes = own_writes(sim, &cache, &names[..n - n / 10], gets).await?;
    handle.stop().await;
    Ok(ConsistentResult {
        objects: n,
        writes_per_sec,
        writes,
        runs,
        own_writes,
    })
}

fn policy_name(policy: ReadPolicy) -> &'static str {
    match policy {
        ReadPolicy::Consistent => "Consistent",
        ReadPolicy::Fresh => "Fresh",
        _ => "other",
    }
}

/// Times `reads` reads made by `read` (given the read's index; it answers whether the read was
/// live) one at a time, and counts the bytes the proxy saw meanwhile.
async fn timed_reads(
    proxy: &CountingProxy,
    server: &'static str,
    policy: ReadPolicy,
    op: &'static str,
    reads: usize,
    mut read: impl AsyncFnMut(usize) -> anyhow::Result<bool>,
) -> anyhow::Result<PolicyRun> {
    let (up0, down0) = proxy.counters().get();
    let mut latencies = Vec::with_capacity(reads);
    let mut from_snapshot = 0;
    for i in 0..reads {
        let started = Instant::now();
        let live = read(i).await?;
        latencies.push(started.elapsed());
        from_snapshot += usize::from(!live);
    }
    let (up1, down1) = proxy.counters().get();
    latencies.sort_unstable();
    Ok(PolicyRun {
        policy: policy_name(policy),
        op,
        server,
        latencies,
        from_snapshot,
        up: up1 - up0,
        down: down1 - down0,
    })
}

async fn lists_run(
    cache: &Cache<PackageRepository>,
    proxy: &CountingProxy,
    server: &'static str,
    policy: ReadPolicy,
    reads: usize,
    n: usize,
) -> anyhow::Result<PolicyRun> {
    timed_reads(proxy, server, policy, "list", reads, async |_| {
        let read = cache.list_with(policy).await.context("list_with")?;
        anyhow::ensure!(
            read.value.len() == n,
            "{} LIST returned {} of {n}",
            policy_name(policy),
            read.value.len()
        );
        Ok(read.is_live())
    })
    .await
}

async fn gets_run(
    cache: &Cache<PackageRepository>,
    proxy: &CountingProxy,
    server: &'static str,
    policy: ReadPolicy,
    reads: usize,
    names: &[String],
) -> anyhow::Result<PolicyRun> {
    timed_reads(proxy, server, policy, "get", reads, async |i| {
        let name = &names[(i * 7919) % names.len()];
        let read = cache.get_with(name, policy).await.context("get_with")?;
        anyhow::ensure!(
            read.value.is_some(),
            "{} GET {name}: missing",
            policy_name(policy)
        );
        Ok(read.is_live())
    })
    .await
}

/// `pairs` writes through a layered client, each followed by a GET through it, and as many
/// writes through a plain client, each followed by `Cache::wait_for` of its resourceVersion.
async fn own_writes(
    sim: &Sim,
    cache: &Cache<PackageRepository>,
    names: &[String],
    pairs: usize,
) -> anyhow::Result<OwnWritesRun> {
    use kube::api::{Patch, PatchParams};
    use repocache::layer::{CacheLayer, Outcome, Verb};

    let layer = CacheLayer::new().cache(cache);
    let layered = Api::<PackageRepository>::all(layer.client(sim.client()?));
    let plain = Api::<PackageRepository>::all(sim.client()?);
    let kind = "PackageRepository";
    let mut waits = Vec::with_capacity(pairs);
    let mut layered_writes = Vec::with_capacity(pairs);
    let mut plain_writes = Vec::with_capacity(pairs);
    let before = layer.stats();
    for i in 0..pairs {
        let name = &names[(i * 7919) % names.len()];
        let patch = |side: &str| {
            Patch::Merge(json!({"metadata": {"annotations": {
                "bench.repocache.dev/own-writes": format!("{side}-{i}")
            }}}))
        };
        // Plain write, then the wait for its version: the read-your-writes wait itself.
        let started = Instant::now();
        let written = plain
            .patch(name, &PatchParams::default(), &patch("plain"))
            .await
            .with_context(|| format!("PATCH {name}"))?;
        plain_writes.push(started.elapsed());
        let rv = written
            .metadata
            .resource_version
            .context("a write without resourceVersion")?;
        let started = Instant::now();
        cache
            .wait_for(&rv, Duration::from_secs(10))
            .await
            .context("wait_for")?;
        waits.push(started.elapsed());
        // Layered write (it waits for its snapshot), then the read.
        let started = Instant::now();
        layered
            .patch(name, &PatchParams::default(), &patch("layered"))
            .await
            .with_context(|| format!("PATCH {name} through the layer"))?;
        layered_writes.push(started.elapsed());
        layered
            .get(name)
            .await
            .with_context(|| format!("GET {name}"))?;
    }
    let after = layer.stats();
    let delta = |outcome: Outcome| {
        after.count(kind, Verb::Get, outcome) - before.count(kind, Verb::Get, outcome)
    };
    waits.sort_unstable();
    layered_writes.sort_unstable();
    plain_writes.sort_unstable();
    Ok(OwnWritesRun {
        pairs,
        waits,
        layered_writes,
        plain_writes,
        reads_local: delta(Outcome::Served),
        reads_behind: delta(Outcome::Behind),
    })
}
