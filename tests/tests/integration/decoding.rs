//! How the reflector decodes: the typed fast path while every object decodes, and the switch to
//! per-object decoding (one relist, then for good) when one does not — at the start, in a LIST
//! page or a streaming list, or in the middle of a watch. The bad object is skipped and counted
//! once, every good object is cached, later changes keep arriving, and a decode error is never
//! taken for an API failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use apisim::{Control, ServerHandle};
use glasskube_api::{PackageInfo, PackageRepository};
use kube::Api;
use kube::runtime::watcher;
use repocache::stats::{DecodingMode, EventType};
use repocache::{Cache, CacheState, Metrics, ReflectorBuilder};
use repocache::{ReflectorHandle, Stats};
use repocache_test_support::{PATIENCE, apisim, client_without_retry, eventually};
use repocache_tests::{cached_versions, url_of};
use serde_json::{Value, json};

const REPOS: &str = "packagerepositories";
/// The fixtures' PackageRepositories, in name order.
const FIXTURES: [&str; 5] = [
    "glasskube",
    "inline-basic",
    "private-basic",
    "team-bearer",
    "team-bearer-ref",
];

fn start(
    server: &ServerHandle,
    config: watcher::Config,
    metrics: &Metrics,
) -> (Cache<PackageRepository>, ReflectorHandle) {
    ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(server)))
        .watcher_config(config)
        .metrics(metrics)
        .start()
}

