//! The chaos harness: from a seed, a schedule of server writes interleaved with apisim's faults,
//! against several caches (with and without a label selector, with and without streaming
//! lists) that have readers and subscribers attached the whole time. Every run checks:
//!
//! 1. **Convergence, nothing lost**: after the last fault, every cache (and every subscriber's
//!    replayed view) equals the server's state for its selector: same names, resourceVersions,
//!    labels and specs.
//! 2. **No torn snapshots**: no object in a snapshot is newer than the snapshot's
//!    resourceVersion, and every object a reader sees is a version the server wrote (its
//!    per-write `epoch` label and its spec match the write that produced its resourceVersion).
//! 3. **Monotonic**: a reader never sees a cache's generation or resourceVersion go backwards
//!    (apisim's resourceVersion counter continues across restarts).
//! 4. **Readers never block** is *reported*, not asserted (a busy machine can hold any thread
//!    up): the longest `get`/`list`/`snapshot`, the reads over [`READ_BOUND`], and a noise
//!    control timed between reads (`cargo xtask chaos` prints them).
//! 5. **The reflector never dies**: every cache is back to `Ready` at the end, with its task
//!    still running.
//! 6. **Reads make no requests**: the server never sees a GET of a single object (one reader
//!    runs on the runtime, where a read could spawn one).
//! 7. **Whole snapshots**: every snapshot a subscriber saw whole equals a state the server went
//!    through, for the cache's selector (names written through the side door left out): a
//!    whole relist or a whole prefix of the events, never part of a relist.
//! 8. **Relists are explained**: one initial relist, none manual, TTL relists only with a TTL
//!    and at most one per TTL, `expired`/`error` relists within the injected faults' budget.
//!
//! 9. **The history** ([`history`]): clients write and read ConfigMaps through the layered
//!    client and through `Cache` with `AtLeast` / `Consistent` while the faults run; every
//!    operation is recorded with its resourceVersions and checked: read-your-own-writes,
//!    monotonic reads, consistent reads never older than the server at the call, and the
//!    ConfigMap caches (one without a TTL) end equal to the server.
//!
//! One cache has no TTL: only watch events keep it current, so a writer that dropped events
//! is not rescued by periodic relists. After the chaos, the schedule writes every name once
//! through the API (see `Schedule::sweep`), so that converging needs the events alone.
//!
//! The schedule is a pure function of the seed; thread timing is not, so a failure is
//! reproduced by re-running its seed (see `cargo xtask chaos --seed S --seeds 1`).

pub mod history;
pub mod restart;
mod rng;
mod schedule;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use apisim::{Control, Server, ServerConfig, ServerHandle};
use futures::StreamExt;
use glasskube_api::PackageRepository;
use kube::Api;
use kube::runtime::watcher;
use repocache::stats::{EventType, RelistReason};
use repocache::{Cache, CacheConfig, CacheState, Change, ReflectorBuilder};
use serde_json::Value;

pub use rng::Rng;
pub use schedule::Disruption;
use schedule::{GROUP_LABEL, Schedule, State, Version};

/// The resource every chaos run works on.
pub const RESOURCE: &str = "packagerepositories";

/// The read latency the report counts reads over: far above a lock-free read, low enough to
/// show a lock or I/O on the read path. Reported by `cargo xtask chaos`, never asserted in
/// `cargo test` (a busy machine can hold a thread up longer).
pub const READ_BOUND: Duration = Duration::from_millis(50);

/// How one chaos run is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// The seed of the schedule.
    pub seed: u64,
    /// How long writes and faults go on.
    pub duration: Duration,
    /// The caches' TTL (short, so that side-door writes and stalls are caught).
    pub ttl: Duration,
    /// How long after the last fault the caches may take to converge before the run fails.
    pub converge_within: Duration,
}

impl Options {
    /// The defaults for `seed`: 2.5 s of chaos, a 400 ms TTL, 30 s to converge.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            duration: Duration::from_millis(2500),
            ttl: Duration::from_millis(400),
            converge_within: Duration::from_secs(30),
        }
    }

    /// The same options with another duration.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }
}

