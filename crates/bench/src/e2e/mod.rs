//! The end-to-end part of the suite (section 6 of the report): repocache against kube-runtime's
//! `reflector` and against uncached reads, over HTTP, with `apisim` as the API server.
//!
//! - [`sync`]: initial sync of N objects, per watcher strategy (item 6);
//! - [`propagation`]: server write → visible to the program (item 7);
//! - [`load`]: requests reaching the server for reads, and for replicas of one operator
//!   (item 8);
//! - [`install`]: the demo's install scenario at a larger N (item 9);
//! - [`consistent`]: `ReadPolicy::Consistent` against `ReadPolicy::Fresh`, bytes on the wire
//!   ([`wire`]'s counting proxy) and latency (item 10);
//! - [`warm`]: warm start from a persisted snapshot against a cold start (item 11).
//!
//! apisim runs on a runtime of its own ([`sim::Sim`], two worker threads), the clients on the
//! benchmark's runtime (two worker threads), all on 127.0.0.1.

pub mod consistent;
pub mod install;
pub mod load;
pub mod propagation;
pub mod render;
pub mod sim;
pub mod sync;
pub mod warm;
pub mod wire;

use std::time::{Duration, Instant};

use repocache_cli::demo::DemoReport;

use consistent::ConsistentResult;
use install::InstallPlan;
use load::{LoadResult, ReplicaResult};
use propagation::PropagationRun;
use sim::Sim;
use sync::{Strategy, SyncRow};
use warm::WarmResult;

/// The parts of the end-to-end run, as `--e2e-part` names them.
pub const PARTS: [&str; 7] = [
    "sync",
    "propagation",
    "load",
    "consistent",
    "replicas",
    "install",
    "warm",
];

/// How big and how long the end-to-end part runs.
#[derive(Clone, Debug)]
pub struct E2eConfig {
    /// `full`, `quick` or `smoke`.
    pub mode: &'static str,
    /// Objects on the server for the sync, propagation and read-load measurements.
    pub objects: usize,
    /// Repetitions per side of each sync strategy.
    pub sync_reps: usize,
    /// The watcher strategies to sync with.
    pub strategies: Vec<Strategy>,
    /// Timed updates per side (after a short warm-up).
    pub updates: usize,
    /// GETs of the read-load measurement.
    pub reads: usize,
    /// LISTs of the read-load measurement.
    pub lists: usize,
    /// Replicas of one operator.
    pub replicas: usize,
    /// Objects on the server of the replica measurement.
    pub replica_objects: usize,
    /// The window of reads after the replicas synced.
    pub window: Duration,
    /// apisim's bookmark interval.
    pub bookmark_interval: Duration,
    /// The install scenario's size and rate.
    pub install: InstallPlan,
    /// Item 10: LISTs and GETs per read policy and server state.
    pub consistent_reads: (usize, usize),
    /// Item 10: the busy server's write rate, per second.
    pub consistent_writes_per_sec: u64,
    /// The parts to run ([`PARTS`]); empty: all.
    pub parts: Vec<&'static str>,
}

impl E2eConfig {
    /// Whether `part` runs.
    pub fn runs(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.contains(&part)
    }
}

impl E2eConfig {
    /// The full run: 10,000 objects, 11 repetitions, 1,000 updates, 20 replicas over 5 s, the
    /// install scenario sized to about a minute uncached at client-go's default rate.
    pub fn full() -> Self {
        Self {
            mode: "full",
            objects: 10_000,
            sync_reps: 11,
            strategies: vec![
                Strategy::ListWatch { page: 500 },
                Strategy::ListWatch { page: 10_000 },
                Strategy::Streaming,
            ],
            updates: 1_000,
            reads: 10_000,
            lists: 20,
            replicas: 20,
            replica_objects: 1_000,
            window: Duration::from_secs(5),
            bookmark_interval: Duration::from_secs(1),
            install: InstallPlan::fit(Duration::from_secs(55), 7, 5.0, 10),
            consistent_reads: (20, 500),
            consistent_writes_per_sec: 100,
            parts: Vec::new(),
        }
    }

