//! [`Cache`]: the cheap, cloneable read handle, and the state it shares with its writer.
//!
//! The read path is `ArcSwap::load` (one atomic load, no lock, no I/O) followed by plain
//! lookups in the immutable [`Snapshot`]. Nothing on it waits for the writer. The policy reads
//! (`*_with`) and [`Cache::refresh`] are the only calls that may reach the API server.

use std::fmt::{self, Debug};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use crate::change::Batch;
use crate::clock::Clock;
use crate::error::Error;
use crate::index::Indexer;
use crate::key::ObjectKey;
use crate::live::Live;
use crate::policy::{DEFAULT_VERSION_WAIT, Read, ReadPolicy, Source};
use crate::snapshot::Snapshot;
use crate::state::CacheState;
use crate::stats::{ApiReason, Counters, RelistReason, Stats};
use crate::subscription::Subscription;

/// Whether a cache has completed its first full sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Readiness {
    /// No relist has completed yet.
    Pending,
    /// The first relist completed; stays so until the cache stops.
    Ready,
    /// The writer or its reflector stopped (before or after the first relist): never ready
    /// again.
    Stopped,
}

/// Why a cache stopped when its writer went away and nothing more specific was recorded.
const WRITER_STOPPED: &str = "its writer was dropped or poisoned";

/// A request from a read handle to its reflector task.
pub(crate) enum Command {
    /// Relist now; answer with the generation of the relist's snapshot.
    Refresh(oneshot::Sender<u64>),
}

/// What a [`Cache`] shares with its [`Writer`](crate::Writer) and reflector.
pub(crate) struct Shared<K> {
    /// The current snapshot; replaced whole by the writer.
    pub(crate) current: ArcSwap<Snapshot<K>>,
    readiness: watch::Sender<Readiness>,
    pub(crate) clock: Clock,
    /// The kind's name, for logs, errors and metric labels.
    pub(crate) kind: String,
    pub(crate) counters: Counters,
    /// The reflector's view of the cache's state.
    pub(crate) state: ArcSwap<CacheState>,
    /// The TTL in nanoseconds; 0 disables it.
    ttl_nanos: AtomicU64,
    /// The last completed relist and when it completed.
    pub(crate) last_relist: ArcSwapOption<(RelistReason, Instant)>,
    /// Set by the reflector: how to make live reads.
    pub(crate) live: OnceLock<Live>,
    /// Set by the reflector: how to ask it for a refresh.
    pub(crate) control: OnceLock<mpsc::UnboundedSender<Command>>,
    /// Where the writer sends its changes (weak: the stream ends when the writer goes).
    pub(crate) changes: broadcast::WeakSender<Arc<Batch<K>>>,
    /// Woken at every publish and every proven progress (for [`Cache::wait_for`]).
    published: Notify,
    /// The newest resourceVersion a watch BOOKMARK proved the current snapshot reflects (0:
    /// none). Only grows: a later snapshot reflects at least what an earlier one did.
    progress: AtomicU64,
    /// The newest bookmark seen on the wire and not applied yet (0: none).
    bookmark: AtomicU64,
    /// Wakes the reflector when a bookmark was seen.
    pub(crate) bookmark_seen: Notify,
}

impl<K> Shared<K> {
    pub(crate) fn new(
        kind: String,
        indexers: Arc<[Indexer<K>]>,
        changes: broadcast::WeakSender<Arc<Batch<K>>>,
    ) -> Self {
        let clock = Clock::new();
        Self {
            current: ArcSwap::from_pointee(Snapshot::empty(clock, indexers)),
            readiness: watch::Sender::new(Readiness::Pending),
            clock,
            kind,
            counters: Counters::default(),
            state: ArcSwap::from_pointee(CacheState::Starting),
            ttl_nanos: AtomicU64::new(0),
            last_relist: ArcSwapOption::empty(),
            live: OnceLock::new(),
            control: OnceLock::new(),
            changes,
            published: Notify::new(),
            progress: AtomicU64::new(0),
            bookmark: AtomicU64::new(0),
            bookmark_seen: Notify::new(),
        }
    }