/// What one cache did during a run.
#[derive(Clone, Debug)]
pub struct CacheReport {
    /// Which cache: its selector and list mode.
    pub name: &'static str,
    /// Completed relists (all reasons).
    pub relists: u64,
    /// Watch and list errors the reflector saw (and retried).
    pub errors: u64,
    /// Objects skipped because they did not decode.
    pub decode_failures: u64,
    /// The last generation.
    pub generation: u64,
    /// Whether a reader saw the cache in a degraded state (stale or failed) at some point.
    pub degraded_seen: bool,
    /// Batches the subscribers missed (and resynced from).
    pub lagged: u64,
    /// The cache's TTL (zero: none, only watch events keep it current).
    pub ttl: Duration,
    /// Relists with reason `expired` or `error` (checked against [`Report::relist_budget`]).
    pub fault_relists: u64,
}

/// The outcome of one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The chaos duration.
    pub duration: Duration,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Server writes made (through the API and the side door).
    pub writes: u64,
    /// From the end of the faults until every cache and subscriber equalled the server
    /// (`None`: they did not within the allowed time).
    pub convergence: Option<Duration>,
    /// The longest single read (`get`, `list` or `snapshot`).
    pub max_read: Duration,
    /// The 99th percentile of reads (an upper bound, to the microsecond).
    pub p99_read: Duration,
    /// Reads made.
    pub reads: u64,
    /// Reads that took longer than [`READ_BOUND`] (reported, not a violation: a busy machine
    /// can stall any thread that long).
    pub slow_reads: u64,
    /// The longest noise-control operation (a map lookup the reader threads time between
    /// reads): how long the machine alone held a thread up in this run.
    pub max_control: Duration,
    /// How many `expired`/`error` relists per cache the injected faults explain.
    pub relist_budget: u64,
    /// Published snapshots the subscribers saw whole and the per-snapshot check compared
    /// with the server's history.
    pub snapshots_checked: usize,
    /// Objects on the server that a cache or subscriber did not hold at the end.
    pub lost: usize,
    /// Objects a cache or subscriber held at the end that the server did not.
    pub extra: usize,
    /// Objects held at the end in another version than the server's.
    pub stale: usize,
    /// Every invariant violation, one line each.
    pub violations: Vec<String>,
    /// Per cache.
    pub caches: Vec<CacheReport>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The history checker's workload and findings (see [`history`]).
    pub history: history::HistoryReport,
}

impl Report {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
            && self.lost == 0
            && self.extra == 0
            && self.stale == 0
            && self.convergence.is_some()
    }

    /// One line: the seed, the outcome and the main figures.
    pub fn summary(&self) -> String {
        let faults: u64 = self.faults.values().sum();
        format!(
            "seed {:>5}: {} writes {:>4} faults {:>3} converged {:>8} max read {:>9.1?} lost {} extra {} stale {} history ops {} ({:.1?}){}",
            self.seed,
            if self.passed() { "ok  " } else { "FAIL" },
            self.writes,
            faults,
            self.convergence
                .map_or_else(|| "never".to_owned(), |d| format!("{d:.1?}")),
            self.max_read,
            self.lost,
            self.extra,
            self.stale,
            self.history.findings.operations,
            self.elapsed,
            match self.violations.first() {
                Some(v) => format!(": {v}"),
                None => String::new(),
            }
        )
    }
}

/// One cache under test: how it is configured, and its handles.
struct Subject {
    name: &'static str,
    /// Only objects in this group (label selector), or all.
    group: Option<&'static str>,
    ttl: Duration,
    cache: Cache<PackageRepository>,
    handle: repocache::ReflectorHandle,
    view: Arc<parking_lot::Mutex<View>>,
    subscriber: tokio::task::JoinHandle<()>,
}

/// A subscriber's replayed view of a cache.
struct View {
    objects: BTreeMap<String, Arc<PackageRepository>>,
    lagged: u64,
    anomalies: Vec<String>,
    /// The generation of the changes applied last.
    generation: u64,
    /// Until the first `Synced`, and from a `Lagged` to its `Synced`: the view is being brought
    /// to a snapshot by diffing, and is no snapshot meanwhile.
    resyncing: bool,
    /// The view at the end of every published generation it saw whole (name → resourceVersion),
    /// consecutive duplicates dropped: what the per-snapshot check compares with the server's
    /// history.
    published: Vec<BTreeMap<String, u64>>,
}

