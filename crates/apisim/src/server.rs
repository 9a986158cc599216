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
use crate::faults::{FailSpec, Fault, FaultOutcome, Faults, LatencySpec};
use crate::policy::Policy;
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
    /// The authentication and authorization policy (default: none, nothing is checked); see
    /// [`Policy`] and [`with_policy`](Self::with_policy).
    pub policy: Option<Arc<Policy>>,
    /// Serve HTTPS with apisim's own self-signed certificate (for `127.0.0.1` and `localhost`)
    /// instead of plain HTTP (default `false`); see [`with_tls`](Self::with_tls).
    pub tls: bool,
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
            policy: None,
            tls: false,
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

    /// Builder: check every request against `policy` (401 without a known bearer token, 403 when
    /// no rule allows it, as kube-apiserver answers) and serve the TokenReview and
    /// SubjectAccessReview APIs from it. The handle's [`client`](ServerHandle::client) sends no
    /// token then; use [`ServerHandle::client_with_token`].
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Builder: [`with_policy`](Self::with_policy) from a policy file's text (YAML or JSON).
    pub fn with_policy_yaml(self, text: &str) -> Result<Self, Error> {
        Ok(self.with_policy(Policy::from_yaml(text)?))
    }

    /// Builder: serve HTTPS with apisim's compiled-in self-signed test certificate. The handle's
    /// clients and kubeconfig skip certificate verification. kubectl (client-go) sends a bearer
    /// token only over TLS, so this is what lets kubectl's `--token` reach a
    /// [policy](Self::with_policy).
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Builder: port (0 = any free port).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// When a restart fault drops the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropConnections {
    /// At once.
    Now,
    /// After 100 ms, so that the answer to the request that asked for it goes out first.
    Soon,
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

    /// A `kube::Client` for this server that sends `token` as its bearer token (for a server
    /// with a [policy](ServerConfig::with_policy)).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, Error> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.accept_invalid_certs = self.control.shared.config.tls;
        config.auth_info.token = Some(token.to_owned().into());
        kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
    }

    /// A cloneable [`Control`] for other tasks. It keeps the server's state alive, not the
    /// server: the server stops when this handle is dropped.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The kubeconfig (YAML) that points kubectl at this server: no auth; plain HTTP, or HTTPS
    /// without certificate verification ([`ServerConfig::with_tls`]).
    pub fn kubeconfig_yaml(&self) -> Result<String, Error> {
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "apisim", "cluster": if self.control.shared.config.tls {
                json!({"server": self.url, "insecure-skip-tls-verify": true})
            } else {
                json!({"server": self.url})
            }}],
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

    /// Inject one fault: the one entry point every control surface goes through (the HTTP
    /// control API, the per-fault methods below, the chaos schedule).
    pub fn inject(&self, fault: Fault) -> Result<FaultOutcome, ApiError> {
        self.apply(fault, DropConnections::Now)
    }

    /// [`inject`](Self::inject), with a choice of when a restart drops the connections: the HTTP
    /// control API lets its own answer go out first (its connection is one of those dropped).
    pub(crate) fn apply(
        &self,
        fault: Fault,
        drop: DropConnections,
    ) -> Result<FaultOutcome, ApiError> {
        fault.validate()?;
        tracing::info!(fault = fault.name(), "fault");
        let store = &self.shared.store;
        let faults = &self.shared.faults;
        let mut outcome = FaultOutcome::default();
        let mut rv = None;
        match fault {
            Fault::Fail(spec) => {
                tracing::debug!(?spec, "fault: failing requests");
                faults.add_fail(spec);
            }
            Fault::Latency(spec) => faults.add_latency(spec),
            Fault::CloseWatches => {
                outcome.watches = Some(self.open_watches());
                faults.close_watches();
            }
            Fault::StallWatches { duration_ms } => {
                faults.stall_watches(duration_ms.map(Duration::from_millis));
                outcome.watches = Some(self.open_watches());
            }
            Fault::ReleaseWatches => faults.release(),
            Fault::Compact => rv = Some(store.compact()),
            Fault::Restart { keep_objects } => {
                rv = Some(store.restart(keep_objects));
                match drop {
                    DropConnections::Now => faults.drop_connections(),
                    DropConnections::Soon => {
                        let shared = self.shared.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            shared.faults.drop_connections();
                        });
                    }
                }
            }
            Fault::MalformedLine { line } => {
                let line = line
                    .as_deref()
                    .unwrap_or("{this is not json")
                    .replace('\n', " ");
                outcome.watches = Some(store.send_raw(None, line));
            }
            Fault::InjectEvent {
                resource,
                event_type,
                object,
            } => {
                let res = self.res(&resource)?;
                let line = k8s_wire::encode_line(&event_type, &object);
                outcome.watches = Some(store.send_raw(Some(res), line));
            }
            Fault::Undecodable { resource } => {
                let res = self.res(&resource)?;
                let def = store.def(res)?;
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
                let line = k8s_wire::encode_line(EventType::Modified.as_str(), &obj);
                outcome.watches = Some(store.send_raw(Some(res), line));
            }
            Fault::InjectBytes { resource, bytes } => {
                let res = self.res(&resource)?;
                outcome.watches = Some(store.send_bytes(res, bytes));
            }
            Fault::CutLine {
                resource,
                event_type,
                object,
            } => {
                let res = self.res(&resource)?;
                let line = k8s_wire::encode_line(&event_type, &object);
                let line = line.trim_end();
                let mut half = line.len() / 2;
                while !line.is_char_boundary(half) {
                    half -= 1;
                }
                let cut = line.get(..half).unwrap_or_default().to_owned();
                outcome.watches = Some(store.send_cut(res, cut));
            }
            Fault::SideDoorPut { object } => {
                let res = self.res_of(&object)?;
                outcome.object = Some(store.side_put(res, object)?);
            }
            Fault::SideDoorDelete {
                resource,
                namespace,
                name,
            } => {
                let res = self.res(&resource)?;
                outcome.object = Some(store.side_delete(res, namespace.as_deref(), &name)?);
            }
        }
        outcome.resource_version = rv.unwrap_or_else(|| store.current_rv());
        Ok(outcome)
    }

    /// Pending failure and latency rules.
    pub fn faults(&self) -> (Vec<FailSpec>, Vec<LatencySpec>) {
        (
            self.shared.faults.pending_failures(),
            self.shared.faults.latencies(),
        )
    }

    /// Whether watches are stalled now.
    pub fn watches_stalled(&self) -> bool {
        self.shared.faults.stall.borrow().stalled_now()
    }

    /// Remove all failure and latency rules and end any stall.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    // Per-fault shorthands: each builds its `Fault` and injects it.

    /// End every open watch stream cleanly: [`Fault::CloseWatches`].
    pub fn close_watches(&self) {
        self.inject_infallible(Fault::CloseWatches);
    }

    /// Stall watches for `duration` (`None`: until released): [`Fault::StallWatches`].
    pub fn stall_watches(&self, duration: Option<Duration>) {
        let duration_ms = duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.inject_infallible(Fault::StallWatches { duration_ms });
    }

    /// End a stall: [`Fault::ReleaseWatches`].
    pub fn release_watches(&self) {
        self.inject_infallible(Fault::ReleaseWatches);
    }

    /// Fail the next matching requests: [`Fault::Fail`]. A `code` outside 400–599 is refused
    /// (logged; [`inject`](Self::inject) returns the error).
    pub fn fail_next(&self, spec: FailSpec) {
        self.inject_infallible(Fault::Fail(spec));
    }

    /// Delay matching requests: [`Fault::Latency`].
    pub fn add_latency(&self, spec: LatencySpec) {
        self.inject_infallible(Fault::Latency(spec));
    }

    /// Compact the history ([`Fault::Compact`]). Returns the new resourceVersion.
    pub fn compact(&self) -> u64 {
        self.inject_infallible(Fault::Compact).resource_version
    }

    /// Simulate an API server restart ([`Fault::Restart`]). Returns the new resourceVersion.
    pub fn restart(&self, keep_objects: bool) -> u64 {
        self.inject_infallible(Fault::Restart { keep_objects })
            .resource_version
    }

    /// Send a line that is not JSON to every open watch ([`Fault::MalformedLine`]). Returns the
    /// number of watches reached.
    pub fn inject_malformed_line(&self, line: Option<&str>) -> usize {
        let line = line.map(str::to_owned);
        self.inject_infallible(Fault::MalformedLine { line })
            .watches
            .unwrap_or(0)
    }

    /// Send an arbitrary event to the open watches of `resource` ([`Fault::InjectEvent`]).
    pub fn inject_event(
        &self,
        resource: &str,
        event_type: &str,
        object: &Value,
    ) -> Result<usize, ApiError> {
        self.inject_reaching(Fault::InjectEvent {
            resource: resource.to_owned(),
            event_type: event_type.to_owned(),
            object: object.clone(),
        })
    }

    /// Send `bytes` to the open watches of `resource` exactly as given ([`Fault::InjectBytes`]).
    /// Returns the number of watches reached.
    ///
    /// Over HTTP: `POST /apisim/faults/inject-bytes?resource=<resource>` with the bytes as the
    /// request body (any content type); the answer's `watches` is the number reached.
    pub fn inject_bytes(
        &self,
        resource: &str,
        bytes: impl Into<bytes::Bytes>,
    ) -> Result<usize, ApiError> {
        self.inject_reaching(Fault::InjectBytes {
            resource: resource.to_owned(),
            bytes: bytes.into(),
        })
    }

    /// Cut a watch line in the middle ([`Fault::CutLine`]). Returns the number of watches reached.
    pub fn inject_cut_line(
        &self,
        resource: &str,
        event_type: &str,
        object: &Value,
    ) -> Result<usize, ApiError> {
        self.inject_reaching(Fault::CutLine {
            resource: resource.to_owned(),
            event_type: event_type.to_owned(),
            object: object.clone(),
        })
    }

    /// Send a MODIFIED event whose object does not decode as the typed resource to the open
    /// watches of `resource` ([`Fault::Undecodable`]).
    pub fn inject_undecodable(&self, resource: &str) -> Result<usize, ApiError> {
        self.inject_reaching(Fault::Undecodable {
            resource: resource.to_owned(),
        })
    }

    /// Side door: create or replace `obj` without notifying watches and without a history entry
    /// ([`Fault::SideDoorPut`]). The resourceVersion counter still advances.
    pub fn side_door_put(&self, obj: Value) -> Result<Value, ApiError> {
        self.inject_object(Fault::SideDoorPut { object: obj })
    }

    /// Side door: delete without notifying watches ([`Fault::SideDoorDelete`]).
    pub fn side_door_delete(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.inject_object(Fault::SideDoorDelete {
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// For the shorthands whose faults name no resource or object: an error (only a `Fail` with a
    /// code that is not an error status) is logged.
    fn inject_infallible(&self, fault: Fault) -> FaultOutcome {
        let name = fault.name();
        self.inject(fault).unwrap_or_else(|error| {
            tracing::warn!(fault = name, %error, "fault refused");
            FaultOutcome {
                resource_version: self.resource_version(),
                ..FaultOutcome::default()
            }
        })
    }

    fn inject_reaching(&self, fault: Fault) -> Result<usize, ApiError> {
        Ok(self.inject(fault)?.watches.unwrap_or(0))
    }

    fn inject_object(&self, fault: Fault) -> Result<Value, ApiError> {
        self.inject(fault)?
            .object
            .ok_or_else(|| ApiError::internal("a side-door fault returned no object"))
    }
}
