//! The "process restart" fault (issue #18): a cache with a cache directory is killed and
//! started again, over and over, while the schedule writes and injects its faults. Each life
//! starts warm from the file the previous one left (written periodically and as its task
//! ended), so every restart exercises the warm start under chaos. Checked:
//!
//! 1. **Never Ready on unverified data**: whenever a life's cache says it is ready, its snapshot
//!    came from a LIST (a warm snapshot has no resourceVersion: it proves none) and its state
//!    is no longer the warm start; while it serves the file, it is not ready.
//! 2. **Converges like a cold one**: after the chaos, a last warm life and a cold cache (no
//!    file) started at the same moment both end equal to the server, and the warm one got
//!    there with no more requests than the cold one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glasskube_api::PackageRepository;
use kube::Api;
use repocache::persist::Persist;
use repocache::stats::ApiReason;
use repocache::{Cache, ReflectorBuilder};

use super::schedule::Schedule;
use super::{Options, Rng, differences, expected, held, name_of, start_server};

/// What a process-restart run saw.
#[derive(Clone, Debug, Default)]
pub struct RestartReport {
    /// The seed.
    pub seed: u64,
    /// How many lives the restarted cache had.
    pub lives: u64,
    /// How many of them started from a file (served it unverified first).
    pub warm_starts: u64,
    /// How many of them became ready (verified) before they were killed.
    pub verified: u64,
    /// Server writes made by the schedule.
    pub writes: u64,
    /// API requests of the final warm and cold starts until converged.
    pub final_requests: (u64, u64),
    /// Every broken invariant.
    pub violations: Vec<String>,
}

impl RestartReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

fn requests(cache: &Cache<PackageRepository>) -> u64 {
    cache.stats().api_requests.iter().map(|(_, n)| n).sum()
}

fn persist(dir: &PathBuf) -> Persist {
    Persist::new(dir, "chaos-cluster").rewrite_interval(Duration::ZERO)
}

/// A cache of the server at `url`, with a file in `dir` if given (a life of the restarted
/// process holds the URL, not the server's handle).
fn start(
    url: &str,
    dir: Option<&PathBuf>,
    ttl: Duration,
) -> (Cache<PackageRepository>, repocache::ReflectorHandle) {
    let mut config = kube::Config::new(url.parse().unwrap_or_else(|e| panic!("apisim URL: {e}")));
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap_or_else(|e| panic!("no client: {e}"));
    let mut builder = ReflectorBuilder::new(Api::<PackageRepository>::all(client)).ttl(ttl);
    if let Some(dir) = dir {
        builder = builder.persist(persist(dir));
    }
    builder.start()
}

/// Whether `dir` holds a warm-start file.
fn has_file(dir: &PathBuf) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "snap"))
    })
}

/// Checks "never ready on unverified data" on one look at `cache`, which started warm (its
/// file's snapshot was generation 1) or cold.
fn check_ready(cache: &Cache<PackageRepository>, warm: bool, life: u64) -> Option<String> {
    let ready = cache.is_ready();
    let generation = cache.snapshot().generation();
    let state = cache.state();
    if ready && warm && generation < 2 {
        return Some(format!(
            "life {life}: ready on the unverified warm snapshot (generation {generation}, {state})"
        ));
    }
    if ready && state.is_warm_start() {
        return Some(format!("life {life}: ready while still a warm start"));
    }
    None
}

