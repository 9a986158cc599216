//! Warm start (issue #18): a cache persists its verified snapshot, and the next process serves
//! it unverified at once, becomes ready only after one LIST verified it, and hands subscribers
//! exactly what changed while it was away. Every test runs its own apisim on 127.0.0.1:0 and
//! its own temporary cache directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apisim::{FailSpec, ServerConfig, ServerHandle};
use futures::StreamExt;
use glasskube_api::PackageRepository;
use kube::Api;
use repocache::persist::{self, Persist, WARM_START, file, format};
use repocache::{Cache, CacheState, Change, ReadPolicy, ReflectorBuilder, ReflectorHandle};
use repocache_test_support::{PATIENCE, apisim, client_without_retry, eventually};
use repocache_tests::{repository, url_of};
use serde_json::json;

const REPOS: &str = "packagerepositories";

fn persist_to(dir: &Path) -> Persist {
    Persist::new(dir, "cluster-a")
        .user("tester")
        .rewrite_interval(Duration::ZERO)
}

fn start_with(
    server: &ServerHandle,
    persist: Persist,
) -> (Cache<PackageRepository>, ReflectorHandle) {
    ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(server)))
        .persist(persist)
        .start()
}

fn start(server: &ServerHandle, dir: &Path) -> (Cache<PackageRepository>, ReflectorHandle) {
    start_with(server, persist_to(dir))
}

/// The one warm-start file in `dir`.
fn snap_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
}

fn moved_aside(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".bad-"))
        .count()
}

/// A first run: syncs, stops (which writes the file), and returns the file's path.
async fn first_run(server: &ServerHandle, persist: Persist) -> PathBuf {
    let dir = persist.dir().to_owned();
    let (repos, handle) = start_with(server, persist);
    repos.wait_ready(PATIENCE).await.unwrap();
    handle.stop().await;
    snap_file(&dir).expect("the first run wrote its file")
}

