//! The client layer against apisim: unchanged `Api<K>` code through a layered client makes no
//! GET or LIST after sync and gets exactly the server's answers (objects, lists, selectors,
//! pagination, 404s); writes, watches, other kinds, subresources and unready or stale caches
//! pass through, and every request is counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use apisim::FailSpec;
use glasskube_api::{Package, PackageInfo, PackageRepository};
use kube::api::{ListParams, Patch, PatchParams, PostParams, VersionMatch, WatchParams};
use kube::client::Body;
use kube::core::{ObjectList, Status};
use kube::{Api, Client};
use repocache::layer::{BYPASS_HEADER, CacheLayer, GENERATION_HEADER, Outcome, Verb};
use repocache::{Cache, ReadPolicy, ReflectorBuilder, ReflectorHandle};
use repocache_test_support::{
    Baseline, PATIENCE, apisim, client_without_retry, eventually, init_tracing,
};

use serde_json::{Value, json};

const REPOS: &str = "packagerepositories";
const KIND: &str = "PackageRepository";
const PATH: &str = "/apis/packages.glasskube.dev/v1alpha1/packagerepositories";
const NAMES: [&str; 5] = [
    "glasskube",
    "inline-basic",
    "private-basic",
    "team-bearer",
    "team-bearer-ref",
];

async fn start(client: Client) -> (Cache<PackageRepository>, ReflectorHandle) {
    let (cache, handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(client)).start();
    cache.wait_ready(PATIENCE).await.unwrap();
    (cache, handle)
}

fn repo(name: &str, url: &str) -> PackageRepository {
    serde_json::from_value(json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1",
        "kind": "PackageRepository",
        "metadata": {"name": name},
        "spec": {"url": url},
    }))
    .unwrap()
}

/// A raw GET: status, body as JSON, and whether the layer answered it.
async fn raw_get(client: &Client, uri: &str, bypass: bool) -> (u16, Value, bool) {
    let mut req = kube::core::Request::new(PATH)
        .list(&ListParams::default())
        .unwrap();
    *req.uri_mut() = uri.parse().unwrap();
    if bypass {
        req.headers_mut()
            .insert(BYPASS_HEADER, "true".parse().unwrap());
    }
    let response = client.send(req.map(Body::from)).await.unwrap();
    let status = response.status().as_u16();
    let local = response.headers().contains_key(GENERATION_HEADER);
    let bytes = response.into_body().collect_bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap(), local)
}

fn api_error(err: kube::Error) -> Box<Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Every LIST page `lp` leads to, walking `continue`.
async fn walk(api: &Api<PackageRepository>, lp: &ListParams) -> Vec<ObjectList<PackageRepository>> {
    let mut pages = Vec::new();
    let mut lp = lp.clone();
    loop {
        let page = api.list(&lp).await.unwrap();
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        pages.push(page);
        match next {
            Some(token) => lp = lp.continue_token(&token),
            None => return pages,
        }
    }
}

/// A list page as the comparison sees it: everything but the (opaque) continue token and the
/// resourceVersion, which is the snapshot's (see `list_resource_versions_are_the_snapshots`).
fn shape(page: &ObjectList<PackageRepository>) -> Value {
    json!({
        "items": page.items,
        "more": page.metadata.continue_.as_deref().is_some_and(|c| !c.is_empty()),
        "remainingItemCount": page.metadata.remaining_item_count,
    })
}

