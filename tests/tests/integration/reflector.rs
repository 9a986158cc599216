//! The reflector over real HTTP: it syncs, follows changes, scopes to a namespace, survives a
//! closed watch without relisting, and stops cleanly (explicitly and on drop).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use glasskube_api::{ClusterPackage, Package, PackageRepository};
use kube::Api;
use kube::runtime::watcher;
use std::time::{Duration, Instant};

use apisim::{FailSpec, LatencySpec};
use repocache::stats::{ApiReason, RelistReason};
use repocache::{CacheState, ReflectorBuilder, reflector};
use repocache_test_support::{PATIENCE, apisim, client_without_retry, eventually};

use serde_json::json;

const REPOS: &str = "packagerepositories";

#[tokio::test]
async fn syncs_the_fixtures_and_follows_changes() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = reflector(
        Api::<PackageRepository>::all(server.client()),
        watcher::Config::default(),
    );
    repos.wait_ready(PATIENCE).await.unwrap();
    let names: Vec<String> = repos
        .snapshot()
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "glasskube",
            "inline-basic",
            "private-basic",
            "team-bearer",
            "team-bearer-ref"
        ]
    );
    assert!(repos.get("glasskube").unwrap().is_default());

    control
        .merge_patch(
            REPOS,
            None,
            "glasskube",
            &json!({"spec": {"url": "https://moved.example/"}}),
        )
        .unwrap();
    eventually("the update arrives", || {
        repos
            .get("glasskube")
            .is_some_and(|r| r.spec.url == "https://moved.example/")
    })
    .await;
    control.delete(REPOS, None, "team-bearer").unwrap();
    eventually("the delete arrives", || repos.get("team-bearer").is_none()).await;
    let snapshot = repos.snapshot();
    assert_eq!(
        snapshot.resource_version(),
        Some(control.resource_version().to_string().as_str()),
        "the snapshot's resourceVersion is the delete's"
    );
}

#[tokio::test]
async fn a_closed_watch_resumes_without_relisting() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = reflector(
        Api::<PackageRepository>::all(server.client()),
        watcher::Config::default(),
    );
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    control.close_watches();
    eventually("the watch reopens", || control.count("watch", REPOS) == 2).await;
    control
        .create(
            json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
            "metadata": {"name": "late"}, "spec": {"url": "https://late.example/"}}),
        )
        .unwrap();
    eventually("an event after the resume", || repos.get("late").is_some()).await;
    assert_eq!(
        control.count("list", REPOS),
        1,
        "resumed from its resourceVersion, no relist"
    );
    assert_eq!(repos.stats().relists_total(), 1);
}

#[tokio::test]
async fn namespaced_and_cluster_scoped_kinds() {
    let server = apisim().await;
    let (packages, _h1) = reflector(
        Api::<Package>::namespaced(server.client(), "analytics"),
        watcher::Config::default(),
    );
    let (cluster_packages, _h2) = reflector(
        Api::<ClusterPackage>::all(server.client()),
        watcher::Config::default(),
    );
    packages.wait_ready(PATIENCE).await.unwrap();
    cluster_packages.wait_ready(PATIENCE).await.unwrap();
    let quickwit = packages.get_namespaced("analytics", "my-quickwit").unwrap();
    assert_eq!(quickwit.repository_name(), Some("private-basic"));
    assert!(
        packages.get("my-quickwit").is_none(),
        "namespaced objects need their namespace"
    );
    assert_eq!(cluster_packages.snapshot().len(), 2);
    assert_eq!(
        cluster_packages
            .get("kubernetes-dashboard")
            .unwrap()
            .repository_name(),
        None,
        "empty repositoryName means the default repository"
    );
}

#[tokio::test]
async fn label_selected_cache_holds_only_matching_objects() {
    let server = apisim().await;
    let (repos, _handle) = reflector(
        Api::<PackageRepository>::all(server.client()),
        watcher::Config::default().labels("team"),
    );
    repos.wait_ready(PATIENCE).await.unwrap();
    let names: Vec<String> = repos
        .list()
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["team-bearer", "team-bearer-ref"]);
}

