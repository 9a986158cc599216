//! Helpers: an apisim and a relay of the four Glasskube kinds in front of it, raw requests, and
//! a watch body read line by line.

use std::time::Duration;

use apisim::{ServerConfig, ServerHandle};
use bytes::Bytes;
use glasskube_api::{ClusterPackage, Package, PackageInfo, PackageRepository};
use http::Request;
use http_body_util::BodyExt as _;
use repocache_relay::{Relay, RelayBuilder};
use serde_json::Value;

pub const T: Duration = Duration::from_secs(20);

/// An apisim seeded with the fixtures, bookmarks every 50 ms.
pub async fn apisim() -> ServerHandle {
    repocache_test_support::init_tracing();
    repocache_test_support::apisim_with(
        ServerConfig::default().with_bookmark_interval(Duration::from_millis(50)),
    )
    .await
}

/// An apisim that serves pods too (`config`'s other settings kept), with one pod `web` in
/// `default`: the target of the exec proofs.
pub async fn apisim_with_pod(config: ServerConfig) -> ServerHandle {
    let server =
        repocache_test_support::apisim_with(config.with_resource(apisim::ResourceDef::pods()))
            .await;
    server
        .control()
        .create(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "example/web"}]},
        }))
        .unwrap();
    server
}

/// A relay builder of the four Glasskube kinds over `server`.
pub fn builder(server: &ServerHandle) -> RelayBuilder {
    Relay::builder(repocache_test_support::client_without_retry(server))
        .kind::<PackageRepository>()
        .kind::<Package>()
        .kind::<ClusterPackage>()
        .kind::<PackageInfo>()
}

/// A started, ready relay.
pub async fn ready(builder: RelayBuilder) -> Relay {
    let relay = builder.start().await.unwrap();
    relay.wait_ready(T).await.unwrap();
    relay
}

/// A client of the relay (no retries).
pub fn client(relay: &Relay) -> kube::Client {
    let mut config = kube::Config::new(relay.url().unwrap().parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// One response: status, the headers, the body.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Whether the relay answered from a snapshot (the layer's generation header).
    pub fn served_locally(&self) -> bool {
        self.headers
            .contains_key(repocache::layer::GENERATION_HEADER)
    }
}

pub async fn request(
    client: &kube::Client,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let response = tokio::time::timeout(T, client.send(builder.body(body.into()).unwrap()))
        .await
        .expect("request timed out")
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(T, response.into_body().collect())
        .await
        .expect("body timed out")
        .unwrap()
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(client: &kube::Client, uri: &str) -> Answer {
    request(client, "GET", uri, None).await
}

/// `value` without `managedFields` anywhere (the cache's transform drops them).
pub fn drop_managed_fields(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                    meta.remove("managedFields");
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// A watch response read line by line.
pub struct Lines {
    body: kube::client::Body,
    buf: Vec<u8>,
    pub status: u16,
}

impl Lines {
    pub async fn open(client: &kube::Client, uri: &str) -> Lines {
        let request = Request::builder().uri(uri).body(Vec::new().into()).unwrap();
        let response = tokio::time::timeout(T, client.send(request))
            .await
            .expect("watch timed out")
            .unwrap();
        Lines {
            status: response.status().as_u16(),
            body: response.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next line as JSON; `None` at the end of the stream. Panics after `T`.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let frame = tokio::time::timeout(T, self.body.frame())
                .await
                .expect("no watch line in time");
            match frame {
                None => return None,
                Some(Err(_)) => return None,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The next line that is not a BOOKMARK.
    pub async fn next_event(&mut self) -> Option<Value> {
        loop {
            let line = self.next().await?;
            if line["type"] != "BOOKMARK" {
                return Some(line);
            }
        }
    }
}

/// A PackageRepository named `name` with `labels`.
pub fn repo(name: &str, labels: Value) -> Value {
    serde_json::json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1",
        "kind": "PackageRepository",
        "metadata": {"name": name, "labels": labels},
        "spec": {"url": format!("https://{name}.example")},
    })
}

pub const REPOS: &str = "/apis/packages.glasskube.dev/v1alpha1/packagerepositories";
