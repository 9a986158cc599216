//! Credentials against kubectl and apisim: a repository created with `kubectl apply` (inline
//! password, bearer token, URL userinfo, and so a last-applied annotation full of them) never
//! shows its credentials on any output path; and applying a redacted dump back never changes a
//! credential on the server (the server refuses it, naming the field).
//!
//! kubectl is found on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use glasskube_api::PackageRepository;
use kube::Api;
use repocache::debug::DebugServer;
use repocache::{CacheConfig, ReflectorBuilder};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::run::repocache_env as repocache;

/// Longer than the shared `repocache_test_support::PATIENCE`: each test runs the binary
/// several times.
const PATIENCE: Duration = Duration::from_secs(30);

/// Every credential the applied objects carry; none may appear unless asked for.
const SECRETS: [&str; 5] = [
    "inline-user-7Hq2",
    "inline-password-Zk81",
    "url-user-Pw4e",
    "url-password-Lm93",
    "bearer-token-Qx56",
];

const APPLIED: &str = "\
apiVersion: packages.glasskube.dev/v1alpha1
kind: PackageRepository
metadata:
  name: private-mirror
spec:
  url: https://url-user-Pw4e:url-password-Lm93@mirror.example/packages
  auth:
    basic:
      username: inline-user-7Hq2
      password: inline-password-Zk81
---
apiVersion: packages.glasskube.dev/v1alpha1
kind: PackageRepository
metadata:
  name: team-bearer
spec:
  url: https://team.example/packages
  auth:
    bearer:
      token: bearer-token-Qx56
---
apiVersion: packages.glasskube.dev/v1alpha1
kind: PackageRepository
metadata:
  name: public
  labels:
    tier: open
spec:
  url: https://packages.example/public
";

