//! A tower layer for `kube::Client` that answers GET and LIST of cached kinds from repocache's
//! snapshots, so that existing `Api<K>` code is cached without changes.
//!
//! # Three-line setup
//!
//! ```no_run
//! # use glasskube_api::PackageRepository;
//! # use kube::{Api, Client};
//! # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let (repos, _handle) = repocache::ReflectorBuilder::new(Api::<PackageRepository>::all(client.clone())).start();
//! let cached = repocache::layer::CacheLayer::new().cache(&repos).client(client.clone());
//! let api: Api<PackageRepository> = Api::all(cached); // unchanged code from here on
//! # let _ = api.get("glasskube").await?;
//! # Ok(()) }
//! ```
//!
//! With a `kube::Config` instead of a client, [`client_with_cache`] puts the layer on top of
//! kube's own stack (retries, auth and tracing then apply to passed-through requests only).
//!
//! # What is answered locally
//!
//! A GET of one object or a LIST of a kind whose cache is registered (matching group, version,
//! plural, and namespace), while that cache is ready and fresh. The answer is what the API server
//! would return:
//!
//! - the object's JSON (`apiVersion` and `kind` included);
//! - a `<Kind>List` with `metadata.resourceVersion` (the snapshot's), `items` in (namespace,
//!   name) order, and for a paginated LIST `metadata.continue` and (without selectors)
//!   `metadata.remainingItemCount`; `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`,
//!   `!key`, `>`, `<`) and `fieldSelector` (`metadata.name`, `metadata.namespace`) are evaluated
//!   against the snapshot;
//! - a 404 `Status` (reason `NotFound`) when the snapshot does not hold the object: a miss of a
//!   ready, fresh cache is authoritative.
//!
//! Continue tokens point into one snapshot: the layer keeps the few most recent snapshots a walk
//! is in (at most 8 per kind, for [`CacheLayer::continue_ttl`], default 5 minutes), so all pages
//! of a walk come from one consistent view. A token whose snapshot is gone is answered like the
//! API server answers a compacted one: 410 `Expired`; start the LIST again.
//!
//! ## Fidelity
//!
//! - Objects are served as the cache stores them, re-serialized from `K`: JSON-equal to the
//!   server's for fields `K` knows, with the cache's transform applied. The default transform
//!   drops `metadata.managedFields`; for answers equal to the server's, start the reflector with
//!   [`CacheConfig::no_transform`](crate::CacheConfig::no_transform).
//! - A list's `metadata.resourceVersion` is the snapshot's (the version of the newest event or
//!   listed object of that kind), not the server's global revision at the time of the request:
//!   never newer than the server's, and a valid version to start a watch from.
//! - The layer answers with the cache's view whatever the caller's identity: it serves the
//!   process whose client filled the cache (impersonated requests pass through).
//!
//! # What goes to the server, untouched
//!
//! Everything else: writes, watches, other kinds, subresources, `resourceVersionMatch=Exact`
//! (and a `resourceVersion` newer than the snapshot's), selectors or parameters the layer does
//! not evaluate, other media types (`as=Table`, `as=PartialObjectMetadata`, protobuf),
//! impersonated requests, and any request while the cache is not ready or stale. Stale means:
//! by default, whatever [`Cache::state`] reports other than `Ready` (the cache's TTL, a failing
//! or stopped watch); with [`CacheLayer::read_policy`], what that [`ReadPolicy`] does not let
//! the snapshot answer (e.g. `MaxStaleness(d)`: a snapshot not confirmed within `d`). Errors are always the server's: whatever the layer cannot vouch for is passed through.
//!
//! # Serve-stale-on-error (opt-in)
//!
//! With [`CacheLayer::serve_stale_on_error`]`(true)`, while a synced cache is `Failed` or `Stale`
//! (its watch or relist failing, or unconfirmed beyond its TTL), GET and LIST are answered from
//! its last snapshot with `Warning: 299 - "served from a repocache snapshot N s old"` instead of
//! being passed to a server that is probably failing too (outcome `served_stale`).
//!
//! # Read-your-own-writes
//!
//! A GET or LIST without a resourceVersion means "the most recent" to the API server. So a
//! successful write (create, update, patch, delete, deletecollection, subresources included) of
//! a cached kind through the layer records the resourceVersion its response carries, and its
//! response completes only once the cache's snapshot reflects that version (at most
//! [`CacheLayer::own_writes_wait`], default 300 ms, usually the watch's few milliseconds). A
//! later GET or LIST through the layer (any clone of it) is answered from the snapshot only if
//! the snapshot reflects every write recorded for its kind; otherwise it passes through,
//! counted as [`Outcome::Behind`]. Versions are compared as integers; a write whose version is
//! not an integer makes reads pass through until the snapshot is at exactly that version.
//! Writes made by other clients are not seen this way: use the [`ReadPolicy`]
//! reads (`AtLeast`, `Consistent`) or the bypass. [`CacheLayer::read_your_writes`]`(false)`
//! turns it off.
//!
//! # Fresh reads (the bypass)
//!
//! For the few operations that must see the server now (e.g. read-modify-write right after a
//! write of one's own), keep a second client without the layer: the client you started from
//! (`client` above) is one. `Api<K>` code cannot set headers per call, so that is the way for
//! plain `Api<K>` code. Code that builds requests itself can send the header
//! [`BYPASS_HEADER`] (`x-repocache-bypass: true`) instead; the layer strips it and passes the
//! request through.
//!
//! # Counting
//!
//! [`CacheLayer::stats`] counts every request by kind, verb and [`Outcome`] (answered locally,
//! or passed through and why); [`CacheLayer::register`] puts the same counters into a
//! Prometheus registry as `repocache_layer_requests_total{kind,verb,source,outcome}`.