#[tokio::test]
async fn unchanged_api_code_is_served_locally_and_equals_the_server() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = start(server.client()).await;
    assert!(control.wait_for_watches(1, PATIENCE).await);
    let layer = CacheLayer::new().cache(&repos);
    let cached = Api::<PackageRepository>::all(layer.client(server.client()));
    let direct = Api::<PackageRepository>::all(server.client());

    let selectors: Vec<ListParams> = vec![
        ListParams::default(),
        ListParams::default().labels("team=platform"),
        ListParams::default().labels("team==data"),
        ListParams::default().labels("team!=data"),
        ListParams::default().labels("team in (platform, data)"),
        ListParams::default().labels("team notin (platform)"),
        ListParams::default().labels("team"),
        ListParams::default().labels("!team"),
        ListParams::default().labels("team,team!=platform"),
        ListParams::default().fields("metadata.name=glasskube"),
        ListParams::default().fields("metadata.name!=glasskube"),
        ListParams::default()
            .fields("metadata.name!=team-bearer")
            .labels("team"),
        ListParams::default().match_any(),
        ListParams::default().limit(2),
        ListParams::default().limit(2).labels("!team"),
        ListParams::default()
            .limit(1)
            .fields("metadata.name!=glasskube"),
        ListParams::default().limit(5),
        ListParams::default().limit(10),
    ];

    // The layered client's workload first: it must not make a single GET or LIST.
    let (gets, lists) = (control.count("get", REPOS), control.count("list", REPOS));
    let requests = control.requests().len();
    let baseline = Baseline::take(&control);
    let mut local_objects = Vec::new();
    for name in NAMES {
        local_objects.push(cached.get(name).await.unwrap());
    }
    let local_missing = api_error(cached.get("nope").await.unwrap_err());
    assert_eq!(cached.get_opt("nope").await.unwrap(), None);
    let mut local_pages = Vec::new();
    for lp in &selectors {
        local_pages.push(walk(&cached, lp).await);
    }
    let mut local_raw = Vec::new();
    let raw_uris = [
        format!("{PATH}/glasskube"),
        format!("{PATH}/nope"),
        PATH.to_owned(),
        format!("{PATH}?limit=2"),
        format!("{PATH}?labelSelector=team+notin+%28data%29&limit=1"),
    ];
    for uri in &raw_uris {
        local_raw.push(raw_get(&cached.clone().into_client(), uri, false).await);
    }
    baseline.settle().await;
    assert_eq!(control.count("get", REPOS), gets, "a GET reached apisim");
    assert_eq!(control.count("list", REPOS), lists, "a LIST reached apisim");
    assert_eq!(
        control.requests().len(),
        requests,
        "a request reached apisim"
    );

    let stats = layer.stats();
    let local_gets = stats.local(KIND, Verb::Get);
    let local_lists = stats.local(KIND, Verb::List);
    eprintln!(
        "layered workload: {local_gets} GETs and {local_lists} LISTs answered locally; \
         apisim saw {} GET and {} LIST (the reflector's initial LIST) for {REPOS}, and no \
         request during the workload",
        control.count("get", REPOS),
        control.count("list", REPOS)
    );
    assert_eq!(stats.total_passed_through(), 0);
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::NotFound), 3);
    assert_eq!(local_gets, 5 + 2 + 2);
    assert_eq!(local_lists, 24 + 3);

    // The same calls straight to apisim.
    for (name, local) in NAMES.iter().zip(&local_objects) {
        let remote = direct.get(name).await.unwrap();
        assert_eq!(local, &remote, "{name}");
    }
    let remote_missing = api_error(direct.get("nope").await.unwrap_err());
    assert_eq!(local_missing, remote_missing);
    for (lp, local) in selectors.iter().zip(&local_pages) {
        let remote = walk(&direct, lp).await;
        let local: Vec<Value> = local.iter().map(shape).collect();
        let remote: Vec<Value> = remote.iter().map(shape).collect();
        assert_eq!(local, remote, "{lp:?}");
    }
    let limit2 = &local_pages[13];
    assert_eq!(limit2.len(), 3, "5 fixtures in pages of 2");
    assert_eq!(limit2[0].metadata.remaining_item_count, Some(3));
    assert_eq!(limit2[1].metadata.remaining_item_count, Some(1));
    for ((status, body, local), uri) in local_raw.iter().zip(&raw_uris) {
        assert!(local, "{uri} was not answered locally");
        let (remote_status, mut remote_body, remote_local) =
            raw_get(&server.client(), uri, false).await;
        assert!(!remote_local);
        assert_eq!(*status, remote_status, "{uri}");
        let mut body = body.clone();
        // The list's resourceVersion is the snapshot's (checked below) and continue tokens
        // are opaque: both are compared for presence only.
        for b in [&mut body, &mut remote_body] {
            if b["kind"] == "PackageRepositoryList"
                && let Some(meta) = b.get_mut("metadata").and_then(Value::as_object_mut)
            {
                assert!(meta.remove("resourceVersion").is_some());
                if let Some(token) = meta.get_mut("continue") {
                    *token = json!("<token>");
                }
            }
        }
        assert_eq!(body, remote_body, "{uri}");
    }
    let (_, list, _) = &local_raw[2];
    let rv: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        Some(rv.to_string()),
        repos.snapshot().resource_version().map(str::to_owned)
    );
    assert!(rv <= control.resource_version());
}

