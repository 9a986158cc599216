//! The server's configuration, the state its handlers and watches share, and the handle tests
//! drive it through (`ServerHandle`, `Control`). Starting it is `listen`'s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accounting::{Accounting, RequestRecord};
use crate::errors::{ApiError, Error};
use crate::faults::{FailSpec, Faults, LatencySpec};
use crate::resources::{ResId, ResourceDef};
use crate::store::{EventType, Filter, Preconditions, Store, meta_str};

/// Server configuration. `ServerConfig::default()` serves the Glasskube kinds on a free port.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Served resource types (default: [`ResourceDef::defaults`]).
    pub resources: Vec<ResourceDef>,
    /// Objects present at start (keep their status; get uid, timestamps and resourceVersions).
    pub seed: Vec<Value>,
    /// Number of events kept for watch resumption (default 1000).
    pub history_size: usize,
    /// Interval between BOOKMARK events on watches that allow them (default 1 s).
    pub bookmark_interval: Duration,
    /// How long a pagination snapshot (continue token) stays valid (default 5 min).
    pub continue_ttl: Duration,
    /// Capacity of the live event feed; a watch that falls further behind is closed (default 10000).
    pub feed_capacity: usize,
    /// Timeout for watches that do not send `timeoutSeconds` (default: none).
    pub default_watch_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 0,
            resources: ResourceDef::defaults(),
            seed: Vec::new(),
            history_size: 1000,
            bookmark_interval: Duration::from_secs(1),
            continue_ttl: Duration::from_secs(300),
            feed_capacity: 10_000,
            default_watch_timeout: None,
        }
    }
}

impl ServerConfig {
    /// Builder: serve an additional resource type.
    pub fn with_resource(mut self, def: ResourceDef) -> Self {
        self.resources.push(def);
        self
    }

    /// Builder: add seed objects.
    pub fn with_seed(mut self, objects: impl IntoIterator<Item = Value>) -> Self {
        self.seed.extend(objects);
        self
    }

    /// Builder: add seed objects from multi-document YAML.
    pub fn with_seed_yaml(mut self, yaml: &str) -> Result<Self, Error> {
        self.seed.extend(crate::seed::load_seed_yaml(yaml)?);
        Ok(self)
    }

    /// Builder: history window size.
    pub fn with_history_size(mut self, n: usize) -> Self {
        self.history_size = n;
        self
    }

