//! Hostile input never poisons the cache: undecodable objects, events without a
//! resourceVersion, duplicates, deletes of unknown objects, out-of-order versions, huge objects,
//! many objects, unusual names, a watch line cut in the middle and an HTML error page. The cache
//! keeps everything valid, counts the rest, stays (or gets back to) Ready and never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Its own test binary, not a module of `tests/integration/`: one test reads the process's
// resident memory (a huge watch line must not grow it), which other suites' tests running in the
// same process would blur.

use std::time::Duration;

use apisim::{Control, FailSpec, LatencySpec, Server, ServerConfig, ServerHandle};
use glasskube_api::PackageRepository;
use kube::Api;
use kube::runtime::watcher;
use repocache::ReflectorHandle;
use repocache::stats::RelistReason;
use repocache::stats::{DecodingMode, EventType, LineRejection};
use repocache::{Cache, CacheState, ReflectorBuilder};
use repocache_test_support::{PATIENCE, client_without_retry, eventually};
use repocache_tests::{cached_versions, repository, url_of};

use serde_json::{Value, json};

const REPOS: &str = "packagerepositories";

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

/// Writes a marker object and waits for it: every event sent before it has been handled.
async fn barrier(control: &Control, cache: &Cache<PackageRepository>, n: u32) {
    let name = format!("barrier-{n}");
    control
        .create(repository(&name, "https://barrier.example/"))
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
        .create(repository("good", "https://good.example/"))
        .unwrap();
    // One bad object in the initial LIST (written past the API's validation).
    let mut bad = repository("bad-listed", "x");
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
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = cache(&server).await;
    let before = snapshot_rv(&cache);

    control
        .inject_event(
            REPOS,
            "ADDED",
            &repository("no-rv", "https://no-rv.example/"),
        )
        .unwrap();
    let mut a = control.get(REPOS, None, "a").unwrap();
    a["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    a["spec"]["url"] = json!("https://a-without-rv.example/");
    control.inject_event(REPOS, "MODIFIED", &a).unwrap();
    control
        .inject_event(REPOS, "DELETED", &repository("never-there", "u"))
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
    let a = control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = cache(&server).await;
    let generation = cache.snapshot().generation();
    let objects = cache.stats().objects;

    let stats_before = cache.stats();
    for _ in 0..3 {
        control.inject_event(REPOS, "ADDED", &a).unwrap();
    }
    let mut ghost = repository("ghost", "https://ghost.example/");
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
    let old = control
        .create(repository("a", "https://old.example/"))
        .unwrap();
    control
        .merge_patch(
            REPOS,
            None,
            "a",
            &json!({"spec": {"url": "https://new.example/"}}),
        )
        .unwrap();
    control
        .create(repository("b", "https://b.example/"))
        .unwrap();
    let (cache, _handle) = cache(&server).await;
    let before = snapshot_rv(&cache);

    // An old version of a known object is ignored.
    control.inject_event(REPOS, "MODIFIED", &old).unwrap();
    barrier(&control, &cache, 1).await;
    assert_eq!(url_of(&cache, "a").as_deref(), Some("https://new.example/"));
    assert!(snapshot_rv(&cache) > before);

    // A late event for an object the cache does not know, older than the snapshot.
    let at = snapshot_rv(&cache);
    let mut late = repository("late", "https://late.example/");
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
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    control
        .create(repository("b", "https://b.example/"))
        .unwrap();
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
    control.create(repository("big", &url)).unwrap();
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
            .create(repository(&format!("repo-{i:05}"), "https://many.example/"))
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
        control
            .create(repository(name, "https://odd.example/"))
            .unwrap();
    }
    let (cache, _handle) = cache(&server).await;
    for name in names {
        assert!(cache.get(name).is_some(), "{name} is cached");
    }
    assert!(cache.get(&format!("{longest}x")).is_none());
    // The API refuses a name over the limit; nothing reaches the cache.
    assert!(
        control
            .create(repository(
                &format!("{longest}e"),
                "https://too-long.example/"
            ))
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
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
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
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
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
    control
        .create(repository("b", "https://b.example/"))
        .unwrap();
    eventually("b arrives after the failures", || cache.get("b").is_some()).await;
    let errors = cache.stats().events(EventType::Error);
    assert!(errors >= 3, "errors counted: {errors}");
    eventually("the cache is ready again", || {
        cache.state() == CacheState::Ready
    })
    .await;
    assert_equals_server(&control, &cache);
}

/// The process's resident set, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Polls `condition` until it holds or [`PATIENCE`] passes; whether it held.
async fn within_patience(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// A cache with a small line cap, whose next LIST is slowed down so that the state between a
/// rejected line and the relist it causes can be seen.
async fn capped_cache(
    server: &ServerHandle,
    max_line: usize,
) -> (Cache<PackageRepository>, ReflectorHandle) {
    let (cache, handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(server)))
            .configure_cache(|c| c.max_line(max_line))
            .start();
    cache.wait_ready(PATIENCE).await.unwrap();
    assert!(server.control().wait_for_watches(1, PATIENCE).await);
    server.control().add_latency(LatencySpec {
        verb: Some("list".into()),
        resource: Some(REPOS.into()),
        latency_ms: 1_000,
        count: Some(1),
    });
    (cache, handle)
}

/// Right after a rejected line: the cache says it is not current, and why.
async fn assert_not_current(cache: &Cache<PackageRepository>) {
    eventually(
        "the state says the cache is not current",
        || matches!(cache.state(), CacheState::Stale { reason, .. } if reason.contains("rejected")),
    )
    .await;
}

/// After a rejected line: the cache it is not current until the relist, then holds
/// `after` (a real write behind the bad line) and `unseen` (a write no watch ever announced,
/// which only a relist finds).
async fn assert_relisted_after_rejection(
    control: &Control,
    cache: &Cache<PackageRepository>,
    why: LineRejection,
) {
    eventually("the relist brings what came after the bad line", || {
        cache.get("after").is_some() && cache.get("unseen").is_some()
    })
    .await;
    eventually("ready again", || cache.state() == CacheState::Ready).await;
    let stats = cache.stats();
    assert_eq!(stats.rejected_lines(why), 1, "{stats:?}");
    assert_eq!(
        stats.rejected_lines.iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "{stats:?}"
    );
    assert_eq!(stats.relists(RelistReason::Error), 1, "{stats:?}");
    assert_eq!(
        stats.decoding,
        DecodingMode::Fast,
        "a bad line is not a bad object"
    );
    assert_eq!(stats.decode_failures, 0);
    assert_equals_server(control, cache);
}

#[tokio::test]
async fn a_watch_line_over_the_cap_is_never_buffered_whole_and_costs_a_relist() {
    const CAP: usize = 64 << 10;
    // 256 MiB of zero bytes and no newline: a line that never ends. The zeroed allocation is
    // not resident until read, so what the process holds is what the client buffers.
    const LINE: usize = 256 << 20;
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = capped_cache(&server, CAP).await;
    let start =
        b"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\"},\"spec\":{\"url\":\"";
    let mut line = vec![0u8; LINE];
    line[..start.len()].copy_from_slice(start);
    let before = rss();
    assert_eq!(control.inject_bytes(REPOS, line).unwrap(), 1);
    control
        .create(repository("after", "https://after.example/"))
        .unwrap();
    control
        .side_door_put(repository("unseen", "https://unseen.example/"))
        .unwrap();
    let started = std::time::Instant::now();
    let mut peak = before;
    let stale = within_patience(|| {
        peak = peak.max(rss());
        matches!(cache.state(), CacheState::Stale { reason, .. } if reason.contains("rejected"))
    })
    .await;
    let recovered = within_patience(|| {
        peak = peak.max(rss());
        cache.get("unseen").is_some()
    })
    .await;
    let grown = peak.saturating_sub(before);
    eprintln!(
        "a {LINE}-byte line with a {CAP}-byte cap: stale {stale}, recovered {recovered} after {:?}, RSS peak +{:.1} MiB, rejected {:?}",
        started.elapsed(),
        grown as f64 / f64::from(1 << 20),
        cache.stats().rejected_lines
    );
    assert!(stale, "the state never said the cache was not current");
    assert!(recovered, "the cache never relisted");
    assert!(
        grown < 64 << 20,
        "RSS grew {grown} bytes for a {LINE}-byte line (cap {CAP})"
    );
    assert_relisted_after_rejection(&control, &cache, LineRejection::TooLong).await;
}

#[tokio::test]
async fn a_watch_line_that_is_not_utf8_costs_that_line_and_a_relist() {
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = capped_cache(&server, repocache::config::DEFAULT_MAX_LINE).await;
    let mut bad = control.get(REPOS, None, "a").unwrap();
    bad["spec"]["url"] = json!("https://PLACEHOLDER.example/");
    let line = String::from_utf8(apisim_line("MODIFIED", &bad)).unwrap();
    let line = line.replace("PLACEHOLDER", "\u{1}").into_bytes();
    let line: Vec<u8> = line
        .into_iter()
        .map(|b| if b == 1 { 0xff } else { b })
        .collect();
    assert_eq!(control.inject_bytes(REPOS, line).unwrap(), 1);
    // A real write right behind the bad line, on the same stream.
    control
        .create(repository("after", "https://after.example/"))
        .unwrap();
    control
        .side_door_put(repository("unseen", "https://unseen.example/"))
        .unwrap();
    let started = std::time::Instant::now();
    let stale = within_patience(
        || matches!(cache.state(), CacheState::Stale { reason, .. } if reason.contains("rejected")),
    )
    .await;
    let recovered = within_patience(|| cache.get("after").is_some()).await;
    eprintln!(
        "a line that is not UTF-8: stale {stale}, the event behind it seen {recovered} after {:?}, {} WATCHes, {:?}",
        started.elapsed(),
        control.count("watch", REPOS),
        cache.stats().rejected_lines
    );
    assert!(stale && recovered);
    assert_eq!(url_of(&cache, "a").as_deref(), Some("https://a.example/"));
    assert_relisted_after_rejection(&control, &cache, LineRejection::NotUtf8).await;
    let metrics = repocache::Metrics::new();
    metrics.track(&cache);
    let text = metrics.render();
    for (reason, n) in [
        ("not_utf8", 1),
        ("too_long", 0),
        ("not_an_object", 0),
        ("malformed_error", 0),
    ] {
        let sample = format!(
            r#"repocache_rejected_lines_total{{kind="PackageRepository",reason="{reason}"}} {n}"#
        );
        assert!(text.lines().any(|l| l == sample), "{sample} in:\n{text}");
    }
}

#[tokio::test]
async fn an_error_event_whose_code_is_not_a_number_is_rejected_not_taken_for_a_bad_object() {
    let server = server().await;
    let control = server.control();
    let (cache, _handle) = capped_cache(&server, repocache::config::DEFAULT_MAX_LINE).await;
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "I am a teapot", "reason": "Teapot", "code": "418"});
    assert_eq!(control.inject_event(REPOS, "ERROR", &status).unwrap(), 1);
    control
        .create(repository("after", "https://after.example/"))
        .unwrap();
    control
        .side_door_put(repository("unseen", "https://unseen.example/"))
        .unwrap();
    assert_not_current(&cache).await;
    assert_relisted_after_rejection(&control, &cache, LineRejection::MalformedError).await;
}

