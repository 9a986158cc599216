//! Watch BOOKMARKs confirm freshness: a quiet kind with a healthy watch is not relisted every
//! TTL, a silently stalled watch (no events, no bookmarks) still is, and a consistent read on a
//! quiet kind is answered from the snapshot once a bookmark proved it current.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apisim::ServerConfig;
use glasskube_api::PackageRepository;
use kube::Api;
use kube::runtime::watcher;
use repocache::policy::Source;
use repocache::reflector::RESYNC_TTLS;
use repocache::stats::{ApiReason, EventType, RelistReason};
use repocache::{Cache, CacheState, ReadPolicy, ReflectorBuilder};
use repocache_test_support::{PATIENCE, apisim_with, eventually};

use serde_json::json;

const REPOS: &str = "packagerepositories";
const TTL: Duration = Duration::from_millis(400);
const BOOKMARK_INTERVAL: Duration = Duration::from_millis(20);

async fn quiet_server() -> apisim::ServerHandle {
    apisim_with(ServerConfig::default().with_bookmark_interval(BOOKMARK_INTERVAL)).await
}

/// The longest this test's runtime was seen not running its tasks (a noise control): a task
/// that sleeps 5 ms over and over records how late it wakes. Everything the test starts (apisim,
/// the reflector) runs on the same single-threaded runtime, so a machine that stalls the
/// process long enough to let a TTL expire between two bookmarks shows here.
struct StallMonitor {
    worst_micros: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl StallMonitor {
    fn start() -> Self {
        let worst_micros = Arc::new(AtomicU64::new(0));
        let worst = worst_micros.clone();
        let task = tokio::spawn(async move {
            let nap = Duration::from_millis(5);
            loop {
                let before = Instant::now();
                tokio::time::sleep(nap).await;
                let late = before.elapsed().saturating_sub(nap);
                worst.fetch_max(
                    u64::try_from(late.as_micros()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
            }
        });
        Self { worst_micros, task }
    }

    /// The longest stall seen so far.
    fn worst(&self) -> Duration {
        Duration::from_micros(self.worst_micros.load(Ordering::Relaxed))
    }

    /// Whether the process ran without a stall that could let `ttl` expire between two
    /// bookmarks: only then must a bookmarked cache never go stale.
    fn steady_within(&self, ttl: Duration) -> bool {
        self.worst() < ttl / 2
    }
}

impl Drop for StallMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `n` bookmarks have confirmed the cache (at most one per interval is sent, so
/// this spans at least `n` intervals).
async fn bookmarks(repos: &Cache<PackageRepository>, n: u64) {
    eventually("bookmarks confirm the cache", || {
        repos.stats().events(EventType::Bookmark) >= n
    })
    .await;
}

#[tokio::test]
async fn bookmarks_keep_a_quiet_kind_confirmed_without_relisting() {
    let server = quiet_server().await;
    let control = server.control();
    // Taken before the first relist: the safety net is due RESYNC_TTLS TTLs after it, so a
    // resync can only have happened if at least that long has passed since `started` (taken
    // after `wait_ready`, a slow start-up would let a legitimate resync trip the check below).
    let started = Instant::now();
    let monitor = StallMonitor::start();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .ttl(TTL)
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    // Ten TTLs' worth of bookmarks: at least 10 x TTL of a quiet watch.
    let ten_ttls = (10 * TTL.as_millis() / BOOKMARK_INTERVAL.as_millis()) as u64;
    let mut worst = Duration::ZERO;
    let mut stale_seen = None;
    eventually("ten TTLs of bookmarks", || {
        worst = worst.max(repos.snapshot().since_confirmed());
        if repos.state() != CacheState::Ready {
            stale_seen.get_or_insert(repos.state());
        }
        repos.stats().events(EventType::Bookmark) >= ten_ttls
    })
    .await;
    let stats = repos.stats();
    eprintln!(
        "bookmarks on: {:?} quiet (TTL {TTL:?}): relists by TTL {}, LISTs {}, bookmarks {}, longest unconfirmed seen {worst:?}, longest process stall {:?}",
        started.elapsed(),
        stats.relists(RelistReason::Ttl),
        control.count("list", REPOS),
        stats.events(EventType::Bookmark),
        monitor.worst(),
    );
    // Never stale, never relisted by the TTL: unless the machine stalled the whole process
    // long enough for the TTL to expire between two bookmarks (then the TTL rightly strikes).
    if monitor.steady_within(TTL) {
        assert_eq!(stale_seen, None, "never stale meanwhile");
        assert_eq!(stats.relists(RelistReason::Ttl), 0);
    }
    // Only the initial LIST, plus the relists the stats explain.
    assert_eq!(
        control.count("list", REPOS),
        1 + stats.relists(RelistReason::Resync) + stats.relists(RelistReason::Ttl)
    );
    if started.elapsed() < TTL * RESYNC_TTLS {
        assert_eq!(stats.relists(RelistReason::Resync), 0);
    }
    assert!(repos.version().is_some());
}

#[tokio::test]
async fn a_kind_kept_confirmed_by_bookmarks_is_still_relisted_every_resync_period() {
    let server = quiet_server().await;
    let ttl = Duration::from_millis(100);
    let monitor = StallMonitor::start();
    // Before the first relist, which the safety net counts from.
    let started = Instant::now();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .ttl(ttl)
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    eventually("the safety-net relist", || {
        repos.stats().relists(RelistReason::Resync) >= 1
    })
    .await;
    eprintln!(
        "resync after {:?} (TTL {ttl:?} x {RESYNC_TTLS}), longest process stall {:?}",
        started.elapsed(),
        monitor.worst()
    );
    // A 100 ms TTL is shorter than a busy machine may stall the process: a TTL relist is only
    // a failure when the process ran steadily (bookmarks every 20 ms then keep it confirmed).
    if monitor.steady_within(ttl) {
        assert_eq!(repos.stats().relists(RelistReason::Ttl), 0, "never stale");
    }
    // The safety net is due RESYNC_TTLS TTLs after the last relist (a TTL relist only makes
    // it later), and `started` precedes the first one.
    assert!(started.elapsed() >= ttl * RESYNC_TTLS);
}

#[tokio::test]
async fn without_bookmarks_a_quiet_kind_relists_every_ttl() {
    let server = quiet_server().await;
    let control = server.control();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .watcher_config(watcher::Config::default().disable_bookmarks())
        .ttl(TTL)
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let started = Instant::now();
    eventually("relists by TTL", || {
        repos.stats().relists(RelistReason::Ttl) >= 3
    })
    .await;
    eprintln!(
        "bookmarks off: {:?} quiet (TTL {TTL:?}): relists by TTL {}, LISTs {}",
        started.elapsed(),
        repos.stats().relists(RelistReason::Ttl),
        control.count("list", REPOS),
    );
    assert_eq!(repos.stats().events(EventType::Bookmark), 0);
}

#[tokio::test]
async fn a_stalled_watch_without_bookmarks_is_caught_within_the_ttl() {
    let server = quiet_server().await;
    let control = server.control();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .ttl(TTL)
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    bookmarks(&repos, 3).await;
    control.stall_watches(None);
    let stalled = Instant::now();
    eventually("the TTL relists the stalled watch", || {
        repos.stats().relists(RelistReason::Ttl) >= 1
    })
    .await;
    eprintln!(
        "stalled watch: relisted by TTL after {:?} (TTL {TTL:?})",
        stalled.elapsed()
    );
    assert!(control.count("list", REPOS) >= 2);
    control.release_watches();
}

#[tokio::test]
async fn a_consistent_read_of_a_quiet_kind_is_answered_once_a_bookmark_proves_it_current() {
    let server = quiet_server().await;
    let control = server.control();
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    // Another kind moves the server's version past every PackageRepository event.
    control
        .create(json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "ClusterPackage",
            "metadata": {"name": "elsewhere"},
            "spec": {"packageInfo": {"name": "elsewhere", "version": "v1"}},
        }))
        .unwrap();
    let server_rv = control.resource_version();
    let own: u64 = repos
        .snapshot()
        .resource_version()
        .unwrap()
        .parse()
        .unwrap();
    assert!(own < server_rv, "the kind itself is quiet");
    let read = repos.list_with(ReadPolicy::Consistent).await.unwrap();
    assert!(
        matches!(read.source, Source::Snapshot { .. }),
        "a bookmark proved the snapshot current: {read:?}"
    );
    assert_eq!(read.value.len(), 5);
    assert!(repos.version().unwrap() >= server_rv);
    assert_eq!(repos.stats().api(ApiReason::Version), 1);
    assert_eq!(repos.stats().api(ApiReason::Fallback), 0);
}

#[tokio::test]
async fn without_bookmarks_a_consistent_read_of_a_quiet_kind_reads_live() {
    let server = quiet_server().await;
    let control = server.control();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .watcher_config(watcher::Config::default().disable_bookmarks())
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    control
        .create(json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "ClusterPackage",
            "metadata": {"name": "elsewhere"},
            "spec": {"packageInfo": {"name": "elsewhere", "version": "v1"}},
        }))
        .unwrap();
    let read = repos.list_with(ReadPolicy::Consistent).await.unwrap();
    assert!(
        read.is_live(),
        "nothing proves the snapshot current: {read:?}"
    );
    assert_eq!(read.value.len(), 5);
    assert_eq!(repos.stats().api(ApiReason::Fallback), 1);
}

