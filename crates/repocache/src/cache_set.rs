//! [`CacheSet`]: several kinds cached on one client, with one readiness, one shutdown and one
//! metrics registry — the shape an operator embeds.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use glasskube_api::{Package, PackageRepository};
//! # use repocache::{CacheSet, KindOptions};
//! # async fn demo(client: kube::Client) -> Result<(), repocache::Error> {
//! let mut builder = CacheSet::builder(client).ttl(Duration::from_secs(300));
//! let repos = builder.add(KindOptions::<PackageRepository>::new());
//! let packages = builder.add(KindOptions::<Package>::new().labels("team=platform"));
//! let caches = builder.start();
//! caches.wait_ready(Duration::from_secs(30)).await?;
//! let n = repos.snapshot().len() + packages.snapshot().len();
//! # let _ = n;
//! caches.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::cache::{AnyCache, Cache};
use crate::config::CacheConfig;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::reflector::{DEFAULT_TTL, PendingReflector, ReflectorBuilder, ReflectorHandle};
use crate::stats::Stats;

type ApiFn<K> = Box<dyn FnOnce(Client) -> Api<K> + Send>;

/// How one kind is cached in a [`CacheSet`]: its scope, selectors, TTL and cache options.
pub struct KindOptions<K> {
    api: ApiFn<K>,
    watcher: watcher::Config,
    ttl: Option<Duration>,
    cache: CacheConfig<K>,
}

impl<K> Debug for KindOptions<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindOptions")
            .field("watcher", &self.watcher)
            .field("ttl", &self.ttl)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<K> Default for KindOptions<K>
where
    K: Resource + 'static,
    K::DynamicType: Default,
{
    fn default() -> Self {
        Self {
            api: Box::new(|client| Api::all(client)),
            watcher: watcher::Config::default(),
            ttl: None,
            cache: CacheConfig::default(),
        }
    }
}

impl<K> KindOptions<K>
where
    K: Resource + 'static,
    K::DynamicType: Default,
{
    /// Every object of the kind (all namespaces), the set's TTL, the default cache options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only objects matching this label selector (e.g. `team=platform,tier!=test`).
    pub fn labels(mut self, selector: &str) -> Self {
        self.watcher = self.watcher.labels(selector);
        self
    }

    /// Only objects matching this field selector (e.g. `metadata.name=glasskube`).
    pub fn fields(mut self, selector: &str) -> Self {
        self.watcher = self.watcher.fields(selector);
        self
    }

    /// The whole watcher config (initial list strategy, page size, selectors, …).
    pub fn watcher_config(mut self, config: watcher::Config) -> Self {
        self.watcher = config;
        self
    }

    /// This kind's TTL, instead of the set's.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Edits this kind's cache options in place (see [`CacheConfig`]; the same options, and
    /// the same call, as [`ReflectorBuilder::configure_cache`](crate::ReflectorBuilder::configure_cache)).
    /// Presets (e.g. [`glasskube::package_repositories`](crate::glasskube::package_repositories))
    /// keep their indexes: `preset().configure_cache(|c| c.publish_interval(d))`.
    pub fn configure_cache(mut self, edit: impl FnOnce(CacheConfig<K>) -> CacheConfig<K>) -> Self {
        self.cache = edit(self.cache);
        self
    }

    /// All cache options at once, replaced whole.
    pub fn cache_config(mut self, config: CacheConfig<K>) -> Self {
        self.cache = config;
        self
    }
}

impl<K> KindOptions<K>
where
    K: Resource<Scope = NamespaceResourceScope> + 'static,
    K::DynamicType: Default,
{
    /// Only objects in this namespace (namespaced kinds only).
    pub fn namespace(mut self, namespace: &str) -> Self {
        let namespace = namespace.to_owned();
        self.api = Box::new(move |client| Api::namespaced(client, &namespace));
        self
    }
}

/// Registers kinds for a [`CacheSet`]; see [`CacheSet::builder`].
pub struct CacheSetBuilder {
    client: Client,
    ttl: Duration,
    metrics: Metrics,
    typed: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    members: Vec<Arc<dyn AnyCache>>,
    pending: Vec<PendingReflector>,
}

