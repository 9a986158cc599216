//! The `glasskube-operator-example` binary: bad flags and an unreachable cluster fail with one
//! line on stderr; against a cluster (apisim through a kubeconfig) and `--embedded` it writes
//! the conditions and stops cleanly on SIGINT (Ctrl-C).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apisim::{Server, ServerConfig};
use glasskube_operator_example::CONDITION_TYPE;

const BIN: &str = env!("CARGO_BIN_EXE_glasskube-operator-example");
const PATIENCE: Duration = Duration::from_secs(15);

fn fails_with_one_line(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} must fail");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(
        stderr.starts_with("glasskube-operator-example: "),
        "{stderr:?}"
    );
    (out.status.code().unwrap(), stderr)
}

#[test]
fn bad_flags_fail_with_one_line() {
    let (code, stderr) = fails_with_one_line(&["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--frobnicate"), "{stderr}");
    let (code, _) = fails_with_one_line(&["--requeue-secs", "soon"]);
    assert_eq!(code, 2);
    let (code, _) = fails_with_one_line(&["--requeue-secs", "0"]);
    assert_eq!(code, 2);
    let (code, _) = fails_with_one_line(&["--embedded", "--context", "x"]);
    assert_eq!(code, 2);
}

#[test]
fn an_unreachable_cluster_fails_with_one_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://{addr}'}}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let (code, stderr) = fails_with_one_line(&["--kubeconfig", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    let (_, stderr) = fails_with_one_line(&["--kubeconfig", "/nonexistent/kubeconfig"]);
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
}

/// Spawns the binary; its stderr lines arrive on the returned channel.
fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until `done` says enough (panics after [`PATIENCE`]); returns them.
fn read_until(rx: &mpsc::Receiver<String>, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("timed out; output so far:\n{}", lines.join("\n")),
        }
    }
    lines
}

/// Sends SIGINT (what Ctrl-C sends) and expects a clean exit.
fn interrupt(mut child: Child, rx: &mpsc::Receiver<String>) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    read_until(rx, |lines| {
        lines.iter().any(|l| l.contains("operator stopped"))
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the operator did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn written(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("condition written"))
        .count()
}

#[test]
fn embedded_writes_every_condition_and_stops_on_sigint() {
    let (child, rx) = spawn(&["--embedded"]);
    let lines = read_until(&rx, |lines| written(lines) >= 50);
    assert!(lines.iter().any(|l| l.contains("caches ready")));
    interrupt(child, &rx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_cluster_through_a_kubeconfig() {
    let config = ServerConfig::default()
        .with_seed_yaml(apisim::seed::REPOSITORIES_YAML)
        .and_then(|c| c.with_seed_yaml(apisim::seed::PACKAGES_YAML))
        .unwrap();
    let server = Server::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let (child, rx) = spawn(&[
        "--kubeconfig",
        path.to_str().unwrap(),
        "--requeue-secs",
        "60",
    ]);
    let rx = tokio::task::spawn_blocking(move || {
        read_until(&rx, |lines| written(lines) >= 3);
        rx
    })
    .await
    .unwrap();
    let control = server.control();
    let quickwit = control
        .get("packages", Some("analytics"), "my-quickwit")
        .unwrap();
    let condition = quickwit["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == CONDITION_TYPE)
        .unwrap()
        .clone();
    assert_eq!(condition["status"], "True");
    assert_eq!(
        condition["message"],
        "repository private-basic (https://charts.internal.example.com/glasskube) is ready"
    );
    tokio::task::spawn_blocking(move || interrupt(child, &rx))
        .await
        .unwrap();
}