mod respond;
mod route;
mod serve;
mod stats;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, Either};
use http::header::{ACCEPT, HeaderName};
use http::{HeaderMap, Method, Request, Response};
use http_body::{Frame, SizeHint};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use kube::client::Body;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tower::{Layer, Service};
use tracing::trace;

pub use respond::GENERATION_HEADER;
pub use route::Verb;
pub use stats::{LayerCount, LayerMetrics, LayerStats, Outcome};

use crate::cache::{Cache, Feed};
use crate::policy::ReadPolicy;
use route::{Params, parse_path, verb_name, verb_of};
use serve::{Ctx, Job, KindInfo, LocalRequest, Registered, Serve};
use stats::{CounterSet, Counters};

/// The request header that makes the layer pass a request to the server (stripped before it
/// is forwarded). Any value but `false` or `0` bypasses.
pub const BYPASS_HEADER: &str = "x-repocache-bypass";

/// How long a write through the layer waits, at most, for its cache's snapshot to reflect it
/// before it returns (read-your-own-writes), unless told otherwise.
pub const DEFAULT_OWN_WRITES_WAIT: Duration = Duration::from_millis(300);

/// The largest write response the layer reads a resourceVersion from (larger ones are far
/// beyond the API server's object limit; their reads are not held back).
const MAX_RECORDED_BODY: usize = 8 << 20;

/// How long a snapshot stays held for the continue tokens that point into it, unless told
/// otherwise (the order of upstream's compaction interval).
pub const DEFAULT_CONTINUE_TTL: Duration = Duration::from_secs(300);

/// The scope of a kind, read from its `Resource::Scope`: implemented for k8s-openapi's (and so
/// kube's) `NamespaceResourceScope` and `ClusterResourceScope`.
pub trait KindScope {
    /// Whether objects of the kind live in namespaces.
    const NAMESPACED: bool;
}

impl KindScope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl KindScope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

#[derive(Clone)]
struct Config {
    id: u64,
    kinds: Vec<Arc<dyn Serve>>,
    other: Arc<Counters>,
    read_policy: Option<ReadPolicy>,
    continue_ttl: Duration,
    read_your_writes: bool,
    own_writes_wait: Duration,
    serve_stale: bool,
}

