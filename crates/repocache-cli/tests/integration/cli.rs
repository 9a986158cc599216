//! The `repocache` binary against apisim: dump, verify, watch and the errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use glasskube_api::PackageRepository;
use kube::Api;
use repocache::ReflectorBuilder;
use repocache::debug::DebugServer;
use repocache_test_support::PATIENCE;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::run::{BIN, Run, assert_one_error_line, repocache, repocache_env};
const PASSWORD: &str = "s3cr3t-inline-password";
const TOKEN: &str = "inline-bearer-token-0123456789";

struct Cluster {
    server: apisim::ServerHandle,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn cluster() -> Cluster {
    let server = repocache_test_support::apisim().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    Cluster {
        server,
        _dir: dir,
        kubeconfig,
    }
}

fn items(json_text: &str) -> Vec<Value> {
    let list: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(list["kind"], "List");
    list["items"].as_array().unwrap().clone()
}

/// A table's lines without the `#` cache lines, whitespace-normalized, with each row's AGE
/// cell (which ticks: two dumps a moment apart can straddle a second) replaced by `<AGE>`.
///
/// The AGE cell is found at the column where its header's `AGE` cell starts (the columns before
/// it are laid out alike in both tables, or the rows differ anyway), not by position from the
/// end: in `-o wide` more columns follow it, and some cells hold spaces. Each masked cell must
/// still read as an age (`45s`, `12m`, `3h`, `6d`).
fn rows_without_age(table: &str) -> Vec<String> {
    fn normalized(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    let mut age_at: Option<usize> = None;
    let mut column_header_next = false;
    let mut rows = Vec::new();
    for line in table.lines() {
        if line.starts_with('#') {
            column_header_next = true;
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        if column_header_next {
            column_header_next = false;
            // Cells start at 0 and after a space; `PACKAGE` must not match.
            age_at = (0..chars.len()).find(|&i| {
                (i == 0 || chars[i - 1] == ' ')
                    && chars[i..].starts_with(&['A', 'G', 'E'])
                    && chars.get(i + 3).is_none_or(|c| *c == ' ')
            });
            assert!(age_at.is_some(), "no AGE column in {line:?}");
            rows.push(normalized(line));
            continue;
        }
        match age_at {
            Some(at) if chars.len() > at && (at == 0 || chars[at - 1] == ' ') => {
                let head: String = chars[..at].iter().collect();
                let tail: String = chars[at..].iter().collect();
                let (age, rest) = tail.split_once(' ').unwrap_or((tail.as_str(), ""));
                let (digits, unit) = age.split_at(age.len().saturating_sub(1));
                assert!(
                    !digits.is_empty()
                        && digits.bytes().all(|b| b.is_ascii_digit())
                        && ["s", "m", "h", "d"].contains(&unit),
                    "AGE cell {age:?} in {line:?}"
                );
                rows.push(format!("{} <AGE> {}", normalized(&head), normalized(rest)));
            }
            // A row too short to reach the AGE column (an undecodable object), or a blank line.
            _ => rows.push(normalized(line)),
        }
    }
    rows
}

#[tokio::test]
async fn dump_prints_every_format_and_redacts_unless_asked() {
    let c = cluster().await;
    let kc = c.kubeconfig.to_str().unwrap();
    for output in ["table", "wide", "json", "yaml"] {
        let run = repocache(&["dump", "--kubeconfig", kc, "-o", output]).await;
        assert_eq!(run.code, 0, "{output}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{output}: {}", run.stderr);
        assert!(!run.stdout.contains(PASSWORD), "{output}: {}", run.stdout);
        assert!(!run.stdout.contains(TOKEN), "{output}: {}", run.stdout);
        assert!(
            !run.stdout.contains("deploy"),
            "usernames too: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("team-bearer-ref"),
            "{output}: {}",
            run.stdout
        );
    }
    let table = repocache(&["dump", "--kubeconfig", kc]).await.stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("# PackageRepository cache: ready, resourceVersion "),
        "{table}"
    );
    assert!(
        lines[0].contains("5 objects") && lines[0].contains("relists 1"),
        "{table}"
    );
    assert!(
        lines[1]
            .split_whitespace()
            .eq(["NAME", "URL", "DEFAULT", "AUTH", "READY", "AGE"])
    );
    let glasskube: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        &glasskube[..5],
        [
            "glasskube",
            "https://packages.dl.glasskube.dev/packages",
            "true",
            "none",
            "True"
        ]
    );
    assert!(table.contains("basic (inline)") && table.contains("bearer (secretRef)"));
    let wide = repocache(&["dump", "--kubeconfig", kc, "-o", "wide"])
        .await
        .stdout;
    assert!(
        wide.contains("RESOURCEVERSION") && wide.contains("dial tcp: i/o timeout"),
        "{wide}"
    );

    let json_out = repocache(&["dump", "--kubeconfig", kc, "-o", "json"])
        .await
        .stdout;
    let objects = items(&json_out);
    assert_eq!(objects.len(), 5);
    let inline = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "inline-basic")
        .unwrap();
    assert_eq!(
        inline["spec"]["auth"]["basic"]["password"],
        json!({"redacted": "<redacted>"})
    );
    let yaml = repocache(&["dump", "--kubeconfig", kc, "-o", "yaml"])
        .await
        .stdout;
    assert!(
        yaml.contains("password:\n          redacted: <redacted>"),
        "{yaml}"
    );
    let names = repocache(&["dump", "--kubeconfig", kc, "-o", "name"]).await;
    assert_eq!(names.code, 0, "{}", names.stderr);
    assert!(
        names
            .stdout
            .lines()
            .any(|l| l == "packagerepository.packages.glasskube.dev/inline-basic"),
        "{}",
        names.stdout
    );