    /// The quick run: fewer repetitions, a shorter window, the install scenario sized to about
    /// 15 s uncached at client-go's default rate.
    pub fn quick() -> Self {
        Self {
            mode: "quick",
            sync_reps: 3,
            lists: 5,
            window: Duration::from_secs(3),
            install: InstallPlan::fit(Duration::from_secs(14), 1, 5.0, 10),
            ..Self::full()
        }
    }

    /// The CI smoke run (debug build): tiny sizes; the install's uncached side at a scaled-up
    /// rate.
    pub fn smoke() -> Self {
        Self {
            mode: "smoke",
            objects: 100,
            sync_reps: 1,
            strategies: vec![Strategy::ListWatch { page: 500 }, Strategy::Streaming],
            updates: 20,
            reads: 100,
            lists: 2,
            replicas: 3,
            replica_objects: 50,
            window: Duration::from_millis(300),
            bookmark_interval: Duration::from_millis(100),
            install: InstallPlan::fit(Duration::from_millis(50), 2, 1000.0, 10),
            consistent_reads: (2, 10),
            consistent_writes_per_sec: 50,
            parts: Vec::new(),
        }
    }
}

/// Everything the end-to-end part measured (or why a part is missing).
#[derive(Debug)]
pub struct E2eResults {
    /// What ran.
    pub config: E2eConfig,
    /// Item 6.
    pub sync: Result<Vec<SyncRow>, String>,
    /// Item 7: repocache, then kube-runtime.
    pub propagation: Vec<Result<PropagationRun, String>>,
    /// Item 8a.
    pub load: Result<LoadResult, String>,
    /// Item 8b.
    pub replicas: Result<ReplicaResult, String>,
    /// Item 9.
    pub install: Result<DemoReport, String>,
    /// Item 10.
    pub consistent: Result<ConsistentResult, String>,
    /// Item 11.
    pub warm: Result<WarmResult, String>,
    /// Seconds each part took: (part, seconds).
    pub timings: Vec<(&'static str, f64)>,
}

impl E2eResults {
    /// The errors of the parts that failed (not of those `--e2e-part` left out).
    pub fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |what: &str, r: Result<(), &String>| {
            if let Err(e) = r
                && e != SKIPPED
            {
                out.push(format!("{what}: {e}"));
            }
        };
        push("initial sync", self.sync.as_ref().map(|_| ()));
        for p in &self.propagation {
            push("propagation", p.as_ref().map(|_| ()));
        }
        push("API load", self.load.as_ref().map(|_| ()));
        push("replicas", self.replicas.as_ref().map(|_| ()));
        push("install scenario", self.install.as_ref().map(|_| ()));
        push("consistent reads", self.consistent.as_ref().map(|_| ()));
        push("warm start", self.warm.as_ref().map(|_| ()));
        out
    }
}

/// What a part that `--e2e-part` left out reports.
const SKIPPED: &str = "not run (left out by --e2e-part)";

fn skipped<T>() -> Result<T, String> {
    Err(SKIPPED.to_owned())
}

fn err(e: anyhow::Error) -> String {
    format!("{e:#}")
}

/// The longest one part may run before it is called failed (a hang must not hang the suite).
const PART_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs one part on `runtime`, bounded by [`PART_TIMEOUT`].
fn block<T>(
    runtime: &tokio::runtime::Runtime,
    part: impl Future<Output = anyhow::Result<T>>,
) -> Result<T, String> {
    match runtime.block_on(async { tokio::time::timeout(PART_TIMEOUT, part).await }) {
        Ok(result) => result.map_err(err),
        Err(_) => Err(format!("did not finish within {PART_TIMEOUT:?}")),
    }
}