#[tokio::test]
async fn namespaced_kinds_are_served_per_namespace_and_across_namespaces() {
    let server = apisim().await;
    let control = server.control();
    let (packages, _handle) = ReflectorBuilder::new(Api::<Package>::all(server.client())).start();
    packages.wait_ready(PATIENCE).await.unwrap();
    assert!(control.wait_for_watches(1, PATIENCE).await);
    let layer = CacheLayer::new().cache(&packages);
    let client = layer.client(server.client());
    let before = control.requests().len();
    let baseline = Baseline::take(&control);
    let in_ns = Api::<Package>::namespaced(client.clone(), "analytics");
    let all = Api::<Package>::all(client.clone());
    let local_one = in_ns.get("my-quickwit").await.unwrap();
    let local_missing = api_error(in_ns.get("nope").await.unwrap_err());
    let local_ns = in_ns.list(&ListParams::default()).await.unwrap().items;
    let local_other_ns = Api::<Package>::namespaced(client, "elsewhere")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let local_all = all.list(&ListParams::default()).await.unwrap().items;
    baseline.settle().await;
    assert_eq!(control.requests().len(), before, "a request reached apisim");
    assert_eq!(layer.stats().total_local(), 5);

    let direct_ns = Api::<Package>::namespaced(server.client(), "analytics");
    assert_eq!(local_one, direct_ns.get("my-quickwit").await.unwrap());
    assert_eq!(
        local_missing,
        api_error(direct_ns.get("nope").await.unwrap_err())
    );
    assert_eq!(
        local_ns,
        direct_ns.list(&ListParams::default()).await.unwrap().items
    );
    assert!(local_other_ns.is_empty());
    assert_eq!(
        local_all,
        Api::<Package>::all(server.client())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    );
}