/// A tower [`Layer`] for the service inside a `kube::Client`: GET and LIST of the registered
/// caches' kinds are answered from their snapshots; everything else goes to the server.
///
/// Cheap to clone; clones share their caches and counters. See the [module docs](self).
#[derive(Clone)]
pub struct CacheLayer {
    config: Arc<Config>,
}

impl Default for CacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self
            .config
            .kinds
            .iter()
            .map(|k| k.info().kind.as_str())
            .collect();
        f.debug_struct("CacheLayer")
            .field("kinds", &kinds)
            .field("read_policy", &self.config.read_policy)
            .field("read_your_writes", &self.config.read_your_writes)
            .field("own_writes_wait", &self.config.own_writes_wait)
            .field("serve_stale", &self.config.serve_stale)
            .finish_non_exhaustive()
    }
}

/// A process-wide source of layer identities for continue tokens.
fn next_layer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(NEXT.fetch_add(1, Ordering::Relaxed))
}

impl CacheLayer {
    /// A layer with no cache yet: everything passes through until caches are added.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                id: next_layer_id(),
                kinds: Vec::new(),
                other: Arc::new(Counters::new("other")),
                read_policy: None,
                continue_ttl: DEFAULT_CONTINUE_TTL,
                read_your_writes: true,
                own_writes_wait: DEFAULT_OWN_WRITES_WAIT,
                serve_stale: false,
            }),
        }
    }

    /// Answers GET and LIST of `K` (in every namespace) from `cache`.
    ///
    /// The cache must hold every object of the kind: a reflector over `Api::all`, without
    /// label or field selectors in its watcher config (a cache of a subset would answer LISTs
    /// with the subset and GETs of the rest with 404). For a cache of one namespace, use
    /// [`cache_in_namespace`](Self::cache_in_namespace).
    pub fn cache<K, F: Feed>(self, cache: &Cache<K, F>) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize + Send + Sync + 'static,
        K::Scope: KindScope,
    {
        self.register_cache(cache, None, K::Scope::NAMESPACED)
    }

    /// Answers GET and LIST of `K` (in every namespace) from `cache`, like
    /// [`cache`](Self::cache), for generic code that knows the kind's scope only as a value
    /// (`namespaced`: whether objects of `K` live in namespaces; it must be the kind's scope).
    pub fn cache_scoped<K, F: Feed>(self, cache: &Cache<K, F>, namespaced: bool) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize + Send + Sync + 'static,
    {
        self.register_cache(cache, None, namespaced)
    }

    /// Answers GET and LIST of `K` inside `namespace` from `cache`, which must hold every
    /// object of that namespace (a reflector over `Api::namespaced(client, namespace)`, without
    /// selectors). Requests for other namespaces, and LISTs across all namespaces, pass through.
    pub fn cache_in_namespace<K, F: Feed>(self, cache: &Cache<K, F>, namespace: &str) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize + Send + Sync + 'static,
        K::Scope: KindScope,
    {
        self.register_cache(cache, Some(namespace.to_owned()), K::Scope::NAMESPACED)
    }

    fn register_cache<K, F: Feed>(
        mut self,
        cache: &Cache<K, F>,
        namespace: Option<String>,
        namespaced: bool,
    ) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize + Send + Sync + 'static,
    {
        let kind = K::kind(&()).into_owned();
        let scope = cache.scope().unwrap_or_default();
        if scope.is_selective() {
            // A selective cache would answer LISTs with a subset and GETs of the rest with 404.
            tracing::warn!(
                %kind,
                label_selector = scope.label_selector.as_deref().unwrap_or(""),
                field_selector = scope.field_selector.as_deref().unwrap_or(""),
                "a cache with selectors cannot answer for the whole kind; its requests pass through"
            );
            return self;
        }
        // A cache restricted to one namespace answers for that namespace only.
        let namespace = namespace.or(scope.namespace);
        let info = KindInfo {
            group: K::group(&()).into_owned(),
            version: K::version(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            api_version: K::api_version(&()).into_owned(),
            list_kind: format!("{kind}List"),
            kind,
            namespaced,
            namespace,
        };
        let registered: Arc<dyn Serve> = Arc::new(Registered::new(cache.local(), info));
        Arc::make_mut(&mut self.config).kinds.push(registered);
        self
    }

    /// How fresh a snapshot must be for the layer to answer from it, as the cache's own policy
    /// reads say it ([`ReadPolicy`]); a request the policy does not let the snapshot answer
    /// passes through (the layer never waits on a read, and never makes a request of its own).
    ///
    /// - Without it, the layer serves while [`Cache::state`] is `Ready`: the cache's own TTL is
    ///   the bound (a failing or stale watch passes through).
    /// - [`ReadPolicy::MaxStaleness`]`(d)`: only snapshots confirmed (by a watch event, a
    ///   bookmark or a relist) within `d`; older ones pass through (outcome `stale`). On a quiet
    ///   kind only bookmarks confirm, so a bound shorter than the server's bookmark interval
    ///   makes quiet kinds pass through between bookmarks. Any duration.
    /// - [`ReadPolicy::Cached`]: any age, while the cache is ready (what `MaxStaleness(Duration::MAX)`
    ///   does).
    /// - [`ReadPolicy::AtLeast`]`(rv)`: only a snapshot that reflects `rv`; otherwise the request
    ///   passes through (outcome `behind`).
    /// - [`ReadPolicy::Consistent`] and [`ReadPolicy::Fresh`]: every GET and LIST passes through
    ///   (outcome `bypass`): neither can be honoured without a request.
    ///
    /// A cache that is not ready, or stopped, passes through whatever the policy. (This replaces
    /// the layer's own `max_staleness(d)`, which is `read_policy(ReadPolicy::MaxStaleness(d))`.)
    pub fn read_policy(mut self, policy: ReadPolicy) -> Self {
        Arc::make_mut(&mut self.config).read_policy = Some(policy);
        self
    }

    /// How long a write through the layer waits, at most, for its cache's snapshot to reflect
    /// the resourceVersion it returned (default [`DEFAULT_OWN_WRITES_WAIT`], 300 ms; zero: never
    /// wait, reads pass through instead until the snapshot catches up).
    ///
    /// Range: any duration. The write's response is complete only once its snapshot reflects
    /// it or the time ran out; either way a later read through this layer never answers from a
    /// snapshot older than the write (it passes through, counted as [`Outcome::Behind`]).
    pub fn own_writes_wait(mut self, wait: Duration) -> Self {
        Arc::make_mut(&mut self.config).own_writes_wait = wait;
        self
    }

    /// Read-your-own-writes (on by default): every successful write of a cached kind through
    /// this layer records the resourceVersion it returned, and a later GET or LIST is answered
    /// from the snapshot only once the snapshot reflects it. `false` turns it off: reads are
    /// answered from any ready snapshot, which may be older than a write just made.
    pub fn read_your_writes(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).read_your_writes = on;
        self
    }

    /// Serve-stale-on-error (off by default): while a cache that has synced is `Failed` or
    /// `Stale` (its watch or relist is failing, or nothing confirmed it within its TTL), GET and
    /// LIST are answered from its last snapshot instead of being passed to a server that is
    /// likely failing too, with the header `Warning: 299 - "served from a repocache snapshot N s
    /// old"` (N: seconds since the snapshot was last confirmed), which kubectl and client-go
    /// display; counted as [`Outcome::ServedStale`].
    ///
    /// A cache that never synced, or that stopped, still passes through; so does a read behind
    /// a write of one's own. A snapshot merely older than the [`read_policy`](Self::read_policy)
    /// allows while the watch is healthy is not an error, and passes through as before.
    pub fn serve_stale_on_error(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).serve_stale = on;
        self
    }

    /// How long a snapshot stays held for the continue tokens that point into it
    /// (default [`DEFAULT_CONTINUE_TTL`]); a later continue gets 410 Expired.
    ///
    /// Range: any duration (it is only compared with a held snapshot's age).
    pub fn continue_ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.config).continue_ttl = ttl;
        self
    }

    /// A client that sends every request through this layer and then through `base`.
    ///
    /// `base` stays usable as it is: it is the client without the layer, for the reads that
    /// must be fresh.
    pub fn client(&self, base: kube::Client) -> kube::Client {
        let namespace = base.default_namespace().to_owned();
        let valid_until = *base.valid_until();
        let service = tower::service_fn(move |req: Request<Body>| {
            let base = base.clone();
            async move { base.send(req).await }
        });
        kube::Client::new(self.layer(service), namespace).with_valid_until(valid_until)
    }

    /// The layer's counts now: requests by kind, verb and outcome.
    pub fn stats(&self) -> LayerStats {
        self.counters().stats()
    }

    /// The layer's counters as a Prometheus collector (register it after adding the caches).
    pub fn metrics(&self) -> LayerMetrics {
        LayerMetrics {
            counters: self.counters(),
        }
    }

    /// Registers the layer's counters with `registry`, beside (or without) the caches'
    /// [`Metrics`](crate::Metrics). Call it once per registry, after adding the caches.
    pub fn register(&self, registry: &mut Registry) {
        self.metrics().register(registry);
    }

    fn counters(&self) -> CounterSet {
        let mut kinds: Vec<Arc<Counters>> = self
            .config
            .kinds
            .iter()
            .map(|k| k.counters().clone())
            .collect();
        kinds.push(self.config.other.clone());
        CounterSet { kinds }
    }
}