    for output in ["json", "yaml"] {
        let run = repocache(&["dump", "--kubeconfig", kc, "-o", output, "--show-secrets"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout.contains(PASSWORD) && run.stdout.contains(TOKEN),
            "{}",
            run.stdout
        );
    }

    // Other kinds, by short and singular names, and all at once.
    let pkgs = repocache(&[
        "dump",
        "--kubeconfig",
        kc,
        "--kind",
        "pkg",
        "-A",
        "-o",
        "wide",
    ])
    .await;
    assert_eq!(pkgs.code, 0, "{}", pkgs.stderr);
    assert!(
        pkgs.stdout.contains("analytics") && pkgs.stdout.contains("quickwit"),
        "{}",
        pkgs.stdout
    );
    let infos = repocache(&["dump", "--kubeconfig", kc, "--kind", "PackageInfo"]).await;
    assert!(
        infos.stdout.contains("cert-manager--v1.16.1-1"),
        "{}",
        infos.stdout
    );
    let all = repocache(&["dump", "--kubeconfig", kc, "--all"]).await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.stdout.matches("# ").count(), 4, "{}", all.stdout);
    assert!(
        all.stdout.contains("# ClusterPackage cache: ready"),
        "{}",
        all.stdout
    );
}

#[tokio::test]
async fn dump_from_an_endpoint_equals_dump_from_the_cluster() {
    let c = cluster().await;
    let kc = c.kubeconfig.to_str().unwrap();
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(c.server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let debug = DebugServer::builder()
        .cache(&repos)
        .redact(repocache_cli::redact)
        .token("t0k3n")
        .start()
        .await
        .unwrap();
    let url = debug.url();
    let env = [("REPOCACHE_TOKEN", "t0k3n")];
    // A zero polling interval against a live endpoint is an input error, not a panic.
    for interval in ["0", "0s", "0ms"] {
        let run = repocache_env(&["watch", "--endpoint", &url, "--interval", interval], &env).await;
        assert_one_error_line(&run, "must be longer than zero");
    }
    for output in ["json", "yaml", "table", "wide"] {
        let from_endpoint = repocache_env(&["dump", "--endpoint", &url, "-o", output], &env).await;
        let from_cluster = repocache(&["dump", "--kubeconfig", kc, "-o", output]).await;
        assert_eq!(from_endpoint.code, 0, "{}", from_endpoint.stderr);
        if output == "json" || output == "yaml" {
            assert_eq!(from_endpoint.stdout, from_cluster.stdout, "{output}");
        } else {
            assert_eq!(
                rows_without_age(&from_endpoint.stdout),
                rows_without_age(&from_cluster.stdout),
                "{output}"
            );
        }
        assert!(!from_endpoint.stdout.contains(PASSWORD));
    }
    // The token by flag works too; without it or wrong: 401, one line, exit 2.
    let run = repocache(&["dump", "--endpoint", &url, "--token", "t0k3n"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_one_error_line(&repocache(&["dump", "--endpoint", &url]).await, "401");
    assert_one_error_line(
        &repocache(&["dump", "--endpoint", &url, "--token", "nope"]).await,
        "wrong token",
    );
    // The endpoint never reveals secrets unless its process allowed it.
    assert_one_error_line(
        &repocache_env(
            &["dump", "--endpoint", &url, "--show-secrets", "-o", "json"],
            &env,
        )
        .await,
        "403",
    );
    // A kind the endpoint does not serve.
    assert_one_error_line(
        &repocache_env(&["dump", "--endpoint", &url, "--kind", "pkgi"], &env).await,
        "no cache for kind PackageInfo",
    );
}

/// Changes the `glasskube` repository's URL through apisim's side door: no watch sees it.
fn move_glasskube_without_an_event(control: &apisim::Control) {
    let mut glasskube = control
        .get("packagerepositories", None, "glasskube")
        .unwrap();
    glasskube["spec"]["url"] = json!("https://moved.example/");
    control.side_door_put(glasskube).unwrap();
}

/// A running PackageRepository cache of `c`'s server behind a debug endpoint: a cache that has
/// been running, for `verify --endpoint`.
struct RepositoryEndpoint {
    url: String,
    _reflector: repocache::ReflectorHandle,
    _debug: repocache::debug::DebugHandle,
}

async fn repository_endpoint(c: &Cluster) -> RepositoryEndpoint {
    let (repos, reflector) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(c.server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let debug = DebugServer::builder().cache(&repos).start().await.unwrap();
    RepositoryEndpoint {
        url: debug.url(),
        _reflector: reflector,
        _debug: debug,
    }
}

#[tokio::test]
async fn verify_finds_drift_after_a_missed_event() {
    let c = cluster().await;
    let kc = c.kubeconfig.to_str().unwrap();
    let control = c.server.control();
    let endpoint = repository_endpoint(&c).await;
    let url = endpoint.url.clone();

    let run = repocache(&["verify", "--endpoint", &url, "--kubeconfig", kc]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("in sync: 5 packagerepositories"),
        "{}",
        run.stdout
    );
    let run = repocache(&["verify", "--kubeconfig", kc, "--all"]).await;
    assert_eq!(run.code, 0, "a fresh cache: {}{}", run.stdout, run.stderr);

    // The watch stalls and misses a change: the cache drifts.
    control.stall_watches(None);
    move_glasskube_without_an_event(&control);
    let run = repocache(&[
        "verify",
        "--endpoint",
        &url,
        "--kubeconfig",
        kc,
        "--grace",
        "100ms",
    ])
    .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("DRIFT"), "{}", run.stdout);
    let drift_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("resourceVersion"))
        .unwrap();
    assert!(drift_line.contains("glasskube"), "{}", run.stdout);
    assert!(
        run.stdout.contains("drift: 1 packagerepositories differ"),
        "{}",
        run.stdout
    );

    // An endpoint nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let run = repocache(&[
        "verify",
        "--endpoint",
        &format!("http://{closed}"),
        "--kubeconfig",
        kc,
    ])
    .await;
    assert_one_error_line(
        &run,
        &format!(
            "the connection to the debug endpoint at http://{closed} was refused - did you specify the right host or port?"
        ),
    );
}

