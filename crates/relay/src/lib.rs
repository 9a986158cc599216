//! `repocache-relay`: a Kubernetes-compatible read endpoint in front of an API server. It lists and
//! watches each cached kind once (through repocache's reflector) and serves GET, LIST and WATCH of
//! those kinds to any number of local clients (kubectl, client-go programs, scripts, other
//! repocache processes) from the cache's snapshots; everything else is proxied upstream unchanged.
//! In the data path it sits after the cache: API server → reflector → snapshot → relay → clients.
//!
//! ```no_run
//! # use glasskube_api::PackageRepository;
//! # async fn demo(client: kube::Client) -> Result<(), repocache_relay::RelayError> {
//! use repocache_relay::{Listen, Relay};
//! let relay = Relay::builder(client)
//!     .kind::<PackageRepository>()
//!     .listen("127.0.0.1:0".parse::<Listen>()?)
//!     .start()
//!     .await?;
//! relay.wait_ready(std::time::Duration::from_secs(30)).await?;
//! println!("{}", relay.kubeconfig(None).unwrap_or_default()); // point kubectl at it
//! # Ok(()) }
//! ```
//!
//! # What is served from the cache
//!
//! - **GET and LIST** of a cached kind: by repocache's [`CacheLayer`] (the same code that answers
//!   them inside a `kube::Client`): label and field selectors, `limit`/`continue`,
//!   `resourceVersion` unset, `0` or `NotOlderThan` a version the snapshot reflects; what it cannot
//!   honour (`Exact`, a version newer than the snapshot, other media types, a cache not ready or
//!   stale) goes upstream.
//! - **WATCH** of a cached kind (its reflector publishes every batch of events at once, no
//!   publish interval): from the kind's hub, which turns each published change into a
//!   watch line once, keeps the last [`RelayBuilder::history`] events (default
//!   [`DEFAULT_HISTORY`]) for watches that resume from a resourceVersion (older: one `ERROR`
//!   event with 410 Expired, as upstream), and fans them out. BOOKMARK events every
//!   [`RelayBuilder::bookmark_interval`] to watches that allow them, `sendInitialEvents=true`
//!   with the `k8s.io/initial-events-end` bookmark, `timeoutSeconds`, label and field selectors
//!   (an object entering or leaving a selector is `ADDED` or `DELETED`, as upstream). If a
//!   kind's cache stops, its open watches end cleanly and new ones pass through upstream.
//! - kubectl's `Accept: application/json;as=Table;…,application/json` is narrowed to its plain
//!   JSON fallback for cached kinds (kubectl prints its default columns).
//!
//! **Slow watchers.** A downstream watch is no task of its own: its response body reads the
//! kind's event ring whenever its connection can write, taking every event already there into
//! one write. A watch more than [`RelayBuilder::watch_buffer`] events (default
//! [`DEFAULT_WATCH_BUFFER`]) behind the newest for [`RelayBuilder::slow_grace`] (default 500 ms)
//! is closed, its connection dropped (the client resumes from its last resourceVersion or
//! relists). Nothing a watcher does slows the hub or the other watchers.
//!
//! **Read-your-own-writes.** Writes pass through the cache layer, which records the
//! resourceVersion each successful write of a cached kind returns and completes the response
//! once the snapshot reflects it (at most 300 ms): a GET or LIST after a write through the
//! relay sees it.
//!
//! # Everything else goes upstream
//!
//! Writes, other kinds, discovery, OpenAPI, subresources and watches the hub does not serve are
//! passed to the API server through a `kube::Client` (TLS and credentials from the kubeconfig),
//! bodies streaming both ways (request bodies are read whole first, up to 32 MiB). Connection
//! upgrades (`exec`, `attach`, `port-forward` over WebSocket or SPDY) go upstream too: on the
//! API server's `101 Switching Protocols` the relay answers 101 with its headers and splices
//! the two connections byte for byte until either side closes.
//!
//! # Whom it serves
//!
//! By default the relay serves only the local user: it listens on a loopback address or a unix
//! socket created with mode 0600, and passes requests upstream with its own credentials (like
//! `kubectl proxy`). With [`RelayBuilder::authorize`] every cached read is checked
//! ([`gate::CallerCheck`]) and proxied requests carry the caller's own `Authorization` header
//! (use [`RelayBuilder::upstream`] with a client built without credentials).

