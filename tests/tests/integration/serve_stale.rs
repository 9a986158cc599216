//! Serve-stale-on-error, by choice: while a synced cache is failing, the layer passes reads
//! through by default, and with `serve_stale_on_error(true)` answers them from the last snapshot
//! with a Kubernetes `Warning` header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use apisim::FailSpec;
use glasskube_api::PackageRepository;
use kube::Api;
use kube::client::Body;
use repocache::layer::{CacheLayer, Outcome, Verb};
use repocache::{CacheState, ReflectorBuilder};
use repocache_test_support::{PATIENCE, apisim, client_without_retry, eventually};

const REPOS: &str = "packagerepositories";
const KIND: &str = "PackageRepository";

/// A raw GET of one repository: status, the Warning header, and the body's URL.
async fn get(client: &kube::Client, name: &str) -> (u16, Option<String>, String) {
    let request =
        kube::core::Request::new("/apis/packages.glasskube.dev/v1alpha1/packagerepositories")
            .get(name, &Default::default())
            .unwrap()
            .map(Body::from);
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let warning = response
        .headers()
        .get("warning")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect_bytes().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let url = body["spec"]["url"].as_str().unwrap_or_default().to_owned();
    (status, warning, url)
}

#[tokio::test]
async fn a_failing_cache_serves_its_last_snapshot_with_a_warning_only_when_asked() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(&server)))
            .ttl(Duration::from_millis(300))
            .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let default = CacheLayer::new().cache(&repos);
    let stale_ok = CacheLayer::new().cache(&repos).serve_stale_on_error(true);
    let via_default = default.client(server.client());
    let via_stale = stale_ok.client(server.client());

    // Healthy: answered locally, without a warning. The 300 ms TTL outruns apisim's 1 s
    // bookmarks, so the quiet cache is `Stale` for a moment before each TTL relist, and a read
    // that a busy machine delays into such a moment is (rightly) served stale with the warning;
    // so the test reads until one is served locally instead of expecting the first one to be.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let served = stale_ok.stats().count(KIND, Verb::Get, Outcome::Served);
        let (status, warning, _) = get(&via_stale, "glasskube").await;
        assert_eq!(status, 200);
        if stale_ok.stats().count(KIND, Verb::Get, Outcome::Served) > served {
            assert_eq!(warning, None, "served locally: no warning");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a healthy cache never answered locally: {:?}",
            stale_ok.stats()
        );
    }
    let served_stale_before = stale_ok
        .stats()
        .count(KIND, Verb::Get, Outcome::ServedStale);

    // The watch goes silent and every relist fails: the TTL makes the cache stale, then failed.
    control.fail_next(FailSpec::new("list", REPOS, 500, 100_000));
    control.stall_watches(None);
    eventually("the cache fails", || {
        matches!(repos.state(), CacheState::Failed { .. })
    })
    .await;

    let (status, warning, _) = get(&via_default, "glasskube").await;
    assert_eq!(status, 200);
    assert_eq!(warning, None, "passed through to the server");
    assert_eq!(default.stats().count(KIND, Verb::Get, Outcome::Stale), 1);

    let (status, warning, url) = get(&via_stale, "glasskube").await;
    assert_eq!(status, 200);
    assert_eq!(url, "https://packages.dl.glasskube.dev/packages");
    let warning = warning.expect("a Warning header");
    assert!(
        warning.starts_with("299 - \"served from a repocache snapshot ")
            && warning.ends_with(" s old\""),
        "{warning}"
    );
    assert_eq!(
        stale_ok
            .stats()
            .count(KIND, Verb::Get, Outcome::ServedStale),
        served_stale_before + 1
    );
    // kube's typed client still reads it (and would display the warning).
    let api: Api<PackageRepository> = Api::all(via_stale.clone());
    assert_eq!(api.list(&Default::default()).await.unwrap().items.len(), 5);
    assert_eq!(
        stale_ok
            .stats()
            .count(KIND, Verb::List, Outcome::ServedStale),
        1
    );
    control.clear_faults();
}