fn names(cache: &Cache<PackageRepository>) -> Vec<String> {
    cache
        .list()
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn warm_answers_before_verification_and_is_ready_only_after_one_list() {
    let server = apisim().await;
    let dir = tempfile::tempdir().unwrap();
    first_run(&server, persist_to(dir.path())).await;
    let expected = {
        let mut names: Vec<String> = server
            .control()
            .list(REPOS)
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        // Those with inline credentials are withheld until verified.
        names.retain(|n| n != "inline-basic" && n != "team-bearer");
        names.sort();
        names
    };
    // Every LIST fails: the warm snapshot cannot be verified.
    server
        .control()
        .fail_next(FailSpec::new("list", REPOS, 500, 1_000_000));
    let (repos, _handle) = start(&server, dir.path());
    // At once, before the task ran: the persisted objects, unverified.
    assert_eq!(names(&repos), expected);
    assert!(repos.get("glasskube").is_some());
    match repos.state() {
        CacheState::Stale { reason, since } => {
            assert_eq!(reason, WARM_START);
            assert!(since.elapsed() < PATIENCE);
        }
        other => panic!("not a warm start: {other:?}"),
    }
    assert!(repos.state().is_warm_start());
    assert!(!repos.is_ready());
    // MaxStaleness within the file's age answers from the snapshot, without a request.
    let requests = server.control().requests().len();
    let read = repos
        .get_with(
            "glasskube",
            ReadPolicy::MaxStaleness(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert!(!read.is_live() && read.value.is_some());
    // Not ready while no LIST verified it, however long the caller waits.
    assert!(repos.wait_ready(Duration::from_millis(300)).await.is_err());
    assert!(!repos.is_ready());
    assert!(
        server.control().count("list", REPOS) >= 1,
        "it did try to list"
    );
    // A bound tighter than the file's age: one live read.
    let read = repos
        .get_with("glasskube", ReadPolicy::MaxStaleness(Duration::ZERO))
        .await
        .unwrap();
    assert!(read.is_live());
    assert!(server.control().requests().len() > requests);
    // AtLeast and Consistent never trust an unverified snapshot.
    let read = repos
        .get_with("glasskube", ReadPolicy::AtLeast(1))
        .await
        .unwrap();
    assert!(read.is_live());

    server.control().clear_faults();
    repos.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(repos.state(), CacheState::Ready);
    assert!(!repos.state().is_warm_start());
    assert!(repos.get("inline-basic").is_some(), "verified: all objects");
}

#[tokio::test]
async fn warm_to_verified_costs_one_list_and_one_watch() {
    let server = apisim().await;
    let dir = tempfile::tempdir().unwrap();
    first_run(&server, persist_to(dir.path())).await;
    server.control().reset_requests();
    let (repos, _handle) = start(&server, dir.path());
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(server.control().wait_for_watches(1, PATIENCE).await);
    let baseline = repocache_test_support::Baseline::take(&server.control());
    baseline.settle().await;
    assert_eq!(server.control().count("list", REPOS), 1);
    assert_eq!(server.control().count("watch", REPOS), 1);
    // And the request log holds nothing else for the kind.
    let other: Vec<_> = server
        .control()
        .requests()
        .into_iter()
        .filter(|r| r.resource == REPOS && r.verb != "list" && r.verb != "watch")
        .collect();
    assert!(other.is_empty(), "{other:?}");
}

#[tokio::test]
async fn subscribers_receive_exactly_what_changed_while_away() {
    let server = apisim().await;
    let control = server.control();
    let dir = tempfile::tempdir().unwrap();
    first_run(&server, persist_to(dir.path())).await;
    // While the process is away: one update, one delete, one create.
    let mut changed = control.get(REPOS, None, "glasskube").unwrap();
    changed["spec"]["url"] = json!("https://moved.example.com/packages");
    control.replace(changed).unwrap();
    control.delete(REPOS, None, "private-basic").unwrap();
    control
        .create(repository("brand-new", "https://new.example.com"))
        .unwrap();

    control.fail_next(FailSpec::new("list", REPOS, 500, 1_000_000));
    let (repos, _handle) = start(&server, dir.path());
    let unchanged = repos.get("team-bearer-ref").unwrap();
    assert!(
        repos.get("private-basic").is_some(),
        "deleted while away: still in the file"
    );
    let mut changes = repos.subscribe();
    // The warm state first, then the marker.
    let mut initial = 0;
    loop {
        match tokio::time::timeout(PATIENCE, changes.next())
            .await
            .unwrap()
            .unwrap()
        {
            Change::Added { .. } => initial += 1,
            Change::Synced { .. } => break,
            other => panic!("unexpected before the marker: {other:?}"),
        }
    }
    assert_eq!(initial, repos.list().len());
    control.clear_faults();
    repos.wait_ready(PATIENCE).await.unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(change)) =
        tokio::time::timeout(Duration::from_millis(500), changes.next()).await
    {
        let what = match &change {
            Change::Added { object, .. } => {
                format!("added {}", object.metadata.name.as_deref().unwrap())
            }
            Change::Updated { new, .. } => {
                format!("updated {}", new.metadata.name.as_deref().unwrap())
            }
            Change::Deleted { object, .. } => {
                format!("deleted {}", object.metadata.name.as_deref().unwrap())
            }
            other => format!("{other:?}"),
        };
        seen.push(what);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            // Withheld from the unverified snapshot (inline credentials): added on verify.
            "added brand-new",
            "added inline-basic",
            "added team-bearer",
            "deleted private-basic",
            "updated glasskube",
        ]
    );
    assert_eq!(
        url_of(&repos, "glasskube").unwrap(),
        "https://moved.example.com/packages"
    );
    assert!(
        repos.get("private-basic").is_none(),
        "deleted while away: gone"
    );
    // Unchanged objects keep their Arc.
    assert!(Arc::ptr_eq(
        &unchanged,
        &repos.get("team-bearer-ref").unwrap()
    ));
}

/// One seed object with an explicit uid.
fn seeded(name: &str, url: &str, uid: &str) -> ServerConfig {
    let mut obj = repository(name, url);
    obj["metadata"]["uid"] = json!(uid);
    ServerConfig::default().with_seed([obj])
}

#[tokio::test]
async fn a_server_replaced_with_lower_versions_between_runs_wins() {
    let dir = tempfile::tempdir().unwrap();
    // Run 1 against server A, whose versions grew high.
    let a = repocache_test_support::start(seeded("x", "https://a.example.com", "uid-a")).await;
    for i in 0..50 {
        let mut obj = a.control().get(REPOS, None, "x").unwrap();
        obj["spec"]["url"] = json!(format!("https://a{i}.example.com"));
        a.control().replace(obj).unwrap();
    }
    a.control()
        .create(repository("only-on-a", "https://a.example.com"))
        .unwrap();
    let high = a.control().resource_version();
    first_run(&a, persist_to(dir.path())).await;
    a.shutdown().await;

    // Server B (the same identity: a restored or recreated cluster) is at lower versions.
    let b = repocache_test_support::start(seeded("x", "https://b.example.com", "uid-b")).await;
    let low = b.control().resource_version();
    assert!(low < high);
    let (repos, _handle) = start(&b, dir.path());
    assert_eq!(url_of(&repos, "x").unwrap(), "https://a49.example.com");
    // Unverified: it proves no version.
    assert_eq!(repos.snapshot().resource_version(), None);
    assert_eq!(repos.version(), None);
    repos.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(names(&repos), ["x"]);
    assert_eq!(url_of(&repos, "x").unwrap(), "https://b.example.com");
    // The snapshot's version is B's, not A's higher one.
    let version: u64 = repos
        .snapshot()
        .resource_version()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        version <= low,
        "version {version} from the old server (B is at {low})"
    );
    assert!(repos.version().unwrap() <= low);
}