impl Debug for CacheSetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSetBuilder")
            .field("ttl", &self.ttl)
            .field("kinds", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl CacheSetBuilder {
    /// The TTL of every kind that does not set its own (default [`DEFAULT_TTL`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Reports every cache of the set through these metrics (default: a fresh [`Metrics`],
    /// available from [`CacheSet::metrics`]).
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = metrics.clone();
        self
    }

    /// Registers a kind and returns its cache at once (not ready until the set is started
    /// and synced). Registering a kind twice replaces the first registration's entry for
    /// [`CacheSet::get`], but both caches run.
    pub fn add<K>(&mut self, options: KindOptions<K>) -> Cache<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        let api = (options.api)(self.client.clone());
        let (cache, pending) = ReflectorBuilder::new(api)
            .watcher_config(options.watcher)
            .ttl(options.ttl.unwrap_or(self.ttl))
            .metrics(&self.metrics)
            .cache_config(options.cache)
            .prepare();
        self.typed
            .insert(TypeId::of::<K>(), Box::new(cache.clone()));
        self.members.push(cache.erased());
        self.pending.push(pending);
        cache
    }

    /// Registers a kind (chaining form of [`add`](Self::add); get the cache later with
    /// [`CacheSet::get`]).
    pub fn with<K>(mut self, options: KindOptions<K>) -> Self
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        self.add(options);
        self
    }

    /// Starts every reflector.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn start(self) -> CacheSet {
        let handles = self
            .pending
            .into_iter()
            .map(PendingReflector::spawn)
            .collect();
        CacheSet {
            typed: self.typed,
            members: self.members,
            handles,
            metrics: self.metrics,
        }
    }
}

/// Several kinds cached on one client: typed access, one readiness, one shutdown, one metrics
/// registry.
pub struct CacheSet {
    typed: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    members: Vec<Arc<dyn AnyCache>>,
    handles: Vec<ReflectorHandle>,
    metrics: Metrics,
}

impl Debug for CacheSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSet")
            .field("kinds", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl CacheSet {
    /// A builder for a set of caches that all use `client`.
    pub fn builder(client: Client) -> CacheSetBuilder {
        CacheSetBuilder {
            client,
            ttl: DEFAULT_TTL,
            metrics: Metrics::new(),
            typed: HashMap::new(),
            members: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The cache of kind `K`, if it was registered. The handle returned by
    /// [`CacheSetBuilder::add`] is the infallible way to hold a cache.
    pub fn get<K: Send + Sync + 'static>(&self) -> Option<Cache<K>> {
        self.typed
            .get(&TypeId::of::<K>())
            .and_then(|c| c.downcast_ref::<Cache<K>>())
            .cloned()
    }

    /// Waits until every cache has completed its first sync.
    pub async fn ready(&self) -> Result<(), Error> {
        join_all(self.members.iter().map(|m| m.ready()))
            .await
            .into_iter()
            .collect()
    }

    /// Waits at most `timeout` for every cache's first sync; the error names a kind that was
    /// not ready.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.ready()).await {
            Ok(result) => result,
            Err(_) => {
                let kind = self
                    .members
                    .iter()
                    .map(|m| m.stats())
                    .find(|s| !s.ready)
                    .map(|s| s.kind)
                    .unwrap_or_default();
                Err(Error::ReadyTimeout {
                    kind,
                    waited: timeout,
                })
            }
        }
    }

    /// Whether every cache has completed its first sync.
    pub fn is_ready(&self) -> bool {
        self.members.iter().all(|m| m.stats().ready)
    }

    /// The metrics of every cache in the set (register them with your registry, or render
    /// them with [`Metrics::render`]).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every cache's figures.
    pub fn stats(&self) -> Vec<Stats> {
        self.members.iter().map(|m| m.stats()).collect()
    }

    /// Stops every reflector and waits until they have ended. The caches keep their last
    /// snapshots.
    pub async fn shutdown(self) {
        join_all(self.handles.into_iter().map(ReflectorHandle::stop)).await;
    }
}