#[tokio::test]
async fn writes_pass_through_and_become_visible_once_the_watch_delivers_them() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = start(server.client()).await;
    let layer = CacheLayer::new().cache(&repos);
    let cached = Api::<PackageRepository>::all(layer.client(server.client()));
    let direct = Api::<PackageRepository>::all(server.client());

    cached
        .create(
            &PostParams::default(),
            &repo("fresh", "https://fresh.example"),
        )
        .await
        .unwrap();
    assert_eq!(control.count("create", REPOS), 1);
    // The bypass (a client without the layer) sees the write at once.
    assert_eq!(
        direct.get("fresh").await.unwrap().spec.url,
        "https://fresh.example"
    );
    // The layered client sees it once the watch has delivered it.
    eventually("the watch delivers the create", || {
        repos.get("fresh").is_some()
    })
    .await;
    let gets = control.count("get", REPOS);
    assert_eq!(
        cached.get("fresh").await.unwrap().spec.url,
        "https://fresh.example"
    );

    cached
        .patch(
            "fresh",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"url": "https://moved.example"}})),
        )
        .await
        .unwrap();
    assert_eq!(control.count("patch", REPOS), 1);
    eventually("the watch delivers the patch", || {
        repos
            .get("fresh")
            .is_some_and(|r| r.spec.url == "https://moved.example")
    })
    .await;
    assert_eq!(
        cached.get("fresh").await.unwrap().spec.url,
        "https://moved.example"
    );

    cached.delete("fresh", &Default::default()).await.unwrap();
    assert_eq!(control.count("delete", REPOS), 1);
    eventually("the watch delivers the delete", || {
        repos.get("fresh").is_none()
    })
    .await;
    assert_eq!(cached.get_opt("fresh").await.unwrap(), None);
    assert_eq!(
        control.count("get", REPOS),
        gets,
        "layered reads reached apisim"
    );

    // The header bypass, for code that builds its requests itself: stripped and passed on.
    let (status, body, local) = raw_get(
        &cached.clone().into_client(),
        &format!("{PATH}/glasskube"),
        true,
    )
    .await;
    assert_eq!((status, local), (200, false));
    assert_eq!(body["metadata"]["name"], "glasskube");
    assert_eq!(control.count("get", REPOS), gets + 1);
    let last = control.requests().pop().unwrap();
    assert_eq!(last.verb, "get");

    let stats = layer.stats();
    assert_eq!(stats.count(KIND, Verb::Create, Outcome::Verb), 1);
    assert_eq!(stats.count(KIND, Verb::Patch, Outcome::Verb), 1);
    assert_eq!(stats.count(KIND, Verb::Delete, Outcome::Verb), 1);
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::Bypass), 1);
    assert_eq!(stats.local(KIND, Verb::Get), 3);
}

#[tokio::test]
async fn a_selective_cache_never_answers_for_the_whole_kind() {
    let server = apisim().await;
    let control = server.control();
    let (team, _handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .watcher_config(kube::runtime::watcher::Config::default().labels("team"))
        .start();
    team.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(team.snapshot().len(), 2);
    let layer = CacheLayer::new().cache(&team);
    let cached = Api::<PackageRepository>::all(layer.client(server.client()));
    let gets = control.count("get", REPOS);
    // Not in the selective cache, but on the server: the layer must not answer 404.
    let found = cached.get("glasskube").await.unwrap();
    assert_eq!(found.metadata.name.as_deref(), Some("glasskube"));
    assert_eq!(
        cached
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    assert_eq!(control.count("get", REPOS), gets + 1);
    assert_eq!(
        layer.stats().total_local(),
        0,
        "nothing answered from the partial cache"
    );
}

#[tokio::test]
async fn layered_gets_count_as_cache_reads() {
    let server = apisim().await;
    let (repos, _handle) = start(server.client()).await;
    let cached =
        Api::<PackageRepository>::all(CacheLayer::new().cache(&repos).client(server.client()));
    cached.get("glasskube").await.unwrap();
    assert!(cached.get_opt("nope").await.unwrap().is_none());
    let stats = repos.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
}

#[tokio::test]
async fn a_cache_that_is_not_ready_passes_through() {
    let server = apisim().await;
    let control = server.control();
    control.fail_next(FailSpec::new("list", REPOS, 503, 1000));
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(&server))).start();
    let layer = CacheLayer::new().cache(&repos);
    let cached = Api::<PackageRepository>::all(layer.client(client_without_retry(&server)));
    eventually("the reflector's LIST fails", || {
        control.count("list", REPOS) >= 1
    })
    .await;
    assert!(!repos.is_ready());

    let gets = control.count("get", REPOS);
    let found = cached.get("glasskube").await.unwrap();
    assert_eq!(found.spec.url, "https://packages.dl.glasskube.dev/packages");
    assert_eq!(control.count("get", REPOS), gets + 1);
    // A LIST goes to the server too, and gets the server's answer: here, the failure.
    let err = api_error(cached.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 503);
    let stats = layer.stats();
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::NotReady), 1);
    assert_eq!(stats.count(KIND, Verb::List, Outcome::NotReady), 1);
    assert_eq!(stats.total_local(), 0);
}