impl Default for View {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            lagged: 0,
            anomalies: Vec::new(),
            generation: 0,
            resyncing: true,
            published: Vec::new(),
        }
    }
}

impl View {
    /// Records the view as one published snapshot.
    fn record(&mut self) {
        let view: BTreeMap<String, u64> = self
            .objects
            .iter()
            .map(|(name, o)| (name.clone(), rv_of(o)))
            .collect();
        if self.published.last() != Some(&view) {
            self.published.push(view);
        }
    }

    fn apply(&mut self, change: Change<PackageRepository>) {
        let generation = change.generation();
        // The first change of a newer generation: the view now equals the previous snapshot
        // (every change of a generation comes before the next generation's).
        // (Not before a `Lagged`: the missed changes may have cut a generation short.)
        if generation != self.generation
            && !self.resyncing
            && !matches!(change, Change::Lagged { .. })
        {
            self.record();
        }
        self.generation = generation;
        match change {
            Change::Added { object, .. } => {
                let name = name_of(&object);
                if let Some(old) = self.objects.insert(name.clone(), object) {
                    self.anomaly(format!(
                        "Added {name} while the view held it at rv {}",
                        rv_of(&old)
                    ));
                }
            }
            Change::Updated { old, new, .. } => {
                let name = name_of(&new);
                match self.objects.insert(name.clone(), new) {
                    Some(held) if rv_of(&held) == rv_of(&old) => {}
                    held => self.anomaly(format!(
                        "Updated {name} from rv {} but the view held {:?}",
                        rv_of(&old),
                        held.map(|h| rv_of(&h))
                    )),
                }
            }
            Change::Deleted { object, .. } => {
                let name = name_of(&object);
                if self.objects.remove(&name).is_none() {
                    self.anomaly(format!("Deleted {name}, which the view did not hold"));
                }
            }
            Change::Lagged { missed, .. } => {
                self.lagged += missed;
                self.resyncing = true;
            }
            Change::Synced { .. } => {
                self.resyncing = false;
                self.record();
            }
        }
    }

    fn anomaly(&mut self, what: String) {
        if self.anomalies.len() < 10 {
            self.anomalies.push(what);
        }
    }
}

fn name_of(obj: &PackageRepository) -> String {
    obj.metadata.name.clone().unwrap_or_default()
}

fn rv_of(obj: &PackageRepository) -> u64 {
    obj.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// What a cache (or view) holds of one object, as compared with the server.
#[derive(Clone, Debug, PartialEq)]
struct Held {
    rv: String,
    labels: BTreeMap<String, String>,
    spec: Value,
}

fn held(obj: &PackageRepository) -> Held {
    Held {
        rv: obj.metadata.resource_version.clone().unwrap_or_default(),
        labels: obj.metadata.labels.clone().unwrap_or_default(),
        spec: serde_json::to_value(&obj.spec).unwrap_or(Value::Null),
    }
}

/// The server's objects for a selector, normalised through the typed kind.
fn expected(control: &Control, group: Option<&str>) -> BTreeMap<String, Held> {
    let mut out = BTreeMap::new();
    for value in control.list(RESOURCE).unwrap_or_default() {
        let Ok(obj) = serde_json::from_value::<PackageRepository>(value) else {
            continue;
        };
        let in_group = obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(GROUP_LABEL))
            .map(String::as_str);
        if group.is_none_or(|g| in_group == Some(g)) {
            out.insert(name_of(&obj), held(&obj));
        }
    }
    out
}

/// Lost, extra and stale objects of `actual` against `expected`.
fn differences(
    expected: &BTreeMap<String, Held>,
    actual: &BTreeMap<String, Held>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let lost = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .cloned()
        .collect();
    let extra = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    let stale = expected
        .iter()
        .filter_map(|(k, e)| match actual.get(k) {
            Some(a) if a != e => Some(format!("{k} (rv {} instead of {})", a.rv, e.rv)),
            _ => None,
        })
        .collect();
    (lost, extra, stale)
}

