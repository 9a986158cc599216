//! Item 8: API load. (a) The requests that reach apisim for a fixed number of reads, uncached
//! (`Api::get` / `Api::list`, one request each) against repocache after its sync; (b) several
//! replicas of one operator, each with its own client and cache, against one apisim: the
//! requests each replica sends after the sync over a fixed window of reads.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use glasskube_api::PackageRepository;
use kube::Api;
use kube::api::ListParams;
use repocache::stats::ApiReason;
use repocache::{Cache, ReflectorBuilder, ReflectorHandle};

use super::sim::{self, Sim};
use super::sync::SYNC_TIMEOUT;
use crate::fixture;

/// One way of reading, and what it cost the server.
#[derive(Clone, Debug)]
pub struct ReadsRun {
    /// `get` or `list`.
    pub op: &'static str,
    /// Reads made.
    pub reads: usize,
    /// Wall time of the reads.
    pub took: Duration,
    /// Requests apisim counted during the reads, by verb.
    pub requests: BTreeMap<String, u64>,
}

impl ReadsRun {
    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// Item 8a: the same reads uncached and through repocache.
#[derive(Clone, Debug)]
pub struct LoadResult {
    /// Objects on the server.
    pub objects: usize,
    /// `Api::get` / `Api::list` against apisim.
    pub uncached: Vec<ReadsRun>,
    /// `Cache::get` / `Cache::list` after the sync.
    pub cached: Vec<ReadsRun>,
    /// Requests the cache itself counted during its reads (`Stats::api_requests`, all reasons).
    pub cache_counted: u64,
    /// Requests apisim counted for the cache's sync (LIST pages and the WATCH), by verb.
    pub sync_requests: BTreeMap<String, u64>,
}

/// Item 8a: `reads` GETs and `lists` LISTs, uncached then cached.
pub async fn reads(sim: &Sim, n: usize, reads: usize, lists: usize) -> anyhow::Result<LoadResult> {
    let control = sim.control();
    let api = Api::<PackageRepository>::all(sim.client()?);
    let names: Vec<String> = (0..n).map(fixture::name).collect();

    // Uncached.
    let mut uncached = Vec::new();
    control.reset_requests();
    let started = Instant::now();
    for i in 0..reads {
        let name = &names[i % n];
        black_box(api.get(name).await.with_context(|| format!("GET {name}"))?);
    }
    uncached.push(ReadsRun {
        op: "get",
        reads,
        took: started.elapsed(),
        requests: sim::counts_on_resource(&control),
    });
    control.reset_requests();
    let started = Instant::now();
    for _ in 0..lists {
        let list = api.list(&ListParams::default()).await.context("LIST")?;
        anyhow::ensure!(list.items.len() == n, "LIST returned {}", list.items.len());
    }
    uncached.push(ReadsRun {
        op: "list",
        reads: lists,
        took: started.elapsed(),
        requests: sim::counts_on_resource(&control),
    });

    // Through repocache: sync, wait for the watch, then read.
    control.reset_requests();
    let (cache, handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(sim.client()?)).start();
    cache.wait_ready(SYNC_TIMEOUT).await?;
    sim::wait_for_watch_requests(&control, 1, Duration::from_secs(10)).await;
    let sync_requests = sim::counts_on_resource(&control);
    control.reset_requests();
    let api_before = total_api(&cache);
    let mut cached = Vec::new();
    let started = Instant::now();
    let mut found = 0usize;
    for i in 0..reads {
        found += usize::from(black_box(cache.get(&names[i % n])).is_some());
    }
    cached.push(ReadsRun {
        op: "get",
        reads,
        took: started.elapsed(),
        requests: sim::counts_on_resource(&control),
    });
    anyhow::ensure!(found == reads, "the cache found {found} of {reads} objects");
    control.reset_requests();
    let started = Instant::now();
    for _ in 0..lists {
        let list = black_box(cache.list());
        anyhow::ensure!(list.len() == n, "Cache::list returned {}", list.len());
    }
    cached.push(ReadsRun {
        op: "list",
        reads: lists,
        took: started.elapsed(),
        requests: sim::counts_on_resource(&control),
    });
    let cache_counted = total_api(&cache) - api_before;
    handle.stop().await;
    Ok(LoadResult {
        objects: n,
        uncached,
        cached,
        cache_counted,
        sync_requests,
    })
}

fn total_api<K>(cache: &Cache<K>) -> u64 {
    let stats = cache.stats();
    ApiReason::ALL.iter().map(|&r| stats.api(r)).sum()
}

/// Item 8b: replicas of one operator against one apisim.
#[derive(Clone, Debug)]
pub struct ReplicaResult {
    /// Replicas (each its own client and cache).
    pub replicas: usize,
    /// Objects on the server.
    pub objects: usize,
    /// The window of reads after the sync.
    pub window: Duration,
    /// apisim's bookmark interval.
    pub bookmark_interval: Duration,
    /// Wall time until every replica was ready (started together).
    pub sync_wall: Duration,
    /// Requests apisim counted during the sync, all replicas, by verb.
    pub sync_requests: BTreeMap<String, u64>,
    /// Requests apisim counted during the window, all replicas, by verb.
    pub window_requests: BTreeMap<String, u64>,
    /// Requests the caches counted themselves during the window, all replicas.
    pub cache_counted: u64,
    /// Reads made during the window, all replicas.
    pub reads: u64,
    /// Open watch streams at the end of the window.
    pub open_watches: usize,
}

/// Item 8b: `replicas` caches on as many clients; after all are ready and their watches open,
/// every replica reads every object once per `period` for `window`.
pub async fn replicas(
    sim: &Sim,
    n: usize,
    replicas: usize,
    window: Duration,
    bookmark_interval: Duration,
) -> anyhow::Result<ReplicaResult> {
    const PERIOD: Duration = Duration::from_millis(100);
    let control = sim.control();
    control.reset_requests();
    let started = Instant::now();
    let mut caches: Vec<(Cache<PackageRepository>, ReflectorHandle)> = Vec::new();
    for _ in 0..replicas {
        let api = Api::<PackageRepository>::all(sim.client()?);
        caches.push(ReflectorBuilder::new(api).start());
    }
    for (cache, _) in &caches {
        cache.wait_ready(SYNC_TIMEOUT).await?;
    }
    let sync_wall = started.elapsed();
    let watches = u64::try_from(replicas).unwrap_or(u64::MAX);
    anyhow::ensure!(
        sim::wait_for_watch_requests(&control, watches, Duration::from_secs(30)).await,
        "not every replica opened its watch"
    );
    let sync_requests = sim::counts_on_resource(&control);

    control.reset_requests();
    let api_before: u64 = caches.iter().map(|(c, _)| total_api(c)).sum();
    let names: std::sync::Arc<[String]> = (0..n).map(fixture::name).collect();
    let deadline = tokio::time::Instant::now() + window;
    let mut tasks = Vec::new();
    for (cache, _) in &caches {
        let cache = cache.clone();
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            let mut reads = 0u64;
            let mut tick = tokio::time::interval(PERIOD);
            while tokio::time::Instant::now() < deadline {
                tick.tick().await;
                for name in names.iter() {
                    black_box(cache.get(name));
                    reads += 1;
                }
            }
            reads
        }));
    }
    let mut reads = 0;
    for task in tasks {
        reads += task.await.context("a replica's reader panicked")?;
    }
    let window_requests = sim::counts_on_resource(&control);
    let open_watches = control.open_watches();
    let cache_counted = caches.iter().map(|(c, _)| total_api(c)).sum::<u64>() - api_before;
    for (_, handle) in caches {
        handle.stop().await;
    }
    Ok(ReplicaResult {
        replicas,
        objects: n,
        window,
        bookmark_interval,
        sync_wall,
        sync_requests,
        window_requests,
        cache_counted,
        reads,
        open_watches,
    })
}