pub mod authorize;
pub mod gate;
mod hub;
pub mod kubeconfig;
mod proxy;
mod respond;
mod server;
mod stats;
mod upgrade;
mod watch;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kube::{Api, Resource};
use repocache::ReflectorHandle;
use repocache::layer::{CacheLayer, KindScope, LayerStats};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

pub use gate::CallerCheck;
pub use server::Listen;
pub use stats::RelayStats;
pub use watch::INITIAL_EVENTS_END;

use hub::{Hub, HubConfig, KindNames};
use stats::Counters;
use watch::WatchConfig;

/// Events kept per kind for watches that resume from a resourceVersion, unless told otherwise.
pub const DEFAULT_HISTORY: usize = 1_000;

/// Events a downstream watch may be behind its kind's newest event (for longer than the slow
/// grace, it is closed), unless told otherwise.
pub const DEFAULT_WATCH_BUFFER: usize = 1_024;

/// How long a watch may stay more than its buffer behind before it is closed, unless told
/// otherwise.
pub const DEFAULT_SLOW_GRACE: Duration = Duration::from_millis(500);

/// How often a downstream watch that allows bookmarks gets one, unless told otherwise.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every relay response.
pub type RelayBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// Why the relay did not start, or is not ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The listen address is invalid, not allowed, or cannot be bound.
    #[error("cannot listen on {0}")]
    Listen(String),
    /// Some kinds' caches were not ready in time.
    #[error("not ready after {waited:?}: {kinds:?}")]
    NotReady {
        /// How long it waited.
        waited: Duration,
        /// The kinds not ready yet.
        kinds: Vec<String>,
    },
}

/// A cached kind, started.
struct StartedKind {
    layer: CacheLayer,
    hub: Arc<Hub>,
    hub_task: JoinHandle<()>,
    reflector: ReflectorHandle,
}

type KindStarter = Box<dyn FnOnce(&kube::Client, CacheLayer, HubConfig) -> StartedKind + Send>;

/// Configures and starts a [`Relay`].
#[must_use]
pub struct RelayBuilder {
    client: kube::Client,
    upstream: Option<kube::Client>,
    kinds: Vec<(String, KindStarter)>,
    listen: Listen,
    history: usize,
    watch_buffer: usize,
    bookmark_interval: Duration,
    slow_grace: Duration,
    gate: Option<Arc<dyn CallerCheck>>,
    layer: CacheLayer,
}

impl Debug for RelayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("RelayBuilder")
            .field("kinds", &kinds)
            .field("listen", &self.listen)
            .field("history", &self.history)
            .field("watch_buffer", &self.watch_buffer)
            .field("bookmark_interval", &self.bookmark_interval)
            .field("authorize", &self.gate.is_some())
            .finish_non_exhaustive()
    }
}

/// What the relay needs of a kind it caches: a typed Kubernetes resource (no dynamic type) that
/// it can decode from the API server, encode for its clients and share between tasks. Every
/// `k8s-openapi` type and every `#[derive(CustomResource)]` type qualifies.
pub trait RelayedKind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
}

impl<K> RelayedKind for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static
{
}

impl RelayBuilder {
    /// Caches `K` (every namespace): one reflector, one LIST and one WATCH upstream.
    pub fn kind<K>(self) -> Self
    where
        K: RelayedKind,
        K::Scope: KindScope,
    {
        self.kind_scoped::<K>(<K::Scope as KindScope>::NAMESPACED)
    }