/// Builds a client from `config` (kube's default stack: auth, retries, tracing) with `layer` on
/// top of it, so that requests the layer answers never enter that stack.
///
/// A client without the layer, for fresh reads, is `kube::Client::try_from(config)`.
pub fn client_with_cache(
    config: kube::Config,
    layer: &CacheLayer,
) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(layer)
        .build())
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`CacheLayer`] wraps around a client's service.
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService").finish_non_exhaustive()
    }
}

/// A local answer to be produced, and where to count it.
struct Planned {
    job: Job,
    verb: Verb,
    counters: Arc<Counters>,
}

/// A write of a cached kind passing through: the resourceVersion of its response is recorded.
#[derive(Clone)]
struct WriteWatch {
    kind: Arc<dyn Serve>,
    wait: Duration,
}

/// What the layer does with a request.
enum Plan {
    /// Answers it locally.
    Local(Planned),
    /// Passes it through; for a write of a cached kind, records its response's version.
    Pass(Option<WriteWatch>),
}

/// Whether every media range the client accepts is plain JSON.
fn accepts_plain_json(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().all(|value| {
        value.to_str().is_ok_and(|value| {
            value.split(',').all(|range| {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim();
                matches!(media, "application/json" | "application/*" | "*/*")
                    && parts.all(|p| !p.trim_start().starts_with("as="))
            })
        })
    })
}