/// Read latencies: 1 µs buckets up to 1 ms, then 100 µs buckets up to 100 ms, then overflow.
struct Latencies {
    buckets: Vec<u64>,
    max: Duration,
    count: u64,
}

impl Latencies {
    fn new() -> Self {
        Self {
            buckets: vec![0; 2001],
            max: Duration::ZERO,
            count: 0,
        }
    }

    fn record(&mut self, d: Duration) {
        let us = d.as_micros();
        let i = if us < 1000 {
            us as usize
        } else {
            (1000 + (us - 1000) / 100).min(2000) as usize
        };
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    /// How many recorded durations exceeded `bound` (to the bucket).
    fn over(&self, bound: Duration) -> u64 {
        let us = bound.as_micros();
        let first = if us < 1000 {
            us as usize + 1
        } else {
            ((1000 + (us - 1000) / 100) as usize + 1).min(2000)
        };
        self.buckets[first.min(self.buckets.len())..].iter().sum()
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    fn quantile(&self, q: f64) -> Duration {
        let target = ((self.count as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                // The bucket's upper bound: the quantile is at most this.
                let us = if i < 1000 {
                    i + 1
                } else {
                    1000 + (i - 999) * 100
                };
                return Duration::from_micros(us as u64).min(self.max);
            }
        }
        self.max
    }
}

/// What one reader thread saw.
struct ReaderLog {
    latencies: Latencies,
    /// The longest noise-control operation.
    control_max: Duration,
    /// Every object version seen: (cache, name, rv, epoch label, url).
    seen: HashSet<(usize, String, String, String, String)>,
    violations: Vec<String>,
    degraded: Vec<bool>,
}

fn reader(
    caches: Vec<Cache<PackageRepository>>,
    names: Vec<String>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> ReaderLog {
    let mut rng = Rng::new(seed);
    let mut log = ReaderLog {
        latencies: Latencies::new(),
        control_max: Duration::ZERO,
        seen: HashSet::new(),
        violations: Vec::new(),
        degraded: vec![false; caches.len()],
    };
    let mut last: Vec<(u64, u64)> = vec![(0, 0); caches.len()];
    let mut checked_generation: Vec<u64> = vec![u64::MAX; caches.len()];
    let violation = |log: &mut ReaderLog, what: String| {
        if log.violations.len() < 20 {
            log.violations.push(what);
        }
    };
    // The noise control: a lookup in a plain map, timed like the reads, so that the report can
    // tell a read held up by the machine from a read held up by the cache.
    let control_map: BTreeMap<String, usize> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    while !stop.load(Ordering::Relaxed) {
        for (i, cache) in caches.iter().enumerate() {
            let name = rng.pick(&names);
            let t = Instant::now();
            let _ = std::hint::black_box(control_map.get(name));
            log.control_max = log.control_max.max(t.elapsed());
            let t = Instant::now();
            let _ = cache.get(name);
            log.latencies.record(t.elapsed());
            let t = Instant::now();
            let listed = cache.list();
            log.latencies.record(t.elapsed());
            drop(listed);
            let t = Instant::now();
            let snapshot = cache.snapshot();
            log.latencies.record(t.elapsed());

            if matches!(
                cache.state(),
                CacheState::Stale { .. } | CacheState::Failed { .. }
            ) {
                log.degraded[i] = true;
            }
            let generation = snapshot.generation();
            let rv: u64 = snapshot
                .resource_version()
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0);
            let (last_generation, last_rv) = last[i];
            if generation < last_generation {
                violation(
                    &mut log,
                    format!(
                        "cache {i}: generation went back from {last_generation} to {generation}"
                    ),
                );
            }
            if rv < last_rv {
                violation(
                    &mut log,
                    format!(
                        "cache {i}: resourceVersion went back from {last_rv} to {rv} (generation {last_generation} → {generation})"
                    ),
                );
            }
            last[i] = (generation, rv);
            if checked_generation[i] == generation {
                continue;
            }
            checked_generation[i] = generation;
            for obj in snapshot.iter() {
                let obj_rv = rv_of(obj);
                if obj_rv > rv {
                    violation(
                        &mut log,
                        format!(
                            "cache {i}: generation {generation} at rv {rv} holds {} at newer rv {obj_rv}",
                            name_of(obj)
                        ),
                    );
                }
                let epoch = obj
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(schedule::EPOCH_LABEL))
                    .cloned()
                    .unwrap_or_default();
                log.seen.insert((
                    i,
                    name_of(obj),
                    obj_rv.to_string(),
                    epoch,
                    obj.spec.url.clone(),
                ));
            }
        }
        std::thread::sleep(Duration::from_micros(300));
    }
    log
}

/// Starts an apisim on 127.0.0.1 (a free port) with nothing in it.
async fn start_server() -> ServerHandle {
    Server::start(
        ServerConfig::default()
            .with_bookmark_interval(Duration::from_millis(200))
            .with_resource(apisim::ResourceDef::config_maps()),
    )
    .await
    .unwrap_or_else(|e| panic!("apisim does not start: {e}"))
}

/// Runs one seed and checks every invariant; never panics on a violation (see
/// [`Report::passed`]).
pub async fn run(options: &Options) -> Report {
    let started = Instant::now();
    let mut report = Report {
        seed: options.seed,
        duration: options.duration,
        ..Report::default()
    };
    let server = start_server().await;
    let control = server.control();
    let mut rng = Rng::new(options.seed);
    let mut schedule = Schedule::new(control.clone(), options.ttl);
    schedule.populate(&mut rng);

    // Five caches: all objects or group `a`, plain LIST+WATCH or streaming lists; clients with
    // and without kube's own retries; two with a tiny subscriber buffer (so they lag); and one
    // without a TTL, which only watch events keep current (no periodic relist rescues it).
    // (name, group, streaming lists, kube's retries, subscriber buffer, with a TTL)
    type Plan = (&'static str, Option<&'static str>, bool, bool, usize, bool);
    let plans: [Plan; 5] = [
        ("all/list", None, false, true, 4, true),
        ("group-a/list", Some("a"), false, false, 64, true),
        ("all/stream", None, true, false, 64, true),
        ("group-a/stream", Some("a"), true, true, 8, true),
        ("all/no-ttl", None, false, true, 256, false),
    ];
    let mut subjects = Vec::new();
    for (name, group, streaming, retrying, buffer, with_ttl) in plans {
        let ttl = if with_ttl {
            options.ttl
        } else {
            Duration::ZERO
        };
        let client = if retrying {
            server.client()
        } else {
            repocache_test_support::client_without_retry(&server)
        };
        let mut config = watcher::Config::default();
        if let Some(g) = group {
            config = config.labels(&format!("{GROUP_LABEL}={g}"));
        }
        if streaming {
            config = config.streaming_lists();
        }
        let (cache, handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(client))
            .watcher_config(config)
            .ttl(ttl)
            .cache_config(CacheConfig::new().subscriber_buffer(buffer))
            .start();
        subjects.push((name, group, ttl, cache, handle));
    }
    let mut ready = Vec::new();
    for (name, group, ttl, cache, handle) in subjects {
        if let Err(e) = cache.wait_ready(Duration::from_secs(20)).await {
            report
                .violations
                .push(format!("{name}: not ready at the start: {e}"));
        }
        let view = Arc::new(parking_lot::Mutex::new(View::default()));
        let mut subscription = cache.subscribe();
        let slow = buffer_is_small(name);
        let subscriber = {
            let view = view.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(change) = subscription.next().await {
                    view.lock().apply(change);
                    n += 1;
                    // A slow subscriber falls behind its small buffer now and then.
                    if slow && n.is_multiple_of(16) {
                        tokio::time::sleep(Duration::from_millis(120)).await;
                    }
                }
            })
        };
        ready.push(Subject {
            name,
            group,
            ttl,
            cache,
            handle,
            view,
            subscriber,
        });
    }
    let subjects = ready;
    if !report.violations.is_empty() {
        report.elapsed = started.elapsed();
        return report;
    }

    // The history workload: clients writing and reading through the layer and the policies.
    let workload = match history::Workload::start(&server, options.seed, options.ttl).await {
        Ok(w) => Some(w),
        Err(e) => {
            report.violations.push(e);
            None
        }
    };

    // Readers: two threads, each reading every cache in turn.
    let stop = Arc::new(AtomicBool::new(false));
    let caches: Vec<_> = subjects.iter().map(|s| s.cache.clone()).collect();
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let caches = caches.clone();
            let names = schedule.names().to_vec();
            let stop = stop.clone();
            let seed = options.seed.wrapping_mul(31).wrapping_add(r);
            std::thread::spawn(move || reader(caches, names, stop, seed))
        })
        .collect();
    // And one reader on the runtime, where a read that spawned work (a request in the
    // background) could do so.
    let async_reader = {
        let caches = caches.clone();
        let names = schedule.names().to_vec();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for cache in &caches {
                    for name in &names {
                        let _ = cache.get(name);
                    }
                    let _ = cache.list();
                    reads += names.len() as u64 + 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            reads
        })
    };

    // The schedule: writes and faults, paced.
    let until = Instant::now() + options.duration;
    while Instant::now() < until {
        schedule.step(&mut rng);
        tokio::time::sleep(Duration::from_millis(rng.range(5, 30))).await;
    }
    control.clear_faults();
    control.release_watches();
    // Every object's final version goes out as a watch event (the cache without a TTL has
    // nothing else to converge by).
    schedule.sweep();
    let quiet = Instant::now();

    // 1. Convergence, twice: after the first sweep (faults may still be settling: a relist in
    //    backoff can converge the caches), and after a second sweep made once everything is
    //    settled, which only the watch events can bring to the cache without a TTL.
    let deadline = quiet + options.converge_within;
    if wait_converged(&subjects, &control, deadline).await {
        report.convergence = Some(quiet.elapsed());
        schedule.sweep();
        let deadline = Instant::now() + options.converge_within;
        if wait_converged(&subjects, &control, deadline).await {
            // Quiet relists (every TTL, as nothing confirms the snapshots now) must change
            // nothing; the readers keep checking meanwhile.
            tokio::time::sleep(options.ttl * 3).await;
            for s in &subjects {
                let want = expected(&control, s.group);
                let cache: BTreeMap<_, _> = s
                    .cache
                    .snapshot()
                    .iter()
                    .map(|o| (name_of(o), held(o)))
                    .collect();
                let (lost, extra, stale) = differences(&want, &cache);
                if !(lost.is_empty() && extra.is_empty() && stale.is_empty()) {
                    report.lost += lost.len();
                    report.extra += extra.len();
                    report.stale += stale.len();
                    report.violations.push(format!(
                        "{}: diverged after converging: lost {lost:?}, extra {extra:?}, stale {stale:?}",
                        s.name
                    ));
                }
            }
        } else {
            report.convergence = None;
            report_divergence(
                &subjects,
                &control,
                &mut report,
                &format!(
                    "after the final sweep of writes (watch events only) within {:?}",
                    options.converge_within
                ),
            );
        }
    } else {
        report_divergence(
            &subjects,
            &control,
            &mut report,
            &format!("within {:?}", options.converge_within),
        );
    }

    // The history: every client's operations checked.
    if let Some(workload) = workload {
        report.history = workload.finish(&control, options.converge_within).await;
        report.lost += report.history.lost;
        report.extra += report.history.extra;
        report
            .violations
            .extend(report.history.findings.lines.iter().cloned());
    }

    // Stop the readers and check what they saw.
    stop.store(true, Ordering::Relaxed);
    match async_reader.await {
        Ok(reads) => report.reads += reads,
        Err(_) => report.violations.push("the runtime reader panicked".into()),
    }
    let mut latencies = Latencies::new();
    let mut control_max = Duration::ZERO;
    let mut degraded = vec![false; subjects.len()];
    let versions = schedule.versions();
    for reader in readers {
        let Ok(log) = reader.join() else {
            report.violations.push("a reader thread panicked".into());
            continue;
        };
        latencies.merge(&log.latencies);
        control_max = control_max.max(log.control_max);
        for (d, seen) in degraded.iter_mut().zip(&log.degraded) {
            *d |= seen;
        }
        for v in log.violations {
            report.violations.push(v);
        }
        let mut unknown = 0;
        for (i, name, rv, epoch, url) in &log.seen {
            match versions.get(&(name.clone(), rv.clone())) {
                Some(Version {
                    epoch: e, url: u, ..
                }) if e == epoch && u == url => {}
                found => {
                    unknown += 1;
                    if unknown <= 3 {
                        report.violations.push(format!(
                            "{}: a reader saw {name} at rv {rv} with epoch {epoch:?} and url {url:?}, but the server wrote {found:?}",
                            subjects.get(*i).map_or("?", |s| s.name)
                        ));
                    }
                }
            }
        }
    }
    report.max_read = latencies.max;
    report.p99_read = latencies.quantile(0.99);
    report.reads += latencies.count;
    report.slow_reads = latencies.over(READ_BOUND);
    report.max_control = control_max;

    // 6. Reads make no requests: nothing in a run asks a cache for a live read, so the server
    //    never sees a GET of one object.
    let gets = control.count("get", RESOURCE);
    if gets > 0 {
        report.violations.push(format!(
            "the server saw {gets} GET requests for single {RESOURCE}: a read reached the API server"
        ));
    }

    // 5. The reflectors are alive; the subscribers' views were consistent.
    let history = schedule.history();
    let side_door = schedule.side_door_names();
    let relist_budget = schedule.relist_budget();
    let run_time = started.elapsed();
    report.relist_budget = relist_budget;
    for (s, degraded) in subjects.into_iter().zip(degraded) {
        if s.handle.is_finished() {
            report
                .violations
                .push(format!("{}: the reflector task ended", s.name));
        }
        let stats = s.cache.stats();
        let (anomalies, lagged) = {
            let view = s.view.lock();
            (view.anomalies.clone(), view.lagged)
        };
        for a in &anomalies {
            report
                .violations
                .push(format!("{}: subscriber: {a}", s.name));
        }
        // 7. Every published snapshot is a whole relist or a whole prefix of the events.
        let published = {
            let mut view = s.view.lock();
            view.record();
            std::mem::take(&mut view.published)
        };
        report.snapshots_checked += published.len();
        if let Some(v) = check_published(&published, history, side_door, s.group) {
            report.violations.push(format!("{}: {v}", s.name));
        }
        // 8. Relists stay within what the injected faults explain.
        for v in check_relists(&stats, s.ttl, run_time, relist_budget) {
            report.violations.push(format!("{}: {v}", s.name));
        }
        report.caches.push(CacheReport {
            name: s.name,
            relists: stats.relists_total(),
            errors: stats.events(EventType::Error),
            decode_failures: stats.decode_failures,
            generation: stats.generation,
            degraded_seen: degraded,
            lagged,
            ttl: s.ttl,
            fault_relists: stats.relists(RelistReason::Expired)
                + stats.relists(RelistReason::Error),
        });
        s.handle.stop().await;
        s.subscriber.abort();
    }
    report.faults = schedule.fault_counts();
    report.writes = schedule.writes();
    server.shutdown().await;
    report.elapsed = started.elapsed();
    report
}