#[tokio::test]
async fn a_reused_resource_version_with_another_uid_is_not_reused() {
    // Both servers seed one object at the same resourceVersion, with other content and uid.
    let dir = tempfile::tempdir().unwrap();
    let a = repocache_test_support::start(seeded("x", "https://a.example.com", "uid-a")).await;
    first_run(&a, persist_to(dir.path())).await;
    let rv_a = a.control().get(REPOS, None, "x").unwrap()["metadata"]["resourceVersion"].clone();
    a.shutdown().await;
    let b = repocache_test_support::start(seeded("x", "https://b.example.com", "uid-b")).await;
    let rv_b = b.control().get(REPOS, None, "x").unwrap()["metadata"]["resourceVersion"].clone();
    assert_eq!(rv_a, rv_b, "the test needs equal versions");
    let (repos, _handle) = start(&b, dir.path());
    assert_eq!(url_of(&repos, "x").unwrap(), "https://a.example.com");
    repos.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(url_of(&repos, "x").unwrap(), "https://b.example.com");
}

/// Captures what the tracing macros log while `f` runs (on this thread).
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[tokio::test]
async fn bad_files_of_every_kind_are_one_warning_moved_aside_and_absent() {
    let server = apisim().await;
    let scratch = tempfile::tempdir().unwrap();
    // A good file, and files written for another kind and for another server.
    let good = std::fs::read(first_run(&server, persist_to(scratch.path())).await).unwrap();
    let other_server = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::read(
            first_run(
                &server,
                Persist::new(dir.path(), "cluster-b").user("tester"),
            )
            .await,
        )
        .unwrap()
    };
    let other_kind = {
        let dir = tempfile::tempdir().unwrap();
        let (packages, handle) = ReflectorBuilder::new(Api::<glasskube_api::ClusterPackage>::all(
            client_without_retry(&server),
        ))
        .persist(persist_to(dir.path()))
        .start();
        packages.wait_ready(PATIENCE).await.unwrap();
        handle.stop().await;
        std::fs::read(snap_file(dir.path()).unwrap()).unwrap()
    };
    let mut wrong_version = good.clone();
    wrong_version[8] = 9;
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() - 7].to_vec()),
        ("header only", good[..40].to_vec()),
        ("bit-flipped", flipped),
        ("wrong version", wrong_version),
        ("wrong kind", other_kind),
        ("foreign", other_server),
        (
            "garbage",
            b"{\"this\": \"is not a warm-start file\"}".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join(snap_file(scratch.path()).unwrap().file_name().unwrap());
        std::fs::write(&path, &bytes).unwrap();
        let ((repos, handle), log) = logged(|| start(&server, dir.path()));
        assert_eq!(
            log.matches("warm-start file ignored").count(),
            1,
            "{what}: one warning: {log}"
        );
        assert!(log.contains("WARN"), "{what}: {log}");
        assert_eq!(repos.state(), CacheState::Starting, "{what}: cold");
        assert!(repos.list().is_empty(), "{what}: nothing served");
        assert_eq!(moved_aside(dir.path()), 1, "{what}: moved aside");
        assert!(!path.exists(), "{what}: not read again");
        repos.wait_ready(PATIENCE).await.unwrap();
        handle.stop().await;
        // Rewritten whole after the verification.
        let (header, _) = format::decode(&std::fs::read(&path).unwrap())
            .map(|(h, r)| (h, r.len()))
            .unwrap_or_else(|e| panic!("{what}: not rewritten: {e}"));
        assert_eq!(header.kind, "PackageRepository");
    }
}