fn impersonated(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-"))
}

impl Config {
    /// Decides whether to answer `req` locally. Counts (and logs) requests that pass through.
    fn plan(&self, req: &mut Request<Body>) -> Plan {
        let bypass = req
            .headers_mut()
            .remove(HeaderName::from_static(BYPASS_HEADER))
            .is_some_and(|v| !matches!(v.as_bytes(), b"false" | b"0"));
        let path = req.uri().path();
        let Some(target) = parse_path(path) else {
            self.other.record(None, Outcome::NotCached);
            trace!(%path, "not a resource path: passed through");
            return Plan::Pass(None);
        };
        let params = Params::parse(req.uri().query().unwrap_or(""));
        let watch = params.as_ref().is_some_and(|p| p.watch);
        let verb = verb_of(req.method(), &target, watch);
        let found = self.kinds.iter().enumerate().find(|(_, k)| {
            let info = k.info();
            info.plural == target.resource
                && info.group == target.group
                && info.version == target.version
                && (info.namespace.is_none() || info.namespace.as_deref() == target.namespace)
        });
        let Some((index, kind)) = found else {
            self.other.record(verb, Outcome::NotCached);
            trace!(%path, verb = verb_name(verb), "no cache for this resource: passed through");
            return Plan::Pass(None);
        };
        let outcome = if bypass {
            Outcome::Bypass
        } else if let Some(read) = verb.filter(|v| matches!(v, Verb::Get | Verb::List)) {
            if req.method() != Method::GET
                || target.subresource.is_some()
                || target.legacy_watch
                || !accepts_plain_json(req.headers())
                || impersonated(req.headers())
            {
                Outcome::Unsupported
            } else {
                let request = LocalRequest {
                    verb: read,
                    namespace: target.namespace,
                    name: target.name,
                    params: params.unwrap_or(Params {
                        unsupported: true,
                        ..Params::default()
                    }),
                };
                let ctx = Ctx {
                    layer_id: self.id,
                    index,
                    read_policy: self.read_policy,
                    continue_ttl: self.continue_ttl,
                    read_your_writes: self.read_your_writes,
                    serve_stale: self.serve_stale,
                };
                match kind.clone().plan(request, ctx) {
                    Ok(job) => {
                        return Plan::Local(Planned {
                            job,
                            verb: read,
                            counters: kind.counters().clone(),
                        });
                    }
                    Err(outcome) => outcome,
                }
            }
        } else {
            Outcome::Verb
        };
        kind.counters().record(verb, outcome);
        trace!(%path, verb = verb_name(verb), outcome = outcome.as_str(), "passed through");
        let write = matches!(
            verb,
            Some(Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection)
        );
        Plan::Pass((write && self.read_your_writes).then(|| WriteWatch {
            kind: kind.clone(),
            wait: self.own_writes_wait,
        }))
    }
}