#[tokio::test]
async fn verify_compares_at_the_caches_own_resource_version() {
    let c = cluster().await;
    let kc = c.kubeconfig.to_str().unwrap();
    let control = c.server.control();
    let endpoint = repository_endpoint(&c).await;
    let url = endpoint.url.clone();

    let run = repocache(&["verify", "--endpoint", &url, "--kubeconfig", kc]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "in sync: 5 packagerepositories in the cache match a live LIST at the same resourceVersion {}",
            control.resource_version()
        )),
        "{}",
        run.stdout
    );

    // A write no watch sees: the cache's resourceVersion moves past it (bookmarks), its
    // object does not. The server keeps no state at the cache's older resourceVersion (410), so
    // verify waits for the cache to move on, then compares both at the same resourceVersion.
    move_glasskube_without_an_event(&control);
    let planted = control.resource_version();
    let run = repocache(&[
        "verify",
        "--endpoint",
        &url,
        "--kubeconfig",
        kc,
        "--grace",
        "15s",
    ])
    .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let drift_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("resourceVersion"))
        .unwrap();
    assert!(drift_line.contains("glasskube"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "drift: 1 packagerepositories differ between the cache and a live LIST at the same resourceVersion {planted}"
        )),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("latest LIST"), "{}", run.stdout);
    // The LIST it compared with was of exactly that resourceVersion.
    let exact = format!("resourceVersionMatch=Exact&resourceVersion={planted}");
    assert!(
        control
            .requests()
            .iter()
            .any(|r| r.verb == "list" && r.status == 200 && r.query.contains(&exact)),
        "{:#?}",
        control.requests()
    );
}