#[tokio::test]
async fn stop_ends_the_watch_and_keeps_the_last_snapshot() {
    let server = apisim().await;
    let control = server.control();
    let (repos, handle) = reflector(
        Api::<PackageRepository>::all(server.client()),
        watcher::Config::default(),
    );
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    handle.stop().await;
    assert!(
        matches!(repos.state(), CacheState::Stopped { ref reason } if reason.contains("ReflectorHandle::stop")),
        "{:?}",
        repos.state()
    );
    assert!(!repos.is_ready(), "a stopped cache is not ready");
    assert!(matches!(
        repos.wait_ready(PATIENCE).await,
        Err(repocache::Error::Stopped { .. })
    ));
    assert_eq!(
        repos.snapshot().len(),
        5,
        "the last snapshot stays readable"
    );
    eventually("the server sees the watch closed", || {
        control.open_watches() == 0
    })
    .await;
    assert!(matches!(
        repos.refresh().await,
        Err(repocache::Error::Stopped { .. })
    ));
    assert_eq!(repos.stats().relists(RelistReason::Initial), 1);
}

#[tokio::test]
async fn dropping_the_handle_stops_the_task() {
    let server = apisim().await;
    let control = server.control();
    let (repos, handle) = reflector(
        Api::<PackageRepository>::all(server.client()),
        watcher::Config::default(),
    );
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    drop(handle);
    eventually("the cache reports stopped, and why", || {
        matches!(repos.state(), CacheState::Stopped { ref reason } if reason.contains("dropped"))
    })
    .await;
    assert!(!repos.is_ready());
    eventually("the server sees the watch closed", || {
        control.open_watches() == 0
    })
    .await;
}

#[tokio::test]
async fn never_ready_against_an_unreachable_server_and_the_bounded_wait_says_so() {
    // A port nobody listens on: bind one, then free it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let (repos, _handle) = reflector(
        Api::<PackageRepository>::all(client),
        watcher::Config::default(),
    );
    let err = repos
        .wait_ready(std::time::Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(err, repocache::Error::ReadyTimeout { .. }),
        "{err}"
    );
    eventually("the failure shows in the state", || {
        matches!(repos.state(), CacheState::Failed { .. })
    })
    .await;
}

#[tokio::test]
async fn a_deferred_publish_needs_no_further_event() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .configure_cache(|c| c.publish_interval(Duration::from_secs(1)))
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let generation = repos.snapshot().generation();
    // Two changes right after the relist's publish: both wait for the publish interval, and no
    // later event comes along to publish them; the reflector's own timer must.
    control
        .merge_patch(
            REPOS,
            None,
            "glasskube",
            &json!({"spec": {"url": "https://moved.example/"}}),
        )
        .unwrap();
    control.delete(REPOS, None, "team-bearer").unwrap();
    eventually("both changes are published", || {
        let snapshot = repos.snapshot();
        snapshot.get("team-bearer").is_none()
            && snapshot
                .get("glasskube")
                .is_some_and(|r| r.spec.url == "https://moved.example/")
    })
    .await;
    assert_eq!(
        repos.snapshot().generation(),
        generation + 1,
        "both changes arrived within the interval: one snapshot carries them"
    );
}

/// The cache counts its own requests as apisim sees them: a LIST (or a streaming list, which
/// is a watch request that begins with the whole state) is a `relist`, a watch that resumes
/// from a version is a `watch`.
#[tokio::test]
async fn the_cache_counts_its_requests_as_relists_and_watches() {
    for (mode, config, relists, watches) in [
        ("list + watch", watcher::Config::default(), 1, 1),
        (
            "streaming list",
            watcher::Config::default().streaming_lists(),
            1,
            0,
        ),
    ] {
        let server = apisim().await;
        let control = server.control();
        let (repos, _handle) = reflector(Api::<PackageRepository>::all(server.client()), config);
        repos.wait_ready(PATIENCE).await.unwrap();
        // The watch that follows is open (apisim holds it) before the counts are read.
        assert!(control.wait_for_watches(1, PATIENCE).await, "{mode}");
        let stats = repos.stats();
        assert_eq!(
            (stats.api(ApiReason::Relist), stats.api(ApiReason::Watch)),
            (relists, watches),
            "{mode}: (relist, watch) requests; apisim saw {:?}",
            control.counts()
        );
    }
}