#[tokio::test]
async fn stale_and_stopped_caches_pass_through() {
    let server = apisim().await;
    let control = server.control();
    let (repos, handle) = start(server.client()).await;

    // A bound no snapshot meets: every read is a fallback.
    let strict = CacheLayer::new()
        .cache(&repos)
        .read_policy(ReadPolicy::MaxStaleness(Duration::ZERO));
    let cached = Api::<PackageRepository>::all(strict.client(server.client()));
    let (gets, lists) = (control.count("get", REPOS), control.count("list", REPOS));
    cached.get("glasskube").await.unwrap();
    cached.list(&ListParams::default()).await.unwrap();
    assert_eq!(control.count("get", REPOS), gets + 1);
    assert_eq!(control.count("list", REPOS), lists + 1);
    let stats = strict.stats();
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::Stale), 1);
    assert_eq!(stats.count(KIND, Verb::List, Outcome::Stale), 1);

    // A generous bound serves locally.
    let lenient = CacheLayer::new()
        .cache(&repos)
        .read_policy(ReadPolicy::MaxStaleness(Duration::from_secs(3600)));
    let cached = Api::<PackageRepository>::all(lenient.client(server.client()));
    cached.get("glasskube").await.unwrap();
    assert_eq!(control.count("get", REPOS), gets + 1);
    assert_eq!(lenient.stats().local(KIND, Verb::Get), 1);

    // The default policy follows the cache's state: a stopped cache is never served from.
    let default = CacheLayer::new().cache(&repos);
    let cached = Api::<PackageRepository>::all(default.client(server.client()));
    cached.get("glasskube").await.unwrap();
    assert_eq!(control.count("get", REPOS), gets + 1);
    handle.stop().await;
    cached.get("glasskube").await.unwrap();
    assert_eq!(control.count("get", REPOS), gets + 2);
    let stats = default.stats();
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::Served), 1);
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::Stale), 1);
}

