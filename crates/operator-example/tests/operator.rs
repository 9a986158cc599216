//! The example operator against apisim: 50 packages over the five fixture repositories reconcile
//! to the right condition; periodic reconciles read nothing from the API server; a repository
//! change requeues exactly the packages that use it (and the default repository's change, the
//! packages that name none); several default repositories are reported; `run` stops cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use apisim::{Control, Server, ServerConfig, ServerHandle};
use glasskube_api::{ClusterPackage, HasConditions, Package};
use glasskube_operator_example::{
    CONDITION_TYPE, Config, Context, Operator, PackageKind, PackageRef, demo, reason,
};
use serde_json::json;

/// How long a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(15);
/// Fixtures' three packages plus these make 50.
const GENERATED: usize = 47;

async fn apisim() -> ServerHandle {
    let config = ServerConfig::default()
        .with_seed_yaml(apisim::seed::REPOSITORIES_YAML)
        .and_then(|c| c.with_seed_yaml(apisim::seed::PACKAGES_YAML))
        .unwrap()
        .with_seed(demo::generated_packages(GENERATED));
    Server::start(config).await.unwrap()
}

/// Logs only when `RUST_LOG` is set (faults injected on purpose would otherwise print ERRORs).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Polls `condition` every few milliseconds until it holds; panics after [`PATIENCE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One package as apisim has it now.
#[derive(Debug, Clone)]
struct Seen {
    /// `spec.packageInfo.repositoryName`, `None` when absent or empty.
    repository: Option<String>,
}

/// Every Package and ClusterPackage, read through apisim's control (not over HTTP: not counted).
fn packages(control: &Control) -> BTreeMap<PackageRef, Seen> {
    let mut all = BTreeMap::new();
    for value in control.list("packages").unwrap() {
        let p: Package = serde_json::from_value(value).unwrap();
        let key = PackageRef::package(
            p.metadata.namespace.as_deref().unwrap(),
            p.metadata.name.as_deref().unwrap(),
        );
        all.insert(
            key,
            Seen {
                repository: p.repository_name().map(str::to_owned),
            },
        );
    }
    for value in control.list("clusterpackages").unwrap() {
        let p: ClusterPackage = serde_json::from_value(value).unwrap();
        let key = PackageRef::cluster_package(p.metadata.name.as_deref().unwrap());
        all.insert(
            key,
            Seen {
                repository: p.repository_name().map(str::to_owned),
            },
        );
    }
    all
}

