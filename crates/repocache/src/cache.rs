//! [`Cache`]: the cheap, cloneable read handle (the state it shares with its writer is in
//! `shared`).
//!
//! The read path is one relaxed load that checks the snapshot the reading thread keeps pinned is
//! current (`get`; `snapshot` and `list` take `ArcSwap`'s load) followed by plain lookups in
//! the immutable [`Snapshot`]: no lock, no I/O. Nothing on it waits for the writer. The policy reads
//! (`*_with`) and [`Cache::refresh`] are the only calls that may reach the API server.

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::key::ObjectKey;
pub use crate::live::CacheScope;
use crate::live::Live;
pub use crate::pin::unpin_thread;
use crate::policy::{DEFAULT_VERSION_WAIT, Read, ReadPolicy, Source};
pub use crate::reader::Reader;
use crate::shared::{Command, Readiness, Shared};
use crate::snapshot::Snapshot;
use crate::state::CacheState;
use crate::stats::{ApiReason, RelistReason, Stats};
use crate::subscription::Subscription;
use crate::writer::Writer;

/// A read handle on a cache of `K` objects: cheap to clone, `Send + Sync`.
///
/// Reads never do I/O and never wait on the writer: [`snapshot`](Self::snapshot) is one
/// atomic load, and [`get`](Self::get) / [`get_namespaced`](Self::get_namespaced) add one
/// hash lookup. A miss while the cache [is ready](Self::is_ready) is authoritative: the object
/// was not on the server as of the snapshot.
///
/// For several reads that must see one moment, take one [`Snapshot`] and read from it. For reads
/// with a freshness bound, or the bypass, see [`get_with`](Self::get_with) and [`ReadPolicy`].
///
/// # How it is fed, in its type
///
/// The second parameter says what feeds the cache. `Cache<K>` is `Cache<K, Watched>`: a cache
/// its reflector feeds (from [`reflector()`](crate::reflector()), `ReflectorBuilder` or
/// `CacheSet`), which also has the reads that may reach the API server
/// ([`get_with`](Self::get_with), [`list_with`](Self::list_with)) and
/// [`refresh`](Self::refresh). A cache fed by hand through a bare [`Writer`] is a
/// `Cache<K, Local>`: it has every snapshot read, readiness, versions, stats and subscriptions,
/// and no call that needs a server (there is none to ask), so such a call does not compile
/// rather than fail at run time.
pub struct Cache<K, F = Watched> {
    pub(crate) shared: Arc<Shared<K>>,
    feed: F,
}

/// What feeds a [`Cache`]: [`Watched`] (a reflector) or [`Local`] (a bare `Writer`). Sealed.
pub trait Feed: Clone + Send + Sync + sealed::Sealed + 'static {
    /// Which objects of the kind the cache holds (`None`: whatever its writer applies).
    #[doc(hidden)]
    fn scope(&self) -> Option<CacheScope>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Watched {}
    impl Sealed for super::Local {}
}

/// A [`Cache`] fed by its reflector: policy reads and [`Cache::refresh`] reach its API server.
#[derive(Clone)]
pub struct Watched {
    link: Arc<Link>,
}

impl Watched {
    pub(crate) fn new(live: Live, control: mpsc::UnboundedSender<Command>) -> Self {
        Self {
            link: Arc::new(Link { live, control }),
        }
    }
}

/// What a watched cache's handles hold of its reflector: how to make live reads, and how to
/// ask for a refresh. Set once, when the reflector is built, before any handle exists.
struct Link {
    live: Live,
    control: mpsc::UnboundedSender<Command>,
}

impl Feed for Watched {
    fn scope(&self) -> Option<CacheScope> {
        Some(self.link.live.scope())
    }
}

/// A [`Cache`] fed by hand through a bare [`Writer`]: snapshot reads only (no
/// server to ask).
#[derive(Clone, Copy, Debug)]
pub struct Local(());

impl Local {
    pub(crate) fn new() -> Self {
        Self(())
    }
}