struct Setup {
    server: apisim::ServerHandle,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Setup {
    async fn new() -> Self {
        let server = repocache_test_support::start(apisim::ServerConfig::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let setup = Setup {
            server,
            dir,
            kubeconfig,
        };
        let file = setup.write("applied.yaml", APPLIED);
        let out = setup
            .kubectl(&["apply", "-f", file.to_str().unwrap()])
            .await;
        assert!(out.ok, "kubectl apply failed: {}", out.stderr);
        setup
    }

    fn kc(&self) -> &str {
        self.kubeconfig.to_str().unwrap()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn kubectl(&self, args: &[&str]) -> Out {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        run(command).await
    }

    /// The server's objects, by a plain `kubectl get -o json`.
    async fn server_objects(&self) -> Vec<Value> {
        let out = self
            .kubectl(&["get", "packagerepositories", "-o", "json"])
            .await;
        assert!(out.ok, "{}", out.stderr);
        let list: Value = serde_json::from_str(&out.stdout).unwrap();
        list["items"].as_array().unwrap().clone()
    }
}

/// How a kubectl run ended (the `repocache` binary runs through [`crate::run`]).
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(mut command: Command) -> Out {
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the command did not finish in time")
        .expect("cannot run the command (kubectl must be on PATH)");
    Out {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what}: {secret:?} leaked:\n{text}");
    }
}

/// One plain HTTP/1.1 GET with a bearer token: the body.
async fn get(url: &str, path: &str, token: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

fn credentials(objects: &[Value]) -> Vec<(String, Value, Value)> {
    let mut found: Vec<(String, Value, Value)> = objects
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_owned(),
                o["spec"]["url"].clone(),
                o["spec"]["auth"].clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[tokio::test]
async fn credentials_applied_with_kubectl_appear_on_no_output_path() {
    let s = Setup::new().await;
    let kc = s.kc();
    // The leak vectors exist: the server holds the credentials in the spec, in the URL and in
    // kubectl's last-applied annotation.
    let stored = s.server_objects().await;
    let private = stored
        .iter()
        .find(|o| o["metadata"]["name"] == "private-mirror")
        .unwrap();
    let annotation = private["metadata"]["annotations"][glasskube_api::LAST_APPLIED_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(annotation.contains("inline-password-Zk81"), "{annotation}");

    // 1. The command, from a fresh cache built from the cluster, every output, with logs on.
    for output in ["table", "wide", "json", "yaml", "name"] {
        let out = repocache(&["dump", "--kubeconfig", kc, "-o", output, "-vvv"], &[]).await;
        assert_eq!(out.code, 0, "{output}: {}", out.stderr);
        assert!(out.stdout.contains("private-mirror"), "{}", out.stdout);
        assert_no_secret(&format!("dump -o {output}"), &out.stdout);
        assert_no_secret(&format!("dump -o {output} -vvv logs"), &out.stderr);
    }
    let wide = repocache(&["dump", "--kubeconfig", kc, "-o", "wide"], &[]).await;
    assert!(
        wide.stdout
            .contains("https://<redacted>@mirror.example/packages"),
        "{}",
        wide.stdout
    );
    let out = repocache(&["verify", "--kubeconfig", kc, "-vvv"], &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_no_secret("verify", &(out.stdout + &out.stderr));

    // 2. A process whose cache keeps objects byte-equal (annotation included), behind a debug
    //    endpoint with Glasskube's redaction, and one with only the generic default.
    let (raw_cache, _reflector) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(s.server.client()))
            .cache_config(CacheConfig::new().no_transform())
            .start();
    raw_cache.wait_ready(PATIENCE).await.unwrap();
    let kept = raw_cache.get("private-mirror");
    assert!(
        kept.as_ref()
            .and_then(|r| r.metadata.annotations.as_ref())
            .is_some_and(|a| a.contains_key(glasskube_api::LAST_APPLIED_ANNOTATION)),
        "no_transform keeps the annotation"
    );
    let glasskube = DebugServer::builder()
        .cache(&raw_cache)
        .redact(repocache_cli::redact)
        .token("t0k3n")
        .start()
        .await
        .unwrap();
    let generic = DebugServer::builder()
        .cache(&raw_cache)
        .token("t0k3n")
        .start()
        .await
        .unwrap();
    for endpoint in [glasskube.url(), generic.url()] {
        let body = get(&endpoint, "/debug/caches?objects=true", "t0k3n").await;
        assert!(body.contains("private-mirror"), "{body}");
        assert_no_secret("/debug/caches", &body);
        let metrics = get(&endpoint, "/metrics", "t0k3n").await;
        assert_no_secret("/metrics", &metrics);
        for output in ["table", "wide", "json", "yaml", "name"] {
            let out = repocache(
                &["dump", "--endpoint", &endpoint, "-o", output, "-vvv"],
                &[("REPOCACHE_TOKEN", "t0k3n")],
            )
            .await;
            assert_eq!(out.code, 0, "{output}: {}", out.stderr);
            assert_no_secret(&format!("dump --endpoint -o {output}"), &out.stdout);
            assert_no_secret("dump --endpoint logs", &out.stderr);
        }
    }

    // 3. Debug output of what a default cache holds.
    let (cache, _reflector) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(s.server.client())).start();
    cache.wait_ready(PATIENCE).await.unwrap();
    let held = cache.list();
    assert_eq!(held.len(), 3);
    assert_no_secret("Debug of cached objects", &format!("{held:?}"));

    // The secrets are there to be found when asked for (so the checks above can fail).
    let shown = repocache(
        &["dump", "--kubeconfig", kc, "-o", "json", "--show-secrets"],
        &[],
    )
    .await;
    for secret in SECRETS {
        assert!(shown.stdout.contains(secret), "{secret}: {}", shown.stdout);
    }
}

#[tokio::test]
async fn applying_a_redacted_dump_back_is_refused_and_changes_no_credential() {
    let s = Setup::new().await;
    let before = credentials(&s.server_objects().await);
    assert_eq!(before.len(), 3);
    for output in ["yaml", "json"] {
        for validate in ["--validate=false", "--validate=true"] {
            let dump = repocache(&["dump", "--kubeconfig", s.kc(), "-o", output], &[]).await;
            assert_eq!(dump.code, 0, "{}", dump.stderr);
            let file = s.write(&format!("dump.{output}"), &dump.stdout);
            let out = s
                .kubectl(&["apply", validate, "-f", file.to_str().unwrap()])
                .await;
            // Refused. With --validate=false (the command) by the server, for the
            // objects that carry credentials, with a message naming the field; with client-side
            // validation, kubectl may stop even earlier (apisim's OpenAPI has no `v1/List`).
            assert!(!out.ok, "{output} {validate}: {}", out.stdout);
            assert_no_secret("kubectl's error", &out.stderr);
            if validate == "--validate=false" {
                for field in [
                    "spec.auth.basic.password",
                    "spec.auth.basic.username",
                    "spec.url",
                ] {
                    assert!(
                        out.stderr.contains(&format!(
                            "{field}: Invalid value: \"object\": {field} in body must be of type string"
                        )),
                        "{output} {validate}: {field} in {}",
                        out.stderr
                    );
                }
                assert!(
                    out.stderr.contains("spec.auth.bearer.token: Invalid value"),
                    "{}",
                    out.stderr
                );
                assert!(
                    out.stderr.contains(
                        "PackageRepository.packages.glasskube.dev \"private-mirror\" is invalid"
                    ),
                    "{}",
                    out.stderr
                );
                assert_no_secret("kubectl's error", &out.stderr);
                // The object without credentials applies (unchanged).
                assert!(
                    out.stdout
                        .contains("packagerepository.packages.glasskube.dev/public"),
                    "{}",
                    out.stdout
                );
            }
            // Every credential on the server is as it was.
            let after = credentials(&s.server_objects().await);
            assert_eq!(after, before, "{output} {validate}");
        }
    }
    // Sanity: an object without credentials really round-trips (its change is applied).
    let dump = repocache(&["dump", "--kubeconfig", s.kc(), "-o", "yaml"], &[]).await;
    let mut list: Value = serde_yaml::from_str(&dump.stdout).unwrap();
    let items = list["items"].as_array_mut().unwrap();
    items.retain(|o| o["metadata"]["name"] == "public");
    items[0]["metadata"]["labels"]["tier"] = "changed".into();
    let file = s.write("public.yaml", &serde_yaml::to_string(&list).unwrap());
    let out = s
        .kubectl(&["apply", "--validate=false", "-f", file.to_str().unwrap()])
        .await;
    assert!(out.ok, "{}", out.stderr);
    let public = s.server.get("packagerepositories", None, "public").unwrap();
    assert_eq!(public["metadata"]["labels"]["tier"], "changed");
}