#[tokio::test]
async fn watch_prints_an_update() {
    let c = cluster().await;
    let control = c.server.control();
    let mut child = Command::new(BIN)
        .args(["watch", "--kubeconfig", c.kubeconfig.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("no line in time")
            .unwrap()
            .expect("watch ended")
    };
    let header = next().await;
    assert!(header.contains("watching for changes"), "{header}");
    control
        .merge_patch(
            "packagerepositories",
            None,
            "glasskube",
            &json!({"spec": {"url": "https://moved.example/"}}),
        )
        .unwrap();
    let line = next().await;
    let rv = control.resource_version();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["updated", "glasskube", &format!("resourceVersion={rv}")]
    );
    control
        .delete("packagerepositories", None, "team-bearer")
        .unwrap();
    let line = next().await;
    assert!(line.starts_with("deleted  team-bearer"), "{line}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn errors_are_one_line_and_exit_2() {
    assert_one_error_line(
        &repocache(&["dump", "--kind", "repos"]).await,
        "unknown kind \"repos\"",
    );
    assert_one_error_line(&repocache(&["dump", "--frobnicate"]).await, "--frobnicate");
    assert_one_error_line(&repocache(&["dump", "-o", "xml"]).await, "xml");
    assert_one_error_line(&repocache(&["dump"]).await, "kubeconfig");
    assert_one_error_line(
        &repocache(&["dump", "--endpoint", "http://127.0.0.1:1"]).await,
        "the connection to the debug endpoint at http://127.0.0.1:1 was refused - did you specify the right host or port?",
    );
    // Duration inputs that do not parse.
    assert_one_error_line(
        &repocache(&[
            "watch",
            "--endpoint",
            "http://127.0.0.1:1",
            "--interval",
            "soon",
        ])
        .await,
        "invalid duration",
    );
    assert_one_error_line(
        &repocache(&["verify", "--grace", "3 weeks"]).await,
        "invalid duration",
    );
    // A cluster nobody serves.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let run = repocache(&[
        "dump",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--timeout",
        "10s",
    ])
    .await;
    assert_one_error_line(
        &run,
        "the connection to the server http://127.0.0.1:1 was refused - did you specify the right host or port?",
    );
    let run = repocache(&[
        "dump",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--context",
        "nope",
    ])
    .await;
    assert_one_error_line(
        &run,
        "context \"nope\" is not in the kubeconfig (it has: x): pick one with --context",
    );
    // No kubeconfig at all: said once, with what to do.
    let run = repocache(&["get", "pkg"]).await;
    assert_one_error_line(
        &run,
        "no kubeconfig found (KUBECONFIG=/nonexistent/kubeconfig does not exist): pass --kubeconfig PATH or set KUBECONFIG",
    );
    assert!(!run.stderr.contains("os error"), "{}", run.stderr);
    let run = repocache(&["get", "--kubeconfig", "/nonexistent/kc"]).await;
    assert_one_error_line(
        &run,
        "kubeconfig /nonexistent/kc does not exist: pass an existing file with --kubeconfig",
    );
    // -o lists the valid values; -k is not --kind any more (kubectl's kustomize flag).
    assert_one_error_line(
        &repocache(&["get", "-o", "xml"]).await,
        "expected one of table, wide, json, yaml, name, jsonpath=TEMPLATE",
    );
    assert_one_error_line(&repocache(&["get", "-k", "pkg"]).await, "'-k'");
    assert_one_error_line(
        &repocache(&["get", "pkg", "--timeout", "soon"]).await,
        "Go duration",
    );
    assert_one_error_line(
        &repocache(&["get", "-o", "jsonpath={range .items[*]}{end}"]).await,
        "not supported",
    );
    assert_one_error_line(
        &repocache(&["get", "pkg", "-l", "a in ("]).await,
        "invalid label selector",
    );
    assert_one_error_line(
        &repocache(&["get", "pkg", "--field-selector", "spec.x=1"]).await,
        "invalid field selector",
    );
    assert_one_error_line(
        &repocache(&["watch", "--interval", "0s"]).await,
        "invalid interval \"0s\" (must be longer than zero",
    );
    // demo's -n is gone (it meant --packages).
    assert_one_error_line(&repocache(&["demo", "-n", "3"]).await, "'-n'");

    // The debug address is taken: said before the demo's runs, once, with what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = repocache(&["demo", "--debug-addr", &addr]).await;
    assert_one_error_line(
        &run,
        &format!("{addr} is already in use by another process: pick another --debug-addr"),
    );
    assert!(!run.stderr.contains("os error"), "{}", run.stderr);
    drop(taken);

    let help = repocache(&["--help"]).await;
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("Exit codes:") && help.stdout.contains("dump"),
        "{}",
        help.stdout
    );
    // The kinds come from glasskube-api's list, not from a copy in the help text.
    assert!(
        help.stdout.contains(
            "Kinds (KIND): packagerepositories, packages (pkg), clusterpackages (clpkg), packageinfos (pkgi);"
        ),
        "{}",
        help.stdout
    );
    let dump_help = repocache(&["dump", "--help"]).await;
    assert!(
        dump_help.stdout.contains("--show-secrets") && dump_help.stdout.contains("REPOCACHE_TOKEN")
    );
}

