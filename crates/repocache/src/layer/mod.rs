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
//! or stopped watch); with [`CacheLayer::max_staleness`], a snapshot not confirmed within that
//! bound. Errors are always the server's: whatever the layer cannot vouch for is passed through.
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
use futures::TryFutureExt;
use futures::future::{Either, MapOk};
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

use crate::cache::Cache;
use route::{Params, parse_path, verb_of};
use serve::{Ctx, Job, KindInfo, LocalRequest, Registered, Serve};
use stats::{CounterSet, Counters};

/// The request header that makes the layer pass a request to the server (stripped before it
/// is forwarded). Any value but `false` or `0` bypasses.
pub const BYPASS_HEADER: &str = "x-repocache-bypass";

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
    max_staleness: Option<Duration>,
    continue_ttl: Duration,
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
            .field("max_staleness", &self.config.max_staleness)
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
                max_staleness: None,
                continue_ttl: DEFAULT_CONTINUE_TTL,
            }),
        }
    }

    /// Answers GET and LIST of `K` (in every namespace) from `cache`.
    ///
    /// The cache must hold every object of the kind: a reflector over `Api::all`, without
    /// label or field selectors in its watcher config (a cache of a subset would answer LISTs
    /// with the subset and GETs of the rest with 404). For a cache of one namespace, use
    /// [`cache_in_namespace`](Self::cache_in_namespace).
    pub fn cache<K>(self, cache: &Cache<K>) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize + Send + Sync + 'static,
        K::Scope: KindScope,
    {
        self.register_cache(cache, None)
    }

    /// Answers GET and LIST of `K` inside `namespace` from `cache`, which must hold every
    /// object of that namespace (a reflector over `Api::namespaced(client, namespace)`, without
    /// selectors). Requests for other namespaces, and LISTs across all namespaces, pass through.
    pub fn cache_in_namespace<K>(self, cache: &Cache<K>, namespace: &str) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize + Send + Sync + 'static,
        K::Scope: KindScope,
    {
        self.register_cache(cache, Some(namespace.to_owned()))
    }

    fn register_cache<K>(mut self, cache: &Cache<K>, namespace: Option<String>) -> Self
    where
        K: Resource<DynamicType = ()> + Serialize + Send + Sync + 'static,
        K::Scope: KindScope,
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
            namespaced: K::Scope::NAMESPACED,
            namespace,
        };
        let registered: Arc<dyn Serve> = Arc::new(Registered::new(cache.clone(), info));
        Arc::make_mut(&mut self.config).kinds.push(registered);
        self
    }

    /// Serves only from snapshots confirmed (by a watch event or a relist) within `bound`;
    /// older ones pass through, as do requests while the cache is not ready.
    ///
    /// Without it, the layer serves while [`Cache::state`] is `Ready`: the cache's own TTL is
    /// the bound. A quiet cluster confirms nothing, so a bound shorter than the cache's TTL
    /// makes quiet kinds pass through until the next relist.
    ///
    /// Range: any duration (`Duration::MAX`: any age, while the cache is ready). A stopped
    /// cache passes through whatever the bound.
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        Arc::make_mut(&mut self.config).max_staleness = Some(bound);
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
    fn plan(&self, req: &mut Request<Body>) -> Option<Planned> {
        let bypass = req
            .headers_mut()
            .remove(HeaderName::from_static(BYPASS_HEADER))
            .is_some_and(|v| !matches!(v.as_bytes(), b"false" | b"0"));
        let path = req.uri().path();
        let Some(target) = parse_path(path) else {
            self.other.record(Verb::Other, Outcome::NotCached);
            trace!(%path, "not a resource path: passed through");
            return None;
        };
        let params = Params::parse(req.uri().query().unwrap_or(""));
        let watch = params.as_ref().is_some_and(|p| p.watch);
        let verb = verb_of(req.method(), &target, watch);
        let found = self.kinds.iter().enumerate().find(|(_, k)| {
            let info = k.info();
            info.plural == target.plural
                && info.group == target.group
                && info.version == target.version
                && (info.namespace.is_none() || info.namespace.as_deref() == target.namespace)
        });
        let Some((index, kind)) = found else {
            self.other.record(verb, Outcome::NotCached);
            trace!(%path, verb = verb.as_str(), "no cache for this resource: passed through");
            return None;
        };
        let outcome = if bypass {
            Outcome::Bypass
        } else if !matches!(verb, Verb::Get | Verb::List) {
            Outcome::Verb
        } else if req.method() != Method::GET
            || target.subresource.is_some()
            || target.legacy_watch
            || !accepts_plain_json(req.headers())
            || impersonated(req.headers())
        {
            Outcome::Unsupported
        } else {
            let request = LocalRequest {
                verb,
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
                max_staleness: self.max_staleness,
                continue_ttl: self.continue_ttl,
            };
            match kind.clone().plan(request, ctx) {
                Ok(job) => {
                    return Some(Planned {
                        job,
                        verb,
                        counters: kind.counters().clone(),
                    });
                }
                Err(outcome) => outcome,
            }
        };
        kind.counters().record(verb, outcome);
        trace!(%path, verb = verb.as_str(), outcome = outcome.as_str(), "passed through");
        None
    }
}

/// The future of a [`CacheService`] response: a local answer, or the inner service's.
pub type ResponseFuture<F, B, E> = Either<LocalAnswer<B, E>, MapOk<F, RemoteMap<B>>>;

/// Maps the inner service's response to the layer's body type.
pub type RemoteMap<B> = fn(Response<B>) -> Response<LayerBody<B>>;

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
                counters.record(verb, outcome);
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
            Some(planned) => Either::Left(LocalAnswer {
                planned: Some(planned),
                _types: PhantomData,
            }),
            None => {
                let map: RemoteMap<B> = |r| r.map(LayerBody::remote);
                Either::Right(self.inner.call(req).map_ok(map))
            }
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
}

impl<B> fmt::Debug for LayerBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BodyKind::Local(_) => "local",
            BodyKind::Remote(_) => "remote",
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
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Local(bytes) => bytes.is_none(),
            BodyKind::Remote(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            BodyKind::Remote(body) => body.size_hint(),
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