#[tokio::test]
async fn files_are_private_and_the_name_hides_the_identity() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let server = apisim().await;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("cache");
        // A directory that exists too open is tightened.
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = first_run(&server, persist_to(&dir).user("alice@example.com")).await;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("packagerepository-"), "{name}");
        assert!(
            !name.contains("alice") && !name.contains("cluster-a"),
            "{name}"
        );
        // A new directory is created 0700.
        let fresh = parent.path().join("a/b");
        first_run(&server, persist_to(&fresh)).await;
        assert_eq!(mode(&fresh), 0o700);
    }
}

const SECRETS: [&str; 3] = [
    "s3cr3t-inline-password",
    "inline-bearer-token-0123456789",
    "deploy",
];

#[tokio::test]
async fn inline_credentials_stay_out_of_the_file_unless_opted_in() {
    let server = apisim().await;
    let control = server.control();
    // A credential in a URL's userinfo too.
    control
        .create(repository(
            "userinfo",
            "https://bob:hunter2@charts.example.com/x",
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = first_run(&server, persist_to(dir.path())).await;
    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    for secret in SECRETS.iter().chain(&["hunter2", "bob:"]) {
        assert!(!text.contains(secret), "{secret} written to the file");
    }
    // The objects are there, without them, and not served unverified.
    assert!(text.contains("inline-basic") && text.contains("team-bearer"));
    control.fail_next(FailSpec::new("list", REPOS, 500, 1_000_000));
    let (repos, _handle) = start(&server, dir.path());
    for name in ["inline-basic", "team-bearer", "userinfo"] {
        assert!(repos.get(name).is_none(), "{name} served unverified");
    }
    assert!(repos.get("glasskube").is_some());
    control.clear_faults();
    repos.wait_ready(PATIENCE).await.unwrap();
    let basic = repos.get("inline-basic").unwrap();
    let auth = basic.spec.auth.as_ref().unwrap().basic.as_ref().unwrap();
    assert_eq!(
        auth.password.as_deref(),
        Some(SECRETS[0]),
        "verified: whole again"
    );

    // The opt-in keeps them, and serves them warm.
    let dir = tempfile::tempdir().unwrap();
    let keep = || persist_to(dir.path()).keep_credentials(true);
    let path = first_run(&server, keep()).await;
    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    for secret in SECRETS.iter().chain(&["hunter2"]) {
        assert!(text.contains(secret), "{secret} not kept with the opt-in");
    }
    control.fail_next(FailSpec::new("list", REPOS, 500, 1_000_000));
    let (repos, _handle) = start_with(&server, keep());
    assert!(repos.get("inline-basic").is_some());
    control.clear_faults();
}

#[test]
fn concurrent_writers_end_with_one_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let name = "x.snap";
    let header = |who: &str| format::Header {
        kind: who.to_owned(),
        api_version: "v1".into(),
        server: "s".into(),
        key: "k".into(),
        resource_version: None,
        written_at_ms: 0,
        objects: 0,
        credentials: false,
    };
    let body = |fill: u8| {
        (0..200)
            .map(|_| format::Record {
                flags: 0,
                json: vec![fill; 2000],
            })
            .collect::<Vec<_>>()
    };
    let a = format::encode(&header("A"), &body(b'a'));
    let b = format::encode(&header("B"), &body(b'b'));
    let path = dir.path().join(name);
    std::thread::scope(|s| {
        for bytes in [&a, &b] {
            let dir = dir.path();
            s.spawn(move || {
                for _ in 0..40 {
                    file::write_atomic(dir, name, bytes).unwrap();
                }
            });
        }
        // A reader never sees a partial file.
        s.spawn(|| {
            for _ in 0..400 {
                if let Some(bytes) = file::read(&path).unwrap() {
                    assert!(bytes == a || bytes == b, "a mixed or partial file");
                }
            }
        });
    });
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes == a || bytes == b);
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn two_caches_sharing_a_file_leave_one_whole_file() {
    let server = apisim().await;
    let dir = tempfile::tempdir().unwrap();
    let (one, h1) = start(&server, dir.path());
    let (two, h2) = start(&server, dir.path());
    one.wait_ready(PATIENCE).await.unwrap();
    two.wait_ready(PATIENCE).await.unwrap();
    for i in 0..20 {
        server
            .control()
            .create(repository(&format!("churn-{i}"), "https://c.example.com"))
            .unwrap();
    }
    eventually("both caches see the churn", || {
        one.list().len() == two.list().len()
            && one.get("churn-19").is_some()
            && two.get("churn-19").is_some()
    })
    .await;
    tokio::join!(h1.stop(), h2.stop());
    let path = snap_file(dir.path()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (header, records) = format::decode(&bytes).unwrap();
    assert_eq!(records.len(), one.list().len());
    assert_eq!(header.kind, "PackageRepository");
    let (again, _h) = start(&server, dir.path());
    assert!(again.get("churn-19").is_some(), "the warm start reads it");
}

/// The environment variable that makes `crash_child` a writer that never stops.
const CHILD: &str = "REPOCACHE_WARM_CRASH_CHILD";

/// Not a test on its own: with [`CHILD`] set (by `killed_mid_write_leaves_the_old_file`), it
/// writes big files into that directory until it is killed.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let files: Vec<Vec<u8>> = [b'a', b'b']
        .iter()
        .map(|&fill| {
            let records: Vec<_> = (0..400)
                .map(|_| format::Record {
                    flags: 0,
                    json: vec![fill; 64 * 1024],
                })
                .collect();
            format::encode(&crash_header(), &records)
        })
        .collect();
    for i in 0.. {
        file::write_atomic(&dir, "crash.snap", &files[i % 2]).unwrap();
        std::fs::write(dir.join("progress"), i.to_string()).unwrap();
    }
}

fn crash_header() -> format::Header {
    format::Header {
        kind: "Crash".into(),
        api_version: "v1".into(),
        server: "s".into(),
        key: "k".into(),
        resource_version: None,
        written_at_ms: 0,
        objects: 0,
        credentials: false,
    }
}

#[test]
fn killed_mid_write_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["warm::crash_child", "--exact", "--test-threads=1"])
            .env(CHILD, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it complete a few writes, then kill it (SIGKILL) while it is most likely
        // inside the next one (each write is ~26 MB and an fsync).
        let progress = dir.path().join("progress");
        let deadline = std::time::Instant::now() + PATIENCE;
        let target = 2;
        loop {
            let done: u64 = std::fs::read_to_string(&progress)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if done >= target || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = std::fs::remove_file(&progress);
        let bytes = std::fs::read(dir.path().join("crash.snap")).unwrap();
        let (header, records) = format::decode(&bytes)
            .unwrap_or_else(|e| panic!("round {round}: a torn file after kill -9: {e}"));
        assert_eq!(
            header,
            format::Header {
                objects: 400,
                ..crash_header()
            }
        );
        assert_eq!(records.len(), 400);
    }
}

