//! `repocache relay` as a child process: it says whom it serves, writes a private kubeconfig,
//! and answers through it from its cache; a non-loopback address without --authorize is refused.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::time::Duration;

use repocache_test_support::PATIENCE;
use tokio::io::AsyncReadExt as _;

use crate::run::{BIN, assert_one_error_line, repocache};

#[tokio::test]
async fn the_relay_writes_a_kubeconfig_and_serves_through_it() {
    let server = repocache_test_support::apisim().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream");
    server.write_kubeconfig(&upstream).unwrap();
    let written = dir.path().join("relay-kubeconfig");
    let mut child = tokio::process::Command::new(BIN)
        .arg("relay")
        .arg("--kubeconfig")
        .arg(&upstream)
        .args(["--listen", "127.0.0.1:0", "--kind", "packagerepositories"])
        .arg("--write-kubeconfig")
        .arg(&written)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !written.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no kubeconfig written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Written whole only after the relay is ready, and for its owner only.
    let mode = std::fs::metadata(&written).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let kubeconfig = kube::config::Kubeconfig::read_from(&written).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert!(
        config
            .cluster_url
            .to_string()
            .starts_with("http://127.0.0.1:")
    );
    let client = kube::Client::try_from(config).unwrap();
    let request = http::Request::get("/apis/packages.glasskube.dev/v1alpha1/packagerepositories")
        .body(Vec::new().into())
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .contains_key(repocache::layer::GENERATION_HEADER),
        "not answered from the relay's cache"
    );
    assert_eq!(server.count("list", "packagerepositories"), 1);
    child.kill().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("SERVES ONLY THE LOCAL USER"), "{stderr}");
    assert!(stderr.contains("caching PackageRepository"), "{stderr}");
}

#[tokio::test]
async fn the_relay_refuses_a_remote_address_without_authorization() {
    let server = repocache_test_support::apisim().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream");
    server.write_kubeconfig(&upstream).unwrap();
    let upstream = upstream.to_str().unwrap();
    let run = repocache(&["relay", "--kubeconfig", upstream, "--listen", "0.0.0.0:0"]).await;
    assert_one_error_line(&run, "not a loopback address");
}