    /// Wakes the callers waiting for a version: a snapshot was published.
    pub(crate) fn notify_published(&self) {
        self.published.notify_waiters();
    }

    /// Records that the current snapshot reflects everything up to resourceVersion `rv` (a
    /// BOOKMARK proved it), and wakes the callers waiting for a version.
    pub(crate) fn note_progress(&self, rv: u64) {
        if self.progress.fetch_max(rv, Ordering::AcqRel) < rv {
            self.published.notify_waiters();
        }
    }

    /// A BOOKMARK of this resourceVersion was seen on the watch's wire (not applied yet: the
    /// reflector applies it once the events in front of it are in; see `bookmark`).
    pub(crate) fn saw_bookmark(&self, rv: u64) {
        self.bookmark.fetch_max(rv, Ordering::AcqRel);
        self.bookmark_seen.notify_one();
    }

    /// Takes the newest bookmark seen and not applied yet (0: none).
    pub(crate) fn take_bookmark(&self) -> u64 {
        self.bookmark.swap(0, Ordering::AcqRel)
    }

    /// The newest resourceVersion `snapshot` (the current one) is known to reflect: its own
    /// version or a later one proven by a bookmark. `None` when its version does not parse as
    /// an integer (incomparable), or when it has none and no bookmark proved any.
    pub(crate) fn version_of(&self, snapshot: &Snapshot<K>) -> Option<u64> {
        let progress = self.progress.load(Ordering::Acquire);
        match snapshot.resource_version() {
            Some(rv) => rv.parse::<u64>().ok().map(|rv| rv.max(progress)),
            None => (progress > 0).then_some(progress),
        }
    }

    /// Records a completed sync: the state becomes `Ready` first, and only then is readiness
    /// signalled, so that whoever sees `wait_ready` return Ok also sees `is_ready()` and
    /// `state()` say ready (one truth for every surface). A stopped cache stays stopped.
    pub(crate) fn mark_ready(&self) {
        if !self.set_state(CacheState::Ready) {
            return;
        }
        self.readiness.send_if_modified(|r| {
            let changed = *r == Readiness::Pending;
            if changed {
                *r = Readiness::Ready;
            }
            changed
        });
    }

    /// Records that no writer will ever update this cache again (the writer was dropped or
    /// poisoned). Keeps a more specific reason recorded before (e.g. the reflector's).
    pub(crate) fn mark_stopped(&self) {
        self.stop(WRITER_STOPPED, false);
    }

    /// Records that the cache stopped for good, and why (replacing a less specific reason).
    pub(crate) fn mark_stopped_because(&self, reason: impl Into<String>) {
        self.stop(&reason.into(), true);
    }

    fn stop(&self, reason: &str, replace: bool) {
        self.state.rcu(|state| match &**state {
            CacheState::Stopped { .. } if !replace => state.clone(),
            _ => Arc::new(CacheState::Stopped {
                reason: reason.to_owned(),
            }),
        });
        // After the state: whoever sees readiness end sees why.
        self.readiness.send_if_modified(|r| {
            let changed = *r != Readiness::Stopped;
            *r = Readiness::Stopped;
            changed
        });
    }

    /// Stores the reflector's view of the state, unless the cache has stopped (a stopped cache
    /// never comes back). Returns whether it was stored.
    pub(crate) fn set_state(&self, new: CacheState) -> bool {
        let new = Arc::new(new);
        let previous = self.state.rcu(|state| {
            if state.is_stopped() {
                state.clone()
            } else {
                new.clone()
            }
        });
        !previous.is_stopped()
    }

    /// The error for a call that needs a cache that has stopped.
    pub(crate) fn stopped_error(&self) -> Error {
        let reason = match &**self.state.load() {
            CacheState::Stopped { reason } => reason.clone(),
            _ => WRITER_STOPPED.to_owned(),
        };
        Error::Stopped {
            kind: self.kind.clone(),
            reason,
        }
    }

    /// Whether the cache has stopped for good.
    pub(crate) fn is_stopped(&self) -> bool {
        self.state.load().is_stopped()
    }