impl Feed for Local {
    fn scope(&self) -> Option<CacheScope> {
        None
    }
}

impl<K, F: Clone> Clone for Cache<K, F> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            feed: self.feed.clone(),
        }
    }
}

impl<K, F> fmt::Debug for Cache<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.shared.current.load();
        f.debug_struct("Cache")
            .field("kind", &self.shared.kind)
            .field("state", &self.state().as_str())
            .field("len", &snapshot.len())
            .field("generation", &snapshot.generation())
            .finish()
    }
}

impl<K, F> Cache<K, F> {
    pub(crate) fn from_shared(shared: Arc<Shared<K>>, feed: F) -> Self {
        Self { shared, feed }
    }

    /// The same cache without its feed (for the crate's type-erased holders, which read
    /// snapshots only).
    pub(crate) fn local(&self) -> Cache<K, Local> {
        Cache::from_shared(self.shared.clone(), Local::new())
    }

    pub(crate) fn shared(&self) -> &Shared<K> {
        &self.shared
    }

    /// The current snapshot: one atomic load, no lock, no I/O.
    ///
    /// The snapshot stays valid (and unchanged) for as long as it is held, whatever the
    /// writer publishes meanwhile.
    pub fn snapshot(&self) -> Arc<Snapshot<K>> {
        self.shared.current.load_full()
    }

    /// A per-thread read handle that keeps the current snapshot itself: one relaxed load to check
    /// it is current, then the lookup (what [`get`](Self::get) does, without finding the
    /// thread's pin first). For hot loops; see [`Reader`].
    pub fn reader(&self) -> Reader<K> {
        Reader::new(self.shared.clone())
    }

