//! apisim on a runtime of its own, as a separate API server process would be: the server's
//! accept loop, connection and watch tasks run on their own worker threads, never on the
//! benchmark's.

use std::time::Duration;

use anyhow::Context as _;
use apisim::{Control, Server, ServerConfig, ServerHandle};
use serde_json::Value;
use tokio::runtime::Runtime;

use crate::fixture;

/// The resource plural the end-to-end part reads and writes.
pub const RESOURCE: &str = "packagerepositories";

/// A running apisim with its own runtime. Create and drop it outside any async context.
pub struct Sim {
    handle: Option<ServerHandle>,
    runtime: Option<Runtime>,
    url: String,
}

impl Sim {
    /// Starts apisim on 127.0.0.1 (port 0) with `config`, on two worker threads of its own.
    pub fn start(config: ServerConfig) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("apisim")
            .enable_all()
            .build()
            .context("building apisim's runtime")?;
        let handle = runtime
            .block_on(Server::start(config))
            .context("starting apisim")?;
        let url = handle.url().to_owned();
        Ok(Self {
            handle: Some(handle),
            runtime: Some(runtime),
            url,
        })
    }

    /// apisim seeded with the benchmark's `PackageRepository` fixtures `0..n`.
    pub fn with_repositories(n: usize, bookmark_interval: Duration) -> anyhow::Result<Self> {
        Self::start(
            ServerConfig::default()
                .with_seed(seed(n))
                .with_bookmark_interval(bookmark_interval),
        )
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Accounting, faults and direct writes (which notify watches like API writes).
    pub fn control(&self) -> Control {
        match &self.handle {
            Some(handle) => handle.control(),
            None => unreachable!("the handle lives until drop"),
        }
    }

    /// Writes a kubeconfig for this server to `path` (for a process that runs against it).
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> anyhow::Result<()> {
        match &self.handle {
            Some(handle) => handle
                .write_kubeconfig(path)
                .context("writing apisim's kubeconfig"),
            None => unreachable!("the handle lives until drop"),
        }
    }

    /// A new `kube::Client` for this server, with a connection pool of its own. Call it inside
    /// the runtime that will use it (the client spawns its buffer task there).
    pub fn client(&self) -> anyhow::Result<kube::Client> {
        let uri: http::Uri = self.url.parse().context("apisim's URL")?;
        kube::Client::try_from(kube::Config::new(uri)).context("building a kube client")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let (Some(handle), Some(runtime)) = (self.handle.take(), self.runtime.take()) {
            runtime.block_on(handle.shutdown());
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The fixture objects `0..n` as apisim seeds them (apisim assigns uid and resourceVersion).
pub fn seed(n: usize) -> Vec<Value> {
    (0..n)
        .filter_map(|i| {
            let mut v = serde_json::to_value(fixture::repository(i, 1)).ok()?;
            if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
                meta.remove("uid");
            }
            Some(v)
        })
        .collect()
}

/// The `resourceVersion` of a JSON object.
pub fn resource_version(obj: &Value) -> Option<&str> {
    obj.get("metadata")?.get("resourceVersion")?.as_str()
}

/// Requests apisim counted since its last reset, by verb, on [`RESOURCE`] only.
pub fn counts_on_resource(control: &Control) -> std::collections::BTreeMap<String, u64> {
    control
        .counts()
        .into_iter()
        .filter(|((_, resource), _)| resource == RESOURCE)
        .map(|((verb, _), n)| (verb, n))
        .collect()
}

/// Waits (up to `timeout`) until apisim has counted at least `n` WATCH requests on
/// [`RESOURCE`] since its last reset.
pub async fn wait_for_watch_requests(control: &Control, n: u64, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while control.count("watch", RESOURCE) < n {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_objects_are_typed_and_named() {
        let objs = seed(2);
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0]["kind"], "PackageRepository");
        assert_eq!(objs[1]["metadata"]["name"], fixture::name(1));
        assert!(objs[0]["metadata"].get("resourceVersion").is_none());
    }
}
