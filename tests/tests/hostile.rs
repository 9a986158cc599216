//! Hostile input never poisons the cache: undecodable objects, events without a
//! resourceVersion, duplicates, deletes of unknown objects, out-of-order versions, huge objects,
//! many objects, unusual names, a watch line cut in the middle and an HTML error page. The cache
//! keeps everything valid, counts the rest, stays (or gets back to) Ready and never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use apisim::{Control, FailSpec, Server, ServerConfig, ServerHandle};
use glasskube_api::PackageRepository;
use kube::Api;
use kube::runtime::watcher;
use repocache::{Cache, CacheState, EventType, ReflectorBuilder, ReflectorHandle};
use repocache_tests::{PATIENCE, cached_versions, client_without_retry, eventually};
use serde_json::{Value, json};

const REPOS: &str = "packagerepositories";

fn repo(name: &str, url: &str) -> Value {
    json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
        "metadata": {"name": name}, "spec": {"url": url}})
}

async fn server() -> ServerHandle {
    Server::start(ServerConfig::default()).await.unwrap()
}

async fn cache(server: &ServerHandle) -> (Cache<PackageRepository>, ReflectorHandle) {
    let (cache, handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(server)))
            .watcher_config(watcher::Config::default())
            .start();
    cache.wait_ready(PATIENCE).await.unwrap();
    assert!(server.control().wait_for_watches(1, PATIENCE).await);
    (cache, handle)
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn snapshot_rv(cache: &Cache<PackageRepository>) -> u64 {
    cache
        .snapshot()
        .resource_version()
        .unwrap()
        .parse()
        .unwrap()
}

fn url_of(cache: &Cache<PackageRepository>, name: &str) -> Option<String> {
    cache.get(name).map(|r| r.spec.url.clone())
}

/// Writes a marker object and waits for it: every event sent before it has been handled.
async fn barrier(control: &Control, cache: &Cache<PackageRepository>, n: u32) {
    let name = format!("barrier-{n}");
    control
        .create(repo(&name, "https://barrier.example/"))
        .unwrap();
    eventually(&format!("{name} arrives"), || cache.get(&name).is_some()).await;
}

/// The cache equals the server, name by name and version by version.
fn assert_equals_server(control: &Control, cache: &Cache<PackageRepository>) {
    let server: Vec<(String, String)> = control
        .list(REPOS)
        .unwrap()
        .iter()
        .map(|o| (o["metadata"]["name"].as_str().unwrap().to_owned(), rv(o)))
        .collect();
    let cached = cached_versions(cache);
    assert_eq!(cached, server);
}

