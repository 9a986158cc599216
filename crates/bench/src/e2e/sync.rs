//! Item 6: the initial sync of N `PackageRepository` objects over HTTP, repocache
//! (`ReflectorBuilder::start` then `wait_ready`) against kube-runtime's `reflector` (until its
//! `Store::wait_until_ready`), with the same `watcher::Config`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use glasskube_api::PackageRepository;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, watcher};
use repocache::ReflectorBuilder;

use super::sim::{self, Sim};

/// How long one sync may take before the run is called failed.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// How the watcher fills the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// LIST (paginated: `limit` = this page size) then WATCH.
    ListWatch {
        /// The page size (`watcher::Config::page_size`).
        page: u32,
    },
    /// One WATCH with `sendInitialEvents=true` (`watcher::Config::streaming_lists`).
    Streaming,
}

impl Strategy {
    /// The watcher config both sides use.
    pub fn config(self) -> watcher::Config {
        match self {
            Self::ListWatch { page } => watcher::Config::default().page_size(page),
            Self::Streaming => watcher::Config::default().streaming_lists(),
        }
    }

    /// How the report names it.
    pub fn label(self) -> String {
        match self {
            Self::ListWatch { page: 500 } => {
                "LIST+WATCH, pages of 500 (`watcher::Config::default()`)".to_owned()
            }
            Self::ListWatch { page } => {
                format!("LIST+WATCH, pages of {page} (`page_size({page})`)")
            }
            Self::Streaming => "streaming list (`streaming_lists()`, sendInitialEvents)".to_owned(),
        }
    }
}

/// One strategy's repetitions, both sides.
#[derive(Clone, Debug)]
pub struct SyncRow {
    /// The watcher config.
    pub strategy: Strategy,
    /// Objects synced.
    pub objects: usize,
    /// repocache: start → `wait_ready`, one per repetition.
    pub repocache: Vec<Duration>,
    /// kube-runtime: stream start → `wait_until_ready`, one per repetition.
    pub kube: Vec<Duration>,
    /// Requests apisim counted until repocache was ready (last repetition), by verb.
    pub repocache_requests: BTreeMap<String, u64>,
    /// Requests apisim counted until kube-runtime's store was ready (last repetition), by verb.
    pub kube_requests: BTreeMap<String, u64>,
}

/// The median of some durations (the upper one of an even count).
pub fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Runs `reps` repetitions of each strategy against `sim` (seeded with `objects` objects),
/// alternating which side goes first.
pub async fn run(
    sim: &Sim,
    objects: usize,
    strategies: &[Strategy],
    reps: usize,
) -> anyhow::Result<Vec<SyncRow>> {
    let mut rows = Vec::new();
    for &strategy in strategies {
        let mut row = SyncRow {
            strategy,
            objects,
            repocache: Vec::new(),
            kube: Vec::new(),
            repocache_requests: BTreeMap::new(),
            kube_requests: BTreeMap::new(),
        };
        for rep in 0..reps.max(1) {
            for side in 0..2 {
                let ours = (rep + side) % 2 == 0;
                let control = sim.control();
                control.reset_requests();
                if ours {
                    row.repocache
                        .push(repocache_sync(sim, strategy, objects).await?);
                    row.repocache_requests = sim::counts_on_resource(&control);
                } else {
                    row.kube.push(kube_sync(sim, strategy, objects).await?);
                    row.kube_requests = sim::counts_on_resource(&control);
                }
                // Let the closed connections go before the next run.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        eprintln!(
            "  e2e sync, {}: repocache {:?}, kube-runtime {:?} (medians)",
            strategy.label(),
            median(&row.repocache).unwrap_or_default(),
            median(&row.kube).unwrap_or_default()
        );
        rows.push(row);
    }
    Ok(rows)
}

async fn repocache_sync(sim: &Sim, strategy: Strategy, n: usize) -> anyhow::Result<Duration> {
    let api = Api::<PackageRepository>::all(sim.client()?);
    let started = Instant::now();
    let (cache, handle) = ReflectorBuilder::new(api)
        .watcher_config(strategy.config())
        .start();
    cache
        .wait_ready(SYNC_TIMEOUT)
        .await
        .context("repocache initial sync")?;
    let took = started.elapsed();
    let len = cache.snapshot().len();
    handle.stop().await;
    anyhow::ensure!(len == n, "repocache synced {len} objects, expected {n}");
    Ok(took)
}

async fn kube_sync(sim: &Sim, strategy: Strategy, n: usize) -> anyhow::Result<Duration> {
    let api = Api::<PackageRepository>::all(sim.client()?);
    let started = Instant::now();
    let (store, writer) = reflector::store::<PackageRepository>();
    let stream = watcher(api, strategy.config())
        .default_backoff()
        .reflect(writer);
    let task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    let ready = tokio::time::timeout(SYNC_TIMEOUT, store.wait_until_ready()).await;
    let took = started.elapsed();
    let len = store.len();
    task.abort();
    let _ = task.await;
    ready
        .context("kube-runtime initial sync timed out")?
        .context("kube-runtime initial sync")?;
    anyhow::ensure!(len == n, "kube-runtime synced {len} objects, expected {n}");
    Ok(took)
}