/// Whether every cache and subscriber equals the server (for its selector) and is ready.
fn converged(subjects: &[Subject], control: &Control) -> bool {
    subjects.iter().all(|s| {
        let want = expected(control, s.group);
        let cache: BTreeMap<_, _> = s
            .cache
            .snapshot()
            .iter()
            .map(|o| (name_of(o), held(o)))
            .collect();
        let view: BTreeMap<_, _> = s
            .view
            .lock()
            .objects
            .iter()
            .map(|(k, o)| (k.clone(), held(o)))
            .collect();
        cache == want && view == want && s.cache.state() == CacheState::Ready
    })
}

/// Polls [`converged`] until `deadline`.
async fn wait_converged(subjects: &[Subject], control: &Control, deadline: Instant) -> bool {
    loop {
        if converged(subjects, control) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Records what every cache and subscriber that did not converge lacks or holds extra.
fn report_divergence(subjects: &[Subject], control: &Control, report: &mut Report, when: &str) {
    for s in subjects {
        let want = expected(control, s.group);
        let cache: BTreeMap<_, _> = s
            .cache
            .snapshot()
            .iter()
            .map(|o| (name_of(o), held(o)))
            .collect();
        let view: BTreeMap<_, _> = s
            .view
            .lock()
            .objects
            .iter()
            .map(|(k, o)| (k.clone(), held(o)))
            .collect();
        for (what, actual) in [("cache", cache), ("subscriber", view)] {
            let (lost, extra, stale) = differences(&want, &actual);
            report.lost += lost.len();
            report.extra += extra.len();
            report.stale += stale.len();
            if !(lost.is_empty() && extra.is_empty() && stale.is_empty()) {
                report.violations.push(format!(
                    "{}: {what} did not converge {when}: lost {lost:?}, extra {extra:?}, stale {stale:?}",
                    s.name
                ));
            }
        }
        let state = s.cache.state();
        if state != CacheState::Ready {
            report
                .violations
                .push(format!("{}: not ready {when}: {state}", s.name));
        }
    }
}

/// The server states of `history` as a cache with `group`'s selector holds them, without the
/// names in `skip`: name → resourceVersion.
fn visible<'a>(
    state: &'a State,
    group: Option<&str>,
    skip: &BTreeSet<String>,
) -> BTreeMap<&'a str, u64> {
    state
        .iter()
        .filter(|(name, (_, g))| !skip.contains(*name) && group.is_none_or(|want| g == want))
        .map(|(name, (rv, _))| (name.as_str(), *rv))
        .collect()
}