    /// Every object of the current snapshot, ordered by namespace then name.
    ///
    /// This allocates the returned vector (one `Arc` clone per object); to walk the objects
    /// without allocating, iterate a [`snapshot`](Self::snapshot) instead.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.shared.current.load().to_vec()
    }

    /// Which objects of the kind this cache holds: its namespace restriction and selectors.
    /// `None` for a cache fed by hand, which covers whatever its writer applies.
    pub fn scope(&self) -> Option<CacheScope>
    where
        F: Feed,
    {
        self.feed.scope()
    }

    /// Counts one read as a hit or a miss (reads inside the crate that bypass `get`).
    #[inline]
    pub(crate) fn count(&self, hit: bool) {
        if hit {
            self.shared.counters.hits.incr();
        } else {
            self.shared.counters.misses.incr();
        }
    }

    /// The kind this cache holds, e.g. `PackageRepository`.
    pub fn kind(&self) -> &str {
        &self.shared.kind
    }

    /// The TTL: how long a snapshot may go unconfirmed before it is stale. Zero: disabled.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl()
    }

    /// Whether the first full sync has completed and the cache has not stopped. Stays true
    /// across later relists, staleness and failures; false for good once the cache is
    /// [`Stopped`](CacheState::Stopped).
    ///
    /// Agrees with [`wait_ready`](Self::wait_ready) and [`state`](Self::state): once
    /// `wait_ready` returned Ok, `is_ready()` is true and `state()` is no longer `Starting`.
    pub fn is_ready(&self) -> bool {
        self.shared.is_ready()
    }

    /// Whether the current snapshot went unconfirmed for longer than the TTL.
    pub fn is_stale(&self) -> bool {
        !self.shared.current.load().is_within_ttl(self.ttl())
    }

    /// The cache's state: [`Starting`](CacheState::Starting), [`Ready`](CacheState::Ready),
    /// [`Stale`](CacheState::Stale), [`Failed`](CacheState::Failed) or
    /// [`Stopped`](CacheState::Stopped).
    ///
    /// A ready cache whose snapshot outlived its TTL reports `Stale` even before its reflector
    /// notices.
    pub fn state(&self) -> CacheState {
        let state = CacheState::clone(&self.shared.state.load());
        if state == CacheState::Ready && self.is_stale() {
            let snapshot = self.shared.current.load();
            return CacheState::Stale {
                since: crate::clock::saturating_add(snapshot.confirmed_at(), self.ttl()),
                reason: format!("not confirmed within the TTL of {:?}", self.ttl()),
            };
        }
        state
    }

    /// The cache's figures now (the same ones [`Metrics`](crate::Metrics) renders).
    pub fn stats(&self) -> Stats {
        let snapshot = self.shared.current.load();
        let mut stats = Stats {
            kind: self.shared.kind.clone(),
            state: self.state(),
            ready: self.is_ready(),
            ttl: self.ttl(),
            hits: 0,
            misses: 0,
            api_requests: ApiReason::ALL.map(|r| (r, 0)),
            events: crate::stats::EventType::ALL.map(|t| (t, 0)),
            relists: RelistReason::ALL.map(|r| (r, 0)),
            decode_failures: 0,
            rejected_lines: crate::stats::LineRejection::ALL.map(|r| (r, 0)),
            decoding: Default::default(),
            objects: snapshot.len(),
            generation: snapshot.generation(),
            resource_version: snapshot.resource_version().map(str::to_owned),
            version: self.shared.version_of(&snapshot),
            snapshot_age: snapshot.age(),
            since_confirmed: snapshot.since_confirmed(),
            last_relist: self
                .shared
                .last_relist
                .load()
                .as_deref()
                .map(|(reason, at)| (*reason, at.elapsed())),
            event_to_visible: Default::default(),
        };
        self.shared.counters.fill(&mut stats);
        stats
    }

    /// Waits until the first full sync has completed.
    ///
    /// Returns at once when the cache is already ready. Fails with [`Error::Stopped`] when the
    /// cache has stopped (its writer or reflector ended, before or after the first sync): a
    /// stopped cache is never ready.
    pub async fn ready(&self) -> Result<(), Error> {
        let mut rx = self.shared.readiness.subscribe();
        let result = rx.wait_for(|r| *r != Readiness::Pending).await;
        match result.map(|r| *r) {
            Ok(Readiness::Ready) => Ok(()),
            _ => Err(self.shared.stopped_error()),
        }
    }

    /// Waits at most `timeout` (any duration; `Duration::MAX` waits for ever) for the first
    /// full sync.
    ///
    /// Fails with [`Error::ReadyTimeout`] when the time runs out first, and with
    /// [`Error::Stopped`] when the cache has stopped.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.ready()).await {
            Ok(result) => result,
            Err(_) => Err(Error::ReadyTimeout {
                kind: self.shared.kind.clone(),
                waited: timeout,
            }),
        }
    }

    /// Subscribes to the cache's changes: first the current state as
    /// [`Change::Added`](crate::Change::Added) and a [`Change::Synced`](crate::Change::Synced)
    /// marker, then every change as it is published (added, updated with the old version,
    /// deleted with the last version), each tagged with its snapshot generation.
    ///
    /// A slow subscriber never slows the writer or other subscribers: when it falls more than
    /// the cache's subscriber buffer behind, it receives [`Change::Lagged`](crate::Change::Lagged)
    /// and then the changes that bring it to the current snapshot.
    pub fn subscribe(&self) -> Subscription<K>
    where
        K: Resource + Send + Sync + 'static,
    {
        Subscription::new(self.shared.clone())
    }

    /// The newest resourceVersion the current snapshot is known to reflect: the snapshot's own
    /// resourceVersion, or a later one that a watch BOOKMARK proved it current to. `None` when
    /// the snapshot's version is not an integer (resourceVersions are compared only when they
    /// parse) or when nothing proved any version yet.
    pub fn version(&self) -> Option<u64> {
        self.shared.version_of(&self.shared.current.load())
    }

    /// Waits until the snapshot reflects `resource_version` (e.g. the one a write of yours
    /// returned), at most `timeout` (any duration), and returns that snapshot: reads from it
    /// see the write and everything before it.
    ///
    /// Versions are compared as integers. Fails with [`Error::IncomparableVersion`] when
    /// `resource_version` or the snapshot's does not parse (the safe answer then is a live
    /// read), [`Error::VersionTimeout`] when the time runs out, and [`Error::Stopped`] when the
    /// cache stops. Returns at once when the snapshot already reflects it. Costs no request.
    pub async fn wait_for(
        &self,
        resource_version: &str,
        timeout: Duration,
    ) -> Result<Arc<Snapshot<K>>, Error> {
        let want = resource_version
            .parse::<u64>()
            .map_err(|_| Error::IncomparableVersion {
                kind: self.shared.kind.clone(),
                version: resource_version.to_owned(),
            })?;
        self.wait_for_version(want, timeout).await
    }

    pub(crate) async fn wait_for_version(
        &self,
        want: u64,
        timeout: Duration,
    ) -> Result<Arc<Snapshot<K>>, Error> {
        let shared = &self.shared;
        let deadline = crate::clock::later(tokio::time::Instant::now().into_std(), timeout)
            .map(tokio::time::Instant::from_std);
        loop {
            // Register for the next publish before looking, so that none is missed.
            let notified = shared.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let snapshot = shared.current.load_full();
            let reached = shared.version_of(&snapshot);
            match reached {
                Some(rv) if rv >= want => return Ok(snapshot),
                None if snapshot.resource_version().is_some() => {
                    return Err(Error::IncomparableVersion {
                        kind: shared.kind.clone(),
                        version: want.to_string(),
                    });
                }
                _ => {}
            }
            if shared.is_stopped() {
                return Err(shared.stopped_error());
            }
            let timed_out = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, notified).await.is_err(),
                None => {
                    notified.await;
                    false
                }
            };
            if timed_out {
                return Err(Error::VersionTimeout {
                    kind: shared.kind.clone(),
                    version: want.to_string(),
                    reached,
                    waited: timeout,
                });
            }
        }
    }

    fn from_snapshot<T>(snapshot: &Snapshot<K>, value: T) -> Read<T> {
        Read {
            value,
            source: Source::Snapshot {
                generation: snapshot.generation(),
                since_confirmed: snapshot.since_confirmed(),
            },
        }
    }
}