/// Runs every end-to-end measurement. Call it outside any async context: it builds its own
/// runtimes.
pub fn run(config: &E2eConfig) -> E2eResults {
    let mut results = E2eResults {
        config: config.clone(),
        sync: Err("not run".into()),
        propagation: Vec::new(),
        load: Err("not run".into()),
        replicas: Err("not run".into()),
        install: Err("not run".into()),
        consistent: Err("not run".into()),
        warm: Err("not run".into()),
        timings: Vec::new(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            results.sync = Err(format!("building the runtime: {e}"));
            return results;
        }
    };
    let mut timed = |part: &'static str, started: Instant| {
        let secs = started.elapsed().as_secs_f64();
        eprintln!("  e2e {part}: {secs:.1} s");
        results.timings.push((part, secs));
    };

    let started = Instant::now();
    let (sync, propagation, load, consistent, warm) =
        match Sim::with_repositories(config.objects, config.bookmark_interval) {
            Ok(sim) => {
                timed("seed apisim", started);
                let started = Instant::now();
                let sync = if config.runs("sync") {
                    block(
                        &runtime,
                        sync::run(&sim, config.objects, &config.strategies, config.sync_reps),
                    )
                } else {
                    skipped()
                };
                timed("initial sync", started);
                let started = Instant::now();
                let propagation = if !config.runs("propagation") {
                    vec![skipped()]
                } else {
                    vec![
                        block(
                            &runtime,
                            propagation::repocache(&sim, config.objects, config.updates),
                        ),
                        block(
                            &runtime,
                            propagation::kube(&sim, config.objects, config.updates),
                        ),
                        block(
                            &runtime,
                            propagation::repocache_per_event(&sim, config.objects, config.updates),
                        ),
                    ]
                };
                timed("propagation", started);
                let started = Instant::now();
                let load = if config.runs("load") {
                    block(
                        &runtime,
                        load::reads(&sim, config.objects, config.reads, config.lists),
                    )
                } else {
                    skipped()
                };
                timed("API load", started);
                let started = Instant::now();
                let (lists, gets) = config.consistent_reads;
                let consistent = if !config.runs("consistent") {
                    skipped()
                } else {
                    block(
                        &runtime,
                        consistent::run(
                            &sim,
                            config.objects,
                            lists,
                            gets,
                            config.consistent_writes_per_sec,
                        ),
                    )
                };
                timed("consistent reads", started);
                let started = Instant::now();
                let warm = if config.runs("warm") {
                    block(&runtime, warm::run(&sim, config.objects, config.sync_reps))
                } else {
                    skipped()
                };
                timed("warm start", started);
                drop(sim);
                (sync, propagation, load, consistent, warm)
            }
            Err(e) => {
                let e = err(e);
                (
                    Err(e.clone()),
                    vec![Err(e.clone())],
                    Err(e.clone()),
                    Err(e.clone()),
                    Err(e),
                )
            }
        };

    let started = Instant::now();
    let replicas = if !config.runs("replicas") {
        skipped()
    } else {
        match Sim::with_repositories(config.replica_objects, config.bookmark_interval) {
            Ok(sim) => {
                let r = block(
                    &runtime,
                    load::replicas(
                        &sim,
                        config.replica_objects,
                        config.replicas,
                        config.window,
                        config.bookmark_interval,
                    ),
                );
                drop(sim);
                r
            }
            Err(e) => Err(err(e)),
        }
    };
    timed("replicas", started);

    let started = Instant::now();
    let install = if config.runs("install") {
        block(&runtime, install::run(config.install))
    } else {
        skipped()
    };
    timed("install scenario", started);

    runtime.shutdown_timeout(Duration::from_secs(2));
    results.sync = sync;
    results.propagation = propagation;
    results.load = load;
    results.replicas = replicas;
    results.install = install;
    results.consistent = consistent;
    results.warm = warm;
    results
}