/// A relist the TTL forced that does not finish within its back-off is abandoned and retried:
/// one TTL after the first attempt, two after the second, four after the third (capped). While
/// the API server answers LISTs slowly the cache neither waits on one hung LIST nor retries in
/// a tight loop, and once LISTs are fast again a retry lands.
#[tokio::test]
async fn a_slow_forced_relist_is_retried_with_back_off_until_it_lands() {
    let server = apisim().await;
    let control = server.control();
    let ttl = Duration::from_millis(100);
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .ttl(ttl)
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    let lists_before = repos.stats().api(ApiReason::Relist);
    // The watch goes silent, so the TTL forces a relist, and for 2 s every LIST takes 5 s; a
    // change only a relist can bring (the side door tells no watch).
    control.stall_watches(None);
    control.add_latency(LatencySpec {
        verb: Some("list".into()),
        resource: Some(REPOS.into()),
        latency_ms: 5_000,
        count: None,
    });
    let mut moved = control.get(REPOS, None, "team-bearer").unwrap();
    moved["spec"]["url"] = json!("https://moved.example.net/");
    control.side_door_put(moved).unwrap();
    // The length of the fault, not a wait for an outcome.
    tokio::time::sleep(Duration::from_secs(2)).await;
    control.clear_faults();
    eventually(
        "a forced relist lands the change the silent watch never sent",
        || {
            repos
                .get("team-bearer")
                .is_some_and(|r| r.spec.url == "https://moved.example.net/")
        },
    )
    .await;
    let lists = repos.stats().api(ApiReason::Relist) - lists_before;
    eprintln!("the forced relist landed after {lists} LISTs");
    // Attempts at 0, 0.1, 0.3, 0.7, 1.5 s into the slow window (fewer when the machine is
    // busy: timers only fire late), then one after it: about 6, and at least 2 even if the
    // reflector's task was starved. A reflector that waits on a hung LIST sends 1 (and lands
    // only when it answers, after 5 s); one that retries without back-off sends hundreds.
    assert!(
        (2..=15).contains(&lists),
        "LISTs sent from the first forced relist until one landed: {lists}"
    );
}

/// Every event the watch delivers is timed from its arrival to the publish that makes it
/// visible (`event_to_visible`, the propagation histogram): three changes, three observations.
#[tokio::test]
async fn every_watch_event_is_timed_until_it_is_visible() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    let before = repos.stats().event_to_visible.count;
    for name in ["glasskube", "private-basic", "team-bearer"] {
        let mut obj = control.get(REPOS, None, name).unwrap();
        obj["spec"]["url"] = json!(format!("https://timed-{name}.example.net/"));
        control.replace(obj).unwrap();
    }
    eventually("the three changes are visible", || {
        repos
            .get("team-bearer")
            .is_some_and(|r| r.spec.url == "https://timed-team-bearer.example.net/")
    })
    .await;
    assert_eq!(repos.stats().event_to_visible.count - before, 3);
}

/// A LIST answered 410 Gone (a paginated list whose continue token expired, as etcd's
/// compaction makes it) is an expiry, not an outage: the watcher lists again from the start,
/// and the cache never reports Failed meanwhile.
#[tokio::test]
async fn a_list_answered_410_is_listed_again_not_reported_failed() {
    let server = apisim().await;
    let control = server.control();
    control.fail_next(FailSpec::new("list", REPOS, 410, 1));
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(&server))).start();
    let deadline = Instant::now() + PATIENCE;
    while repos.state() != CacheState::Ready {
        let state = repos.state();
        assert!(
            !matches!(state, CacheState::Failed { .. }),
            "an expired list is no failure: {state:?}"
        );
        assert!(Instant::now() < deadline, "never ready: {state:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        control.count("list", REPOS),
        2,
        "the 410, then the list after it"
    );
}