/// The future of a [`CacheService`] response: a local answer, or the inner service's.
pub type ResponseFuture<F, B, E> = Either<LocalAnswer<B, E>, RemoteAnswer<F, B>>;

/// The inner service's response, with the layer's body type (which, for a successful write of
/// a cached kind, records the resourceVersion it returns and ends once the snapshot has it).
pub struct RemoteAnswer<F, B> {
    inner: Pin<Box<F>>,
    write: Option<WriteWatch>,
    _types: PhantomData<fn() -> B>,
}

impl<F, B> fmt::Debug for RemoteAnswer<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAnswer")
            .field("write", &self.write.is_some())
            .finish()
    }
}

impl<F, B, E> Future for RemoteAnswer<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<LayerBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = std::task::ready!(self.inner.as_mut().poll(cx))?;
        let write = self.write.take();
        Poll::Ready(Ok(match write {
            Some(write) if response.status().is_success() => {
                response.map(|body| LayerBody::recording(body, write))
            }
            _ => response.map(LayerBody::remote),
        }))
    }
}

/// A response the layer answers itself; the work runs when it is first polled, in the caller's
/// task (not in the client's buffer worker).
pub struct LocalAnswer<B, E> {
    planned: Option<Planned>,
    _types: PhantomData<fn() -> (B, E)>,
}

impl<B, E> fmt::Debug for LocalAnswer<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAnswer")
            .field("done", &self.planned.is_none())
            .finish()
    }
}

impl<B, E> Future for LocalAnswer<B, E> {
    type Output = Result<Response<LayerBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.planned.take() {
            Some(Planned {
                job,
                verb,
                counters,
            }) => {
                let (response, outcome) = job();
                counters.record(Some(verb), outcome);
                trace!(
                    verb = verb.as_str(),
                    outcome = outcome.as_str(),
                    status = response.status().as_u16(),
                    "answered from the cache"
                );
                response
            }
            // Polled again after completion: answer with an empty 500 rather than panic.
            None => respond::internal("response polled after completion"),
        };
        Poll::Ready(Ok(response.map(LayerBody::local)))
    }
}

impl<S, B> Service<Request<Body>> for CacheService<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
{
    type Response = Response<LayerBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, B, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        match self.config.plan(&mut req) {
            Plan::Local(planned) => Either::Left(LocalAnswer {
                planned: Some(planned),
                _types: PhantomData,
            }),
            Plan::Pass(write) => Either::Right(RemoteAnswer {
                inner: Box::pin(self.inner.call(req)),
                write,
                _types: PhantomData,
            }),
        }
    }
}