/// A copy of the cluster's kubeconfig whose context has `namespace`.
fn kubeconfig_with_namespace(c: &Cluster, namespace: &str) -> PathBuf {
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let mut config: Value = serde_yaml::from_str(&text).unwrap();
    config["contexts"][0]["context"]["namespace"] = json!(namespace);
    let path = c
        .kubeconfig
        .with_file_name(format!("kubeconfig-{namespace}"));
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

fn names_of(run: &Run) -> Vec<String> {
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let mut names: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[tokio::test]
async fn get_takes_kubectl_arguments() {
    let c = cluster().await;
    let kc = c.kubeconfig.to_str().unwrap();
    let analytics = kubeconfig_with_namespace(&c, "analytics");
    let analytics = analytics.to_str().unwrap();
    // KIND by plural, singular, kind, short name and kind.group; `dump` is the same command.
    for kind in [
        "packagerepositories",
        "packagerepository",
        "PackageRepository",
        "packagerepositories.packages.glasskube.dev",
    ] {
        let run = repocache(&["get", kind, "--kubeconfig", kc, "-o", "name"]).await;
        assert_eq!(names_of(&run).len(), 5, "{kind}: {}", run.stdout);
    }
    let quickwit = "package.packages.glasskube.dev/my-quickwit";
    for cmd in ["get", "dump"] {
        let run = repocache(&[cmd, "pkg", "-A", "--kubeconfig", kc, "-o", "name"]).await;
        assert_eq!(names_of(&run), [quickwit], "{cmd}");
    }
    // Namespaced kinds: the context's namespace by default (here none: "default"), -n, -A.
    let run = repocache(&["get", "packages", "--kubeconfig", kc, "-o", "name"]).await;
    assert!(names_of(&run).is_empty(), "{}", run.stdout);
    let run = repocache(&["get", "packages", "--kubeconfig", analytics, "-o", "name"]).await;
    assert_eq!(names_of(&run), [quickwit]);
    let run = repocache(&[
        "get",
        "pkg",
        "-n",
        "analytics",
        "--kubeconfig",
        kc,
        "-o",
        "name",
    ])
    .await;
    assert_eq!(names_of(&run), [quickwit]);
    let run = repocache(&[
        "get",
        "pkg",
        "-n",
        "other",
        "--kubeconfig",
        analytics,
        "-o",
        "name",
    ])
    .await;
    assert!(names_of(&run).is_empty(), "{}", run.stdout);
    // Cluster-scoped kinds ignore the namespace.
    let run = repocache(&[
        "get",
        "clpkg",
        "-n",
        "nowhere",
        "--kubeconfig",
        kc,
        "-o",
        "name",
    ])
    .await;
    assert_eq!(names_of(&run).len(), 2, "{}", run.stdout);
    // Names, label and field selectors.
    let run = repocache(&[
        "get",
        "packagerepositories",
        "glasskube",
        "team-bearer",
        "--kubeconfig",
        kc,
        "-o",
        "name",
    ])
    .await;
    assert_eq!(
        names_of(&run),
        [
            "packagerepository.packages.glasskube.dev/glasskube",
            "packagerepository.packages.glasskube.dev/team-bearer"
        ]
    );
    let run = repocache(&[
        "get",
        "packagerepositories",
        "-l",
        "team=platform",
        "--kubeconfig",
        kc,
        "-o",
        "name",
    ])
    .await;
    assert_eq!(
        names_of(&run),
        ["packagerepository.packages.glasskube.dev/team-bearer"]
    );
    let run = repocache(&[
        "get",
        "packagerepositories",
        "-l",
        "team",
        "--kubeconfig",
        kc,
        "-o",
        "name",
    ])
    .await;
    assert_eq!(names_of(&run).len(), 2, "{}", run.stdout);
    let run = repocache(&[
        "get",
        "packagerepositories",
        "--field-selector",
        "metadata.name=inline-basic",
        "--kubeconfig",
        kc,
        "-o",
        "name",
    ])
    .await;
    assert_eq!(
        names_of(&run),
        ["packagerepository.packages.glasskube.dev/inline-basic"]
    );
    // A name that does not exist: kubectl's NotFound, one line, exit 2.
    let run = repocache(&["get", "pkg", "nope", "-A", "--kubeconfig", kc]).await;
    assert_one_error_line(&run, "packages.packages.glasskube.dev \"nope\" not found");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // jsonpath: over the List, or over the object when one name is asked for.
    let run = repocache(&[
        "get",
        "packagerepositories",
        "--kubeconfig",
        kc,
        "-l",
        "team",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "team-bearer team-bearer-ref");
    let run = repocache(&[
        "get",
        "packagerepository",
        "glasskube",
        "--kubeconfig",
        kc,
        "-o",
        "jsonpath=url={.spec.url}{\"\\n\"}",
    ])
    .await;
    assert_eq!(
        run.stdout, "url=https://packages.dl.glasskube.dev/packages\n",
        "{}",
        run.stderr
    );
    // Credentials stay redacted through jsonpath.
    let run = repocache(&[
        "get",
        "packagerepository",
        "inline-basic",
        "--kubeconfig",
        kc,
        "-o",
        "jsonpath={.spec.auth.basic.password}",
    ])
    .await;
    assert_eq!(run.stdout, r#"{"redacted":"<redacted>"}"#, "{}", run.stderr);
    // Go durations.
    let run = repocache(&[
        "get",
        "--kubeconfig",
        kc,
        "--timeout",
        "1m30s",
        "-o",
        "name",
    ])
    .await;
    assert_eq!(names_of(&run).len(), 5);
    let run = repocache(&[
        "get",
        "--kubeconfig",
        kc,
        "--request-timeout",
        "1h",
        "-o",
        "name",
    ])
    .await;
    assert_eq!(names_of(&run).len(), 5);
}

#[tokio::test]
async fn the_same_filters_apply_to_an_endpoint() {
    let c = cluster().await;
    let (repos, _handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(c.server.client())).start();
    repos.wait_ready(PATIENCE).await.unwrap();
    let debug = DebugServer::builder().cache(&repos).start().await.unwrap();
    let url = debug.url();
    let run = repocache(&[
        "get",
        "packagerepositories",
        "-l",
        "team=data",
        "--endpoint",
        &url,
        "-o",
        "name",
    ])
    .await;
    assert_eq!(
        names_of(&run),
        ["packagerepository.packages.glasskube.dev/team-bearer-ref"]
    );
    let run = repocache(&[
        "get",
        "packagerepositories",
        "glasskube",
        "--endpoint",
        &url,
        "-o",
        "jsonpath={.metadata.name}",
    ])
    .await;
    assert_eq!(run.stdout, "glasskube", "{}", run.stderr);
    // verify --all against an endpoint holding one kind: the others are skipped with a note.
    let run = repocache(&[
        "verify",
        "--all",
        "--endpoint",
        &url,
        "--kubeconfig",
        c.kubeconfig.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for kind in ["packages", "clusterpackages", "packageinfos"] {
        assert!(
            run.stdout
                .contains(&format!("# skipped {kind}: the endpoint at {url} holds no")),
            "{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("in sync: 5 packagerepositories"),
        "{}",
        run.stdout
    );
}

async fn spawn_watch(
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Option<String> {
    tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("no line in time")
        .unwrap()
}

#[tokio::test]
async fn watch_all_prints_every_kind_and_stops_when_the_server_goes() {
    let c = cluster().await;
    let control = c.server.control();
    let (mut child, mut lines) = spawn_watch(&[
        "watch",
        "--all",
        "-A",
        "--timeout",
        "2s",
        "--kubeconfig",
        c.kubeconfig.to_str().unwrap(),
    ])
    .await;
    for _ in 0..4 {
        let header = next_line(&mut lines).await.unwrap();
        assert!(header.contains("watching for changes"), "{header}");
    }
    control
        .merge_patch(
            "packages",
            Some("analytics"),
            "my-quickwit",
            &json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .unwrap();
    let line = next_line(&mut lines).await.unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[..3],
        ["Package", "updated", "analytics/my-quickwit"],
        "{line}"
    );
    control
        .delete("packagerepositories", None, "team-bearer")
        .unwrap();
    let line = next_line(&mut lines).await.unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[..3],
        ["PackageRepository", "deleted", "team-bearer"],
        "{line}"
    );

    // The server goes away: after --timeout the command says so and exits 2.
    c.server.shutdown().await;
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("watch did not stop")
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: lost the server http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "(connections refused for 2.0s); stopped watching - rerun repocache watch when it is back"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn completions_and_man_page_come_from_clap() {
    let bash = repocache(&["completion", "bash"]).await;
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(
        bash.stdout.contains("complete -F _repocache"),
        "{}",
        bash.stdout
    );
    assert!(bash.stdout.contains("--field-selector") && bash.stdout.contains("--all-namespaces"));
    let zsh = repocache(&["completion", "zsh"]).await;
    assert!(
        zsh.stdout.starts_with("#compdef repocache"),
        "{}",
        zsh.stdout
    );
    let fish = repocache(&["completion", "fish"]).await;
    assert!(
        fish.stdout.contains("complete -c repocache"),
        "{}",
        fish.stdout
    );
    assert_one_error_line(&repocache(&["completion", "tcsh"]).await, "tcsh");
    let man = repocache(&["man"]).await;
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(
        man.stdout.starts_with(".ie"),
        "{}",
        &man.stdout[..80.min(man.stdout.len())]
    );
    assert!(man.stdout.contains(".TH repocache 1"), "{}", man.stdout);
    assert!(
        man.stdout.contains("Exit codes"),
        "the after-help is in the page"
    );
}

#[tokio::test]
async fn verify_for_keeps_its_cache_and_finds_a_missed_event() {
    let c = cluster().await;
    let control = c.server.control();
    let kc = c.kubeconfig.to_str().unwrap().to_owned();
    let run = tokio::spawn(async move {
        repocache(&["verify", "--kubeconfig", &kc, "--for", "5s", "--grace", "0"]).await
    });
    // Once the command's cache watches, change an object without a watch event.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while control.open_watches() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no watch opened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    move_glasskube_without_an_event(&control);
    // The command has not compared yet: only its cache's LIST so far, no live LIST.
    assert_eq!(control.count("list", "packagerepositories"), 1);
    let run = run.await.unwrap();
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(control.count("list", "packagerepositories"), 2);
    assert!(
        run.stdout.contains("drift: 1 packagerepositories differ"),
        "{}",
        run.stdout
    );
}