#[tokio::test]
async fn a_watch_line_that_is_not_json_costs_that_line_and_a_relist() {
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = capped_cache(&server, repocache::config::DEFAULT_MAX_LINE).await;
    assert_eq!(control.inject_malformed_line(None), 1);
    control
        .create(repository("after", "https://after.example/"))
        .unwrap();
    control
        .side_door_put(repository("unseen", "https://unseen.example/"))
        .unwrap();
    assert_not_current(&cache).await;
    assert_relisted_after_rejection(&control, &cache, LineRejection::NotAnObject).await;
}

/// A line shaped like a watch event, whose JSON is broken (a trailing comma) past its `type`.
const BROKEN_JSON_EVENT: &str =
    r#"{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"999",}}}"#;

#[tokio::test]
async fn a_watch_line_shaped_like_an_object_that_is_not_json_costs_that_line_and_a_relist() {
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = capped_cache(&server, repocache::config::DEFAULT_MAX_LINE).await;
    assert_eq!(control.inject_malformed_line(Some(BROKEN_JSON_EVENT)), 1);
    control
        .create(repository("after", "https://after.example/"))
        .unwrap();
    control
        .side_door_put(repository("unseen", "https://unseen.example/"))
        .unwrap();
    assert_not_current(&cache).await;
    assert_relisted_after_rejection(&control, &cache, LineRejection::NotAnObject).await;
}

