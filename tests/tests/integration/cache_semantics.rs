//! Cache semantics against apisim, proven by counting requests: reads after sync, policy reads,
//! authoritative misses, the TTL fallback after a silent stall, 410 and restart recovery, an API
//! outage, undecodable objects, manual refresh, and the metrics that report all of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use apisim::{FailSpec, LatencySpec};
use glasskube_api::PackageRepository;
use kube::Api;
use kube::runtime::watcher;
use repocache::policy::Source;
use repocache::stats::{ApiReason, RelistReason};
use repocache::{Cache, CacheState, Metrics, ReadPolicy, ReflectorBuilder, ReflectorHandle};
use repocache_test_support::{
    Baseline, PATIENCE, apisim, client_without_retry, eventually, init_tracing,
};
use repocache_tests::{cached_versions, repository, url_of};
use serde_json::json;

const REPOS: &str = "packagerepositories";

fn start(
    server: &apisim::ServerHandle,
    ttl: Duration,
    metrics: Option<&Metrics>,
) -> (Cache<PackageRepository>, ReflectorHandle) {
    start_with(server.client(), ttl, metrics)
}

fn start_with(
    client: kube::Client,
    ttl: Duration,
    metrics: Option<&Metrics>,
) -> (Cache<PackageRepository>, ReflectorHandle) {
    let mut builder = ReflectorBuilder::new(Api::<PackageRepository>::all(client)).ttl(ttl);
    if let Some(metrics) = metrics {
        builder = builder.metrics(metrics);
    }
    builder.start()
}

#[tokio::test]
async fn reads_after_ready_make_no_requests() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let (cache, _handle) = start(&server, Duration::ZERO, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    let before = control.requests().len();
    let baseline = Baseline::take(&control);
    let names = [
        "glasskube",
        "private-basic",
        "inline-basic",
        "team-bearer",
        "nope",
    ];
    let mut hits = 0;
    for i in 0..10_000 {
        if i % 3 == 0 {
            assert_eq!(cache.list().len(), 5);
        } else if cache.get(names[i % names.len()]).is_some() {
            hits += 1;
        }
    }
    assert!(hits > 0);
    baseline.settle().await;
    assert_eq!(
        control.requests().len(),
        before,
        "reads reached the API server"
    );
    assert_eq!(control.count("list", REPOS), 1, "one initial LIST");
    assert_eq!(control.count("watch", REPOS), 1, "one WATCH");
    assert_eq!(control.count("get", REPOS), 0);
    let stats = cache.stats();
    assert_eq!(stats.api(ApiReason::Relist), 1);
    assert_eq!(stats.api(ApiReason::Watch), 1);
    assert_eq!(stats.hits, hits);
    assert_eq!(stats.hits + stats.misses, 10_000 - 3334);
}