    pub(crate) fn set_ttl(&self, ttl: Duration) {
        let nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        self.ttl_nanos.store(nanos, Ordering::Relaxed);
    }

    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_nanos(self.ttl_nanos.load(Ordering::Relaxed))
    }

    fn is_ready(&self) -> bool {
        *self.readiness.borrow() == Readiness::Ready && !self.is_stopped()
    }
}

/// Which objects of a kind a cache holds; see [`Cache::scope`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheScope {
    /// Only objects in this namespace (`None`: all namespaces, or a cluster-scoped kind).
    pub namespace: Option<String>,
    /// Only objects matching this label selector.
    pub label_selector: Option<String>,
    /// Only objects matching this field selector.
    pub field_selector: Option<String>,
}

impl CacheScope {
    /// Whether the cache holds only the objects matching a selector.
    pub fn is_selective(&self) -> bool {
        self.label_selector.is_some() || self.field_selector.is_some()
    }
}

/// A read handle on a cache of `K` objects: cheap to clone, `Send + Sync`.
///
/// Reads never do I/O and never wait on the writer: [`snapshot`](Self::snapshot) is one
/// atomic load, and [`get`](Self::get) / [`get_namespaced`](Self::get_namespaced) add one
/// hash lookup. A miss while the cache [is ready](Self::is_ready) is authoritative: the object
/// was not on the server as of the snapshot.
///
/// For several reads that must see one moment, take one [`Snapshot`] and read from it. For reads
/// with a freshness bound, or the bypass, see [`get_with`](Self::get_with) and [`ReadPolicy`].
pub struct Cache<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<K> fmt::Debug for Cache<K> {
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

impl<K> Cache<K> {
    pub(crate) fn from_shared(shared: Arc<Shared<K>>) -> Self {
        Self { shared }
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

    /// A per-thread read handle whose reads skip arc-swap's guard: one relaxed load to check the
    /// snapshot is current, then the lookup. For hot loops; see [`Reader`](crate::Reader).
    pub fn reader(&self) -> crate::reader::Reader<K> {
        crate::reader::Reader::new(self.shared.clone())
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
    pub fn scope(&self) -> Option<CacheScope> {
        self.shared.live.get().map(Live::scope)
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
        let ttl = self.ttl();
        !ttl.is_zero() && self.shared.current.load().since_confirmed() > ttl
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
            rejected_lines: crate::LineRejection::ALL.map(|r| (r, 0)),
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

    /// Forces a relist now and resolves when its snapshot is published, with that snapshot's
    /// generation: "clear the cache", without ever showing readers an empty one.
    ///
    /// Fails with [`Error::NoReflector`] for a cache fed by hand, and [`Error::Stopped`] when the
    /// reflector has stopped.
    pub async fn refresh(&self) -> Result<u64, Error> {
        let control = self
            .shared
            .control
            .get()
            .ok_or_else(|| Error::NoReflector {
                kind: self.shared.kind.clone(),
            })?;
        let (tx, rx) = oneshot::channel();
        let stopped = || self.shared.stopped_error();
        control.send(Command::Refresh(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
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
                return Ok(if !self.is_ready() || snapshot.since_confirmed() > bound {
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
                let live = self.live(ApiReason::Version)?;
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

    fn live(&self, reason: ApiReason) -> Result<&Live, Error> {
        let live = self.shared.live.get().ok_or_else(|| Error::NoReflector {
            kind: self.shared.kind.clone(),
        })?;
        self.shared.counters.record_api(reason);
        Ok(live)
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

impl<K: Resource> Cache<K> {
    /// The cluster-scoped object with this name, from the current snapshot.
    ///
    /// For namespaced kinds use [`get_namespaced`](Self::get_namespaced).
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        let found = self.shared.current.load().get(name).cloned();
        self.count(found.is_some());
        found
    }

    /// The namespaced object with this namespace and name, from the current snapshot.
    pub fn get_namespaced(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let found = self
            .shared
            .current
            .load()
            .get_namespaced(namespace, name)
            .cloned();
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
                let mut objects = self.live(reason)?.list::<K>().await?;
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
                let found = self.live(reason)?.get::<K>(namespace, name).await?;
                Ok(Read {
                    value: found.map(Arc::new),
                    source: Source::Live,
                })
            }
        }
    }
}
