//! kubectl (from PATH, or $KUBECTL) through the relay: get, get -o yaml, get -w, apply.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::common::{self, T, drop_managed_fields};

pub(crate) fn kubectl_path() -> PathBuf {
    if let Some(explicit) = std::env::var_os("KUBECTL") {
        return PathBuf::from(explicit);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("kubectl is required for these tests but is not on PATH (apt-get install kubectl, or set $KUBECTL)"))
}

pub(crate) struct Kubectl {
    pub(crate) dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub(crate) fn new(kubeconfig_text: &str) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text).unwrap();
        Kubectl { dir, kubeconfig }
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_path());
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true);
        c
    }

    pub(crate) async fn run(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(T, self.cmd(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn list_items(text: &str) -> Value {
    let list: Value = serde_json::from_str(text).unwrap();
    drop_managed_fields(list["items"].clone())
}

#[tokio::test]
async fn kubectl_get_yaml_watch_and_apply_through_the_relay() {
    let server = common::apisim().await;
    let relay = common::ready(common::builder(&server)).await;
    let via = Kubectl::new(&relay.kubeconfig(None).unwrap());
    let direct = Kubectl::new(&server.kubeconfig_yaml().unwrap());

    // get -o json: the same items as apisim's; the LIST came from the snapshot.
    let served = relay.layer_stats();
    let a = direct
        .run(&["get", "packagerepositories", "-o", "json"])
        .await;
    let b = via.run(&["get", "packagerepositories", "-o", "json"]).await;
    assert_eq!(list_items(&a), list_items(&b));
    // Plain `get` (kubectl asks for a Table, the relay answers its JSON fallback).
    let table = via.run(&["get", "packagerepositories"]).await;
    assert!(table.contains("glasskube"), "{table}");
    assert!(table.starts_with("NAME"), "{table}");
    // get -o yaml of one object.
    let yaml = via
        .run(&["get", "packagerepository", "glasskube", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("url: https://packages.dl.glasskube.dev/packages"),
        "{yaml}"
    );
    assert!(
        relay.layer_stats().total_local() > served.total_local(),
        "kubectl's reads were not answered from the snapshot"
    );

    // describe: the object from the snapshot, its events from upstream.
    let described = via
        .run(&["describe", "packagerepository", "glasskube"])
        .await;
    assert!(described.contains("Name:"), "{described}");
    assert!(
        described.contains("https://packages.dl.glasskube.dev/packages"),
        "{described}"
    );

    // apply passes through (and is then read back through the relay).
    let file = via.dir.path().join("repo.yaml");
    std::fs::write(
        &file,
        "apiVersion: packages.glasskube.dev/v1alpha1\nkind: PackageRepository\nmetadata:\n  name: applied\nspec:\n  url: https://applied.example\n",
    )
    .unwrap();
    let out = via.run(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(out.contains("created"), "{out}");
    assert!(
        server
            .control()
            .get("packagerepositories", None, "applied")
            .is_ok()
    );
    let out = via
        .run(&[
            "get",
            "packagerepository",
            "applied",
            "-o",
            "jsonpath={.spec.url}",
        ])
        .await;
    assert_eq!(out, "https://applied.example");

    // get -w: the current objects, then a change, from the relay's hub.
    let mut child = via
        .cmd(&["get", "packagerepositories", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let next = async |lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>| {
        tokio::time::timeout(T, lines.next_line())
            .await
            .expect("kubectl get -w printed nothing in time")
            .unwrap()
            .expect("kubectl get -w ended")
    };
    let mut first = Vec::new();
    for _ in 0..server.control().list("packagerepositories").unwrap().len() {
        first.push(next(&mut lines).await);
    }
    assert!(
        first.iter().any(|l| l.starts_with("glasskube ")),
        "{first:?}"
    );
    server
        .control()
        .create(common::repo("watched-by-kubectl", serde_json::json!({})))
        .unwrap();
    let line = next(&mut lines).await;
    assert!(line.starts_with("watched-by-kubectl"), "{line}");
    child.kill().await.unwrap();
    assert!(relay.stats().watches_served >= 1);
    assert_eq!(
        server.count("watch", "packagerepositories"),
        1,
        "only the relay's own watch"
    );
    assert_eq!(server.control().open_watches(), 4);
}