/// One package's condition, fetched with `control.get`.
fn condition_of(control: &Control, package: &PackageRef) -> Option<(String, String, String)> {
    let resource = match package.kind {
        PackageKind::Package => "packages",
        PackageKind::ClusterPackage => "clusterpackages",
    };
    let value = control
        .get(resource, package.namespace.as_deref(), &package.name)
        .unwrap();
    let p: Package = serde_json::from_value(value).unwrap();
    p.condition(CONDITION_TYPE)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn url_of(control: &Control, repository: &str) -> String {
    let repo = control
        .get("packagerepositories", None, repository)
        .unwrap();
    repo["spec"]["url"].as_str().unwrap().to_owned()
}

/// The condition a package using `repository` (`None`: the default, `glasskube`) must carry with
/// the fixture repositories: (status, reason, text the message contains).
fn expected(control: &Control, repository: Option<&str>) -> (&'static str, &'static str, String) {
    let name = repository.unwrap_or("glasskube");
    let which = if repository.is_some() {
        "repository"
    } else {
        "default repository"
    };
    let (status, reason) = match name {
        "glasskube" | "private-basic" => ("True", reason::READY),
        "inline-basic" | "team-bearer" | "team-bearer-ref" => ("False", reason::NOT_READY),
        other => panic!("unexpected repository {other}"),
    };
    (
        status,
        reason,
        format!("{which} {name} ({})", url_of(control, name)),
    )
}

/// Whether every package carries the expected condition (each checked with `control.get`).
fn all_as_expected(control: &Control) -> bool {
    packages(control).iter().all(|(key, seen)| {
        let (status, reason, text) = expected(control, seen.repository.as_deref());
        condition_of(control, key)
            .is_some_and(|(s, r, m)| s == status && r == reason && m.starts_with(&text))
    })
}

/// Whether every one of `packages` has been reconciled, is not being reconciled, and its last
/// reconcile wrote nothing: each write's watch event has come back and been reconciled.
fn quiescent(ctx: &Context, packages: &BTreeSet<PackageRef>) -> bool {
    let records = ctx.records();
    packages
        .iter()
        .all(|p| records.get(p).is_some_and(|r| r.is_settled()))
}

async fn start(server: &ServerHandle, config: Config) -> (Operator, BTreeSet<PackageRef>) {
    let control = server.control();
    let operator = Operator::start(server.client(), config.ready_timeout(PATIENCE))
        .await
        .unwrap();
    let all: BTreeSet<PackageRef> = packages(&control).into_keys().collect();
    assert_eq!(all.len(), 50);
    let ctx = operator.context().clone();
    eventually("every package has its condition", || {
        all_as_expected(&control)
    })
    .await;
    eventually("every reconcile is settled", || quiescent(&ctx, &all)).await;
    (operator, all)
}

fn show_counts(what: &str, control: &Control) -> BTreeMap<(String, String), u64> {
    let counts = control.counts();
    println!("apisim requests ({what}):");
    if counts.is_empty() {
        println!("  (none)");
    }
    for ((verb, resource), n) in &counts {
        println!("  {verb:<10} {resource:<28} {n}");
    }
    counts
}

#[tokio::test]
async fn periodic_reconciles_read_only_the_caches() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let every = Duration::from_millis(150);
    let (operator, all) = start(&server, Config::default().requeue(Some(every))).await;
    let ctx = operator.context().clone();

    let startup = show_counts("start-up: caches synced, 50 conditions written", &control);
    for resource in ["packagerepositories", "packages", "clusterpackages"] {
        assert_eq!(control.count("list", resource), 1, "one LIST of {resource}");
        assert_eq!(
            control.count("watch", resource),
            1,
            "one WATCH of {resource}"
        );
        assert_eq!(control.count("get", resource), 0, "no GET of {resource}");
    }
    let patches: u64 = startup
        .iter()
        .filter(|((verb, _), _)| verb == "patch")
        .map(|(_, n)| n)
        .sum();
    assert!(
        patches >= 50,
        "every package's condition was written once at least"
    );

    control.reset_requests();
    let before = ctx.reconcile_counts();
    assert_eq!(before.len(), 50);
    let started = tokio::time::Instant::now();
    eventually("three more reconciles of every package", || {
        let now = ctx.reconcile_counts();
        all.iter()
            .all(|p| now.get(p).copied().unwrap_or(0) >= before[p] + 3)
    })
    .await;
    let elapsed = started.elapsed();
    let after = ctx.reconcile_counts();
    let reconciles: u64 = all.iter().map(|p| after[p] - before[p]).sum();
    let counts = show_counts(
        &format!(
            "{reconciles} reconciles of 50 packages in {elapsed:.2?}, requeue every {every:?}"
        ),
        &control,
    );
    for resource in [
        "packagerepositories",
        "packages",
        "clusterpackages",
        "packagerepositories/status",
        "packages/status",
        "clusterpackages/status",
    ] {
        for verb in ["get", "list"] {
            assert_eq!(
                control.count(verb, resource),
                0,
                "{verb} {resource} while reconciling"
            );
        }
    }
    let writes: u64 = counts
        .iter()
        .filter(|((verb, _), _)| verb != "watch")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(writes, 0, "conditions already current: no request at all");
    assert!(all.iter().all(|p| after[p] >= before[p] + 3));
    operator.shutdown().await;
}

