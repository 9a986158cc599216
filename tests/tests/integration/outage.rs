//! An outage of the API server, as the cache's state shows it: with every LIST answering 503
//! (which kube's client retries underneath, invisibly), the cache still reports `Failed` within
//! its list timeout, and recovers once the server answers again; a watch error on a fresh cache
//! is no outage, and one on a degraded cache dates its failure from when it stopped being current.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use apisim::{FailSpec, LatencySpec, ServerConfig};
use glasskube_api::PackageRepository;
use kube::Api;
use repocache::stats::EventType;
use repocache::{CacheState, ReflectorBuilder};
use repocache_test_support::{PATIENCE, apisim, apisim_with, client_without_retry, eventually};

const REPOS: &str = "packagerepositories";
const HOUR: Duration = Duration::from_secs(3600);

/// A ready, watching cache on a server that sends no bookmarks, with no TTL to speak of and a
/// client that does not retry: every state change the tests see comes from the faults they
/// inject.
async fn quiet_ready_cache() -> (
    apisim::ServerHandle,
    repocache::Cache<PackageRepository>,
    repocache::ReflectorHandle,
) {
    let server = apisim_with(ServerConfig::default().with_bookmark_interval(HOUR)).await;
    let (repos, handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(&server)))
            .ttl(HOUR)
            .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(server.control().wait_for_watches(1, PATIENCE).await);
    (server, repos, handle)
}

#[tokio::test]
async fn a_persistent_503_makes_the_cache_failed_within_the_list_timeout_and_it_recovers() {
    let server = apisim().await;
    let control = server.control();
    control.fail_next(FailSpec::new("list", REPOS, 503, 1_000_000));
    let started = Instant::now();
    // server.client() is kube's default stack: it retries 503 underneath the watcher.
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .list_timeout(Duration::from_millis(300))
        .start();
    eventually("the cache reports the outage", || {
        matches!(repos.state(), CacheState::Failed { .. })
    })
    .await;
    let failed_after = started.elapsed();
    let CacheState::Failed { last_error, .. } = repos.state() else {
        unreachable!()
    };
    assert!(
        last_error.contains("no answer within 300ms"),
        "{last_error}"
    );
    let lists_during_outage = control.count("list", REPOS);
    assert!(
        lists_during_outage > 1,
        "the client retried underneath: {lists_during_outage}"
    );

    control.clear_faults();
    let ended = Instant::now();
    repos.wait_ready(PATIENCE).await.unwrap();
    eventually("the cache recovers", || repos.state() == CacheState::Ready).await;
    eprintln!(
        "persistent 503: Failed after {failed_after:?} ({lists_during_outage} LISTs incl. the client's retries); ready {:?} after the outage ended",
        ended.elapsed()
    );
    assert_eq!(repos.snapshot().len(), 5);
}

/// A watch that fails while the cache is Ready and its snapshot within the TTL is a blip, not
/// an outage: the cache stays Ready (the snapshot is as current as the TTL promises) while the
/// watcher tries again, and the error is counted. (Bookmarks off, so nothing but the state
/// machine decides what the state is.)
#[tokio::test]
async fn a_watch_error_while_ready_and_fresh_leaves_the_cache_ready() {
    let (server, repos, _handle) = quiet_ready_cache().await;
    let control = server.control();
    let errors = repos.stats().events(EventType::Error);
    // The watch ends; the watcher's next watch gets a 500 (an error), the one after opens.
    control.fail_next(FailSpec::new("watch", REPOS, 500, 1));
    control.close_watches();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = repos.state();
        assert_eq!(state, CacheState::Ready, "a blip on a fresh cache");
        if repos.stats().events(EventType::Error) > errors && control.open_watches() >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watch never failed and came back"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(repos.state(), CacheState::Ready);
}

/// An error while the cache is already degraded makes it Failed, dated from when it stopped
/// being current: a rejected watch line makes the cache Stale (it missed what the line
/// carried); when the relist that follows fails, the cache is Failed since the moment it went
/// Stale, and stays dated so through the watcher's retries; it is Ready once a relist lands.
#[tokio::test]
async fn a_failing_relist_after_a_rejected_line_is_failed_since_the_cache_went_stale() {
    let (server, repos, _handle) = quiet_ready_cache().await;
    let control = server.control();
    // Every LIST from now on takes 800 ms, then answers 500.
    control.add_latency(LatencySpec {
        verb: Some("list".into()),
        resource: Some(REPOS.into()),
        latency_ms: 800,
        count: None,
    });
    control.fail_next(FailSpec::new("list", REPOS, 500, 1_000_000));
    assert_eq!(control.inject_malformed_line(None), 1);
    let mut stale_since = None;
    let deadline = Instant::now() + PATIENCE;
    let failed_since = loop {
        match repos.state() {
            CacheState::Stale { since, .. } => stale_since = Some(since),
            CacheState::Failed { since, .. } => break since,
            CacheState::Ready => {}
            other => panic!("unexpected state {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "never Failed (stale since {stale_since:?})"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let stale_since = stale_since.expect("Stale for the 800 ms of the relist's LIST");
    assert_eq!(
        failed_since, stale_since,
        "Failed since the cache went stale"
    );
    // Another failed LIST (the watcher's retry): still dated from the start.
    let errors = repos.stats().events(EventType::Error);
    eventually("the watcher retries the relist and fails again", || {
        repos.stats().events(EventType::Error) > errors
    })
    .await;
    match repos.state() {
        CacheState::Failed { since, .. } => {
            assert_eq!(since, stale_since, "a retry does not move the start")
        }
        other => panic!("still failing, yet {other:?}"),
    }
    control.clear_faults();
    eventually("a relist lands", || repos.state() == CacheState::Ready).await;
}