impl<K> Cache<K> {
    /// Forces a relist now and resolves when its snapshot is published, with that snapshot's
    /// generation: "clear the cache", without ever showing readers an empty one.
    ///
    /// Fails with [`Error::Stopped`] when the reflector has stopped. (A cache fed by hand, a
    /// `Cache<K, Local>`, has no `refresh`: nobody could relist it.)
    pub async fn refresh(&self) -> Result<u64, Error> {
        let control = &self.feed.link.control;
        let (tx, rx) = oneshot::channel();
        let stopped = || self.shared.stopped_error();
        control.send(Command::Refresh(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Decides whether a policy read must go to the server, and why; for the version policies,
    /// waits for the snapshot first. Returns the snapshot to answer from otherwise.
    async fn plan_read(
        &self,
        policy: ReadPolicy,
    ) -> Result<Result<Arc<Snapshot<K>>, ApiReason>, Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        let snapshot = self.shared.current.load_full();
        let want = match policy {
            ReadPolicy::Cached => return Ok(Ok(snapshot)),
            ReadPolicy::Fresh => return Ok(Err(ApiReason::Fresh)),
            ReadPolicy::MaxStaleness(bound) => {
                // An unverified warm-start snapshot answers while the file's age is within
                // the bound (its confirmation time is when the file was written).
                let synced = self.is_ready() || self.shared.is_unverified();
                return Ok(if !synced || !snapshot.is_fresh(bound) {
                    Err(ApiReason::Fallback)
                } else {
                    Ok(snapshot)
                });
            }
            // A cache that never synced cannot reach any version: read live at once.
            ReadPolicy::AtLeast(_) | ReadPolicy::Consistent if !self.is_ready() => {
                return Ok(Err(ApiReason::Fallback));
            }
            ReadPolicy::AtLeast(rv) => rv,
            ReadPolicy::Consistent => {
                let live = self.live(ApiReason::Version);
                match live.current_version::<K>().await? {
                    Some(rv) => rv,
                    // The server's version is not an integer: only a live read is safe.
                    None => return Ok(Err(ApiReason::Fallback)),
                }
            }
        };
        match self.wait_for_version(want, DEFAULT_VERSION_WAIT).await {
            Ok(snapshot) => Ok(Ok(snapshot)),
            Err(Error::Stopped { .. } | Error::VersionTimeout { .. })
            | Err(Error::IncomparableVersion { .. }) => Ok(Err(ApiReason::Fallback)),
            Err(other) => Err(other),
        }
    }

    fn live(&self, reason: ApiReason) -> &Live {
        self.shared.counters.record_api(reason);
        &self.feed.link.live
    }
}

impl<K: Resource, F> Cache<K, F> {
    /// The cluster-scoped object with this name, from the current snapshot.
    ///
    /// For namespaced kinds use [`get_namespaced`](Self::get_namespaced).
    ///
    /// Reads through the snapshot this thread keeps pinned for this cache, checked current with
    /// one relaxed load: no lock, no I/O, no read-modify-write of shared memory, and no
    /// allocation after the thread's first read of this cache. See
    /// [`unpin_thread`] for what a pin holds.
    pub fn get(&self, name: &str) -> Option<Arc<K>>
    where
        K: 'static,
    {
        let found = crate::pin::read_current(&self.shared, |s| s.get(name).cloned());
        self.count(found.is_some());
        found
    }

    /// The namespaced object with this namespace and name, from the current snapshot.
    ///
    /// Reads as [`get`](Self::get) reads.
    pub fn get_namespaced(&self, namespace: &str, name: &str) -> Option<Arc<K>>
    where
        K: 'static,
    {
        let found =
            crate::pin::read_current(&self.shared, |s| s.get_namespaced(namespace, name).cloned());
        self.count(found.is_some());
        found
    }

    /// The objects indexed under `value` in the index called `index`, from the current
    /// snapshot, in (namespace, name) order. Fails with [`Error::NoSuchIndex`] when the cache
    /// has no index of that name.
    pub fn by_index(&self, index: &str, value: &str) -> Result<Vec<Arc<K>>, Error> {
        let snapshot = self.shared.current.load();
        match snapshot.by_index(index, value) {
            Some(objects) => Ok(objects.cloned().collect()),
            None => Err(Error::NoSuchIndex {
                kind: self.shared.kind.clone(),
                index: index.to_owned(),
            }),
        }
    }
}

impl<K> Cache<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    /// The cluster-scoped object with this name, as fresh as `policy` asks.
    ///
    /// Makes at most one live GET (see [`ReadPolicy`]); a live answer is returned, never
    /// written into the cache (the watch delivers the change in its own order).
    pub async fn get_with(
        &self,
        name: &str,
        policy: ReadPolicy,
    ) -> Result<Read<Option<Arc<K>>>, Error> {
        self.read_one(None, name, policy).await
    }

    /// The namespaced object with this namespace and name, as fresh as `policy` asks.
    pub async fn get_namespaced_with(
        &self,
        namespace: &str,
        name: &str,
        policy: ReadPolicy,
    ) -> Result<Read<Option<Arc<K>>>, Error> {
        self.read_one(Some(namespace), name, policy).await
    }

    /// Every object, as fresh as `policy` asks: the snapshot's, or one live LIST with the
    /// cache's selectors, ordered by namespace then name either way.
    pub async fn list_with(&self, policy: ReadPolicy) -> Result<Read<Vec<Arc<K>>>, Error> {
        match self.plan_read(policy).await? {
            Ok(snapshot) => Ok(Self::from_snapshot(&snapshot, snapshot.to_vec())),
            Err(reason) => {
                let mut objects = self.live(reason).list::<K>().await?;
                objects.sort_by_cached_key(|o| ObjectKey::of(o.as_ref()));
                Ok(Read {
                    value: objects,
                    source: Source::Live,
                })
            }
        }
    }

    async fn read_one(
        &self,
        namespace: Option<&str>,
        name: &str,
        policy: ReadPolicy,
    ) -> Result<Read<Option<Arc<K>>>, Error> {
        match self.plan_read(policy).await? {
            Ok(snapshot) => {
                let found = match namespace {
                    Some(ns) => snapshot.get_namespaced(ns, name),
                    None => snapshot.get(name),
                }
                .cloned();
                self.count(found.is_some());
                Ok(Self::from_snapshot(&snapshot, found))
            }
            Err(reason) => {
                let found = self.live(reason).get::<K>(namespace, name).await?;
                Ok(Read {
                    value: found.map(Arc::new),
                    source: Source::Live,
                })
            }
        }
    }
}

/// The one type-erased view of a cache, for what holds caches of several kinds: [`Metrics`]
/// (crate::Metrics), `CacheSet` and the debug view's `CacheView`. Implemented once, for the
/// feed-less handle (`Cache::local`), so every holder erases a cache the same way.
// Metrics and `CacheSet` read `kind`, `stats` and `ready`; the debug view reads the rest.
#[cfg_attr(not(feature = "debug"), allow(dead_code))]
pub(crate) trait AnyCache: Send + Sync {
    fn kind(&self) -> &str;
    fn is_ready(&self) -> bool;
    fn is_stale(&self) -> bool;
    fn state(&self) -> CacheState;
    fn stats(&self) -> Stats;
    fn generation(&self) -> u64;
    fn ready(&self) -> BoxFuture<'_, Result<(), Error>>;
}

impl<K: Send + Sync + 'static> AnyCache for Cache<K, Local> {
    fn kind(&self) -> &str {
        Cache::kind(self)
    }
    fn is_ready(&self) -> bool {
        Cache::is_ready(self)
    }
    fn is_stale(&self) -> bool {
        Cache::is_stale(self)
    }
    fn state(&self) -> CacheState {
        Cache::state(self)
    }
    fn stats(&self) -> Stats {
        Cache::stats(self)
    }
    fn generation(&self) -> u64 {
        self.snapshot().generation()
    }
    fn ready(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(Cache::ready(self))
    }
}