/// Changes `repository`'s URL and checks that exactly `users` are requeued and rewritten.
async fn move_repository(
    control: &Control,
    ctx: &Context,
    all: &BTreeSet<PackageRef>,
    repository: &str,
    users: &BTreeSet<PackageRef>,
    new_url: &str,
) {
    let before = ctx.reconcile_counts();
    let seen_emissions = ctx.mapper_emissions().len();
    control
        .merge_patch(
            "packagerepositories",
            None,
            repository,
            &json!({"spec": {"url": new_url}}),
        )
        .unwrap();
    eventually(&format!("the users of {repository} show {new_url}"), || {
        users
            .iter()
            .all(|p| condition_of(control, p).is_some_and(|(_, _, m)| m.contains(new_url)))
    })
    .await;
    eventually("both mappers ran and every reconcile is settled", || {
        let kinds: BTreeSet<PackageKind> = ctx.mapper_emissions()[seen_emissions..]
            .iter()
            .map(|e| e.controller)
            .collect();
        kinds.len() == 2
            && users.iter().all(|p| ctx.reconcile_counts()[p] > before[p])
            && quiescent(ctx, all)
    })
    .await;

    let emissions = ctx.mapper_emissions()[seen_emissions..].to_vec();
    assert_eq!(
        emissions.len(),
        2,
        "one mapper call per controller: {emissions:?}"
    );
    let mut requeued = BTreeSet::new();
    for emission in &emissions {
        assert_eq!(emission.repository, repository);
        requeued.extend(emission.requeued.iter().cloned());
        assert!(
            emission
                .requeued
                .iter()
                .all(|p| p.kind == emission.controller)
        );
    }
    assert_eq!(
        &requeued, users,
        "the mapper requeued exactly the users of {repository}"
    );

    let after = ctx.reconcile_counts();
    for p in all {
        if users.contains(p) {
            assert!(after[p] > before[p], "{p} was reconciled");
        } else {
            assert_eq!(
                after[p], before[p],
                "{p} does not use {repository}: not reconciled"
            );
        }
    }
    println!(
        "{repository} moved to {new_url}: mapper requeued {} packages ({} reconciles), the other {} untouched",
        requeued.len(),
        users.iter().map(|p| after[p] - before[p]).sum::<u64>(),
        all.len() - users.len()
    );
}

#[tokio::test]
async fn a_repository_change_requeues_exactly_its_packages() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let (operator, all) = start(&server, Config::default()).await;
    let ctx = operator.context().clone();
    let seen = packages(&control);

    let users: BTreeSet<PackageRef> = seen
        .iter()
        .filter(|(_, s)| s.repository.as_deref() == Some("private-basic"))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(users.len() >= 5 && users.iter().any(|p| p.kind == PackageKind::ClusterPackage));
    move_repository(
        &control,
        &ctx,
        &all,
        "private-basic",
        &users,
        "https://moved.example.com/",
    )
    .await;
    for p in &users {
        let (status, reason, message) = condition_of(&control, p).unwrap();
        assert_eq!((status.as_str(), reason.as_str()), ("True", reason::READY));
        assert_eq!(
            message,
            "repository private-basic (https://moved.example.com/) is ready"
        );
    }

    // The default repository: the packages that name it, and those that name none.
    let users: BTreeSet<PackageRef> = seen
        .iter()
        .filter(|(_, s)| matches!(s.repository.as_deref(), None | Some("glasskube")))
        .map(|(k, _)| k.clone())
        .collect();
    let unnamed = seen.values().filter(|s| s.repository.is_none()).count();
    assert!(unnamed >= 5 && users.len() > unnamed);
    move_repository(
        &control,
        &ctx,
        &all,
        "glasskube",
        &users,
        "https://default.example.com/",
    )
    .await;
    for (p, s) in seen.iter().filter(|(p, _)| users.contains(p)) {
        let (_, _, message) = condition_of(&control, p).unwrap();
        let which = if s.repository.is_some() {
            "repository"
        } else {
            "default repository"
        };
        assert_eq!(
            message,
            format!("{which} glasskube (https://default.example.com/) is ready")
        );
    }
    assert!(all_as_expected(&control));
    operator.shutdown().await;
}