#[tokio::test]
async fn a_watch_line_that_is_not_json_costs_a_relist_when_the_cache_decodes_each_object() {
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = cache(&server).await;
    // One object that does not decode: the cache decodes each object on its own from now on.
    assert_eq!(control.inject_undecodable(REPOS).unwrap(), 1);
    eventually("per-object decoding", || {
        cache.stats().decoding == DecodingMode::Robust
    })
    .await;
    barrier(&control, &cache, 1).await;
    assert!(control.wait_for_watches(1, PATIENCE).await);
    let before = cache.stats();
    control.add_latency(LatencySpec {
        verb: Some("list".into()),
        resource: Some(REPOS.into()),
        latency_ms: 1_000,
        count: Some(1),
    });

    assert_eq!(control.inject_malformed_line(Some(BROKEN_JSON_EVENT)), 1);
    control
        .create(repository("after", "https://after.example/"))
        .unwrap();
    control
        .side_door_put(repository("unseen", "https://unseen.example/"))
        .unwrap();
    assert_not_current(&cache).await;
    eventually("the relist brings what came after the bad line", || {
        cache.get("after").is_some() && cache.get("unseen").is_some()
    })
    .await;
    eventually("ready again", || cache.state() == CacheState::Ready).await;
    let stats = cache.stats();
    assert_eq!(
        stats.rejected_lines(LineRejection::NotAnObject),
        1,
        "{stats:?}"
    );
    assert_eq!(
        stats.relists(RelistReason::Error),
        before.relists(RelistReason::Error) + 1,
        "{stats:?}"
    );
    assert_eq!(stats.decode_failures, before.decode_failures, "{stats:?}");
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn a_line_rejected_during_the_initial_streaming_list_costs_a_relist_and_no_partial_sync() {
    const CAP: usize = 64 << 10;
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    // An object whose initial ADDED line is longer than the cache's cap: the streaming list
    // (a watch with sendInitialEvents) meets it among the initial events.
    let mut big = repository("big", "https://big.example/");
    big["metadata"]["annotations"] = json!({"note": "x".repeat(CAP)});
    control.create(big).unwrap();
    control
        .create(repository("z", "https://z.example/"))
        .unwrap();
    let (cache, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(&server)))
            .watcher_config(watcher::Config::default().streaming_lists())
            .configure_cache(|c| c.max_line(CAP))
            .start();
    eventually("the line is rejected", || {
        cache.stats().rejected_lines(LineRejection::TooLong) >= 1
    })
    .await;
    // Nothing before the bad line was published as if it were the whole list.
    assert!(!cache.is_ready(), "{:?}", cache.state());
    assert!(
        cache.list().is_empty(),
        "a partial initial list was published"
    );
    assert_eq!(
        control.count("list", REPOS),
        0,
        "a streaming list, not a LIST"
    );

    // The object shrinks: the next streaming list (after the watcher's backoff) reads it whole.
    control
        .replace(json!({"apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageRepository", "metadata": {"name": "big"},
            "spec": {"url": "https://big.example/"}}))
        .unwrap();
    cache.wait_ready(PATIENCE).await.unwrap();
    let stats = cache.stats();
    let rejected = stats.rejected_lines(LineRejection::TooLong);
    assert_eq!(
        stats.rejected_lines.iter().map(|(_, n)| n).sum::<u64>(),
        rejected,
        "{stats:?}"
    );
    assert_eq!(
        control.count("watch", REPOS),
        rejected + 1,
        "one more streaming list per rejected line, and no more"
    );
    assert_eq!(stats.relists(RelistReason::Initial), 1, "{stats:?}");
    assert_eq!(stats.relists(RelistReason::Error), 0, "{stats:?}");
    assert_eq!(stats.decode_failures, 0);
    assert_eq!(stats.decoding, DecodingMode::Fast);
    assert_eq!(control.count("list", REPOS), 0);
    assert_equals_server(&control, &cache);
}

