//! The debug endpoint (library) and the demo's core, in process, against apisim.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use glasskube_api::PackageRepository;
use kube::Api;
use repocache::debug::{CachesReport, DebugError, DebugServer};
use repocache::{Event, ReflectorBuilder, Writer};
use repocache_cli::demo::catalogue::Catalogue;
use repocache_cli::demo::{DemoConfig, NoProgress, run};
use repocache_test_support::PATIENCE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "s3cr3t-inline-password";
const TOKEN: &str = "inline-bearer-token-0123456789";

async fn apisim() -> apisim::ServerHandle {
    let config = apisim::ServerConfig::default()
        .with_seed_yaml(repocache_test_support::REPOSITORIES_YAML)
        .unwrap();
    repocache_test_support::start(config).await
}

/// One plain HTTP/1.1 GET: (status, body).
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn repository(name: &str, password: &str) -> PackageRepository {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
        "metadata": {"name": name, "resourceVersion": "7"},
        "spec": {"url": "https://example.org", "auth": {"basic": {"username": "deploy", "password": password}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_token_protects_debug_and_metrics_but_not_the_probes() {
    let server = apisim().await;
    let (repos, _h) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let debug = DebugServer::builder()
        .cache(&repos)
        .token("let-me-in")
        .start()
        .await
        .unwrap();
    let addr = debug.local_addr();
    assert!(addr.ip().is_loopback());
    for path in ["/debug/caches", "/metrics"] {
        assert_eq!(get(addr, path, None).await.0, 401, "{path} without token");
        assert_eq!(
            get(addr, path, Some("let-me-out")).await.0,
            401,
            "{path} wrong token"
        );
        assert_eq!(
            get(addr, path, Some("let-me-in")).await.0,
            200,
            "{path} with token"
        );
    }
    let (status, metrics) = get(addr, "/metrics", Some("let-me-in")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("repocache_objects{kind=\"PackageRepository\"} 5"),
        "{metrics}"
    );
    assert_eq!(get(addr, "/healthz", None).await.0, 200);
    assert_eq!(get(addr, "/readyz", None).await.0, 200);
    let (_, body) = get(addr, "/debug/caches", Some("let-me-in")).await;
    let report: CachesReport = serde_json::from_str(&body).unwrap();
    let cache = &report.caches[0];
    assert_eq!(cache.kind, "PackageRepository");
    assert_eq!(cache.state, "ready");
    assert!(cache.ready && !cache.stale);
    assert_eq!(cache.object_count, 5);
    assert_eq!(cache.stats.relists_total, 1);
    assert_eq!(cache.stats.decoding, "fast", "every fixture decodes");
    assert_eq!(cache.last_relist.as_ref().unwrap().reason, "initial");
    assert!(cache.objects.is_none(), "objects only when asked for");
    assert_eq!(
        get(addr, "/debug/caches?kind=PackageInfo", Some("let-me-in"))
            .await
            .0,
        404
    );
    debug.shutdown().await;
}

#[tokio::test]
async fn readyz_is_503_until_the_first_sync() {
    let mut writer = Writer::<PackageRepository>::new();
    let cache = writer.cache();
    let debug = DebugServer::builder().cache(&cache).start().await.unwrap();
    let (status, body) = get(debug.local_addr(), "/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("PackageRepository: starting"), "{body}");
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(repository("one", "pw")));
    assert_eq!(
        get(debug.local_addr(), "/readyz", None).await.0,
        503,
        "a relist half done"
    );
    writer.apply(Event::InitDone);
    let (status, body) = get(debug.local_addr(), "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn readyz_is_503_and_the_debug_view_says_why_once_the_reflector_died() {
    let server = apisim().await;
    let (repos, _h) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
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
    let debug = DebugServer::builder().cache(&repos).start().await.unwrap();
    assert_eq!(get(debug.local_addr(), "/readyz", None).await.0, 200);
    server
        .control()
        .create(serde_json::json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
            "metadata": {"name": "late"}, "spec": {"url": "https://late.example/"}
        }))
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !repos
        .state()
        .to_string()
        .contains("indexer exploded on late")
    {
        assert!(tokio::time::Instant::now() < deadline, "{}", repos.state());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = get(debug.local_addr(), "/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("stopped: the reflector task panicked"),
        "{body}"
    );
    let (_, body) = get(debug.local_addr(), "/debug/caches", None).await;
    let report: CachesReport = serde_json::from_str(&body).unwrap();
    assert_eq!(report.caches[0].state, "stopped");
    assert!(!report.caches[0].ready);
    assert!(
        report.caches[0]
            .state_detail
            .contains("indexer exploded on late"),
        "{body}"
    );
}

#[tokio::test]
async fn objects_are_redacted_and_secrets_need_an_opt_in() {
    let server = apisim().await;
    let (repos, _h) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    // The generic default hook, knowing nothing of Glasskube.
    let debug = DebugServer::builder().cache(&repos).start().await.unwrap();
    let (status, body) = get(debug.local_addr(), "/debug/caches?objects=true", None).await;
    assert_eq!(status, 200);
    assert!(!body.contains(PASSWORD) && !body.contains(TOKEN), "{body}");
    assert!(
        !body.contains("\"deploy\""),
        "usernames are redacted too: {body}"
    );
    assert!(body.contains("<redacted>"));
    let report: CachesReport = serde_json::from_str(&body).unwrap();
    assert_eq!(report.caches[0].objects.as_ref().unwrap().len(), 5);
    let (status, body) = get(
        debug.local_addr(),
        "/debug/caches?objects=true&secrets=true",
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains(PASSWORD));

    // Glasskube's hook, and secrets allowed explicitly.
    let open = DebugServer::builder()
        .cache(&repos)
        .redact(repocache_cli::redact)
        .allow_secrets(true)
        .start()
        .await
        .unwrap();
    let (_, body) = get(open.local_addr(), "/debug/caches?objects=true", None).await;
    assert!(!body.contains(PASSWORD) && !body.contains(TOKEN), "{body}");
    let (status, body) = get(
        open.local_addr(),
        "/debug/caches?objects=true&secrets=true",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(PASSWORD) && body.contains(TOKEN), "{body}");
}

#[tokio::test]
async fn a_non_loopback_bind_needs_an_opt_in() {
    let cache = Writer::<PackageRepository>::new().cache();
    let err = DebugServer::builder()
        .cache(&cache)
        .bind(([0, 0, 0, 0], 0).into())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, DebugError::RemoteBindRefused { .. }), "{err}");
    assert!(err.to_string().contains("allow_remote"), "{err}");
    let err = DebugServer::builder()
        .cache(&cache)
        .bind(([192, 0, 2, 1], 9464).into())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, DebugError::RemoteBindRefused { .. }), "{err}");
    let err = DebugServer::builder().token("").start().await.unwrap_err();
    assert!(matches!(err, DebugError::EmptyToken), "{err}");
}