/// Checks that every snapshot a subscriber saw whole equals a state the server went through
/// (for the cache's selector, leaving out names written through the side door, which only a
/// relist tells a cache about): what a whole relist or a whole prefix of the watch's events
/// gives, and never what part of a relist gives. Returns the first violation and the count.
fn check_published(
    published: &[BTreeMap<String, u64>],
    history: &[State],
    side_door: &BTreeSet<String>,
    group: Option<&str>,
) -> Option<String> {
    let states: HashSet<BTreeMap<&str, u64>> = history
        .iter()
        .map(|state| visible(state, group, side_door))
        .collect();
    let mut bad = published.iter().enumerate().filter_map(|(i, view)| {
        let view: BTreeMap<&str, u64> = view
            .iter()
            .filter(|(name, _)| !side_door.contains(*name))
            .map(|(name, rv)| (name.as_str(), *rv))
            .collect();
        (!states.contains(&view)).then_some((i, view))
    });
    let (i, view) = bad.next()?;
    Some(format!(
        "published snapshot {} of {} (and {} more) is no state the server went through \
         (part of a relist?): {view:?}",
        i + 1,
        published.len(),
        bad.count()
    ))
}

/// Checks a cache's relists against what explains them: one initial relist, none asked for,
/// TTL relists only with a TTL and at most one per TTL of the run, and `expired`/`error`
/// relists within the injected faults' budget.
fn check_relists(
    stats: &repocache::Stats,
    ttl: Duration,
    run_time: Duration,
    budget: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let initial = stats.relists(RelistReason::Initial);
    if initial != 1 {
        out.push(format!("{initial} initial relists instead of 1"));
    }
    let manual = stats.relists(RelistReason::Manual);
    if manual != 0 {
        out.push(format!(
            "{manual} manual relists, but nothing asked for one"
        ));
    }
    let by_ttl = stats.relists(RelistReason::Ttl);
    let ttl_allowed = if ttl.is_zero() {
        0
    } else {
        (run_time.as_millis() / ttl.as_millis()) as u64 + 1
    };
    if by_ttl > ttl_allowed {
        out.push(format!(
            "{by_ttl} TTL relists, more than the {ttl_allowed} a TTL of {ttl:?} explains in {run_time:.1?}"
        ));
    }
    let by_faults = stats.relists(RelistReason::Expired) + stats.relists(RelistReason::Error);
    if by_faults > budget {
        out.push(format!(
            "{by_faults} expired/error relists, more than the {budget} the injected faults explain"
        ));
    }
    out
}

fn buffer_is_small(name: &str) -> bool {
    name == "all/list" || name == "group-a/stream"
}