/// A bookmark vouches only for what the cache has published: while changes are handled but
/// their publish is deferred (a long publish interval), the bookmarks that follow them on the
/// wire must not move `version()` past a snapshot that lacks them (a consistent read would be
/// answered from it).
#[tokio::test]
async fn a_bookmark_never_vouches_for_a_change_not_yet_published() {
    let server = quiet_server().await;
    let control = server.control();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .configure_cache(|c| c.publish_interval(Duration::from_secs(3)))
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    bookmarks(&repos, 3).await;
    // Two changes back to back, within the interval of the last publish: both wait for it,
    // while a bookmark with a newer resourceVersion arrives every 20 ms.
    let mut written = 0;
    for (i, name) in ["glasskube", "team-bearer"].into_iter().enumerate() {
        let mut obj = control.get(REPOS, None, name).unwrap();
        obj["spec"]["url"] = json!(format!("https://deferred-{i}.example.net/"));
        let put = control.replace(obj).unwrap();
        written = put["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        // The version first: a snapshot loaded after it holds at least what it vouches for.
        let version = repos.version();
        let has = repos
            .get("team-bearer")
            .is_some_and(|r| r.spec.url == "https://deferred-1.example.net/");
        if version.is_some_and(|v| v >= written) {
            assert!(
                has,
                "version() {version:?} vouches for resourceVersion {written}, but the snapshot \
                 lacks that change"
            );
        }
        if has {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deferred change was never published"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