    /// Caches `K` like [`kind`](Self::kind), for generic code that knows the kind's scope only
    /// as a value (`namespaced` must be the kind's scope).
    pub fn kind_scoped<K: RelayedKind>(mut self, namespaced: bool) -> Self {
        let starter: KindStarter = Box::new(move |client, layer, config| {
            // Publish every batch of events as soon as it is applied: a relay exists to pass
            // changes on (the default 1 ms interval would add up to 1 ms to every watch event).
            let (cache, reflector) =
                repocache::ReflectorBuilder::new(Api::<K>::all(client.clone()))
                    .configure_cache(|c| c.publish_interval(Duration::ZERO))
                    .start();
            let layer = layer.cache_scoped(&cache, namespaced);
            let names = KindNames {
                group: K::group(&()).into_owned(),
                version: K::version(&()).into_owned(),
                plural: K::plural(&()).into_owned(),
                kind: K::kind(&()).into_owned(),
                api_version: K::api_version(&()).into_owned(),
                namespaced,
            };
            let (hub, hub_task) = hub::start(cache, names, config);
            StartedKind {
                layer,
                hub,
                hub_task,
                reflector,
            }
        });
        self.kinds.push((K::kind(&()).into_owned(), starter));
        self
    }

    /// Where to listen (default `127.0.0.1:0`). Without [`authorize`](Self::authorize), only a
    /// loopback address or a unix socket.
    pub fn listen(mut self, listen: Listen) -> Self {
        self.listen = listen;
        self
    }

    /// Events kept per kind for resumes (default [`DEFAULT_HISTORY`]; at least 1).
    pub fn history(mut self, events: usize) -> Self {
        self.history = events.max(1);
        self
    }

    /// Events a live downstream watch may be behind its kind's newest event (default
    /// [`DEFAULT_WATCH_BUFFER`]; at least 1): one that stays further behind for
    /// [`slow_grace`](Self::slow_grace) is closed. The kind's ring holds at least this many
    /// events.
    pub fn watch_buffer(mut self, events: usize) -> Self {
        self.watch_buffer = events.max(1);
        self
    }

    /// How often a downstream watch that allows bookmarks gets one (default
    /// [`DEFAULT_BOOKMARK_INTERVAL`]; at least 10 ms).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long a live watch may stay more than [`watch_buffer`](Self::watch_buffer) events
    /// behind before it is closed (default [`DEFAULT_SLOW_GRACE`]; checked every 200 ms): a
    /// burst the client drains in time closes nothing.
    pub fn slow_grace(mut self, grace: Duration) -> Self {
        self.slow_grace = grace;
        self
    }

    /// The cache layer's settings (read policy, own-writes wait, …); its caches are added by
    /// the relay.
    pub fn layer(mut self, layer: CacheLayer) -> Self {
        self.layer = layer;
        self
    }

    /// The client requests are proxied with (default: the reflectors' client). In
    /// [`authorize`](Self::authorize) mode, give one built from the same kubeconfig without
    /// credentials: the caller's own `Authorization` header is then forwarded.
    pub fn upstream(mut self, client: kube::Client) -> Self {
        self.upstream = Some(client);
        self
    }

    /// Checks every cached read with `check`, forwards callers' `Authorization` headers
    /// upstream, and allows non-loopback addresses.
    pub fn authorize(mut self, check: impl CallerCheck) -> Self {
        self.gate = Some(Arc::new(check));
        self
    }