/// A watch line as an API server writes it: the event with its object, and a newline.
fn apisim_line(event_type: &str, object: &Value) -> Vec<u8> {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    line.into_bytes()
}

#[tokio::test]
async fn resource_versions_that_are_not_numbers_never_move_the_snapshot_back() {
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    control
        .create(repository("b", "https://b.example/"))
        .unwrap();
    let (cache, _handle) = cache(&server).await;
    let at = snapshot_rv(&cache);
    assert!(at > 1);

    // Not a number, and a number past u64, for a known object and for new ones.
    let mut a = control.get(REPOS, None, "a").unwrap();
    a["spec"]["url"] = json!("https://opaque.example/");
    a["metadata"]["resourceVersion"] = json!("not-a-number");
    control.inject_event(REPOS, "MODIFIED", &a).unwrap();
    let mut opaque = repository("opaque", "https://opaque.example/");
    opaque["metadata"]["resourceVersion"] = json!("zzz");
    control.inject_event(REPOS, "ADDED", &opaque).unwrap();
    let mut huge = repository("huge", "https://huge.example/");
    huge["metadata"]["resourceVersion"] = json!("18446744073709551616");
    control.inject_event(REPOS, "ADDED", &huge).unwrap();
    // A late event after them: compared with a number, it must not win either.
    let mut late = repository("late", "https://late.example/");
    late["metadata"]["resourceVersion"] = json!("1");
    control.inject_event(REPOS, "ADDED", &late).unwrap();
    eventually("the injected objects arrive", || {
        cache.get("opaque").is_some() && cache.get("huge").is_some() && cache.get("late").is_some()
    })
    .await;
    assert_eq!(
        cache.snapshot().resource_version(),
        Some(at.to_string().as_str()),
        "the snapshot's version stays numeric and where it was"
    );
    assert_eq!(
        url_of(&cache, "a").as_deref(),
        Some("https://a.example/"),
        "a version that is not a number does not replace a numbered object"
    );
    // A real write moves it forward again.
    barrier(&control, &cache, 1).await;
    assert_eq!(snapshot_rv(&cache), control.resource_version());
    assert!(snapshot_rv(&cache) > at);
    cache.refresh().await.unwrap();
    assert_equals_server(&control, &cache);
}

