//! Read-your-own-writes and version reads against apisim: a write through the layered client is
//! seen by the next read through it; `Cache::wait_for` and `ReadPolicy::AtLeast` /
//! `ReadPolicy::Consistent` answer from a snapshot that reflects the version asked for, or read
//! live; versions that cannot be compared never give a guessed answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use glasskube_api::PackageRepository;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher::Event;
use repocache::layer::{CacheLayer, Outcome, Verb};
use repocache::policy::Source;
use repocache::stats::ApiReason;
use repocache::{Error, ReadPolicy, ReflectorBuilder, Writer};
use repocache_test_support::{PATIENCE, apisim, eventually};

use serde_json::json;

const KIND: &str = "PackageRepository";

fn url_patch(url: &str) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"spec": {"url": url}}))
}

#[tokio::test]
async fn a_write_through_the_layer_is_seen_by_the_next_read() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let layer = CacheLayer::new().cache(&repos).own_writes_wait(PATIENCE);
    let api: Api<PackageRepository> = Api::all(layer.client(server.client()));

    // The watch is held back for a moment: the write must wait for it, not the reads guess.
    control.stall_watches(Some(Duration::from_millis(150)));
    let written = api
        .patch(
            "glasskube",
            &PatchParams::default(),
            &url_patch("https://moved.example/"),
        )
        .await
        .unwrap();
    let got = api.get("glasskube").await.unwrap();
    assert_eq!(got.spec.url, "https://moved.example/");
    assert_eq!(
        got.metadata.resource_version, written.metadata.resource_version,
        "the GET sees the write"
    );
    let listed = api.list(&ListParams::default()).await.unwrap();
    let moved = listed
        .items
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("glasskube"))
        .unwrap();
    assert_eq!(moved.spec.url, "https://moved.example/", "the LIST sees it");
    let stats = layer.stats();
    assert_eq!(
        stats.count(KIND, Verb::Get, Outcome::Served),
        1,
        "answered locally: {stats:?}"
    );
    assert_eq!(stats.count(KIND, Verb::List, Outcome::Served), 1);
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::Behind), 0);

    // A delete: the next GET is a 404.
    control.stall_watches(Some(Duration::from_millis(150)));
    api.delete("glasskube", &Default::default()).await.unwrap();
    let err = api.get("glasskube").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));
    assert_eq!(layer.stats().count(KIND, Verb::Get, Outcome::NotFound), 1);
}

#[tokio::test]
async fn reads_pass_through_while_the_snapshot_is_behind_a_write_and_stale_without_the_feature() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();

    // Without read-your-own-writes, a read right after a write answers from the old snapshot.
    let off = CacheLayer::new().cache(&repos).read_your_writes(false);
    let api_off: Api<PackageRepository> = Api::all(off.client(server.client()));
    control.stall_watches(None);
    api_off
        .patch(
            "glasskube",
            &PatchParams::default(),
            &url_patch("https://one.example/"),
        )
        .await
        .unwrap();
    let got = api_off.get("glasskube").await.unwrap();
    assert_ne!(
        got.spec.url, "https://one.example/",
        "the old snapshot answered"
    );
    assert_eq!(off.stats().count(KIND, Verb::Get, Outcome::Served), 1);

    // With it, and a bound shorter than the stall: the write returns after the bound, and the
    // read passes through (counted) rather than answer from a snapshot older than the write.
    let on = CacheLayer::new()
        .cache(&repos)
        .own_writes_wait(Duration::from_millis(20));
    let api_on: Api<PackageRepository> = Api::all(on.client(server.client()));
    api_on
        .patch(
            "glasskube",
            &PatchParams::default(),
            &url_patch("https://two.example/"),
        )
        .await
        .unwrap();
    let got = api_on.get("glasskube").await.unwrap();
    assert_eq!(got.spec.url, "https://two.example/");
    assert_eq!(on.stats().count(KIND, Verb::Get, Outcome::Behind), 1);
    assert_eq!(on.stats().total_local(), 0);

    control.release_watches();
    eventually("the snapshot catches up", || {
        repos
            .get("glasskube")
            .is_some_and(|r| r.spec.url == "https://two.example/")
    })
    .await;
    let got = api_on.get("glasskube").await.unwrap();
    assert_eq!(got.spec.url, "https://two.example/");
    assert_eq!(
        on.stats().count(KIND, Verb::Get, Outcome::Served),
        1,
        "served locally again"
    );
}

