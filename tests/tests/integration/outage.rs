//! An outage of the API server, as the cache's state shows it: with every LIST answering 503
//! (which kube's client retries underneath, invisibly), the cache still reports `Failed` within
//! its list timeout, and recovers once the server answers again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use apisim::FailSpec;
use glasskube_api::PackageRepository;
use kube::Api;
use repocache::{CacheState, ReflectorBuilder};
use repocache_test_support::{PATIENCE, apisim, eventually};

const REPOS: &str = "packagerepositories";

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