#[tokio::test]
async fn an_object_whose_spec_does_not_decode_is_counted_and_skipped() {
    let server = server().await;
    let control = server.control();
    control
        .create(repo("good", "https://good.example/"))
        .unwrap();
    // One bad object in the initial LIST (written past the API's validation).
    let mut bad = repo("bad-listed", "x");
    bad["spec"]["url"] = json!(42);
    control.side_door_put(bad).unwrap();
    let (cache, _handle) = cache(&server).await;
    assert_eq!(cache.stats().decode_failures, 1);
    assert!(cache.get("good").is_some());
    assert!(cache.get("bad-listed").is_none());

    // A bad event for a new object, and one that turns a good object bad.
    assert_eq!(control.inject_undecodable(REPOS).unwrap(), 1);
    let mut spoiled = control.get(REPOS, None, "good").unwrap();
    spoiled["spec"] = json!({"url": ["not", "a", "string"]});
    spoiled["metadata"]["resourceVersion"] = json!((control.resource_version() + 1).to_string());
    control.inject_event(REPOS, "MODIFIED", &spoiled).unwrap();
    barrier(&control, &cache, 1).await;
    let stats = cache.stats();
    assert_eq!(stats.decode_failures, 3);
    assert_eq!(stats.state, CacheState::Ready);
    assert!(cache.get("apisim-undecodable").is_none());
    assert_eq!(
        url_of(&cache, "good").as_deref(),
        Some("https://good.example/"),
        "the last valid version stays"
    );

    // The object decodes again with the next real write.
    control
        .merge_patch(
            REPOS,
            None,
            "good",
            &json!({"spec": {"url": "https://fixed.example/"}}),
        )
        .unwrap();
    eventually("the fixed object arrives", || {
        url_of(&cache, "good").as_deref() == Some("https://fixed.example/")
    })
    .await;
    // A DELETE of an object that does not decode still removes what the cache holds.
    let mut gone = control.get(REPOS, None, "good").unwrap();
    gone["spec"]["url"] = json!(7);
    control.side_door_delete(REPOS, None, "good").unwrap();
    gone["metadata"]["resourceVersion"] = json!(control.resource_version().to_string());
    control.inject_event(REPOS, "DELETED", &gone).unwrap();
    eventually("the undecodable delete removes it", || {
        cache.get("good").is_none()
    })
    .await;
    control.side_door_delete(REPOS, None, "bad-listed").unwrap();
    cache.refresh().await.unwrap();
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn an_event_without_a_resource_version_does_not_break_the_cache() {
    let server = server().await;
    let control = server.control();
    control.create(repo("a", "https://a.example/")).unwrap();
    let (cache, _handle) = cache(&server).await;
    let before = snapshot_rv(&cache);

    control
        .inject_event(REPOS, "ADDED", &repo("no-rv", "https://no-rv.example/"))
        .unwrap();
    let mut a = control.get(REPOS, None, "a").unwrap();
    a["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    a["spec"]["url"] = json!("https://a-without-rv.example/");
    control.inject_event(REPOS, "MODIFIED", &a).unwrap();
    control
        .inject_event(REPOS, "DELETED", &repo("never-there", "u"))
        .unwrap();
    barrier(&control, &cache, 1).await;
    assert_eq!(cache.stats().state, CacheState::Ready);
    assert!(
        snapshot_rv(&cache) >= before,
        "the snapshot's resourceVersion never goes back"
    );

    // A relist puts the cache back in line with the server.
    cache.refresh().await.unwrap();
    assert_equals_server(&control, &cache);
    assert!(cache.get("no-rv").is_none());
}

#[tokio::test]
async fn duplicate_added_and_delete_of_an_unknown_object_change_nothing() {
    let server = server().await;
    let control = server.control();
    let a = control.create(repo("a", "https://a.example/")).unwrap();
    let (cache, _handle) = cache(&server).await;
    let generation = cache.snapshot().generation();
    let objects = cache.stats().objects;

    let stats_before = cache.stats();
    for _ in 0..3 {
        control.inject_event(REPOS, "ADDED", &a).unwrap();
    }
    let mut ghost = repo("ghost", "https://ghost.example/");
    ghost["metadata"]["resourceVersion"] = json!(control.resource_version().to_string());
    control.inject_event(REPOS, "DELETED", &ghost).unwrap();
    barrier(&control, &cache, 1).await;
    let stats = cache.stats();
    assert!(
        stats.events(EventType::Apply) >= stats_before.events(EventType::Apply) + 4,
        "the duplicates and the barrier were received"
    );
    assert_eq!(stats.objects, objects + 1, "only the barrier was added");
    assert!(
        cache.snapshot().generation() <= generation + 1,
        "duplicates and unknown deletes publish nothing"
    );
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn out_of_order_resource_versions_never_replace_newer_data() {
    let server = server().await;
    let control = server.control();
    let old = control.create(repo("a", "https://old.example/")).unwrap();
    control
        .merge_patch(
            REPOS,
            None,
            "a",
            &json!({"spec": {"url": "https://new.example/"}}),
        )
        .unwrap();
    control.create(repo("b", "https://b.example/")).unwrap();
    let (cache, _handle) = cache(&server).await;
    let before = snapshot_rv(&cache);

    // An old version of a known object is ignored.
    control.inject_event(REPOS, "MODIFIED", &old).unwrap();
    barrier(&control, &cache, 1).await;
    assert_eq!(url_of(&cache, "a").as_deref(), Some("https://new.example/"));
    assert!(snapshot_rv(&cache) > before);

    // A late event for an object the cache does not know, older than the snapshot.
    let at = snapshot_rv(&cache);
    let mut late = repo("late", "https://late.example/");
    late["metadata"]["resourceVersion"] = json!("2");
    control.inject_event(REPOS, "ADDED", &late).unwrap();
    eventually("the late object arrives", || cache.get("late").is_some()).await;
    assert!(
        snapshot_rv(&cache) >= at,
        "a late event moved the resourceVersion back from {at} to {}",
        snapshot_rv(&cache)
    );
    // A late delete, older than what the cache holds.
    let mut late_delete = control.get(REPOS, None, "b").unwrap();
    late_delete["metadata"]["resourceVersion"] = json!("1");
    control
        .inject_event(REPOS, "DELETED", &late_delete)
        .unwrap();
    barrier(&control, &cache, 2).await;
    assert!(
        snapshot_rv(&cache) >= at,
        "the snapshot's resourceVersion went back from {at} to {}",
        snapshot_rv(&cache)
    );
    cache.refresh().await.unwrap();
    assert_equals_server(&control, &cache);
}

/// Regression: a relist whose newest object is older than the last delete must not move the
/// snapshot's resourceVersion back (chaos invariant 3).
#[tokio::test]
async fn a_relist_after_a_delete_keeps_the_resource_version() {
    let server = server().await;
    let control = server.control();
    control.create(repo("a", "https://a.example/")).unwrap();
    control.create(repo("b", "https://b.example/")).unwrap();
    let (cache, _handle) = cache(&server).await;
    control.delete(REPOS, None, "b").unwrap();
    eventually("the delete arrives", || cache.get("b").is_none()).await;
    let at = snapshot_rv(&cache);
    assert_eq!(at, control.resource_version());
    cache.refresh().await.unwrap();
    assert!(
        snapshot_rv(&cache) >= at,
        "the relist moved the resourceVersion back from {at} to {}",
        snapshot_rv(&cache)
    );
}

#[tokio::test]
async fn a_one_mebibyte_object_is_cached_whole() {
    let server = server().await;
    let control = server.control();
    let (cache, _handle) = cache(&server).await;
    let url = format!("https://big.example/{}", "x".repeat(1 << 20));
    control.create(repo("big", &url)).unwrap();
    eventually("the big object arrives", || cache.get("big").is_some()).await;
    assert_eq!(url_of(&cache, "big").unwrap().len(), url.len());
    cache.refresh().await.unwrap();
    assert_eq!(url_of(&cache, "big").unwrap(), url);
    assert_eq!(cache.stats().decode_failures, 0);
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn ten_thousand_objects_sync_and_reads_stay_cheap() {
    let server = server().await;
    let control = server.control();
    for i in 0..10_000 {
        control
            .create(repo(&format!("repo-{i:05}"), "https://many.example/"))
            .unwrap();
    }
    let (cache, _handle) = cache(&server).await;
    assert_eq!(cache.stats().objects, 10_000);
    assert_eq!(cache.stats().decode_failures, 0);
    // Reads stay cheap: a `get` costs about what a plain map lookup of the same names costs in
    // the same run (a noise control: a busy machine slows both alike), not the thousands of
    // times more of a scan. The fastest of a few interleaved rounds of each is compared.
    let control_map: std::collections::BTreeMap<String, usize> =
        (0..10_000).map(|i| (format!("repo-{i:05}"), i)).collect();
    let (mut get_best, mut control_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let started = std::time::Instant::now();
        for i in (0..10_000).step_by(7) {
            assert!(cache.get(&format!("repo-{i:05}")).is_some());
        }
        get_best = get_best.min(started.elapsed());
        let started = std::time::Instant::now();
        for i in (0..10_000).step_by(7) {
            assert!(std::hint::black_box(&control_map).contains_key(&format!("repo-{i:05}")));
        }
        control_best = control_best.min(started.elapsed());
    }
    let ratio = get_best.as_secs_f64() / control_best.as_secs_f64().max(1e-9);
    assert!(
        ratio < 50.0,
        "1429 gets took {get_best:?}, {ratio:.1}× the same lookups in a BTreeMap ({control_best:?})"
    );
    control.delete(REPOS, None, "repo-00042").unwrap();
    eventually("the delete arrives", || cache.get("repo-00042").is_none()).await;
    assert_eq!(cache.stats().objects, 9_999);
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn names_at_the_length_limit_and_unusual_valid_names() {
    let server = server().await;
    let control = server.control();
    let longest = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(longest.len(), 253);
    let names = [
        longest.as_str(),
        "0",
        "9lives",
        "a.b.c",
        "with-dash",
        "x--y",
        "1.2.3.4",
        "trailing-digit-0",
        "a-0.b-1",
    ];
    for name in names {
        control.create(repo(name, "https://odd.example/")).unwrap();
    }
    let (cache, _handle) = cache(&server).await;
    for name in names {
        assert!(cache.get(name).is_some(), "{name} is cached");
    }
    assert!(cache.get(&format!("{longest}x")).is_none());
    // The API refuses a name over the limit; nothing reaches the cache.
    assert!(
        control
            .create(repo(&format!("{longest}e"), "https://too-long.example/"))
            .is_err()
    );
    control
        .merge_patch(
            REPOS,
            None,
            &longest,
            &json!({"spec": {"url": "https://moved.example/"}}),
        )
        .unwrap();
    eventually("the long name's update arrives", || {
        url_of(&cache, &longest).as_deref() == Some("https://moved.example/")
    })
    .await;
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn a_watch_line_cut_in_the_middle_is_dropped_and_the_watch_resumes() {
    let server = server().await;
    let control = server.control();
    control.create(repo("a", "https://a.example/")).unwrap();
    let (cache, _handle) = cache(&server).await;
    let mut cut = control.get(REPOS, None, "a").unwrap();
    cut["spec"]["url"] = json!("https://cut.example/");
    cut["metadata"]["resourceVersion"] = json!((control.resource_version() + 100).to_string());
    assert_eq!(control.inject_cut_line(REPOS, "MODIFIED", &cut).unwrap(), 1);
    eventually("the watch reconnects", || {
        control.count("watch", REPOS) >= 2
    })
    .await;
    barrier(&control, &cache, 1).await;
    assert_eq!(url_of(&cache, "a").as_deref(), Some("https://a.example/"));
    assert_eq!(cache.stats().state, CacheState::Ready);
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn an_html_error_page_instead_of_json_fails_the_request_not_the_cache() {
    let server = server().await;
    let control = server.control();
    control.create(repo("a", "https://a.example/")).unwrap();
    // The initial LIST gets HTML error pages first.
    control.fail_next(FailSpec::new("list", REPOS, 502, 2).html_page());
    let (cache, _handle) = cache(&server).await;
    let stats = cache.stats();
    assert!(stats.events(EventType::Error) >= 2, "{stats:?}");
    assert_eq!(stats.decode_failures, 0);
    assert!(cache.get("a").is_some());

    // Later, a watch and a relist get them.
    control.fail_next(FailSpec::new("*", REPOS, 503, 3).html_page());
    control.close_watches();
    control.create(repo("b", "https://b.example/")).unwrap();
    eventually("b arrives after the failures", || cache.get("b").is_some()).await;
    let errors = cache.stats().events(EventType::Error);
    assert!(errors >= 3, "errors counted: {errors}");
    eventually("the cache is ready again", || {
        cache.state() == CacheState::Ready
    })
    .await;
    assert_equals_server(&control, &cache);
}