    /// Builder: bookmark interval.
    pub fn with_bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    /// Builder: port (0 = any free port).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// State shared by the connection tasks, handlers and watch tasks.
pub(crate) struct Shared {
    pub store: Store,
    pub accounting: Accounting,
    pub faults: Faults,
    pub config: ServerConfig,
    pub open_watches: Arc<AtomicUsize>,
    pub addr: SocketAddr,
}

/// The running server. Dropping it stops the server and closes every connection, open watches
/// included. Dereferences to [`Control`] for accounting, faults and direct object access.
pub struct ServerHandle {
    pub(crate) control: Control,
    pub(crate) url: String,
    pub(crate) addr: SocketAddr,
    pub(crate) client: kube::Client,
    pub(crate) token: CancellationToken,
    pub(crate) task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Base URL, e.g. `http://127.0.0.1:38211`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `kube::Client` for this server (cheap to clone).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A cloneable [`Control`] for other tasks. It keeps the server's state alive, not the
    /// server: the server stops when this handle is dropped.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The kubeconfig (YAML) that points kubectl at this server: plain HTTP, no auth.
    pub fn kubeconfig_yaml(&self) -> Result<String, Error> {
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "apisim", "cluster": {"server": self.url}}],
            "users": [{"name": "apisim", "user": {}}],
            "contexts": [{"name": "apisim", "context": {"cluster": "apisim", "user": "apisim", "namespace": "default"}}],
            "current-context": "apisim",
            "preferences": {}
        });
        serde_yaml::to_string(&cfg).map_err(|e| Error::Kubeconfig(e.to_string()))
    }

    /// Write [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig_yaml()?)?;
        Ok(())
    }

    /// Stop accepting, close every connection and wait until all are closed.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl std::ops::Deref for ServerHandle {
    type Target = Control;
    fn deref(&self) -> &Control {
        &self.control
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Summary of the server state (`GET /apisim/state`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StateSummary {
    /// Current resourceVersion (the global counter).
    pub resource_version: u64,
    /// Watches may resume from this resourceVersion or newer.
    pub compacted_resource_version: u64,
    /// Events in the history window.
    pub history_len: usize,
    /// Open watch streams.
    pub open_watches: usize,
    /// Objects per resource plural.
    pub objects: BTreeMap<String, usize>,
}

/// Control over a running server: accounting, fault injection and direct object access (writes
/// made here behave exactly like API writes: they get resourceVersions and notify watches).
#[derive(Clone)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

impl Control {
    fn res(&self, resource: &str) -> Result<ResId, ApiError> {
        self.shared
            .store
            .registry
            .find_name(resource)
            .ok_or_else(ApiError::path_not_found)
    }

    fn res_of(&self, obj: &Value) -> Result<ResId, ApiError> {
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        self.shared
            .store
            .registry
            .find_kind(av, kind)
            .ok_or_else(|| ApiError::bad_request(format!("no resource registered for {av} {kind}")))
    }

    // ---- accounting ----

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.accounting.requests()
    }

    /// How many requests with this verb (`list`, `watch`, …) hit this resource (`packagerepositories`,
    /// `packagerepositories/status`) since the last reset.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.shared.accounting.count(verb, resource)
    }

    /// All counters: (verb, resource) → count.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.shared.accounting.counts()
    }

    /// Clear the request log and counters.
    pub fn reset_requests(&self) {
        self.shared.accounting.reset();
    }

    // ---- state ----

    /// The current resourceVersion (global counter).
    pub fn resource_version(&self) -> u64 {
        self.shared.store.current_rv()
    }

    /// Number of open watch streams.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Counters and sizes, as served at `GET /apisim/state`.
    pub fn state(&self) -> StateSummary {
        StateSummary {
            resource_version: self.shared.store.current_rv(),
            compacted_resource_version: self.shared.store.compacted_rv(),
            history_len: self.shared.store.history_len(),
            open_watches: self.open_watches(),
            objects: self.shared.store.counts().into_iter().collect(),
        }
    }

    /// Wait until at least `n` watches are open (or the timeout passes; returns whether reached).
    pub async fn wait_for_watches(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open_watches() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    // ---- objects (API semantics, watches notified) ----

    /// Get an object. `resource` is a plural, `plural.group`, singular or short name.
    pub fn get(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.shared.store.get(self.res(resource)?, namespace, name)
    }

    /// All objects of a resource (all namespaces), ordered by namespace and name.
    pub fn list(&self, resource: &str) -> Result<Vec<Value>, ApiError> {
        Ok(self
            .shared
            .store
            .list(self.res(resource)?, &Filter::default(), 0, None)?
            .items)
    }

    /// Create an object (POST semantics: status dropped for kinds with a status subresource).
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let res = self.res_of(&obj)?;
        let ns = meta_str(&obj, "namespace").map(String::from);
        self.shared.store.create(res, ns.as_deref(), obj, false)
    }

    /// Replace an object (PUT semantics; a `metadata.resourceVersion` in `obj` is a precondition).
    pub fn replace(&self, obj: Value) -> Result<Value, ApiError> {
        self.write(obj, false)
    }

    /// Replace an object's status (PUT on `/status`).
    pub fn replace_status(&self, obj: Value) -> Result<Value, ApiError> {
        self.write(obj, true)
    }

    fn write(&self, obj: Value, status: bool) -> Result<Value, ApiError> {
        let res = self.res_of(&obj)?;
        let ns = meta_str(&obj, "namespace").map(String::from);
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        self.shared
            .store
            .update_with(res, ns.as_deref(), &name, status, false, |_| Ok(obj))
    }

    /// Apply a JSON merge patch (RFC 7386) to an object.
    pub fn merge_patch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let res = self.res(resource)?;
        let status = resource.ends_with("/status");
        self.shared
            .store
            .update_with(res, namespace, name, status, false, |cur| {
                let mut v = cur.clone();
                json_patch::merge(&mut v, patch);
                Ok(v)
            })
    }

    /// Delete an object (with finalizers: marks it deleting).
    pub fn delete(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.shared.store.delete(
            self.res(resource)?,
            namespace,
            name,
            &Preconditions::default(),
            false,
        )
    }

    // ---- faults ----

    /// End every open watch stream cleanly (the chunked response terminates).
    pub fn close_watches(&self) {
        tracing::info!("fault: closing all watches");
        self.shared.faults.close_watches();
    }

    /// Stall watches: connections stay open but nothing is sent (no events, no bookmarks) until
    /// `duration` passes or [`release_watches`](Self::release_watches). Applies to watches opened
    /// while the stall is active too. Events are delivered after the stall ends, unless the watch
    /// fell more than `feed_capacity` events behind, in which case it is closed.
    pub fn stall_watches(&self, duration: Option<Duration>) {
        tracing::info!(?duration, "fault: stalling watches");
        self.shared.faults.stall_watches(duration);
    }

    /// End a stall.
    pub fn release_watches(&self) {
        self.shared.faults.release();
    }

    /// Fail the next matching requests.
    pub fn fail_next(&self, spec: FailSpec) {
        tracing::info!(?spec, "fault: failing requests");
        self.shared.faults.add_fail(spec);
    }

    /// Delay matching requests.
    pub fn add_latency(&self, spec: LatencySpec) {
        self.shared.faults.add_latency(spec);
    }

    /// Pending failure and latency rules.
    pub fn faults(&self) -> (Vec<FailSpec>, Vec<LatencySpec>) {
        (
            self.shared.faults.pending_failures(),
            self.shared.faults.latencies(),
        )
    }

    /// Remove all failure and latency rules and end any stall.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Compact the history: every watch resuming from a resourceVersion before now gets 410 Expired,
    /// and every outstanding continue token expires. Returns the new resourceVersion.
    pub fn compact(&self) -> u64 {
        tracing::info!("fault: compacting history");
        self.shared.store.compact()
    }

    /// Simulate an API server restart: drop every connection (open watches included), forget the
    /// history and continue tokens; keep or wipe the objects. The resourceVersion counter continues.
    pub fn restart(&self, keep_objects: bool) -> u64 {
        tracing::info!(keep_objects, "fault: restart");
        let rv = self.shared.store.restart(keep_objects);
        self.shared.faults.drop_connections();
        rv
    }

    /// Send a line that is not JSON to every open watch. Returns the number of watches reached.
    pub fn inject_malformed_line(&self, line: Option<&str>) -> usize {
        let line = line.unwrap_or("{this is not json").replace('\n', " ");
        self.shared.store.send_raw(None, line)
    }

    /// Send an arbitrary event to the open watches of `resource` (not stored, not in history).
    pub fn inject_event(
        &self,
        resource: &str,
        event_type: &str,
        object: &Value,
    ) -> Result<usize, ApiError> {
        let res = self.res(resource)?;
        let line = k8s_wire::encode_line(event_type, object);
        Ok(self.shared.store.send_raw(Some(res), line))
    }

    /// Send `bytes` to the open watches of `resource` exactly as given: no newline is added and
    /// they need not be UTF-8 (a line that is not UTF-8, a line longer than a client's limit,
    /// or the start of a line that never ends). Returns the number of watches reached.
    ///
    /// Over HTTP: `POST /apisim/faults/inject-bytes?resource=<resource>` with the bytes as the
    /// request body (any content type); the answer's `watches` is the number reached.
    pub fn inject_bytes(
        &self,
        resource: &str,
        bytes: impl Into<bytes::Bytes>,
    ) -> Result<usize, ApiError> {
        let res = self.res(resource)?;
        tracing::info!(resource, "fault: raw bytes to watches");
        Ok(self.shared.store.send_bytes(res, bytes.into()))
    }

    /// Cut a watch line in the middle: send the first half of the `event_type` event for
    /// `object` (no newline) to the open watches of `resource`, then end those watches, as a
    /// connection dropped mid-line would. Returns the number of watches reached.
    pub fn inject_cut_line(
        &self,
        resource: &str,
        event_type: &str,
        object: &Value,
    ) -> Result<usize, ApiError> {
        let res = self.res(resource)?;
        let line = k8s_wire::encode_line(event_type, object);
        let line = line.trim_end();
        let mut half = line.len() / 2;
        while !line.is_char_boundary(half) {
            half -= 1;
        }
        Ok(self
            .shared
            .store
            .send_cut(res, line.get(..half).unwrap_or_default().to_owned()))
    }

    /// Send a MODIFIED event whose object does not decode as the typed resource (its `spec.url` is
    /// a number, as for a broken PackageRepository) to the open watches of `resource`.
    pub fn inject_undecodable(&self, resource: &str) -> Result<usize, ApiError> {
        let res = self.res(resource)?;
        let def = self.shared.store.def(res)?.clone();
        let mut meta = json!({
            "name": "apisim-undecodable",
            "uid": "00000000-0000-4000-8000-000000000bad",
            "resourceVersion": self.resource_version().to_string(),
            "creationTimestamp": crate::store::now_rfc3339(),
        });
        if def.namespaced {
            meta["namespace"] = json!("default");
        }
        let obj = json!({"apiVersion": def.api_version(), "kind": def.kind, "metadata": meta, "spec": {"url": 42}});
        self.inject_event(resource, EventType::Modified.as_str(), &obj)
    }

    /// Side door: create or replace `obj` without notifying watches and without a history entry
    /// (a watch that silently missed an event). The resourceVersion counter still advances.
    pub fn side_door_put(&self, obj: Value) -> Result<Value, ApiError> {
        let res = self.res_of(&obj)?;
        self.shared.store.side_put(res, obj)
    }

    /// Side door: delete without notifying watches.
    pub fn side_door_delete(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.shared
            .store
            .side_delete(self.res(resource)?, namespace, name)
    }
}