    /// Binds the listener, starts one reflector and one hub per kind, and serves.
    pub async fn start(self) -> Result<Relay, RelayError> {
        let (bound, local) = server::Bound::bind(&self.listen, self.gate.is_some()).await?;
        let config = HubConfig {
            history: self.history,
            ring: self.watch_buffer.max(self.history),
        };
        let mut layer = self.layer;
        let mut hubs = Vec::new();
        let mut tasks = Vec::new();
        let mut reflectors = Vec::new();
        for (_, starter) in self.kinds {
            let started = starter(&self.client, layer, config);
            layer = started.layer;
            hubs.push(started.hub);
            tasks.push(started.hub_task);
            reflectors.push(started.reflector);
        }
        let upstream = self.upstream.unwrap_or_else(|| self.client.clone());
        let inner = Arc::new(Inner {
            hubs,
            client: layer.client(upstream),
            layer,
            forward_credentials: self.gate.is_some(),
            gate: self.gate,
            watch: WatchConfig {
                buffer: self.watch_buffer,
                bookmark_interval: self.bookmark_interval,
                grace: self.slow_grace,
            },
            counters: Arc::new(Counters::default()),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tasks.push(tokio::spawn(server::serve(bound, inner.clone(), stopped)));
        tracing::info!(listen = %local, "relay listening");
        Ok(Relay {
            inner,
            local,
            tasks,
            stop,
            _reflectors: reflectors,
        })
    }
}

/// What every connection shares.
pub(crate) struct Inner {
    hubs: Vec<Arc<Hub>>,
    /// The layered client: the cache layer over the upstream client.
    client: kube::Client,
    layer: CacheLayer,
    gate: Option<Arc<dyn CallerCheck>>,
    forward_credentials: bool,
    watch: WatchConfig,
    counters: Arc<Counters>,
}

/// A running relay; dropping it stops it (listener, hubs and reflectors).
pub struct Relay {
    inner: Arc<Inner>,
    local: Listen,
    tasks: Vec<JoinHandle<()>>,
    /// Ends every open connection when the relay is dropped.
    stop: tokio::sync::watch::Sender<bool>,
    _reflectors: Vec<ReflectorHandle>,
}

impl Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("listen", &self.local)
            .field("kinds", &self.kinds())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A builder: caches go through `client` (its kubeconfig's identity lists and watches).
    pub fn builder(client: kube::Client) -> RelayBuilder {
        RelayBuilder {
            client,
            upstream: None,
            kinds: Vec::new(),
            listen: Listen::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            history: DEFAULT_HISTORY,
            watch_buffer: DEFAULT_WATCH_BUFFER,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            slow_grace: DEFAULT_SLOW_GRACE,
            gate: None,
            layer: CacheLayer::new(),
        }
    }

    /// Where it listens (with the port bound, for port 0).
    pub fn listen_addr(&self) -> &Listen {
        &self.local
    }

    /// `http://IP:PORT` for a TCP listener.
    pub fn url(&self) -> Option<String> {
        match &self.local {
            Listen::Tcp(addr) => Some(format!("http://{addr}")),
            Listen::Unix(_) => None,
        }
    }

    /// A kubeconfig (JSON, which kubectl reads like YAML) whose current context points at the
    /// relay, with `namespace` as its default namespace; `None` for a unix socket (kubectl
    /// cannot dial one).
    pub fn kubeconfig(&self, namespace: Option<&str>) -> Option<String> {
        self.url()
            .map(|url| kubeconfig::render(&url, namespace, self.inner.gate.is_some()))
    }

    /// The kinds it caches.
    pub fn kinds(&self) -> Vec<String> {
        self.inner
            .hubs
            .iter()
            .map(|h| h.names.kind.clone())
            .collect()
    }

    /// Waits until every kind's cache is ready and its hub serves watches.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), RelayError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for hub in &self.inner.hubs {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !hub.wait_started(left).await {
                return Err(RelayError::NotReady {
                    waited: timeout,
                    kinds: self
                        .inner
                        .hubs
                        .iter()
                        .filter(|h| !h.is_started())
                        .map(|h| h.names.kind.clone())
                        .collect(),
                });
            }
        }
        Ok(())
    }

    /// The relay's figures (watches, proxied requests).
    pub fn stats(&self) -> RelayStats {
        self.inner.counters.stats()
    }

    /// The cache layer's figures: GET and LIST by kind, verb and outcome (answered from the
    /// snapshot, or passed upstream and why).
    pub fn layer_stats(&self) -> LayerStats {
        self.inner.layer.stats()
    }

    /// For each cached kind: the oldest resourceVersion a watch may resume from, and the newest
    /// its events reached.
    pub fn watch_window(&self, kind: &str) -> Option<(u64, u64)> {
        self.inner
            .hubs
            .iter()
            .find(|h| h.names.kind == kind)
            .map(|h| h.window())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
        if let Listen::Unix(path) = &self.local {
            let _ = std::fs::remove_file(path);
        }
    }
}