#[tokio::test]
async fn several_default_repositories_are_reported() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let (operator, all) = start(&server, Config::default()).await;
    let ctx = operator.context().clone();
    let seen = packages(&control);
    let unnamed: BTreeSet<PackageRef> = seen
        .iter()
        .filter(|(_, s)| s.repository.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    let reason_of = |p: &PackageRef| condition_of(&control, p).map(|(_, r, _)| r);
    let set_default = |name: &str, default: bool| {
        let value = if default { json!("true") } else { json!(null) };
        control
            .merge_patch(
                "packagerepositories",
                None,
                name,
                &json!({"metadata": {"annotations": {glasskube_api::DEFAULT_REPOSITORY_ANNOTATION: value}}}),
            )
            .unwrap();
    };

    // A second default: the packages that name no repository cannot tell which one to use.
    set_default("inline-basic", true);
    eventually("unnamed packages report several defaults", || {
        unnamed
            .iter()
            .all(|p| reason_of(p).as_deref() == Some(reason::SEVERAL_DEFAULTS))
    })
    .await;
    for p in &unnamed {
        let (status, _, message) = condition_of(&control, p).unwrap();
        assert_eq!(status, "False");
        assert_eq!(
            message,
            "several repositories are marked default: glasskube, inline-basic"
        );
    }
    eventually("settled", || quiescent(&ctx, &all)).await;
    for (p, s) in seen.iter().filter(|(_, s)| s.repository.is_some()) {
        let (status, reason, _) = expected(&control, s.repository.as_deref());
        let (s2, r2, _) = condition_of(&control, p).unwrap();
        assert_eq!(
            (s2.as_str(), r2.as_str()),
            (status, reason),
            "{p} names its repository"
        );
    }

    // inline-basic is no longer default: the mapper remembers it was, and requeues the
    // unnamed packages, which go back to glasskube.
    set_default("inline-basic", false);
    eventually("unnamed packages use glasskube again", || {
        unnamed.iter().all(|p| {
            condition_of(&control, p).is_some_and(|(s, r, m)| {
                s == "True" && r == reason::READY && m.starts_with("default repository glasskube (")
            })
        })
    })
    .await;

    // No default at all.
    set_default("glasskube", false);
    eventually("unnamed packages report no default", || {
        unnamed
            .iter()
            .all(|p| reason_of(p).as_deref() == Some(reason::NO_DEFAULT))
    })
    .await;

    // A repository that disappears.
    let orphans: BTreeSet<PackageRef> = seen
        .iter()
        .filter(|(_, s)| s.repository.as_deref() == Some("team-bearer-ref"))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(!orphans.is_empty());
    control
        .delete("packagerepositories", None, "team-bearer-ref")
        .unwrap();
    eventually("users of a deleted repository report it missing", || {
        orphans.iter().all(|p| {
            condition_of(&control, p).is_some_and(|(s, r, m)| {
                s == "False"
                    && r == reason::NOT_FOUND
                    && m == "repository team-bearer-ref not found"
            })
        })
    })
    .await;
    eventually("settled", || quiescent(&ctx, &all)).await;
    assert_eq!(control.count("get", "packagerepositories"), 0);
    assert_eq!(control.count("list", "packagerepositories"), 1);
    operator.shutdown().await;
}

#[tokio::test]
async fn run_returns_when_shutdown_resolves() {
    init_tracing();
    let server = apisim().await;
    let control = server.control();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(glasskube_operator_example::run(
        server.client(),
        Config::default().ready_timeout(PATIENCE),
        async {
            let _ = stopped.await;
        },
    ));
    eventually("every package has its condition", || {
        all_as_expected(&control)
    })
    .await;
    assert_eq!(control.open_watches(), 3, "one watch per kind");
    stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("run returns after shutdown")
        .unwrap()
        .unwrap();
    eventually("the caches' watches are closed", || {
        control.open_watches() == 0
    })
    .await;
}

#[tokio::test]
async fn start_fails_when_the_caches_cannot_sync() {
    // A client for a port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let config = Config::default().ready_timeout(Duration::from_millis(300));
    let error = Operator::start(client, config).await.unwrap_err();
    assert!(
        matches!(error, glasskube_operator_example::Error::NotReady(_)),
        "{error}"
    );
}
