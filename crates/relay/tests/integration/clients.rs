//! Clients nobody here wrote against the relay: kube-rs watchers (LIST+WATCH and streaming
//! lists) and repocache's own reflector; and what they cost the API server: one LIST and one
//! WATCH per kind, however many they are.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use glasskube_api::PackageRepository;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use serde_json::json;

use crate::common;

/// Runs a kube-rs watcher and reports the names it has after each event.
fn spawn_watcher(
    api: Api<PackageRepository>,
    config: watcher::Config,
) -> tokio::sync::watch::Receiver<BTreeSet<String>> {
    let (tx, rx) = tokio::sync::watch::channel(BTreeSet::new());
    tokio::spawn(async move {
        let mut names = BTreeSet::new();
        let mut init = BTreeSet::new();
        let mut stream = watcher::watcher(api, config).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => init.clear(),
                Ok(Event::InitApply(o)) => {
                    init.insert(o.metadata.name.unwrap_or_default());
                }
                Ok(Event::InitDone) => {
                    names = std::mem::take(&mut init);
                }
                Ok(Event::Apply(o)) => {
                    names.insert(o.metadata.name.unwrap_or_default());
                }
                Ok(Event::Delete(o)) => {
                    names.remove(&o.metadata.name.unwrap_or_default());
                }
                Err(_) => {}
            }
            if tx.send(names.clone()).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test]
async fn many_kube_watchers_and_a_reflector_cost_one_list_and_one_watch_per_kind() {
    let server = common::apisim().await;
    let control = server.control();
    let relay = common::ready(common::builder(&server)).await;
    let through = common::client(&relay);
    let expected = || -> BTreeSet<String> {
        control
            .list("packagerepositories")
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let mut watchers = Vec::new();
    for i in 0..20 {
        let config = if i % 2 == 0 {
            watcher::Config::default()
        } else {
            watcher::Config::default().streaming_lists()
        };
        watchers.push(spawn_watcher(Api::all(through.clone()), config));
    }
    // repocache's own reflector through the relay.
    let (cache, _handle) =
        repocache::ReflectorBuilder::new(Api::<PackageRepository>::all(through.clone())).start();
    cache.wait_ready(common::T).await.unwrap();

    let want = expected();
    for rx in &mut watchers {
        let mut rx = rx.clone();
        tokio::time::timeout(common::T, rx.wait_for(|names| *names == want))
            .await
            .expect("a watcher never saw the initial objects")
            .unwrap();
    }
    // A change reaches all of them.
    control.create(common::repo("fan-out", json!({}))).unwrap();
    let want = expected();
    for rx in &watchers {
        let mut rx = rx.clone();
        tokio::time::timeout(common::T, rx.wait_for(|names| *names == want))
            .await
            .expect("a watcher never saw the new object")
            .unwrap();
    }
    repocache_test_support::eventually("the reflector sees the change", || {
        cache.get("fan-out").is_some()
    })
    .await;
    let mut names: Vec<String> = cache
        .list()
        .iter()
        .map(|o| o.metadata.name.clone().unwrap_or_default())
        .collect();
    names.sort();
    assert_eq!(names.into_iter().collect::<BTreeSet<_>>(), want);

    // The API server: one LIST and one open WATCH per kind (the relay's own), nothing else.
    let log: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {} {}", r.verb, r.path, r.query))
        .collect();
    println!("apisim's request log with 21 clients through the relay: {log:#?}");
    println!("relay: {:?}", relay.stats());
    for plural in [
        "packagerepositories",
        "packages",
        "clusterpackages",
        "packageinfos",
    ] {
        assert_eq!(server.count("list", plural), 1, "LISTs of {plural}");
        assert_eq!(server.count("watch", plural), 1, "WATCHes of {plural}");
    }
    assert_eq!(control.open_watches(), 4);
    assert!(relay.stats().watches_served >= 21);
}