/// The scenario's definition, walked independently: per install one repository LIST and one
/// PackageInfo GET; per dependency edge of a package at depth < `depth` two LISTs and a GET of
/// repositories; per package newly part of the install one PackageInfo GET.
fn expected(catalogue: &Catalogue, packages: usize, depth: usize) -> (u64, u64, u64) {
    let (mut lists, mut gets, mut infos) = (0, 0, 0);
    for root in 0..packages {
        lists += 1;
        infos += 1;
        let mut seen = BTreeSet::from([root]);
        let mut queue = VecDeque::from([(root, 0)]);
        while let Some((i, level)) = queue.pop_front() {
            if level == depth {
                continue;
            }
            for &dep in &catalogue.packages[i].dependencies {
                lists += 2;
                gets += 1;
                if seen.insert(dep) {
                    infos += 1;
                    queue.push_back((dep, level + 1));
                }
            }
        }
    }
    (lists, gets, infos)
}

#[tokio::test]
async fn the_demo_reads_no_repository_after_sync() {
    let config = DemoConfig {
        packages: 3,
        depth: 2,
        catalogue: 20,
        qps: 10_000.0,
        burst: 10,
        ..DemoConfig::default()
    };
    let (report, session) = run(config, &NoProgress).await.unwrap();
    let (lists, gets, infos) = expected(&Catalogue::generate(20), 3, 2);
    assert!(gets > 0, "the scenario has dependencies");
    let u = &report.uncached;
    assert_eq!(u.count("list", "packagerepositories"), lists);
    assert_eq!(u.count("get", "packagerepositories"), gets);
    assert_eq!(u.count("get", "packageinfos"), infos);
    assert_eq!(u.total_requests(), lists + gets + infos);
    assert_eq!(report.expected.total(), lists + gets + infos);

    let c = &report.cached;
    assert_eq!(
        c.count("list", "packagerepositories"),
        1,
        "the initial sync"
    );
    assert_eq!(c.count("get", "packagerepositories"), 0);
    assert_eq!(c.count("list", "packageinfos"), 1);
    assert_eq!(c.count("get", "packageinfos"), 0);
    assert_eq!(
        c.count("watch", "packagerepositories"),
        1,
        "the cache's watch"
    );
    assert_eq!(c.count("watch", "packageinfos"), 1, "the cache's watch");
    assert!(
        report.cached_after_sync.is_empty(),
        "no request after sync: {:?}",
        report.cached_after_sync
    );
    assert_eq!(u.installed, c.installed, "both runs install the same");

    // The unchanged uncached code on a layered client: the same reads, none reach the server.
    let l = &report.layered;
    assert_eq!(
        l.count("list", "packagerepositories"),
        1,
        "only the layer's cache sync"
    );
    assert_eq!(l.count("get", "packagerepositories"), 0);
    assert_eq!(l.count("get", "packageinfos"), 0);
    assert_eq!(
        l.count("watch", "packagerepositories"),
        1,
        "the layer cache's watch"
    );
    assert_eq!(
        l.count("watch", "packageinfos"),
        1,
        "the layer cache's watch"
    );
    assert!(
        report.layered_after_sync.is_empty(),
        "no request after sync through the layer: {:?}",
        report.layered_after_sync
    );
    assert_eq!(
        u.installed, l.installed,
        "the layered run installs the same"
    );
    // The unchanged uncached code through a relay: the relay's sync is all the server sees.
    let r = &report.relayed;
    for resource in ["packagerepositories", "packageinfos"] {
        assert_eq!(
            r.count("list", resource),
            1,
            "the relay's sync of {resource}"
        );
        assert_eq!(
            r.count("watch", resource),
            1,
            "the relay's watch of {resource}"
        );
        assert_eq!(
            r.count("get", resource),
            0,
            "no GET of {resource} reaches the server"
        );
    }
    assert_eq!(r.total_requests(), 4, "{:?}", r.requests);
    assert!(
        report.relayed_after_sync.is_empty(),
        "no request after sync through the relay: {:?}",
        report.relayed_after_sync
    );
    assert_eq!(
        report.relayed_answered,
        lists + gets + infos,
        "every read answered from the relay's snapshots"
    );
    assert_eq!(
        u.installed, r.installed,
        "the relayed run installs the same"
    );
    assert_eq!(u.installed.len(), 3);

    // The fourth column: a short-lived process per package, cold then warm. Each process's
    // caches cost one LIST and one WATCH per kind, warm or cold; no read reaches the server.
    let s = report.short_lived.as_ref().expect("the short-lived runs");
    for (run, what) in [(&s.cold, "cold"), (&s.warm, "warm")] {
        for resource in ["packagerepositories", "packageinfos"] {
            assert_eq!(run.count("list", resource), 3, "{what}: a LIST per process");
            assert_eq!(
                run.count("watch", resource),
                3,
                "{what}: a WATCH per process"
            );
            assert_eq!(run.count("get", resource), 0, "{what}");
        }
        assert_eq!(run.total_requests(), 12, "{what}: {:?}", run.requests);
        assert_eq!(
            repocache_cli::demo::ShortLivedReport::reads_sent(run),
            0,
            "{what}"
        );
        assert_eq!(u.installed, run.installed, "{what}: the same installs");
    }
    assert_eq!(s.cold_first_answer.len(), 3);
    assert_eq!(s.cold_answered_unverified, 0, "cold processes have no file");
    assert_eq!(
        s.warm_answered_unverified, 3,
        "every warm process answered from the previous process's file"
    );
    let mut out = Vec::new();
    repocache_cli::demo::write_report(&mut out, &report).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Same packages installed by all three: yes"),
        "{text}"
    );
    assert!(text.contains("UNCACHED CODE, LAYERED CLIENT"), "{text}");
    assert!(text.contains("UNCACHED CODE, THROUGH THE RELAY"), "{text}");
    assert!(
        text.contains(&format!(
            "Through the relay: {} reads answered from its snapshots; same packages installed: yes.",
            lists + gets + infos
        )),
        "{text}"
    );
    assert!(
        text.contains("PROCESS PER PACKAGE, COLD / WARM FILE"),
        "{text}"
    );
    assert!(text.contains("12 / 12"), "{text}");
    assert!(text.contains("Same packages installed: yes"), "{text}");
    assert!(text.contains("# PackageRepository cache: ready"), "{text}");
    assert!(!text.contains(PASSWORD) && !text.contains(TOKEN));
    session.stop().await;
}