/// The response body of a [`CacheService`]: a local answer's bytes, or the server's body.
pub struct LayerBody<B> {
    kind: BodyKind<B>,
}

enum BodyKind<B> {
    Local(Option<Bytes>),
    Remote(Pin<Box<B>>),
    Recording(Box<Recording<B>>),
}

/// A successful write's response body: passed on as it arrives, and copied (up to
/// [`MAX_RECORDED_BODY`]) to read its resourceVersion at the end; the body ends only once the
/// cache's snapshot reflects that version (or the wait ran out).
struct Recording<B> {
    body: Pin<Box<B>>,
    copy: Vec<u8>,
    overflow: bool,
    write: WriteWatch,
    waiting: Option<BoxFuture<'static, ()>>,
    done: bool,
}

impl<B> Recording<B> {
    /// At the end of the body: records the version and returns the wait for the snapshot.
    fn finish(&mut self) -> Option<BoxFuture<'static, ()>> {
        #[derive(serde::Deserialize)]
        struct Meta {
            #[serde(rename = "resourceVersion")]
            resource_version: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Head {
            metadata: Option<Meta>,
        }
        if self.overflow {
            tracing::warn!("write response too large to read its resourceVersion");
            return None;
        }
        let copy = std::mem::take(&mut self.copy);
        let rv = serde_json::from_slice::<Head>(&copy)
            .ok()
            .and_then(|h| h.metadata)
            .and_then(|m| m.resource_version)?;
        self.write.kind.clone().observe_write(&rv, self.write.wait)
    }
}

impl<B> LayerBody<B> {
    fn local(bytes: Bytes) -> Self {
        Self {
            kind: BodyKind::Local(Some(bytes).filter(|b| !b.is_empty())),
        }
    }

    fn remote(body: B) -> Self {
        Self {
            kind: BodyKind::Remote(Box::pin(body)),
        }
    }

    fn recording(body: B, write: WriteWatch) -> Self {
        Self {
            kind: BodyKind::Recording(Box::new(Recording {
                body: Box::pin(body),
                copy: Vec::new(),
                overflow: false,
                write,
                waiting: None,
                done: false,
            })),
        }
    }
}

impl<B> fmt::Debug for LayerBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BodyKind::Local(_) => "local",
            BodyKind::Remote(_) | BodyKind::Recording(_) => "remote",
        };
        f.debug_struct("LayerBody").field("kind", &kind).finish()
    }
}

impl<B> http_body::Body for LayerBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().kind {
            BodyKind::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Remote(body) => body.as_mut().poll_frame(cx),
            BodyKind::Recording(rec) => loop {
                if let Some(waiting) = rec.waiting.as_mut() {
                    std::task::ready!(waiting.as_mut().poll(cx));
                    rec.waiting = None;
                    rec.done = true;
                }
                if rec.done {
                    return Poll::Ready(None);
                }
                match std::task::ready!(rec.body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            if rec.copy.len() + data.len() <= MAX_RECORDED_BODY {
                                rec.copy.extend_from_slice(data);
                            } else {
                                rec.overflow = true;
                            }
                        }
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    Some(Err(err)) => {
                        rec.done = true;
                        return Poll::Ready(Some(Err(err)));
                    }
                    None => match rec.finish() {
                        Some(wait) => rec.waiting = Some(wait),
                        None => rec.done = true,
                    },
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Local(bytes) => bytes.is_none(),
            BodyKind::Remote(body) => body.is_end_stream(),
            BodyKind::Recording(rec) => rec.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            BodyKind::Remote(body) => body.size_hint(),
            BodyKind::Recording(rec) => rec.body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn media_types() {
        let h = |v: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(v) = v {
                headers.insert(ACCEPT, HeaderValue::from_static(v));
            }
            accepts_plain_json(&headers)
        };
        assert!(h(None));
        assert!(h(Some("application/json")));
        assert!(h(Some("application/json, */*")));
        assert!(h(Some("application/json;charset=utf-8")));
        assert!(!h(Some(
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
        )));
        assert!(!h(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(!h(Some("application/vnd.kubernetes.protobuf")));
    }
}