#[tokio::test]
async fn version_policies_answer_from_a_snapshot_that_reached_the_version() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let plain: Api<PackageRepository> = Api::all(server.client());

    // AtLeast waits up to DEFAULT_VERSION_WAIT (300 ms) for the snapshot to reach the write,
    // which the stalled watch holds back 100 ms. A machine too busy to deliver the event within
    // the wait makes the read fall back to a live one (rightly, and counted), so each round
    // writes again until a read is answered from the snapshot; every read sees the write.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut round = 0;
    let (rv, url) = loop {
        round += 1;
        let url = format!("https://three-{round}.example/");
        control.stall_watches(Some(Duration::from_millis(100)));
        let written = plain
            .patch("glasskube", &PatchParams::default(), &url_patch(&url))
            .await
            .unwrap();
        let rv = written.metadata.resource_version.clone().unwrap();
        let fallbacks = repos.stats().api(ApiReason::Fallback);
        let read = repos
            .get_with("glasskube", ReadPolicy::at_least(&rv))
            .await
            .unwrap();
        assert_eq!(read.value.as_ref().unwrap().spec.url, url, "{read:?}");
        if matches!(read.source, Source::Snapshot { .. }) {
            break (rv, url);
        }
        assert!(read.is_live(), "{read:?}");
        assert_eq!(repos.stats().api(ApiReason::Fallback), fallbacks + 1);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no AtLeast read was ever answered from the snapshot ({round} rounds)"
        );
    };
    assert!(repos.version().unwrap() >= rv.parse::<u64>().unwrap());
    let snapshot = repos.wait_for(&rv, Duration::ZERO).await.unwrap();
    assert!(snapshot.get("glasskube").is_some());

    // A version the cache never reaches in time: a typed timeout, and the policy reads live.
    let far = (rv.parse::<u64>().unwrap() + 1000).to_string();
    assert!(matches!(
        repos.wait_for(&far, Duration::from_millis(10)).await,
        Err(Error::VersionTimeout { .. })
    ));
    let fresh_before = repos.stats().api(ApiReason::Fallback);
    let read = repos
        .get_with("glasskube", ReadPolicy::at_least(&far))
        .await
        .unwrap();
    assert!(read.is_live());
    assert_eq!(repos.stats().api(ApiReason::Fallback), fresh_before + 1);

    // A version that does not parse is never compared: wait_for refuses, the policy reads live.
    assert!(matches!(
        repos
            .wait_for("not-a-number", Duration::from_millis(10))
            .await,
        Err(Error::IncomparableVersion { .. })
    ));
    assert_eq!(ReadPolicy::at_least("not-a-number"), ReadPolicy::Fresh);

    // Consistent: one small LIST for the server's version; answered from the snapshot once a
    // bookmark or an event proved it current, else live.
    let before = repos.stats().api(ApiReason::Version);
    let read = repos.list_with(ReadPolicy::Consistent).await.unwrap();
    assert_eq!(repos.stats().api(ApiReason::Version), before + 1);
    assert_eq!(read.value.len(), 5);
    assert!(
        read.value.iter().any(|r| r.spec.url == url),
        "a consistent read sees every write before it"
    );
}

#[tokio::test]
async fn a_cache_whose_versions_do_not_parse_is_never_guessed_at() {
    let mut writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    let cm = |rv: &str| -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": rv},
        }))
        .unwrap()
    };
    writer.apply_batch([
        Event::Init,
        Event::InitApply(cm("opaque-7")),
        Event::InitDone,
    ]);
    assert_eq!(cache.version(), None);
    assert!(matches!(
        cache.wait_for("7", Duration::from_millis(10)).await,
        Err(Error::IncomparableVersion { .. })
    ));
    writer.apply(Event::Apply(cm("12")));
    assert_eq!(cache.version(), Some(12));
    cache.wait_for("12", Duration::ZERO).await.unwrap();
    // Waiting wakes on the publish, not on a timer.
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.wait_for("13", PATIENCE).await.map(|s| s.generation()) }
    });
    writer.apply(Event::Apply(cm("13")));
    let generation = tokio::time::timeout(PATIENCE, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(generation, cache.snapshot().generation());
    drop(writer);
    assert!(matches!(
        cache.wait_for("14", PATIENCE).await,
        Err(Error::Stopped { .. })
    ));
}

/// A server whose resourceVersions are not integers (allowed: they are opaque strings) makes the
/// layer pass reads through after a write until the snapshot is at exactly the written version.
#[tokio::test]
async fn after_a_write_with_an_opaque_version_reads_pass_through_until_the_snapshot_has_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let cm = |rv: &str, value: &str| -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": rv},
            "data": {"value": value},
        }))
        .unwrap()
    };
    let mut writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    writer.apply_batch([
        Event::Init,
        Event::InitApply(cm("opaque-1", "old")),
        Event::InitDone,
    ]);

    // The upstream answers every request with the object as written: version `opaque-2`.
    let upstream_requests = Arc::new(AtomicUsize::new(0));
    let upstream = tower::service_fn({
        let upstream_requests = upstream_requests.clone();
        move |_req: http::Request<kube::client::Body>| {
            upstream_requests.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::to_vec(&cm("opaque-2", "new")).unwrap();
            async move {
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(body))
                        .unwrap(),
                )
            }
        }
    });
    let layer = CacheLayer::new().cache(&cache);
    let api: Api<ConfigMap> =
        Api::namespaced(layer.client(kube::Client::new(upstream, "ns")), "ns");

    // Before any write, a read is the cache's.
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["value"], "old");
    assert_eq!(upstream_requests.load(Ordering::SeqCst), 0);

    api.replace("a", &Default::default(), &cm("opaque-1", "new"))
        .await
        .unwrap();
    assert_eq!(upstream_requests.load(Ordering::SeqCst), 1);
    // The snapshot is still at `opaque-1`: the read goes to the server, twice in a row.
    for n in 2..=3 {
        assert_eq!(api.get("a").await.unwrap().data.unwrap()["value"], "new");
        assert_eq!(
            upstream_requests.load(Ordering::SeqCst),
            n,
            "read {n} passes through"
        );
    }
    // Once the snapshot is at exactly the written version, reads are local again.
    writer.apply(Event::Apply(cm("opaque-2", "new")));
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["value"], "new");
    assert_eq!(
        upstream_requests.load(Ordering::SeqCst),
        3,
        "answered from the snapshot"
    );
}