/// The strategies every test runs with: LIST+WATCH (default pages), and a streaming list.
fn strategies() -> [(&'static str, watcher::Config); 2] {
    [
        ("list+watch", watcher::Config::default()),
        ("streaming", watcher::Config::default().streaming_lists()),
    ]
}

fn names(cache: &Cache<PackageRepository>) -> Vec<String> {
    cache
        .snapshot()
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect()
}

fn gauge(metrics: &Metrics) -> String {
    let text = metrics.render();
    let prefix = r#"repocache_decoding_robust{kind="PackageRepository"} "#;
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no decoding gauge in:\n{text}"))
        .to_owned()
}

/// The server's objects whose `spec.url` is a string (those that decode), by name and
/// resourceVersion.
fn decodable_on_server(control: &Control) -> Vec<(String, String)> {
    control
        .list(REPOS)
        .unwrap()
        .iter()
        .filter(|o| o["spec"]["url"].is_string())
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_owned(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

/// The cache holds exactly the server's objects that decode, version by version.
fn assert_converged(control: &Control, cache: &Cache<PackageRepository>) {
    let cached = cached_versions(cache);
    assert_eq!(cached, decodable_on_server(control));
}

/// The figures that say a decode error was not taken for an API failure.
fn assert_no_api_failure(stats: &Stats) {
    assert_eq!(stats.state, CacheState::Ready, "{stats:?}");
    assert_eq!(stats.events(EventType::Error), 0, "{stats:?}");
}

fn broken(name: &str) -> Value {
    json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
        "metadata": {"name": name}, "spec": {"url": 42}})
}

#[tokio::test]
async fn good_objects_sync_and_follow_changes_on_the_typed_fast_path() {
    for (strategy, config) in strategies() {
        let server = apisim().await;
        let control = server.control();
        let metrics = Metrics::new();
        let (cache, _handle) = start(&server, config, &metrics);
        cache.wait_ready(PATIENCE).await.unwrap();
        assert!(control.wait_for_watches(1, PATIENCE).await);
        assert_eq!(names(&cache), FIXTURES, "{strategy}");
        control
            .merge_patch(
                REPOS,
                None,
                "glasskube",
                &json!({"spec": {"url": "https://moved.example/"}}),
            )
            .unwrap();
        eventually("the update arrives", || {
            url_of(&cache, "glasskube").as_deref() == Some("https://moved.example/")
        })
        .await;
        let stats = cache.stats();
        assert_eq!(stats.decoding, DecodingMode::Fast, "{strategy}");
        assert_eq!(stats.decode_failures, 0, "{strategy}");
        assert_no_api_failure(&stats);
        assert_eq!(gauge(&metrics), "0", "{strategy}");
        let lists = u64::from(strategy == "list+watch");
        assert_eq!(control.count("list", REPOS), lists, "{strategy}");
        assert_eq!(control.count("watch", REPOS), 1, "{strategy}");
        assert_converged(&control, &cache);
    }
}

#[tokio::test]
async fn an_undecodable_object_at_the_start_switches_to_per_object_decoding() {
    for (strategy, config) in [
        // Pages of two: the bad object is on the second page of five, after a good page.
        ("list+watch", watcher::Config::default().page_size(2)),
        ("streaming", watcher::Config::default().streaming_lists()),
    ] {
        let server = apisim().await;
        let control = server.control();
        control.create(broken("m-broken")).unwrap();
        let metrics = Metrics::new();
        let (cache, _handle) = start(&server, config, &metrics);
        cache.wait_ready(PATIENCE).await.unwrap();
        assert!(control.wait_for_watches(1, PATIENCE).await);
        assert_eq!(names(&cache), FIXTURES, "{strategy}: every good object");
        let stats = cache.stats();
        assert_eq!(stats.decoding, DecodingMode::Robust, "{strategy}");
        assert_eq!(
            stats.decode_failures, 1,
            "{strategy}: counted once, by the per-object relist"
        );
        assert_eq!(stats.relists_total(), 1, "{strategy}: one completed sync");
        assert_no_api_failure(&stats);
        assert_eq!(gauge(&metrics), "1", "{strategy}");
        // The switch costs one relist: the typed sync stopped at the bad object (the second
        // page, or the streaming list's watch) and the per-object one started over.
        if strategy == "list+watch" {
            assert_eq!(control.count("list", REPOS), 2 + 3, "{strategy}: pages");
            assert_eq!(control.count("watch", REPOS), 1, "{strategy}");
        } else {
            assert_eq!(control.count("list", REPOS), 0, "{strategy}");
            assert_eq!(control.count("watch", REPOS), 2, "{strategy}");
        }

        // Changes keep arriving.
        control
            .create(json!({"apiVersion": "packages.glasskube.dev/v1alpha1",
                "kind": "PackageRepository", "metadata": {"name": "after"},
                "spec": {"url": "https://after.example/"}}))
            .unwrap();
        eventually("a later object arrives", || cache.get("after").is_some()).await;
        assert_converged(&control, &cache);

        // A restart stays on per-object decoding: one relist, no second switch.
        let (lists, watches) = (control.count("list", REPOS), control.count("watch", REPOS));
        cache.refresh().await.unwrap();
        let stats = cache.stats();
        assert_eq!(stats.decoding, DecodingMode::Robust, "{strategy}");
        assert_eq!(
            stats.decode_failures, 2,
            "{strategy}: met again by the relist"
        );
        if strategy == "list+watch" {
            let pages = control.list(REPOS).unwrap().len().div_ceil(2) as u64;
            assert_eq!(control.count("list", REPOS), lists + pages, "{strategy}");
        } else {
            assert_eq!(control.count("watch", REPOS), watches + 1, "{strategy}");
        }
        assert_no_api_failure(&stats);
        assert_converged(&control, &cache);
    }
}

#[tokio::test]
async fn an_object_that_turns_undecodable_during_the_watch_switches_and_converges() {
    for (strategy, config) in strategies() {
        let server = apisim().await;
        let control = server.control();
        let metrics = Metrics::new();
        let (cache, _handle) = start(&server, config, &metrics);
        cache.wait_ready(PATIENCE).await.unwrap();
        assert!(control.wait_for_watches(1, PATIENCE).await);
        assert_eq!(cache.stats().decoding, DecodingMode::Fast);
        let (lists, watches) = (control.count("list", REPOS), control.count("watch", REPOS));

        // A write that the kind cannot decode, announced to the watch: with the streaming
        // list, through the side door plus a hand-made event (a write the API's validation
        // let through), else as a real write.
        if strategy == "streaming" {
            let mut spoiled = control.get(REPOS, None, "glasskube").unwrap();
            spoiled["spec"]["url"] = json!(["not", "a", "string"]);
            let stored = control.side_door_put(spoiled).unwrap();
            assert!(control.inject_event(REPOS, "MODIFIED", &stored).unwrap() >= 1);
        } else {
            control
                .merge_patch(REPOS, None, "glasskube", &json!({"spec": {"url": 42}}))
                .unwrap();
        }
        eventually("the switch's relist completes", || {
            let stats = cache.stats();
            stats.decoding == DecodingMode::Robust && stats.relists_total() == 2
        })
        .await;
        let stats = cache.stats();
        assert_eq!(stats.decode_failures, 1, "{strategy}: counted once");
        assert_no_api_failure(&stats);
        assert_eq!(gauge(&metrics), "1", "{strategy}");
        assert!(cache.get("glasskube").is_none(), "{strategy}: skipped");
        assert_converged(&control, &cache);
        // The switch made one relist: a LIST (and a new watch), or a new streaming watch.
        if strategy == "list+watch" {
            assert_eq!(control.count("list", REPOS), lists + 1, "{strategy}");
        } else {
            assert_eq!(control.count("list", REPOS), lists, "{strategy}");
            assert_eq!(control.count("watch", REPOS), watches + 1, "{strategy}");
        }

        // Later updates of the other objects still arrive, and the bad one once it is fixed.
        control
            .merge_patch(
                REPOS,
                None,
                "inline-basic",
                &json!({"spec": {"url": "https://inline.example/"}}),
            )
            .unwrap();
        eventually("a later update arrives", || {
            url_of(&cache, "inline-basic").as_deref() == Some("https://inline.example/")
        })
        .await;
        control
            .merge_patch(
                REPOS,
                None,
                "glasskube",
                &json!({"spec": {"url": "https://fixed.example/"}}),
            )
            .unwrap();
        eventually("the fixed object arrives", || {
            url_of(&cache, "glasskube").as_deref() == Some("https://fixed.example/")
        })
        .await;
        assert_eq!(names(&cache), FIXTURES, "{strategy}");
        assert_converged(&control, &cache);
        let stats = cache.stats();
        assert_eq!(stats.decoding, DecodingMode::Robust, "{strategy}: for good");
        assert_eq!(stats.decode_failures, 1, "{strategy}");
        assert_no_api_failure(&stats);
    }
}

/// A PackageInfo whose `status.manifest` is nested `depth` levels deep.
fn package_info(name: &str, depth: usize) -> Value {
    let mut manifest = json!("leaf");
    for _ in 0..depth {
        manifest = json!({ "nested": manifest });
    }
    json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageInfo",
        "metadata": {"name": name}, "spec": {"name": name, "version": "v1"},
        "status": {"manifest": manifest}})
}

