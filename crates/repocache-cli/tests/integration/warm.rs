//! `repocache get` with a warm-start file (issue #18): the second run answers from the file at
//! once with `--max-staleness`, even when the API server is gone, and says how old the answer is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::run::{BIN, Run, repocache_env};

const SECRETS: [&str; 2] = ["s3cr3t-inline-password", "inline-bearer-token-0123456789"];

async fn repocache(args: &[&str], xdg: &Path) -> Run {
    let xdg = xdg
        .to_str()
        .expect("a temporary directory with a UTF-8 path");
    repocache_env(args, &[("XDG_CACHE_HOME", xdg)]).await
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// An apisim with the fixtures, its kubeconfig, and an empty `$XDG_CACHE_HOME`, all in a
/// scratch directory.
struct Scene {
    server: apisim::ServerHandle,
    scratch: tempfile::TempDir,
    /// The kubeconfig's path.
    kc: String,
    /// `$XDG_CACHE_HOME` of the runs (the files land in its `repocache/`).
    xdg: PathBuf,
}

impl Scene {
    async fn new() -> Self {
        let server = repocache_test_support::apisim().await;
        let scratch = tempfile::tempdir().unwrap();
        let kubeconfig = scratch.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Self {
            server,
            kc: kubeconfig.to_str().unwrap().to_owned(),
            xdg: scratch.path().join("xdg"),
            scratch,
        }
    }

    /// A scene after one cold `get`, which left the warm-start file.
    async fn warmed() -> Self {
        let scene = Self::new().await;
        let cold = repocache(&["get", "--kubeconfig", &scene.kc], &scene.xdg).await;
        assert_eq!(cold.code, 0, "{}", cold.stderr);
        scene
    }
}

/// `get --max-staleness 1h` with the server unreachable: answered from the warm file, with a note
/// that says how old the answer is and that the server is unreachable.
async fn answers_from_the_file_unreachable(kc: &str, xdg: &Path) {
    let run = repocache(&["get", "--kubeconfig", kc, "--max-staleness", "1h"], xdg).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("glasskube"), "{}", run.stdout);
    let note = run
        .stderr
        .lines()
        .find(|l| l.contains("old, not verified"))
        .unwrap_or_else(|| panic!("no age on stderr: {}", run.stderr));
    assert!(note.contains("the API server is unreachable"), "{note}");
}