#[tokio::test]
async fn other_kinds_watches_subresources_and_exact_versions_pass_through() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = start(server.client()).await;
    let layer = CacheLayer::new().cache(&repos);
    let client = layer.client(server.client());
    let cached = Api::<PackageRepository>::all(client.clone());

    // Another kind.
    let packages = Api::<Package>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(packages.items.len(), 1);
    assert_eq!(control.count("list", "packages"), 1);
    assert_eq!(
        layer.stats().count("other", Verb::List, Outcome::NotCached),
        1
    );

    // A subresource, and another media type (metadata only).
    cached.get_status("glasskube").await.unwrap();
    assert_eq!(control.count("get", "packagerepositories/status"), 1);
    let meta = cached.get_metadata("glasskube").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("glasskube"));
    assert_eq!(control.count("get", REPOS), 1);

    // An exact resourceVersion: the server's business (and its answer).
    let rv = repos.snapshot().resource_version().unwrap().to_owned();
    let lists = control.count("list", REPOS);
    let now = control.resource_version().to_string();
    cached
        .list(&ListParams::default().at(&now).matching(VersionMatch::Exact))
        .await
        .unwrap();
    assert_eq!(control.count("list", REPOS), lists + 1);
    // Not older than the snapshot: answered locally.
    cached
        .list(
            &ListParams::default()
                .at(&rv)
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert_eq!(control.count("list", REPOS), lists + 1);

    // A selector the layer does not evaluate: the server's 400.
    let err = api_error(
        cached
            .list(&ListParams::default().fields("spec.url=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert_eq!(control.count("list", REPOS), lists + 2);

    // A watch.
    let watches = control.count("watch", REPOS);
    let stream = cached
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    drop(stream);
    assert_eq!(control.count("watch", REPOS), watches + 1);

    let stats = layer.stats();
    assert_eq!(stats.count(KIND, Verb::Watch, Outcome::Verb), 1);
    assert_eq!(stats.count(KIND, Verb::Get, Outcome::Unsupported), 2);
    assert_eq!(stats.count(KIND, Verb::List, Outcome::Unsupported), 2);
    assert_eq!(stats.count(KIND, Verb::List, Outcome::Served), 1);
}

#[tokio::test]
async fn requests_the_layer_cannot_answer_as_the_server_would_pass_through() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = start(server.client()).await;
    let client = CacheLayer::new().cache(&repos).client(server.client());

    // A parameter the layer does not evaluate (`pretty`) on a LIST it could otherwise answer.
    let lists = control.count("list", REPOS);
    let (status, body, local) = raw_get(&client, &format!("{PATH}?pretty=true"), false).await;
    assert_eq!((status, local), (200, false), "{body}");
    assert_eq!(control.count("list", REPOS), lists + 1);
    let (status, _, local) = raw_get(&client, PATH, false).await;
    assert_eq!(
        (status, local),
        (200, true),
        "the control: the same LIST without it"
    );

    // A cluster-scoped kind addressed inside a namespace: the server's own 404, not a miss of
    // the cache.
    let (status, body, local) = raw_get(
        &client,
        "/apis/packages.glasskube.dev/v1alpha1/namespaces/default/packagerepositories/glasskube",
        false,
    )
    .await;
    assert_eq!((status, local), (404, false), "{body}");

    // A continue token another layer minted (for the same cache): that layer's walk, not this
    // one's; the server judges it.
    let other = CacheLayer::new().cache(&repos).client(server.client());
    let first = Api::<PackageRepository>::all(other)
        .list(&ListParams::default().limit(2))
        .await
        .unwrap();
    let token = first.metadata.continue_.unwrap();
    let (_, body, local) =
        raw_get(&client, &format!("{PATH}?limit=2&continue={token}"), false).await;
    assert!(!local, "a foreign token is passed through: {body}");
}

#[tokio::test]
async fn a_paginated_walk_stays_on_its_snapshot_or_expires() {
    let server = apisim().await;
    let control = server.control();
    let (repos, _handle) = start(server.client()).await;
    let layer = CacheLayer::new().cache(&repos);
    let cached = Api::<PackageRepository>::all(layer.client(server.client()));
    let expiring = CacheLayer::new().cache(&repos).continue_ttl(Duration::ZERO);
    let expiring = Api::<PackageRepository>::all(expiring.client(server.client()));

    let lp = ListParams::default().limit(2);
    let first = cached.list(&lp).await.unwrap();
    let first_expiring = expiring.list(&lp).await.unwrap();
    let generation = repos.snapshot().generation();
    cached
        .create(
            &PostParams::default(),
            &repo("aaa-new", "https://new.example"),
        )
        .await
        .unwrap();
    eventually("the snapshot moves on", || {
        repos.snapshot().generation() > generation
    })
    .await;
    let baseline = Baseline::take(&control);

    // The walk finishes on the snapshot it began on: five objects, not six.
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    let mut token = first.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = cached.list(&lp.clone().continue_token(&t)).await.unwrap();
        names.extend(page.items.iter().map(|r| r.metadata.name.clone().unwrap()));
        token = page.metadata.continue_;
    }
    assert_eq!(names, NAMES);
    // A new walk sees the new object.
    assert_eq!(
        cached
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        6
    );

    // A token whose snapshot is no longer held: 410 Expired, as the API server answers.
    let t = first_expiring.metadata.continue_.unwrap();
    let err = api_error(
        expiring
            .list(&lp.clone().continue_token(&t))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
    assert!(
        err.message
            .starts_with("The provided continue parameter is too old")
    );
    baseline.settle().await;
    assert_eq!(control.count("list", REPOS), 1, "only the reflector's LIST");
}

/// Pages of `first`'s walk, continued to the end: the names it lists.
async fn finish_walk(
    api: &Api<PackageRepository>,
    lp: &ListParams,
    first: &ObjectList<PackageRepository>,
) -> Vec<String> {
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    let mut token = first.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api.list(&lp.clone().continue_token(&t)).await.unwrap();
        names.extend(page.items.iter().map(|r| r.metadata.name.clone().unwrap()));
        token = page.metadata.continue_;
    }
    names
}

#[tokio::test]
async fn walks_begun_on_different_snapshots_each_finish_on_their_own() {
    let server = apisim().await;
    let (repos, _handle) = start(server.client()).await;
    let cached =
        Api::<PackageRepository>::all(CacheLayer::new().cache(&repos).client(server.client()));
    let lp = ListParams::default().limit(2);
    let create = |name: &'static str| {
        let cached = cached.clone();
        let repos = repos.clone();
        async move {
            let generation = repos.snapshot().generation();
            cached
                .create(&PostParams::default(), &repo(name, "https://new.example"))
                .await
                .unwrap();
            eventually("the snapshot moves on", || {
                repos.snapshot().generation() > generation
            })
            .await;
        }
    };

    // Walk A begins on the fixtures' snapshot, walk B on the next one; while both are under
    // way the cache moves on again, so neither walk's snapshot is the current one.
    let a = cached.list(&lp).await.unwrap();
    create("aaa-one").await;
    let b = cached.list(&lp).await.unwrap();
    create("aaa-two").await;

    let mut with_one: Vec<&str> = NAMES.to_vec();
    with_one.insert(0, "aaa-one");
    assert_eq!(
        finish_walk(&cached, &lp, &b).await,
        with_one,
        "walk B, on its snapshot"
    );
    assert_eq!(
        finish_walk(&cached, &lp, &a).await,
        NAMES,
        "walk A, on its snapshot"
    );
}