#[tokio::test]
async fn fresh_reads_make_one_request_each_and_max_staleness_only_when_stale() {
    let server = apisim().await;
    let control = server.control();
    let (cache, _handle) = start(&server, Duration::ZERO, None);
    cache.wait_ready(PATIENCE).await.unwrap();

    let gets = control.count("get", REPOS);
    for _ in 0..3 {
        let read = cache
            .get_with("glasskube", ReadPolicy::Fresh)
            .await
            .unwrap();
        assert!(read.is_live());
        assert_eq!(
            read.value.unwrap().spec.url,
            "https://packages.dl.glasskube.dev/packages"
        );
    }
    assert_eq!(control.count("get", REPOS), gets + 3);
    let lists = control.count("list", REPOS);
    let listed = cache.list_with(ReadPolicy::Fresh).await.unwrap();
    assert_eq!(listed.value.len(), 5);
    // `into_value` hands over the answer itself.
    assert_eq!(listed.clone().into_value().len(), 5);
    assert_eq!(control.count("list", REPOS), lists + 1);
    // A fresh miss is the server's 404, as None.
    assert!(
        cache
            .get_with("nope", ReadPolicy::Fresh)
            .await
            .unwrap()
            .value
            .is_none()
    );
    assert_eq!(control.count("get", REPOS), gets + 4);

    // Fresh enough: no request, answered from the snapshot.
    let baseline = Baseline::take(&control);
    let read = cache
        .get_with(
            "glasskube",
            ReadPolicy::MaxStaleness(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert!(matches!(read.source, Source::Snapshot { .. }));
    baseline.settle().await;
    assert_eq!(control.count("get", REPOS), gets + 4);
    // Older than the bound: exactly one live read.
    let read = cache
        .get_with("glasskube", ReadPolicy::MaxStaleness(Duration::ZERO))
        .await
        .unwrap();
    assert!(read.is_live());
    assert_eq!(control.count("get", REPOS), gets + 5);
    let stats = cache.stats();
    assert_eq!(stats.api(ApiReason::Fresh), 5);
    assert_eq!(stats.api(ApiReason::Fallback), 1);
}

#[tokio::test]
async fn a_miss_while_ready_is_authoritative() {
    let server = apisim().await;
    let control = server.control();
    let (cache, _handle) = start(&server, Duration::ZERO, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    let before = control.requests().len();
    assert!(cache.get("does-not-exist").is_none());
    let read = cache
        .get_with(
            "does-not-exist",
            ReadPolicy::MaxStaleness(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(read.value.is_none());
    assert!(!read.is_live());
    let read = cache
        .get_with("does-not-exist", ReadPolicy::Cached)
        .await
        .unwrap();
    assert!(read.value.is_none());
    assert_eq!(control.requests().len(), before);
    assert_eq!(cache.stats().misses, 3);
}

#[tokio::test]
async fn not_ready_cached_reads_do_no_io_and_max_staleness_falls_back() {
    let server = apisim().await;
    let control = server.control();
    // The first LIST is held back, so the cache stays not ready.
    control.fail_next(FailSpec::new("list", REPOS, 503, 1000));
    let (cache, _handle) = start_with(client_without_retry(&server), Duration::ZERO, None);
    assert!(!cache.is_ready());
    assert!(cache.get("glasskube").is_none());
    let read = cache
        .get_with("glasskube", ReadPolicy::Cached)
        .await
        .unwrap();
    assert!(read.value.is_none() && !read.is_live());
    let gets = control.count("get", REPOS);
    let read = cache
        .get_with(
            "glasskube",
            ReadPolicy::MaxStaleness(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert!(
        read.is_live(),
        "not ready: the policy falls back to one live GET"
    );
    assert!(read.value.is_some());
    assert_eq!(control.count("get", REPOS), gets + 1);
    eventually("the failing list shows in the state", || {
        matches!(cache.state(), CacheState::Failed { .. })
    })
    .await;
    control.clear_faults();
    cache.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(cache.state(), CacheState::Ready);
    assert_eq!(cache.stats().relists(RelistReason::Initial), 1);
}

#[tokio::test]
async fn silent_stall_is_caught_by_the_ttl_and_relisted() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let ttl = Duration::from_millis(300);
    let (cache, _handle) = start(&server, ttl, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    control.stall_watches(None);
    // Each round makes a change the stalled watch cannot deliver, with the next LIST held back
    // 300 ms so that the relist's stale state lasts long enough to be seen. Whether the loop
    // below gets to read during that window is up to the scheduler, so a round in which it did
    // not read three times is followed by another (the watch stays stalled, so the TTL strikes
    // again), until it did: a wait on the condition, not on the 300 ms.
    let mut reads_while_stale = 0u64;
    let deadline = Instant::now() + PATIENCE;
    let mut round = 0;
    while reads_while_stale < 3 {
        round += 1;
        control.add_latency(LatencySpec {
            verb: Some("list".into()),
            resource: Some(REPOS.into()),
            latency_ms: 300,
            count: Some(1),
        });
        let moved = format!("https://moved-{round}.example.net/");
        let mut changed = control.get(REPOS, None, "team-bearer").unwrap();
        changed["spec"]["url"] = json!(moved);
        control.side_door_put(changed).unwrap();
        while url_of(&cache, "team-bearer").as_deref() != Some(moved.as_str()) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the TTL relist never made the change visible, or reads never \
                 completed while the cache was Stale ({reads_while_stale} did)"
            );
            let repo = cache.get("team-bearer");
            let _ = cache.list();
            assert!(repo.is_some(), "the last snapshot is served meanwhile");
            if matches!(cache.state(), CacheState::Stale { .. }) {
                reads_while_stale += 1;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let stats = cache.stats();
    assert!(stats.relists(RelistReason::Ttl) >= 1, "{:?}", stats.relists);
    // Reads never wait for the writer, checked without a wall-clock bound: the relist's LIST
    // is held back 300 ms, and reads go on completing (and seeing `Stale`) meanwhile; a read
    // that waited for the relist would only return once the cache was `Ready` again.
    assert!(
        reads_while_stale >= 3,
        "the cache reported Stale while the watch was silent, and reads completed meanwhile \
         ({reads_while_stale} did)"
    );
    control.release_watches();
}

#[tokio::test]
async fn expired_resume_relists_with_reason_expired() {
    let server = apisim().await;
    let control = server.control();
    let (cache, _handle) = start(&server, Duration::ZERO, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    control.compact();
    control.close_watches();
    eventually("a relist after 410", || {
        cache.stats().relists(RelistReason::Expired) == 1
    })
    .await;
    assert_eq!(cache.state(), CacheState::Ready);
    assert_eq!(cache.snapshot().len(), 5);
}

#[tokio::test]
async fn restart_with_lost_history_recovers_the_servers_state() {
    let server = apisim().await;
    let control = server.control();
    let (cache, _handle) = start(&server, Duration::ZERO, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    // Deleted and changed while the watch is "down": no event will ever tell the cache.
    control
        .side_door_delete(REPOS, None, "inline-basic")
        .unwrap();
    control
        .side_door_put(repository("created-meanwhile", "https://new.example.com/"))
        .unwrap();
    control.restart(true);
    eventually("the deleted object is gone after the relist", || {
        cache.get("inline-basic").is_none() && cache.get("created-meanwhile").is_some()
    })
    .await;
    let server_state: Vec<(String, String)> = control
        .list(REPOS)
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_owned(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let cached = cached_versions(&cache);
    assert_eq!(cached, server_state);
    assert!(cache.stats().relists(RelistReason::Expired) >= 1);
}

#[tokio::test]
async fn api_outage_longer_than_the_ttl_serves_the_last_snapshot_and_recovers() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let ttl = Duration::from_millis(200);
    // Without kube's client-side retries, so that the 503s reach the watcher at once.
    let (cache, _handle) = start_with(client_without_retry(&server), ttl, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    control.fail_next(FailSpec::new("*", REPOS, 503, 100_000));
    control.close_watches();
    eventually("the outage shows as Failed", || {
        matches!(cache.state(), CacheState::Failed { ref last_error, .. } if last_error.contains("503"))
    })
    .await;
    // Still serving the last snapshot.
    assert_eq!(cache.snapshot().len(), 5);
    assert!(cache.get("glasskube").is_some());
    assert!(cache.is_stale());
    let relists = cache.stats().relists_total();
    control.clear_faults();
    // Ready and not stale at one moment: the 200 ms TTL outruns apisim's 1 s bookmarks, so a
    // quiet cache turns stale again before each TTL relist, and a separate check a busy
    // machine delays could land there.
    eventually("recovery after the outage", || {
        let ready = cache.state() == CacheState::Ready && !cache.is_stale();
        ready && cache.stats().relists_total() > relists
    })
    .await;
}

#[tokio::test]
async fn an_object_that_does_not_decode_is_skipped_and_counted() {
    let server = apisim().await;
    let control = server.control();
    let mut bad = repository("broken", "x");
    bad["spec"]["url"] = json!(42);
    control.create(bad).unwrap();
    let (cache, _handle) = start(&server, Duration::ZERO, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(
        cache.snapshot().len(),
        5,
        "the five good objects are cached"
    );
    assert!(cache.get("broken").is_none());
    assert_eq!(cache.stats().decode_failures, 1);
    // Another one through the open watch, and the watch keeps delivering afterwards.
    assert!(control.wait_for_watches(1, PATIENCE).await);
    assert!(control.inject_undecodable(REPOS).unwrap() >= 1);
    control
        .create(repository("after", "https://after.example.com/"))
        .unwrap();
    eventually("a valid object after the bad one", || {
        cache.get("after").is_some()
    })
    .await;
    assert_eq!(cache.stats().decode_failures, 2);
}

#[tokio::test]
async fn refresh_resolves_after_a_relist_visible_in_the_request_log() {
    let server = apisim().await;
    let control = server.control();
    let (cache, _handle) = start(&server, Duration::ZERO, None);
    cache.wait_ready(PATIENCE).await.unwrap();
    let lists = control.count("list", REPOS);
    let before = cache.snapshot().generation();
    let generation = tokio::time::timeout(PATIENCE, cache.refresh())
        .await
        .unwrap()
        .unwrap();
    assert!(generation > before);
    assert!(cache.snapshot().generation() >= generation);
    assert_eq!(
        control.count("list", REPOS),
        lists + 1,
        "the refresh made one LIST"
    );
    assert_eq!(cache.stats().relists(RelistReason::Manual), 1);
}

#[tokio::test]
async fn metrics_report_each_family_with_the_values_produced() {
    let server = apisim().await;
    let metrics = Metrics::new();
    let (cache, _handle) = start(&server, Duration::ZERO, Some(&metrics));
    cache.wait_ready(PATIENCE).await.unwrap();
    cache.get("glasskube").unwrap();
    cache.get("glasskube").unwrap();
    assert!(cache.get("nope").is_none());
    cache
        .get_with("glasskube", ReadPolicy::Fresh)
        .await
        .unwrap();
    cache.refresh().await.unwrap();
    let text = metrics.render();
    let k = r#"kind="PackageRepository""#;
    for expected in [
        format!("repocache_reads_total{{{k},result=\"hit\"}} 2"),
        format!("repocache_reads_total{{{k},result=\"miss\"}} 1"),
        format!("repocache_api_requests_total{{{k},reason=\"fresh\"}} 1"),
        format!("repocache_api_requests_total{{{k},reason=\"relist\"}} 2"),
        format!("repocache_relists_total{{{k},reason=\"initial\"}} 1"),
        format!("repocache_relists_total{{{k},reason=\"manual\"}} 1"),
        format!("repocache_watch_events_total{{{k},type=\"init_done\"}} 2"),
        format!("repocache_decode_failures_total{{{k}}} 0"),
        format!("repocache_decoding_robust{{{k}}} 0"),
        format!("repocache_objects{{{k}}} 5"),
        format!("repocache_ready{{{k}}} 1"),
        format!("repocache_state{{{k},state=\"ready\"}} 1"),
        format!(
            "repocache_resource_version{{{k}}} {}",
            cache.snapshot().resource_version().unwrap()
        ),
        format!(
            "repocache_generation{{{k}}} {}",
            cache.snapshot().generation()
        ),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    for family in [
        "repocache_snapshot_age_seconds{",
        "repocache_since_confirmed_seconds{",
        "repocache_event_to_visible_seconds_count{",
        "repocache_event_to_visible_seconds_bucket{",
        "repocache_api_requests_total{kind=\"PackageRepository\",reason=\"watch\"}",
    ] {
        assert!(text.contains(family), "missing `{family}` in:\n{text}");
    }
    let stats = cache.stats();
    assert!(stats.event_to_visible.count >= 2);
}

#[tokio::test]
async fn streaming_list_caches_the_same_objects() {
    let server = apisim().await;
    let control = server.control();
    let (cache, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .watcher_config(watcher::Config::default().streaming_lists())
        .start();
    cache.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(cache.snapshot().len(), 5);
    assert_eq!(
        control.count("list", REPOS),
        0,
        "no LIST in streaming-list mode"
    );
    assert_eq!(cache.stats().relists(RelistReason::Initial), 1);
    control
        .create(repository("streamed", "https://s.example.com/"))
        .unwrap();
    eventually("a watch event after the streaming list", || {
        cache.get("streamed").is_some()
    })
    .await;
}
