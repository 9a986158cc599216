//! kube-runtime's `watcher` against apisim, in list+watch and streaming-list modes: initial state,
//! resume after a closed stream without relisting, relist after 410, bookmarks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use apisim::{Server, ServerConfig, ServerHandle};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use repocache_test_support::eventually;
use serde_json::json;
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);
const SEED: &str = apisim::seed::REPOSITORIES_YAML;

fn ar() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("packages.glasskube.dev", "v1alpha1", "PackageRepository"),
        "packagerepositories",
    )
}

fn repo(name: &str) -> serde_json::Value {
    json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
           "metadata": {"name": name}, "spec": {"url": format!("https://{name}")}})
}

async fn start() -> ServerHandle {
    Server::start(
        ServerConfig::default()
            .with_seed_yaml(SEED)
            .unwrap()
            .with_bookmark_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap()
}

/// Drive a watcher in a task; events (or error strings) come out of the channel.
fn spawn_watcher(
    s: &ServerHandle,
    cfg: watcher::Config,
) -> mpsc::UnboundedReceiver<Result<Event<DynamicObject>, String>> {
    let api: Api<DynamicObject> = Api::all_with(s.client(), &ar());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut st = watcher::watcher(api, cfg).boxed();
        while let Some(ev) = st.next().await {
            if tx.send(ev.map_err(|e| e.to_string())).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<Result<Event<DynamicObject>, String>>,
) -> Result<Event<DynamicObject>, String> {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("watcher event timed out")
        .expect("watcher ended")
}

/// Collect a full initial sync: Init, InitApply…, InitDone. Returns the names.
async fn initial_sync(
    rx: &mut mpsc::UnboundedReceiver<Result<Event<DynamicObject>, String>>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    loop {
        match next(rx).await {
            Ok(Event::Init) => names.clear(),
            Ok(Event::InitApply(o)) => {
                names.insert(o.name_any());
            }
            Ok(Event::InitDone) => return names,
            Ok(other) => panic!("unexpected event during init: {other:?}"),
            Err(e) => panic!("watcher error during init: {e}"),
        }
    }
}

async fn next_apply(
    rx: &mut mpsc::UnboundedReceiver<Result<Event<DynamicObject>, String>>,
) -> DynamicObject {
    loop {
        match next(rx).await {
            Ok(Event::Apply(o)) => return o,
            Ok(_) | Err(_) => continue,
        }
    }
}

fn seed_names() -> BTreeSet<String> {
    apisim::load_seed_yaml(SEED)
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_watch_resumes_without_relist() {
    let s = start().await;
    let mut rx = spawn_watcher(&s, watcher::Config::default());
    assert_eq!(initial_sync(&mut rx).await, seed_names());
    assert_eq!(s.count("list", "packagerepositories"), 1);
    let list = s.requests().into_iter().find(|r| r.verb == "list").unwrap();
    assert!(list.query.contains("limit=500"), "{}", list.query);

    s.create(repo("live")).unwrap();
    assert_eq!(next_apply(&mut rx).await.name_any(), "live");
    let last_rv = s.resource_version();

    // the stream ends; the watcher resumes from the last resourceVersion, no second LIST
    s.close_watches();
    eventually("a second watch", || {
        s.count("watch", "packagerepositories") >= 2
    })
    .await;
    s.create(repo("after-resume")).unwrap();
    assert_eq!(next_apply(&mut rx).await.name_any(), "after-resume");
    assert_eq!(s.count("list", "packagerepositories"), 1, "no relist");
    let watches: Vec<_> = s
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch")
        .collect();
    let resumed = &watches[1];
    // the resume carries the latest resourceVersion the watcher saw (an event's or a bookmark's)
    let rv: u64 = resumed
        .query
        .split('&')
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        rv >= last_rv,
        "resumed at {rv}, expected >= {last_rv}: {}",
        resumed.query
    );
    assert!(resumed.query.contains("allowWatchBookmarks=true"));
}

#[tokio::test]
async fn relists_after_410() {
    let s = start().await;
    let mut rx = spawn_watcher(&s, watcher::Config::default());
    initial_sync(&mut rx).await;
    // while the watch is down, history is compacted and an object silently disappears
    s.side_door_delete("packagerepositories", None, "glasskube")
        .unwrap();
    s.compact();
    s.close_watches();
    // the resume gets 410 → error surfaced, then a full relist without the vanished object
    let mut saw_410 = false;
    let names = loop {
        match next(&mut rx).await {
            Err(e) => {
                saw_410 |= e.contains("410") || e.contains("too old");
            }
            Ok(Event::Init) => break initial_sync_after_init(&mut rx).await,
            Ok(_) => {}
        }
    };
    assert!(saw_410, "the watcher should have seen the 410");
    assert!(!names.contains("glasskube"));
    assert_eq!(s.count("list", "packagerepositories"), 2);
}

async fn initial_sync_after_init(
    rx: &mut mpsc::UnboundedReceiver<Result<Event<DynamicObject>, String>>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    loop {
        match next(rx).await {
            Ok(Event::InitApply(o)) => {
                names.insert(o.name_any());
            }
            Ok(Event::InitDone) => return names,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn streaming_list_mode() {
    let s = start().await;
    let mut rx = spawn_watcher(&s, watcher::Config::default().streaming_lists());
    assert_eq!(initial_sync(&mut rx).await, seed_names());
    assert_eq!(
        s.count("list", "packagerepositories"),
        0,
        "streaming lists do not LIST"
    );
    let w = s
        .requests()
        .into_iter()
        .find(|r| r.verb == "watch")
        .unwrap();
    assert!(w.query.contains("sendInitialEvents=true"), "{}", w.query);
    s.create(repo("live")).unwrap();
    assert_eq!(next_apply(&mut rx).await.name_any(), "live");
    // a closed stream resumes from the bookmark/event resourceVersion, without initial events
    s.close_watches();
    eventually("a second watch", || {
        s.count("watch", "packagerepositories") >= 2
    })
    .await;
    s.create(repo("later")).unwrap();
    assert_eq!(next_apply(&mut rx).await.name_any(), "later");
    let watches: Vec<_> = s
        .requests()
        .into_iter()
        .filter(|r| r.verb == "watch")
        .collect();
    assert!(
        !watches[1].query.contains("sendInitialEvents"),
        "{}",
        watches[1].query
    );
}

#[tokio::test]
async fn bookmarks_advance_the_watcher_resource_version() {
    let s = start().await;
    let mut rx = spawn_watcher(&s, watcher::Config::default());
    initial_sync(&mut rx).await;
    // a side-door write moves the counter without an event; only a bookmark can tell the watcher
    s.side_door_put(repo("hidden")).unwrap();
    let target = s.resource_version();
    let resumed_at_target = tokio::time::timeout(T, async {
        loop {
            let before = s.count("watch", "packagerepositories");
            // give the current watch a chance to see a bookmark, then make the watcher resume
            tokio::time::sleep(Duration::from_millis(120)).await;
            s.close_watches();
            while s.count("watch", "packagerepositories") == before {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let last = s
                .requests()
                .into_iter()
                .rfind(|r| r.verb == "watch")
                .unwrap();
            if last.query.contains(&format!("resourceVersion={target}")) {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(
        resumed_at_target,
        "the watcher never resumed from the bookmark's resourceVersion"
    );
    assert_eq!(s.count("list", "packagerepositories"), 1);
}