/// The demo's setup: a layered client for the PackageRepository and PackageInfo caches, and the
/// layer (for its counters).
fn layered_client(
    base: Client,
    repos: &Cache<PackageRepository>,
    infos: &Cache<PackageInfo>,
) -> (Client, CacheLayer) {
    let layer = CacheLayer::new().cache(repos).cache(infos);
    (layer.client(base), layer)
}

#[tokio::test]
async fn counters_are_exported_for_prometheus() {
    let server = apisim().await;
    let (repos, _handle) = start(server.client()).await;
    let (infos, _infos_handle) =
        ReflectorBuilder::new(Api::<PackageInfo>::all(server.client())).start();
    infos.wait_ready(PATIENCE).await.unwrap();
    // What the demo does: one layer for both kinds.
    let (client, layer) = layered_client(server.client(), &repos, &infos);
    let cached = Api::<PackageRepository>::all(client.clone());
    let listed = Api::<PackageInfo>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), infos.snapshot().len());
    cached.get("glasskube").await.unwrap();
    cached.get_opt("nope").await.unwrap();
    cached.list(&ListParams::default()).await.unwrap();
    cached.get_status("glasskube").await.unwrap();
    let text = layer.metrics().render();
    for line in [
        r#"repocache_layer_requests_total{kind="PackageRepository",verb="get",source="cache",outcome="served"} 1"#,
        r#"repocache_layer_requests_total{kind="PackageRepository",verb="get",source="cache",outcome="not_found"} 1"#,
        r#"repocache_layer_requests_total{kind="PackageRepository",verb="list",source="cache",outcome="served"} 1"#,
        r#"repocache_layer_requests_total{kind="PackageRepository",verb="get",source="server",outcome="unsupported"} 1"#,
        r#"repocache_layer_requests_total{kind="PackageInfo",verb="list",source="cache",outcome="served"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