#[tokio::test]
async fn an_object_nested_deeper_than_the_decoder_allows_costs_that_object_only() {
    const INFOS: &str = "packageinfos";
    for (strategy, config) in strategies() {
        let server = apisim().await;
        let control = server.control();
        for info in control.list(INFOS).unwrap() {
            let name = info["metadata"]["name"].as_str().unwrap().to_owned();
            control.side_door_delete(INFOS, None, &name).unwrap();
        }
        control.side_door_put(package_info("good-a", 3)).unwrap();
        // Deeper than serde_json's recursion limit (128): a syntax error, not a data error.
        control.side_door_put(package_info("deep", 200)).unwrap();
        control.side_door_put(package_info("good-b", 100)).unwrap();
        let client = client_without_retry(&server);
        let started = std::time::Instant::now();
        let (cache, _handle) = ReflectorBuilder::new(Api::<PackageInfo>::all(client))
            .watcher_config(config)
            .start();
        let ready = cache.wait_ready(PATIENCE).await;
        let figures = format!(
            "{strategy}: LISTs {}, WATCHes {}, {:?} to ready",
            control.count("list", INFOS),
            control.count("watch", INFOS),
            started.elapsed()
        );
        eprintln!("{figures}");
        ready.unwrap_or_else(|e| panic!("{figures}: {e}"));
        assert!(control.wait_for_watches(1, PATIENCE).await);
        let cached: Vec<String> = cache
            .snapshot()
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(cached, ["good-a", "good-b"], "{strategy}");
        let stats = cache.stats();
        assert_eq!(stats.decode_failures, 1, "{strategy}: {stats:?}");
        assert_eq!(stats.decoding, DecodingMode::Robust, "{strategy}");
        assert_eq!(stats.relists_total(), 1, "{strategy}");
        assert_no_api_failure(&stats);
        // The switch costs one relist, no more.
        if strategy == "list+watch" {
            assert_eq!(control.count("list", INFOS), 2, "{figures}");
            assert_eq!(control.count("watch", INFOS), 1, "{figures}");
        } else {
            assert_eq!(control.count("list", INFOS), 0, "{figures}");
            assert_eq!(control.count("watch", INFOS), 2, "{figures}");
        }

        // A deep update of a good object is counted and skipped (its last good version stays);
        // a deep delete still removes the object (its metadata decodes at any depth).
        let mut deep_a = package_info("good-a", 200);
        deep_a["metadata"] = control.get(INFOS, None, "good-a").unwrap()["metadata"].clone();
        let stored = control.side_door_put(deep_a).unwrap();
        control.inject_event(INFOS, "MODIFIED", &stored).unwrap();
        control.side_door_delete(INFOS, None, "good-b").unwrap();
        let mut gone = package_info("good-b", 200);
        gone["metadata"]["resourceVersion"] = json!(control.resource_version().to_string());
        control.inject_event(INFOS, "DELETED", &gone).unwrap();
        eventually("the deep delete removes good-b", || {
            cache.get("good-b").is_none()
        })
        .await;
        let stats = cache.stats();
        assert_eq!(stats.decode_failures, 2, "{strategy}: {stats:?}");
        assert!(cache.get("good-a").is_some(), "{strategy}");
        assert_no_api_failure(&stats);
    }
}

#[tokio::test]
async fn an_api_error_on_the_fast_path_is_no_reason_to_switch() {
    let server = apisim().await;
    let control = server.control();
    // One LIST answers 500 (a client without retries: the watcher sees it).
    control.fail_next(apisim::FailSpec::new("list", REPOS, 500, 1));
    let metrics = Metrics::new();
    let (cache, _handle) = start(&server, watcher::Config::default(), &metrics);
    cache.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(names(&cache), FIXTURES);
    assert!(
        control.count("list", REPOS) >= 2,
        "the failed LIST was retried"
    );
    let stats = cache.stats();
    assert_eq!(
        stats.decoding,
        DecodingMode::Fast,
        "an API error is not a decode error"
    );
    assert_eq!(gauge(&metrics), "0");
}