#[tokio::test]
async fn an_object_of_another_kind_is_counted_and_never_cached() {
    let server = server().await;
    let control = server.control();
    control
        .create(repository("a", "https://a.example/"))
        .unwrap();
    let (cache, _handle) = cache(&server).await;
    let secret = |name: &str| {
        let mut obj = repository(name, "https://secret.example/");
        obj["apiVersion"] = json!("v1");
        obj["kind"] = json!("Secret");
        obj["metadata"]["resourceVersion"] = json!((control.resource_version() + 1).to_string());
        obj
    };
    // On the typed fast path: the first one switches to per-object decoding (one relist).
    control.inject_event(REPOS, "ADDED", &secret("s1")).unwrap();
    eventually("the switch's relist completes", || {
        let stats = cache.stats();
        stats.decoding == DecodingMode::Robust && stats.relists_total() == 2
    })
    .await;
    // Per object: another kind, the right kind at another apiVersion, and a delete of another
    // kind's object that has the name of one the cache holds.
    control.inject_event(REPOS, "ADDED", &secret("s2")).unwrap();
    let mut other_version = repository("v", "https://v.example/");
    other_version["apiVersion"] = json!("packages.glasskube.dev/v2");
    other_version["metadata"]["resourceVersion"] =
        json!((control.resource_version() + 1).to_string());
    control
        .inject_event(REPOS, "MODIFIED", &other_version)
        .unwrap();
    control
        .inject_event(REPOS, "DELETED", &secret("a"))
        .unwrap();
    barrier(&control, &cache, 1).await;
    let stats = cache.stats();
    assert_eq!(stats.decode_failures, 3, "{stats:?}");
    for name in ["s1", "s2", "v"] {
        assert!(
            cache.get(name).is_none(),
            "{name} is not a PackageRepository"
        );
    }
    assert!(
        cache.get("a").is_some(),
        "a Secret's delete is not the repository's"
    );
    assert_eq!(stats.state, CacheState::Ready);
    assert_equals_server(&control, &cache);
}