/// Runs one seed of the process-restart fault.
pub async fn process_restarts(options: &Options) -> RestartReport {
    let mut report = RestartReport {
        seed: options.seed,
        ..RestartReport::default()
    };
    let server = start_server().await;
    let control = server.control();
    let dir = std::env::temp_dir().join(format!(
        "repocache-chaos-restart-{}-{}",
        std::process::id(),
        options.seed
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng::new(options.seed);
    let mut schedule = Schedule::new(control.clone(), options.ttl);
    schedule.populate(&mut rng);

    // The restarted process: lives of 20 to 400 ms, each checked every 2 ms, ended by a
    // graceful stop or by dropping the handle (the task is aborted).
    let stop = Arc::new(AtomicBool::new(false));
    let lives = {
        let stop = stop.clone();
        let server_dir = dir.clone();
        let ttl = options.ttl;
        let mut life_rng = Rng::new(options.seed ^ 0x005e_ed0f_11fe);
        let url = server.url().to_owned();
        tokio::spawn(async move {
            let (mut lives, mut warm, mut verified) = (0u64, 0u64, 0u64);
            let mut violations = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                lives += 1;
                // Whether this life starts warm: its file exists (a state look would race
                // with the task, which may verify the file at once on another worker).
                let started_warm = has_file(&server_dir);
                let (cache, handle) = start(&url, Some(&server_dir), ttl);
                if started_warm {
                    warm += 1;
                    if cache.is_ready() {
                        violations.push(format!("life {lives}: ready at a warm start"));
                    }
                }
                let end = Instant::now() + Duration::from_millis(life_rng.range(20, 400));
                let mut was_ready = false;
                while Instant::now() < end {
                    if let Some(v) = check_ready(&cache, started_warm, lives) {
                        violations.push(v);
                        break;
                    }
                    was_ready |= cache.is_ready();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                verified += u64::from(was_ready);
                if life_rng.chance(50) {
                    handle.stop().await;
                } else {
                    drop(handle);
                }
            }
            (lives, warm, verified, violations)
        })
    };

    let until = Instant::now() + options.duration;
    while Instant::now() < until {
        schedule.step(&mut rng);
        tokio::time::sleep(Duration::from_millis(rng.range(5, 30))).await;
    }
    stop.store(true, Ordering::Relaxed);
    match lives.await {
        Ok((lives, warm, verified, violations)) => {
            report.lives = lives;
            report.warm_starts = warm;
            report.verified = verified;
            report.violations.extend(violations);
        }
        Err(err) => report
            .violations
            .push(format!("the restart loop died: {err}")),
    }
    control.clear_faults();
    control.release_watches();
    schedule.sweep();
    report.writes = schedule.writes();

    // The last life, warm, against a cold cache started at the same moment.
    let final_warm = has_file(&dir);
    let (warm_cache, _warm_handle) = start(server.url(), Some(&dir), options.ttl);
    if !final_warm {
        report
            .violations
            .push("the last life did not start warm".to_owned());
    }
    let (cold_cache, _cold_handle) = start(server.url(), None, options.ttl);
    let deadline = Instant::now() + options.converge_within;
    let converged = |cache: &Cache<PackageRepository>| {
        let want = expected(&control, None);
        let have: BTreeMap<_, _> = cache
            .snapshot()
            .iter()
            .map(|o| (name_of(o), held(o)))
            .collect();
        let (lost, extra, stale) = differences(&want, &have);
        (lost.is_empty() && extra.is_empty() && stale.is_empty() && cache.is_ready())
            .then_some(())
            .ok_or(format!("lost {lost:?}, extra {extra:?}, stale {stale:?}"))
    };
    loop {
        if let Some(v) = check_ready(&warm_cache, final_warm, report.lives + 1) {
            report.violations.push(v);
            break;
        }
        let (w, c) = (converged(&warm_cache), converged(&cold_cache));
        if w.is_ok() && c.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            report.violations.push(format!(
                "not converged within {:?}: warm {w:?}, cold {c:?}",
                options.converge_within
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let relists = |c: &Cache<PackageRepository>| {
        c.stats()
            .api_requests
            .iter()
            .find(|(r, _)| *r == ApiReason::Relist)
            .map_or(0, |(_, n)| *n)
    };
    report.final_requests = (requests(&warm_cache), requests(&cold_cache));
    if relists(&warm_cache) > relists(&cold_cache) {
        report.violations.push(format!(
            "the warm start listed more than the cold one: {} > {}",
            relists(&warm_cache),
            relists(&cold_cache)
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    report
}