impl fmt::Debug for dyn AnyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyCache")
            .field("kind", &self.kind())
            .finish()
    }
}

impl<K: Send + Sync + 'static, F> Cache<K, F> {
    /// This cache, type-erased.
    pub(crate) fn erased(&self) -> std::sync::Arc<dyn AnyCache> {
        Arc::new(self.local())
    }
}

// `Writer::cache` lives here, beside the handle it builds, so that the writer (below the read
// handle) does not import it.
impl<K> Writer<K>
where
    K: Resource + Send + Sync + 'static,
{
    /// A read handle on the cache this writer publishes to: a `Cache<K, Local>`, with every
    /// snapshot read and no call that needs an API server (a bare writer has none); see
    /// [`Cache`], "How it is fed, in its type". The reflector hands out `Cache<K>` handles
    /// instead, which also make policy reads and refresh.
    ///
    /// ```compile_fail
    /// # async fn f() {
    /// let writer = repocache::Writer::<k8s_openapi::api::core::v1::ConfigMap>::new();
    /// // A cache fed by hand cannot be refreshed: nothing could relist it.
    /// writer.cache().refresh().await;
    /// # }
    /// ```
    ///
    /// ```compile_fail
    /// # async fn f() {
    /// let writer = repocache::Writer::<k8s_openapi::api::core::v1::ConfigMap>::new();
    /// // Nor read live: there is no server to ask.
    /// writer.cache().get_with("a", repocache::ReadPolicy::Fresh).await;
    /// # }
    /// ```
    pub fn cache(&self) -> Cache<K, Local> {
        Cache::from_shared(self.shared(), Local::new())
    }
}