#[test]
fn the_persist_options_hide_the_user() {
    let persist = Persist::new("/tmp/x", "https://10.0.0.1:6443").user("alice@example.com");
    let shown = format!("{persist:?}");
    assert!(!shown.contains("alice"), "{shown}");
    assert_eq!(persist::DEFAULT_REWRITE_INTERVAL, Duration::from_secs(30));
}

#[tokio::test]
async fn the_file_is_rewritten_while_running_and_when_the_handle_is_dropped() {
    let server = apisim().await;
    let dir = tempfile::tempdir().unwrap();
    let (repos, handle) = start(&server, dir.path());
    repos.wait_ready(PATIENCE).await.unwrap();
    let objects = |dir: &Path| {
        let bytes = snap_file(dir).and_then(|p| std::fs::read(p).ok());
        bytes.and_then(|b| format::decode(&b).ok().map(|(h, _)| h.objects))
    };
    // Verified: written without waiting for a stop.
    eventually("the verified snapshot is written", || {
        objects(dir.path()) == Some(repos.list().len() as u64)
    })
    .await;
    server
        .control()
        .create(repository("while-running", "https://r.example.com"))
        .unwrap();
    eventually("a change is written within the rewrite interval", || {
        objects(dir.path()) == Some(repos.list().len() as u64)
            && repos.get("while-running").is_some()
    })
    .await;
    // Changed, then the handle dropped (the task aborted): written as the task ends.
    let created = {
        let n = repos.list().len();
        server
            .control()
            .create(repository("at-drop", "https://d.example.com"))
            .unwrap();
        eventually("seen", || repos.get("at-drop").is_some()).await;
        n + 1
    };
    drop(handle);
    eventually("written at the end", || {
        objects(dir.path()) == Some(created as u64)
    })
    .await;
}