#[tokio::test]
async fn readyz_fails_while_a_cache_is_stale_beyond_its_ttl_and_recovers() {
    let server = apisim().await;
    let control = server.control();
    // Without kube's client-side retries, so that the failing relists fail at once.
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let (repos, _h) = ReflectorBuilder::new(Api::<PackageRepository>::all(client))
        .ttl(Duration::from_millis(200))
        .start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let debug = DebugServer::builder().cache(&repos).start().await.unwrap();
    let addr = debug.local_addr();
    assert_eq!(get(addr, "/readyz", None).await.0, 200);

    // The API server fails every list and watch: the snapshot goes unconfirmed past its TTL.
    control.fail_next(apisim::FailSpec::new(
        "*",
        "packagerepositories",
        503,
        100_000,
    ));
    control.close_watches();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while get(addr, "/readyz", None).await.0 != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never failed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(repos.is_stale());
    assert_eq!(
        get(addr, "/healthz", None).await.0,
        200,
        "alive, just not ready"
    );

    control.clear_faults();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while get(addr, "/readyz", None).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never recovered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cache_view_streams_every_change_without_coalescing() {
    use futures::StreamExt;
    let mut writer = Writer::<PackageRepository>::new();
    writer.apply_batch([
        Event::Init,
        Event::InitApply(repository("a", "p")),
        Event::InitDone,
    ]);
    let view = repocache::debug::CacheView::new(&writer.cache());
    let mut changes = view.changes();
    // Three publishes in a row, faster than any poll: each one is reported.
    for (rv, name) in [(8, "b"), (9, "a"), (10, "b")] {
        let mut obj = repository(name, "p");
        obj.metadata.resource_version = Some(rv.to_string());
        writer.apply(Event::Apply(obj));
    }
    let mut deleted = repository("a", "p");
    deleted.metadata.resource_version = Some("11".into());
    writer.apply(Event::Delete(deleted));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let change = tokio::time::timeout(PATIENCE, changes.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(format!(
            "{} {} {}",
            change.event, change.key, change.resource_version
        ));
    }
    assert_eq!(
        seen,
        ["added b 8", "updated a 9", "updated b 10", "deleted a 9"]
    );
}

/// `get`'s selected report (only the selected objects serialized and redacted) is what the full
/// report filtered by the selection was: the same objects, the same JSON, the same redaction,
/// the same order, for names, namespaces, label and field selectors, and no selection at all.
#[test]
fn a_selected_report_equals_the_full_report_filtered() {
    use glasskube_api::Package;
    use repocache::debug::CacheView;
    use repocache_cli::kinds::Kind;
    use repocache_cli::select::Selection;

    let mut packages = Writer::<Package>::new();
    packages.apply(Event::Init);
    for i in 0..40 {
        let package: Package = serde_json::from_value(serde_json::json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "Package",
            "metadata": {
                "name": format!("p{}", i % 10), "namespace": format!("ns{}", i / 10),
                "resourceVersion": "1",
                "labels": if i % 3 == 0 { serde_json::json!({"tier": "web"}) } else { serde_json::json!({"tier": format!("t{i}")}) }
            },
            "spec": {"packageInfo": {"name": "app", "version": "v1"}}
        }))
        .unwrap();
        packages.apply(Event::InitApply(package));
    }
    packages.apply(Event::InitDone);
    let mut repositories = Writer::<PackageRepository>::new();
    repositories.apply_batch([
        Event::Init,
        Event::InitApply(repository("a", PASSWORD)),
        Event::InitApply(repository("b", PASSWORD)),
        Event::InitDone,
    ]);
    let views = [
        (
            Kind::of::<Package>().unwrap(),
            CacheView::new(&packages.cache()),
        ),
        (
            Kind::of::<PackageRepository>().unwrap(),
            CacheView::new(&repositories.cache()),
        ),
    ];
    let redactor: repocache::debug::Redactor = std::sync::Arc::new(repocache_cli::redact);
    let selections = [
        Selection::default(),
        Selection::new(None, None, None, vec!["p3".into(), "a".into()]).unwrap(),
        Selection::new(Some("ns2".into()), None, None, vec![]).unwrap(),
        Selection::new(Some("ns1".into()), None, None, vec!["p4".into()]).unwrap(),
        Selection::new(None, Some("tier=web".into()), None, vec![]).unwrap(),
        Selection::new(None, Some("tier notin (web)".into()), None, vec![]).unwrap(),
        Selection::new(None, None, Some("metadata.namespace=ns3".into()), vec![]).unwrap(),
        Selection::new(None, None, Some("metadata.name!=b".into()), vec![]).unwrap(),
        Selection::new(None, None, None, vec!["nothing".into()]).unwrap(),
    ];
    let mut kept = 0;
    for selection in &selections {
        for (kind, view) in &views {
            for redact in [Some(&redactor), None] {
                let mut full = [view.report(true, redact)];
                selection.filter(&mut full);
                let selected =
                    view.report_where(&|meta| selection.matches_meta(*kind, meta), redact);
                // (The figures around them, e.g. the snapshot's age, move between two reports.)
                assert_eq!(
                    selected.objects, full[0].objects,
                    "{selection:?} of {kind:?}"
                );
                assert_eq!(selected.generation, full[0].generation);
                kept += selected.objects.unwrap().len();
            }
        }
    }
    // The selections do select (and redaction did apply: compared above with and without).
    assert!(kept > 0);
}
