//! A cache set over apisim: four kinds on one client with the Glasskube presets, one readiness,
//! typed access, indexes, the default repository, subscriptions over HTTP, one metrics
//! registry, one shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use glasskube_api::{ClusterPackage, Package, PackageInfo, PackageRepository};
use repocache::glasskube::Error;
use repocache::glasskube::{self, BY_REPOSITORY, BY_URL, DEFAULT_REPOSITORY, RepositoryLookup};
use repocache::{CacheSet, Change, KindOptions};
use repocache_test_support::{PATIENCE, apisim, eventually};

use serde_json::json;

#[tokio::test]
async fn four_kinds_one_readiness_typed_access_and_indexes() {
    let server = apisim().await;
    let control = server.control();
    let mut builder = CacheSet::builder(server.client()).ttl(Duration::from_secs(60));
    let repos = builder.add(glasskube::package_repositories());
    let packages = builder.add(glasskube::packages());
    let cluster_packages = builder.add(glasskube::cluster_packages());
    let infos = builder.add(KindOptions::<PackageInfo>::new().ttl(Duration::from_secs(5)));
    let caches = builder.start();
    caches.wait_ready(PATIENCE).await.unwrap();
    assert!(caches.is_ready());

    assert_eq!(repos.snapshot().len(), 5);
    assert_eq!(infos.ttl(), Duration::from_secs(5));
    assert_eq!(repos.ttl(), Duration::from_secs(60));
    let typed = caches.get::<PackageRepository>().unwrap();
    assert_eq!(typed.snapshot().generation(), repos.snapshot().generation());
    assert!(caches.get::<String>().is_none());

    // Built-in indexes and the default repository.
    assert_eq!(
        repos
            .default_repository()
            .unwrap()
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("glasskube")
    );
    let found = repos.by_url("HTTPS://packages.platform.example.net");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].metadata.name.as_deref(), Some("team-bearer"));
    assert_eq!(
        repos
            .by_index(BY_URL, "https://packages.data.example.net")
            .unwrap()
            .len(),
        1
    );
    let using_default: Vec<String> = cluster_packages
        .by_index(BY_REPOSITORY, DEFAULT_REPOSITORY)
        .unwrap()
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(using_default, ["kubernetes-dashboard"]);
    assert_eq!(
        packages
            .by_index(BY_REPOSITORY, "private-basic")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        repos
            .resolve(None)
            .unwrap()
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("glasskube")
    );

    // One registry with every kind.
    let text = caches.metrics().render();
    for kind in [
        "PackageRepository",
        "Package",
        "ClusterPackage",
        "PackageInfo",
    ] {
        assert!(
            text.contains(&format!("repocache_objects{{kind=\"{kind}\"}}")),
            "{kind} missing"
        );
    }
    assert_eq!(caches.stats().len(), 4);
    assert_eq!(control.count("list", "packageinfos"), 1);

    caches.shutdown().await;
    assert!(repos.state().is_stopped());
    assert!(packages.state().is_stopped());
    assert!(!repos.is_ready() && !packages.is_ready());
}

#[tokio::test]
async fn several_defaults_are_a_typed_error() {
    let server = apisim().await;
    let control = server.control();
    let mut builder = CacheSet::builder(server.client());
    let repos = builder.add(glasskube::package_repositories());
    let caches = builder.start();
    caches.wait_ready(PATIENCE).await.unwrap();
    control
        .merge_patch(
            "packagerepositories",
            None,
            "private-basic",
            &json!({"metadata": {"annotations": {"packages.glasskube.dev/default-repository": "true"}}}),
        )
        .unwrap();
    eventually("the second default arrives", || {
        matches!(
            repos.default_repository(),
            Err(Error::SeveralDefaults { .. })
        )
    })
    .await;
    match repos.default_repository() {
        Err(Error::SeveralDefaults { names }) => {
            assert_eq!(names, ["glasskube", "private-basic"])
        }
        other => panic!("unexpected: {other:?}"),
    }
}

#[tokio::test]
async fn subscribers_see_deletes_and_objects_that_vanished_while_the_watch_was_down() {
    let server = apisim().await;
    let control = server.control();
    let mut builder = CacheSet::builder(server.client());
    let repos = builder.add(glasskube::package_repositories());
    let caches = builder.start();
    caches.wait_ready(PATIENCE).await.unwrap();
    let mut sub = repos.subscribe();
    let mut initial = Vec::new();
    while let Some(change) = tokio::time::timeout(PATIENCE, sub.next()).await.unwrap() {
        match change {
            Change::Synced { .. } => break,
            other => initial.push(other),
        }
    }
    assert_eq!(initial.len(), 5);
    assert!(control.wait_for_watches(1, PATIENCE).await);

    control
        .delete("packagerepositories", None, "team-bearer")
        .unwrap();
    let next = tokio::time::timeout(PATIENCE, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&next, Change::Deleted { object, .. } if object.metadata.name.as_deref() == Some("team-bearer")),
        "{next:?}"
    );

    // Gone without an event, then a restart that loses history: the relist diff says deleted.
    control
        .side_door_delete("packagerepositories", None, "inline-basic")
        .unwrap();
    control.restart(true);
    let next = tokio::time::timeout(PATIENCE, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&next, Change::Deleted { object, .. } if object.metadata.name.as_deref() == Some("inline-basic")),
        "{next:?}"
    );
    caches.shutdown().await;
}

#[tokio::test]
async fn namespace_scoped_kind_in_a_set() {
    let server = apisim().await;
    let mut builder = CacheSet::builder(server.client());
    let elsewhere = builder.add(KindOptions::<Package>::new().namespace("elsewhere"));
    let analytics = builder.add(KindOptions::<Package>::new().namespace("analytics"));
    let all = builder.add(KindOptions::<ClusterPackage>::new().labels("missing-label"));
    let caches = builder.start();
    caches.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(elsewhere.snapshot().len(), 0);
    assert_eq!(analytics.snapshot().len(), 1);
    assert_eq!(all.snapshot().len(), 0);
}
