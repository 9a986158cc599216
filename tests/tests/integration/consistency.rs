//! The cache's contract against apisim: every surface tells one truth about readiness, a dead
//! reflector never looks alive, and time inputs at their extremes work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use glasskube_api::PackageRepository;
use kube::Api;
use repocache::layer::{CacheLayer, Outcome, Verb};
use repocache::{CacheState, Error, ReadPolicy, ReflectorBuilder};
use repocache_test_support::{PATIENCE, apisim, eventually};

const KIND: &str = "PackageRepository";

// Several worker threads: the waiter runs beside the reflector, as in an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_wait_ready_returns_every_surface_says_ready() {
    let server = apisim().await;
    for i in 0..50 {
        let (repos, _handle) =
            ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
        let layer = CacheLayer::new().cache(&repos);
        let api: Api<PackageRepository> = Api::all(layer.client(server.client()));
        repos.wait_ready(PATIENCE).await.unwrap();
        // No await between wait_ready and these checks: they see the same moment.
        assert!(repos.is_ready(), "cache {i}: is_ready");
        assert_eq!(repos.state(), CacheState::Ready, "cache {i}: state");
        let got = api.get("glasskube").await.unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("glasskube"));
        assert_eq!(
            layer.stats().count(KIND, Verb::Get, Outcome::Served),
            1,
            "cache {i}: the first layered GET after wait_ready is answered locally: {:?}",
            layer.stats()
        );
    }
}

#[tokio::test]
async fn a_panicking_indexer_stops_the_cache_and_says_why() {
    let server = apisim().await;
    let (repos, handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .configure_cache(|c| {
            c.index_by("boom", |r: &PackageRepository| {
                if r.metadata.name.as_deref() == Some("glasskube") {
                    panic!("indexer exploded on glasskube");
                }
                Vec::new()
            })
        })
        .start();
    let layer = CacheLayer::new().cache(&repos);
    let result = repos.wait_ready(PATIENCE).await;
    assert!(
        matches!(result, Err(Error::Stopped { .. })),
        "wait_ready on a cache whose reflector panicked: {result:?}"
    );
    eventually("the state keeps the panic's message", || {
        matches!(repos.state(), CacheState::Stopped { ref reason }
            if reason.contains("panicked") && reason.contains("indexer exploded on glasskube"))
    })
    .await;
    assert!(!repos.is_ready());
    assert!(handle.is_finished());
    assert!(repos.state().to_string().contains("indexer exploded"));
    // The layer passes through to the server instead of answering from a dead cache.
    let api: Api<PackageRepository> = Api::all(layer.client(server.client()));
    api.get("glasskube").await.unwrap();
    assert_eq!(layer.stats().total_local(), 0, "{:?}", layer.stats());
    assert_eq!(
        layer.stats().count(KIND, Verb::Get, Outcome::Stale),
        1,
        "{:?}",
        layer.stats()
    );
}

#[tokio::test]
async fn a_panic_after_sync_stops_a_ready_cache() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .configure_cache(|c| {
            c.index_by("boom", |r: &PackageRepository| {
                if r.metadata.name.as_deref() == Some("late") {
                    panic!("indexer exploded on late");
                }
                Vec::new()
            })
        })
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let layer = CacheLayer::new().cache(&repos);
    let api: Api<PackageRepository> = Api::all(layer.client(server.client()));
    api.get("glasskube").await.unwrap();
    assert_eq!(layer.stats().total_local(), 1, "served while alive");
    control
        .create(serde_json::json!({
                "apiVersion": "packages.glasskube.dev/v1alpha1",
                "kind": "PackageRepository",
                "metadata": {"name": "late"},
                "spec": {"url": "https://late.example/"},
        }))
        .unwrap();
    eventually("the cache stops", || repos.state().is_stopped()).await;
    assert!(!repos.is_ready(), "a stopped cache is not ready");
    assert!(matches!(
        repos.wait_ready(PATIENCE).await,
        Err(Error::Stopped { ref reason, .. }) if reason.contains("panicked")
    ));
    eventually("the panic's message is kept", || {
        repos
            .state()
            .to_string()
            .contains("indexer exploded on late")
    })
    .await;
    api.get("glasskube").await.unwrap();
    assert_eq!(
        layer.stats().total_local(),
        1,
        "passed through once stopped"
    );
}

#[tokio::test]
async fn a_dropped_runtime_stops_the_cache() {
    let server = apisim().await;
    let client = server.client();
    // A second runtime on its own thread owns the reflector; dropping it drops the task.
    let repos = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let repos = rt.block_on(async move {
            let (repos, handle) =
                ReflectorBuilder::new(Api::<PackageRepository>::all(client)).start();
            repos.wait_ready(PATIENCE).await.unwrap();
            std::mem::forget(handle);
            repos
        });
        drop(rt);
        repos
    })
    .await
    .unwrap();
    assert!(!repos.is_ready());
    assert!(
        matches!(repos.state(), CacheState::Stopped { ref reason } if reason.contains("runtime")),
        "{:?}",
        repos.state()
    );
    assert!(matches!(
        repos.wait_ready(PATIENCE).await,
        Err(Error::Stopped { .. })
    ));
    assert_eq!(
        repos.snapshot().len(),
        5,
        "the last snapshot stays readable"
    );
}

#[tokio::test]
async fn the_longest_durations_are_accepted() {
    let server = apisim().await;
    let control = server.control();
    let (repos, handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .ttl(Duration::MAX)
        .start();
    repos.wait_ready(Duration::MAX).await.unwrap();
    assert_eq!(repos.state(), CacheState::Ready);
    assert!(!repos.is_stale());
    control
        .delete("packagerepositories", None, "glasskube")
        .unwrap();
    eventually("the watch keeps delivering", || {
        repos.get("glasskube").is_none()
    })
    .await;
    assert!(!handle.is_finished(), "the reflector is alive");
    assert_eq!(repos.state(), CacheState::Ready);
    let layer = CacheLayer::new()
        .cache(&repos)
        .read_policy(ReadPolicy::MaxStaleness(Duration::MAX))
        .continue_ttl(Duration::MAX);
    let api: Api<PackageRepository> = Api::all(layer.client(server.client()));
    let list = api
        .list(&kube::api::ListParams::default().limit(2))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(layer.stats().total_local(), 1, "{:?}", layer.stats());
}

#[test]
fn the_longest_publish_interval_is_clamped_not_a_panic() {
    use repocache::config::MAX_PUBLISH_INTERVAL;
    use repocache::writer::Publish;
    use repocache::{CacheConfig, Event, Writer};
    let mut writer = Writer::<PackageRepository>::with_config(
        CacheConfig::default().publish_interval(Duration::MAX),
    );
    assert_eq!(writer.publish_interval(), MAX_PUBLISH_INTERVAL);
    let repo = |name: &str| -> PackageRepository {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageRepository",
            "metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"url": "https://example.test/"},
        }))
        .unwrap()
    };
    writer.apply_batch([Event::Init, Event::InitApply(repo("a")), Event::InitDone]);
    writer.stage(Event::Apply(repo("b")));
    assert!(matches!(writer.publish_due(), Publish::Deferred(_)));
    writer.publish();
    assert!(writer.cache().get("b").is_some());
}