#[tokio::test]
async fn get_answers_from_the_warm_file_even_when_the_server_is_gone() {
    let Scene {
        server,
        scratch,
        kc,
        xdg,
    } = Scene::new().await;
    let kc = kc.as_str();
    let cache_dir = xdg.join("repocache");

    // --no-cache-dir: no file.
    let run = repocache(&["get", "--kubeconfig", kc, "--no-cache-dir"], &xdg).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(files(&cache_dir).is_empty());

    // First run: cold; the file lands in $XDG_CACHE_HOME/repocache, without credentials.
    let cold = repocache(&["get", "--kubeconfig", kc], &xdg).await;
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert!(cold.stdout.contains("glasskube"));
    let written = files(&cache_dir);
    assert_eq!(written.len(), 1, "{written:?}");
    let bytes = std::fs::read(&written[0]).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for secret in SECRETS {
        assert!(!text.contains(secret));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&written[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Second run, --max-staleness: answered from the file, and said so (the LIST that
    // verifies it is slowed down, so that it cannot win the race).
    server.control().add_latency(apisim::LatencySpec {
        verb: Some("list".into()),
        resource: Some("packagerepositories".into()),
        latency_ms: 2000,
        count: Some(1),
    });
    let warm = repocache(&["get", "--kubeconfig", kc, "--max-staleness", "1h"], &xdg).await;
    assert_eq!(warm.code, 0, "{} / {}", warm.stderr, warm.stdout);
    assert!(warm.stdout.contains("glasskube"), "{}", warm.stdout);
    assert!(
        warm.stderr
            .contains("answered from the warm-start cache file"),
        "{}",
        warm.stderr
    );

    // The server is gone: with --max-staleness the file still answers, saying how old it is.
    server.shutdown().await;
    answers_from_the_file_unreachable(kc, &xdg).await;
    // A bound tighter than the file's age: an error, as without a file.
    let strict = repocache(&["get", "--kubeconfig", kc, "--max-staleness", "1ms"], &xdg).await;
    assert_eq!(strict.code, 2, "{}", strict.stdout);
    assert_eq!(strict.stderr.lines().count(), 1, "{}", strict.stderr);
    // Without --max-staleness: an error (one line, exit 2), never an unverified answer.
    let plain = repocache(&["get", "--kubeconfig", kc], &xdg).await;
    assert_eq!(plain.code, 2);
    assert!(plain.stdout.is_empty());
    assert_eq!(plain.stderr.lines().count(), 1, "{}", plain.stderr);
    // --cache-dir elsewhere: no file there, so no answer.
    let elsewhere = scratch.path().join("elsewhere");
    let other = repocache(
        &[
            "get",
            "--kubeconfig",
            kc,
            "--max-staleness",
            "1h",
            "--cache-dir",
            elsewhere.to_str().unwrap(),
        ],
        &xdg,
    )
    .await;
    assert_eq!(other.code, 2, "{}", other.stdout);
}

/// A server that accepts connections and never answers (a hung API server, a load balancer
/// without backends) is unreachable once the probe has waited [`PROBE_TIMEOUT`]: a warm `get
/// --max-staleness` answers from the file and says so, and without `--max-staleness` it is one
/// error line, never a command that hangs.
///
/// [`PROBE_TIMEOUT`]: repocache_cli::source::PROBE_TIMEOUT
#[tokio::test]
async fn a_server_that_never_answers_is_unreachable_and_the_warm_file_answers() {
    let Scene {
        server,
        scratch: _scratch,
        kc,
        xdg,
    } = Scene::warmed().await;
    let kc = kc.as_str();
    let addr = server.addr();
    server.shutdown().await;
    // The same address now takes connections and never reads from nor answers them (once the
    // stopped server has let the address go).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot take {addr} over: {e}"),
        }
    };
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    answers_from_the_file_unreachable(kc, &xdg).await;
    let plain = repocache(&["get", "--kubeconfig", kc], &xdg).await;
    assert_eq!(plain.code, 2, "{}", plain.stdout);
    assert_eq!(plain.stderr.lines().count(), 1, "{}", plain.stderr);
    assert!(plain.stderr.contains("did not answer"), "{}", plain.stderr);
    holder.abort();
}

/// A warm `get --max-staleness` prints its answer before the LIST that verifies the file has
/// answered (it verifies afterwards, so that the next run's file is current). That LIST is held
/// back 8 s (under the reflector's 10 s list timeout, so it does complete), and apisim counts a
/// request when it answers it: when the answer reaches stdout, apisim must not have answered it.
#[tokio::test]
async fn a_warm_get_prints_before_its_verifying_list_answers() {
    use tokio::io::AsyncReadExt as _;

    let scene = Scene::warmed().await;
    let (server, kc, xdg) = (&scene.server, scene.kc.as_str(), &scene.xdg);

    server.control().reset_requests();
    server.control().add_latency(apisim::LatencySpec {
        verb: Some("list".into()),
        resource: Some("packagerepositories".into()),
        latency_ms: 8_000,
        count: Some(1),
    });
    let mut child = Command::new(BIN)
        .args(["get", "--kubeconfig", kc, "--max-staleness", "1h"])
        .env_remove("REPOCACHE_TOKEN")
        .env_remove("RUST_LOG")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("XDG_CACHE_HOME", xdg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("glasskube") {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "stdout closed without the answer");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        answered.is_ok(),
        "no answer: {}",
        String::from_utf8_lossy(&seen)
    );
    assert_eq!(
        server.control().count("list", "packagerepositories"),
        0,
        "the answer was printed only after the verifying LIST was answered"
    );
    child.kill().await.unwrap();
}
