//! kubectl against apisim, with the kubeconfig the handle writes. kubectl is a hard requirement:
//! it is looked up on `PATH` (or taken from `$KUBECTL`), and when it is missing these tests fail
//! (they do not skip) with a message that says how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use apisim::{Server, ServerConfig, ServerHandle};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const SEED: &str = apisim::seed::REPOSITORIES_YAML;
const T: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "install kubectl (Debian/Ubuntu: `apt-get install kubectl`; elsewhere see https://kubernetes.io/docs/tasks/tools/) or point $KUBECTL at it";

/// The kubectl binary: `$KUBECTL` when set, else the first `kubectl` on `PATH`.
fn kubectl_path() -> PathBuf {
    if let Some(explicit) = std::env::var_os("KUBECTL") {
        let path = PathBuf::from(explicit);
        assert!(
            path.is_file(),
            "kubectl is required for these tests but $KUBECTL={} is not a file; {INSTALL_HINT}",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("kubectl is required for these tests but is not on PATH; {INSTALL_HINT}")
        })
}

pub(crate) struct Kubectl {
    bin: PathBuf,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    pub(crate) fn new(s: &ServerHandle) -> Kubectl {
        let bin = kubectl_path();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        s.write_kubeconfig(&kubeconfig).unwrap();
        let cache = dir.path().join("cache");
        Kubectl {
            bin,
            _dir: dir,
            kubeconfig,
            cache,
        }
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .kill_on_drop(true);
        c
    }

    /// Run to completion; panic with kubectl's stderr on failure.
    pub(crate) async fn run(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(T, self.cmd(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

async fn start() -> ServerHandle {
    Server::start(ServerConfig::default().with_seed_yaml(SEED).unwrap())
        .await
        .unwrap()
}

fn seed_names() -> BTreeSet<String> {
    apisim::load_seed_yaml(SEED)
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn kubectl_get_lists_seed_objects() {
    let s = start().await;
    let k = Kubectl::new(&s);
    let out = k.run(&["get", "packagerepositories", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&out).unwrap();
    let names: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, seed_names());
    // short output and a single object by name
    let one = k
        .run(&[
            "get",
            "packagerepository",
            "glasskube",
            "-o",
            "jsonpath={.spec.url}",
        ])
        .await;
    assert_eq!(one, "https://packages.dl.glasskube.dev/packages");
    assert!(s.count("list", "packagerepositories") >= 1);
    assert!(s.count("discovery", "") >= 1);
}

#[tokio::test]
async fn kubectl_create_and_delete() {
    let s = start().await;
    let k = Kubectl::new(&s);
    let file = k._dir.path().join("repo.yaml");
    std::fs::write(
        &file,
        "apiVersion: packages.glasskube.dev/v1alpha1\nkind: PackageRepository\nmetadata:\n  name: from-kubectl\nspec:\n  url: https://from-kubectl.example\n",
    )
    .unwrap();
    let out = k.run(&["create", "-f", file.to_str().unwrap()]).await;
    assert!(out.contains("from-kubectl created"), "{out}");
    let obj = s.get("packagerepositories", None, "from-kubectl").unwrap();
    assert_eq!(obj["spec"]["url"], "https://from-kubectl.example");
    // creating it again fails with AlreadyExists, reported by kubectl
    let again = k
        .cmd(&["create", "-f", file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"));
    let out = k
        .run(&["label", "packagerepository", "from-kubectl", "team=blue"])
        .await;
    assert!(out.contains("labeled"), "{out}");
    assert_eq!(
        s.get("packagerepositories", None, "from-kubectl").unwrap()["metadata"]["labels"]["team"],
        "blue"
    );
    let out = k
        .run(&["delete", "packagerepository", "from-kubectl"])
        .await;
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(
        s.get("packagerepositories", None, "from-kubectl")
            .unwrap_err()
            .code,
        404
    );
}

#[tokio::test]
async fn kubectl_watch_sees_updates() {
    let s = start().await;
    let k = Kubectl::new(&s);
    let mut child = k
        .cmd(&["get", "packagerepositories", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", k.bin.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seeds = seed_names();
    let mut seen = BTreeSet::new();
    tokio::time::timeout(T, async {
        while seen.len() < seeds.len() {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("kubectl exited early");
            seen.insert(line.rsplit('/').next().unwrap().to_string());
        }
    })
    .await
    .expect("kubectl did not print the initial objects");
    assert_eq!(seen, seeds);
    // kubectl's watch is open once the server counts it
    assert!(
        s.wait_for_watches(1, T).await,
        "kubectl never opened a watch"
    );
    s.merge_patch(
        "packagerepositories",
        None,
        "private-basic",
        &json!({"spec": {"url": "https://moved.example"}}),
    )
    .unwrap();
    let line = tokio::time::timeout(T, lines.next_line())
        .await
        .expect("kubectl did not print the update")
        .unwrap()
        .expect("kubectl exited");
    assert_eq!(
        line,
        "packagerepository.packages.glasskube.dev/private-basic"
    );
    child.kill().await.unwrap();
}