/// Rewrites the header of the file at `path` as if it had been written `age` ago.
fn age_file(path: &Path, age: Duration) {
    let bytes = std::fs::read(path).unwrap();
    let (mut header, records) = format::decode(&bytes).unwrap();
    header.written_at_ms -= u64::try_from(age.as_millis()).unwrap();
    let records: Vec<_> = records
        .into_iter()
        .map(|(flags, json)| format::Record {
            flags,
            json: json.to_vec(),
        })
        .collect();
    std::fs::write(path, format::encode(&header, &records)).unwrap();
}

#[tokio::test]
async fn an_old_file_says_its_age_and_its_ttl_forces_no_second_list() {
    let server = apisim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = first_run(&server, persist_to(dir.path())).await;
    let hour = Duration::from_secs(3600);
    age_file(&path, hour);
    server.control().reset_requests();
    server
        .control()
        .fail_next(FailSpec::new("list", REPOS, 500, 1));
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client_without_retry(&server)))
            .persist(persist_to(dir.path()))
            .ttl(Duration::from_secs(600))
            .start();
    let age = repos.snapshot().since_confirmed();
    assert!(age >= hour && age < hour + PATIENCE, "{age:?}");
    assert!(repos.state().degraded_for().unwrap() >= hour);
    let fresh_enough = repos
        .get_with("glasskube", ReadPolicy::MaxStaleness(2 * hour))
        .await
        .unwrap();
    assert!(!fresh_enough.is_live());
    let too_old = repos
        .get_with("glasskube", ReadPolicy::MaxStaleness(hour / 2))
        .await
        .unwrap();
    assert!(too_old.is_live());
    repos.wait_ready(PATIENCE).await.unwrap();
    assert!(server.control().wait_for_watches(1, PATIENCE).await);
    repocache_test_support::Baseline::take(&server.control())
        .settle()
        .await;
    // The failed LIST and the one that verified: the hour-old confirmation forced no other.
    assert_eq!(server.control().count("list", REPOS), 2);
    assert!(repos.snapshot().since_confirmed() < hour);
}

/// A server with 2,500 repositories: enough for a warm start to decode on several threads.
async fn bulk_server() -> ServerHandle {
    let seeds: Vec<_> = (0..2500)
        .map(|i| repository(&format!("bulk-{i:05}"), "https://bulk.example.com"))
        .collect();
    repocache_test_support::start(ServerConfig::default().with_seed(seeds)).await
}

#[tokio::test]
async fn a_large_file_is_decoded_whole_on_several_threads() {
    // Enough objects for the decode to run on several threads.
    let server = bulk_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (cold, handle) = start(&server, dir.path());
    cold.wait_ready(PATIENCE).await.unwrap();
    let want = names(&cold);
    handle.stop().await;
    assert_eq!(want.len(), 2500);
    server
        .control()
        .fail_next(FailSpec::new("list", REPOS, 500, 1_000_000));
    let (warm, _handle) = start(&server, dir.path());
    assert!(warm.state().is_warm_start());
    assert_eq!(names(&warm), want);
    assert!(warm.get("bulk-01234").is_some());
}

#[tokio::test]
async fn an_object_that_does_not_decode_in_a_large_file_is_one_warning_and_a_cold_start() {
    // A whole file (good checksum, this cache's key) of enough objects for several decoding
    // threads, one of which no longer decodes as the kind (its schema changed): the load fails
    // as a whole, whichever thread meets the object, and the other threads stop.
    let server = bulk_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = first_run(&server, persist_to(dir.path())).await;
    let bytes = std::fs::read(&path).unwrap();
    let (header, records) = format::decode(&bytes).unwrap();
    let mut records: Vec<format::Record> = records
        .into_iter()
        .map(|(flags, json)| format::Record {
            flags,
            json: json.to_vec(),
        })
        .collect();
    records[2100].json = br#"{"apiVersion":"packages.glasskube.dev/v1alpha1","kind":"PackageRepository","metadata":{"name":7}}"#.to_vec();
    std::fs::write(&path, format::encode(&header, &records)).unwrap();
    let ((repos, handle), log) = logged(|| start(&server, dir.path()));
    assert_eq!(log.matches("warm-start file ignored").count(), 1, "{log}");
    assert!(log.contains("object 2100"), "the object's position: {log}");
    assert_eq!(repos.state(), CacheState::Starting, "cold");
    assert!(repos.list().is_empty(), "nothing served");
    assert_eq!(moved_aside(dir.path()), 1);
    repos.wait_ready(PATIENCE).await.unwrap();
    assert_eq!(repos.list().len(), 2500);
    handle.stop().await;
}
