//! The `apisim` binary: serving seeds, and one-line errors with a non-zero exit on bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_apisim");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

async fn fails_with_one_line(args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(BIN).args(args).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr, got: {err:?}"
    );
    err
}

#[tokio::test]
async fn bad_flags_and_files_exit_non_zero() {
    fails_with_one_line(&["serve", "--bogus"]).await;
    fails_with_one_line(&["serve", "--port", "notaport"]).await;
    fails_with_one_line(&["frobnicate"]).await;
    let e = fails_with_one_line(&["serve", "--seed", "/nonexistent/seed.yaml"]).await;
    assert!(e.contains("/nonexistent/seed.yaml"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: [unclosed\n").unwrap();
    fails_with_one_line(&["serve", "--seed", bad.to_str().unwrap()]).await;
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    )
    .unwrap();
    let e = fails_with_one_line(&["serve", "--seed", unknown.to_str().unwrap()]).await;
    assert!(e.contains("Widget"), "{e}");
    let e = fails_with_one_line(&["serve", "--policy", "/nonexistent/policy.yaml"]).await;
    assert!(e.contains("/nonexistent/policy.yaml"), "{e}");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "tokens: [{token: t}]\n").unwrap();
    let e = fails_with_one_line(&["serve", "--policy", policy.to_str().unwrap()]).await;
    assert!(e.contains("invalid policy"), "{e}");
}

#[tokio::test]
async fn serve_prints_url_and_serves_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--port",
            "0",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--seed",
        ])
        .arg(format!("{FIXTURES}/packagerepositories.yaml"))
        .arg(format!("{FIXTURES}/packages.yaml"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(std::fs::read_to_string(&kc).unwrap().contains(&url));
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("packages.glasskube.dev", "v1alpha1", "Package"),
        "packages",
    );
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(client, &ar);
    let list = api.list(&Default::default()).await.unwrap();
    assert!(!list.items.is_empty());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn serve_with_a_policy_over_tls_checks_tokens() {
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--tls", "--policy"])
        .arg(format!("{FIXTURES}/policy.yaml"))
        .arg("--seed")
        .arg(format!("{FIXTURES}/packagerepositories.yaml"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(
            "packages.glasskube.dev",
            "v1alpha1",
            "PackageRepository",
        ),
        "packagerepositories",
    );
    let list = |token: Option<&str>| {
        let mut config = kube::Config::new(url.parse().unwrap());
        config.accept_invalid_certs = true;
        config.auth_info.token = token.map(|t| t.to_owned().into());
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::all_with(kube::Client::try_from(config).unwrap(), &ar);
        async move { api.list(&Default::default()).await }
    };
    assert_eq!(list(Some("alice-token")).await.unwrap().items.len(), 5);
    match list(None).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 401),
        other => panic!("no token, yet {other:?}"),
    }
    child.kill().await.unwrap();
}
