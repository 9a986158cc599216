//! The immutable [`Snapshot`]: every object of one kind at one moment, with its indexes.
//!
//! A snapshot is built by the [`Writer`](crate::Writer) and published whole; readers get it with
//! one atomic load and then only read. Its lookup index is a flat base table under a small
//! delta of recent changes (both shared between snapshots, the delta copied at most once per
//! publish) and its sorted vector is persistent (`imbl`), so the writer derives the next
//! snapshot from the previous one cheaply per event and both share almost all of their memory.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use kube::Resource;

use crate::base_key::BaseKey;
use crate::clock::Clock;
use crate::hasher::Hasher;
use crate::index::{IndexMap, Indexer};
use crate::key::{KeyView, ObjectKey};
use crate::ordered::Ordered;
use crate::tables::{FlatTable, Hashed, Slots};

/// Objects by (namespace, name): a flat hash table (the *base*) under a small flat table of
/// the changes made since the base was built (the *delta*), the LSM idea.
///
/// A read hashes its key once, probes the delta (skipped when empty) and then the base, each one
/// probe of a flat open-addressing table with the hash already computed, instead of a walk down a
/// persistent trie, whose dependent loads cost about twice as much once the table outgrows the CPU
/// caches. The base is a [`FlatTable`] (linear probing over the entries, inlined: reads mostly hit
/// it), the delta a `hashbrown` table (control bytes answer a miss without touching an entry: reads
/// mostly miss it); `tables` has the measurements. Both parts sit behind an `Arc`, so a snapshot is
/// an O(1) clone of the index. The writer puts every change in the delta, copying the delta first
/// when a published snapshot shares it (at most once per publish, at most [`REBUILD_MIN`] + n /
/// [`REBUILD_FRACTION`] entries); when the delta outgrows that bound, it folds it into a new base,
/// copying the base (one reference count per object, no rehashing: each entry keeps its hash) and
/// applying the delta. While no snapshot shares the base (a relist's index, built aside; the
/// writer's own between a fold and the next publish) changes go straight into it, in place.
/// Amortized, a change costs [`REBUILD_FRACTION`] entry copies for the folds, plus the delta's
/// copies at publishes, all on the writer.
///
/// Each entry stores the key's hash and the key itself inline when short ([`BaseKey`]), so that
/// a probe compares names without loading the object or another allocation.
pub(crate) struct Index<K> {
    base: Arc<Table<K, FlatTable<Entry<K>>>>,
    delta: Arc<Table<K, hashbrown::HashTable<Entry<K>>>>,
}

/// A table of entries (the base's [`FlatTable`] or the delta's `hashbrown` table: `tables`
/// says why each) with the hasher every lookup of it uses.
struct Table<K, S> {
    entries: S,
    hasher: Hasher,
    _entries: std::marker::PhantomData<fn() -> K>,
}

impl<K, S: Default> Table<K, S> {
    /// An empty table that hashes as `hasher` does (a delta hashes as its base).
    fn with_hasher(hasher: Hasher) -> Self {
        Self {
            entries: S::default(),
            hasher,
            _entries: std::marker::PhantomData,
        }
    }
}

impl<K, S: Default> Default for Table<K, S> {
    fn default() -> Self {
        Self::with_hasher(Hasher::default())
    }
}

impl<K, S: Clone> Clone for Table<K, S> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            hasher: self.hasher.clone(),
            _entries: std::marker::PhantomData,
        }
    }
}

/// One object of a table: its key's hash (a rehash on growth or a fold copies it instead of
/// hashing the names again), its key (inline when short), the object and, in the delta, whether
/// the change put the object (`true`) or removed it (`false`: the object is the removed one;
/// only its key counts). 64 bytes, one cache line; the base's entries are all present.
struct Entry<K> {
    hash: u64,
    key: BaseKey,
    obj: Arc<K>,
    present: bool,
}

impl<K> Clone for Entry<K> {
    fn clone(&self) -> Self {
        Self {
            hash: self.hash,
            key: self.key,
            obj: self.obj.clone(),
            present: self.present,
        }
    }
}

impl<K> Hashed for Entry<K> {
    #[inline(always)]
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl<K: Resource> Entry<K> {
    /// Whether this is the entry of (namespace, name): from the inline key, or for a long key
    /// from the object's metadata.
    #[inline(always)]
    fn is(&self, namespace: Option<&str>, name: &str) -> bool {
        match self.key.matches(namespace, name) {
            Some(matches) => matches,
            None => self.has_long_key(namespace, name),
        }
    }

    /// [`is`](Self::is) for a key too long to inline, from the object's metadata: out of line,
    /// so that the probe loop, which inlines `is`, stays small.
    #[cold]
    #[inline(never)]
    fn has_long_key(&self, namespace: Option<&str>, name: &str) -> bool {
        name_of(self.obj.as_ref()) == name && namespace_of(self.obj.as_ref()) == namespace
    }
}

impl<K: Resource, S: Slots<Entry<K>>> Table<K, S> {
    /// The key's hash: the name's bytes, then the namespace's when there is one, each written
    /// once (foldhash folds each write's length in, so ("ab", "c") and ("a", "bc") differ).
    /// Hashing the `(namespace, name)` tuple instead also wrote the `Option`'s discriminant and
    /// a terminator per string, and cost a second fold: 82 instructions per lookup against 46
    /// (callgrind, the benchmark's 32-byte names).
    #[inline(always)]
    fn hash(&self, namespace: Option<&str>, name: &str) -> u64 {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut hasher = self.hasher.build_hasher();
        hasher.write(name.as_bytes());
        if let Some(namespace) = namespace {
            hasher.write(namespace.as_bytes());
        }
        hasher.finish()
    }

    #[inline(always)]
    fn find(&self, hash: u64, namespace: Option<&str>, name: &str) -> Option<&Entry<K>> {
        self.entries.find(hash, |e| e.is(namespace, name))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records `obj` as put (`present`) or removed under its key; a base drops removed ones.
    fn put(&mut self, obj: Arc<K>, present: bool, keep_removed: bool) {
        let (namespace, name) = (namespace_of(obj.as_ref()), name_of(obj.as_ref()));
        let hash = self.hash(namespace, name);
        if !present && !keep_removed {
            self.entries.remove(hash, |e| e.is(namespace, name));
            return;
        }
        match self.entries.find_mut(hash, |e| e.is(namespace, name)) {
            Some(held) => {
                held.obj = obj;
                held.present = present;
            }
            None => self.entries.insert_unique(Entry {
                hash,
                key: BaseKey::new(namespace, name),
                obj,
                present,
            }),
        }
    }
}

/// The delta is folded into the base once it holds more than `REBUILD_MIN + n / REBUILD_FRACTION`
/// entries (n: the objects in the base).
pub(crate) const REBUILD_FRACTION: usize = 4;
/// See [`REBUILD_FRACTION`].
pub(crate) const REBUILD_MIN: usize = 64;

impl<K> Default for Index<K> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<K> Clone for Index<K> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            delta: self.delta.clone(),
        }
    }
}

impl<K> Index<K> {
    /// An empty index whose base holds `capacity` objects without growing: a relist's index,
    /// built aside from a batch of known size, is filled without rehashing.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let base = Table {
            entries: FlatTable::with_capacity(capacity),
            hasher: Hasher::default(),
            _entries: std::marker::PhantomData,
        };
        Self {
            delta: Arc::new(Table::with_hasher(base.hasher.clone())),
            base: Arc::new(base),
        }
    }
}

impl<K: Resource> Index<K> {
    /// The object under (namespace, name): the delta first when it holds anything, then the
    /// base. The key is hashed once.
    #[inline(always)]
    pub(crate) fn find(&self, namespace: Option<&str>, name: &str) -> Option<&Arc<K>> {
        let hash = self.base.hash(namespace, name);
        if !self.delta.is_empty()
            && let Some(change) = self.delta.find(hash, namespace, name)
        {
            return change.present.then_some(&change.obj);
        }
        self.base.find(hash, namespace, name).map(|e| &e.obj)
    }

    /// Inserts `obj`, or replaces the object under its key.
    pub(crate) fn insert(&mut self, obj: Arc<K>) {
        self.change(obj, true);
    }

    /// Removes the object under `key`; returns it when there was one.
    pub(crate) fn remove_with_key(&mut self, key: &dyn KeyView) -> Option<Arc<K>> {
        let removed = lookup(self, key)?.clone();
        self.change(removed.clone(), false);
        Some(removed)
    }

    /// Records one change: straight into the base when no snapshot shares it (a relist's index
    /// built aside, or the writer's between a fold and the next publish), else into the delta.
    fn change(&mut self, obj: Arc<K>, present: bool) {
        if Arc::get_mut(&mut self.base).is_some() {
            if !self.delta.is_empty() {
                self.fold();
            }
            Arc::make_mut(&mut self.base).put(obj, present, false);
            return;
        }
        Arc::make_mut(&mut self.delta).put(obj, present, true);
        self.fold_if_due();
    }

    /// The number of objects (walks the delta: for tests and debugging, not the read path).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let mut len = self.base.len();
        for change in self.delta.entries.iter() {
            let obj = change.obj.as_ref();
            let in_base = self.base.find(change.hash, namespace_of(obj), name_of(obj));
            match (in_base.is_some(), change.present) {
                (false, true) => len += 1,
                (true, false) => len -= 1,
                _ => {}
            }
        }
        len
    }

    /// The entries in the delta (for tests).
    #[cfg(test)]
    pub(crate) fn delta_len(&self) -> usize {
        self.delta.len()
    }

    fn fold_if_due(&mut self) {
        if self.delta.len() > REBUILD_MIN + self.base.len() / REBUILD_FRACTION {
            self.fold();
        }
    }

    /// Folds the delta into the base (see [`Index`]).
    fn fold(&mut self) {
        let delta = std::mem::replace(
            &mut self.delta,
            Arc::new(Table::with_hasher(self.base.hasher.clone())),
        );
        // In place when no snapshot shares the base; else on a copy (a reference count per
        // entry, no rehashing).
        let base = Arc::make_mut(&mut self.base);
        base.entries.reserve(delta.len());
        for change in delta.entries.iter() {
            base.put(change.obj.clone(), change.present, false);
        }
    }
}

fn namespace_of<K: Resource>(obj: &K) -> Option<&str> {
    obj.meta().namespace.as_deref().filter(|ns| !ns.is_empty())
}

fn name_of<K: Resource>(obj: &K) -> &str {
    obj.meta().name.as_deref().unwrap_or_default()
}

/// An object seen as its own key: (namespace, name) read from its metadata, no allocation.
pub(crate) struct ObjView<'a, K>(pub(crate) &'a K);

impl<K: Resource> KeyView for ObjView<'_, K> {
    fn ns(&self) -> Option<&str> {
        namespace_of(self.0)
    }
    fn nm(&self) -> &str {
        name_of(self.0)
    }
}

/// Whether an object has a name (and so can be cached).
pub(crate) fn has_name<K: Resource>(obj: &K) -> bool {
    obj.meta().name.as_deref().is_some_and(|n| !n.is_empty())
}

/// Looks an object up by a borrowed key (see [`Index::find`]).
#[inline]
pub(crate) fn lookup<'s, K: Resource>(
    index: &'s Index<K>,
    key: &dyn KeyView,
) -> Option<&'s Arc<K>> {
    index.find(key.ns(), key.nm())
}

/// An immutable, consistent view of every cached object of kind `K` at one moment.
///
/// Several reads from one snapshot always see the same moment. Holding a snapshot keeps its
/// objects alive; it never blocks the writer, which publishes newer snapshots beside it.
///
/// Lookups ([`get`](Self::get), [`get_namespaced`](Self::get_namespaced)) are hash lookups;
/// [`iter`](Self::iter) walks the objects in (namespace, name) order without allocating.
pub struct Snapshot<K> {
    pub(crate) index: Index<K>,
    pub(crate) ordered: Ordered<K>,
    pub(crate) resource_version: Option<Arc<str>>,
    pub(crate) generation: u64,
    pub(crate) built_at: Instant,
    /// Nanoseconds since the clock's epoch at which the watch last confirmed this snapshot.
    /// The only field that changes after publication: it only moves forward.
    pub(crate) confirmed: AtomicU64,
    pub(crate) clock: Clock,
    /// The cache's index functions (shared by every snapshot of the cache).
    pub(crate) indexers: Arc<[Indexer<K>]>,
    /// One map per indexer, in the same order.
    pub(crate) indexes: Vec<IndexMap>,
}

impl<K> Snapshot<K> {
    /// The empty snapshot a cache starts with, before its first sync (generation 0).
    pub(crate) fn empty(clock: Clock, indexers: Arc<[Indexer<K>]>) -> Self {
        let now = clock.now();
        Self {
            index: Index::default(),
            ordered: Ordered::new(),
            resource_version: None,
            generation: 0,
            built_at: now,
            confirmed: AtomicU64::new(clock.nanos(now)),
            clock,
            indexes: vec![IndexMap::default(); indexers.len()],
            indexers,
        }
    }

    /// All objects, ordered by namespace then name (cluster-scoped objects first).
    ///
    /// The iterator borrows the snapshot and allocates nothing.
    pub fn iter(&self) -> Iter<'_, K> {
        Iter {
            inner: self.ordered.iter(),
        }
    }

    /// The objects as an owned, ordered vector (one `Arc` clone per object).
    pub fn to_vec(&self) -> Vec<Arc<K>> {
        self.ordered.iter().cloned().collect()
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Whether the snapshot holds no objects.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// The newest resourceVersion applied to this snapshot: an event's object version, or the
    /// newest listed version for a relist — unless a newer version was already seen (it never
    /// goes backwards). `None` before the first sync.
    ///
    /// kube-runtime's watcher does not report a LIST's own resourceVersion, so after a relist
    /// this can be lower than the server's current revision (it is never higher).
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// A counter that increases with every published change; 0 is the empty snapshot a cache
    /// starts with, before its first sync.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When this snapshot was built.
    pub fn built_at(&self) -> Instant {
        self.built_at
    }

    /// When the watch last confirmed this snapshot: its build time, or later when an event that
    /// changed nothing (a repeated object, a delete of an unknown object) arrived after it.
    pub fn confirmed_at(&self) -> Instant {
        self.clock
            .instant(self.confirmed.load(AtomicOrdering::Relaxed))
    }

    /// How long ago this snapshot was built.
    pub fn age(&self) -> Duration {
        self.built_at.elapsed()
    }

    /// How long ago the watch last confirmed this snapshot.
    pub fn since_confirmed(&self) -> Duration {
        self.confirmed_at().elapsed()
    }

    /// Whether the watch confirmed this snapshot (by an event, a bookmark or a relist) at most
    /// `max_staleness` ago: the one freshness test of the crate.
    /// [`ReadPolicy::MaxStaleness`](crate::ReadPolicy::MaxStaleness), the layer's read policy,
    /// the TTL behind
    /// [`Cache::is_stale`](crate::Cache::is_stale) and the reflector's supervisor all ask it.
    pub fn is_fresh(&self, max_staleness: Duration) -> bool {
        self.since_confirmed() <= max_staleness
    }

    /// [`is_fresh`](Self::is_fresh) for a TTL, where zero disables the bound.
    pub(crate) fn is_within_ttl(&self, ttl: Duration) -> bool {
        ttl.is_zero() || self.is_fresh(ttl)
    }

    /// Marks the snapshot as confirmed now (monotonic: an earlier time never overwrites a later).
    pub(crate) fn confirm(&self, at: Instant) {
        self.confirmed
            .fetch_max(self.clock.nanos(at), AtomicOrdering::Relaxed);
    }
}

impl<K: Resource> Snapshot<K> {
    /// The objects indexed under `value` in the index called `index`, in (namespace, name)
    /// order; `None` when the cache has no index of that name.
    ///
    /// The index and the objects are from this one snapshot: always consistent.
    pub fn by_index<'a>(
        &'a self,
        index: &str,
        value: &str,
    ) -> Option<impl Iterator<Item = &'a Arc<K>> + 'a> {
        let position = self.indexers.iter().position(|i| &*i.name == index)?;
        let keys = self.indexes.get(position)?.get(value);
        Some(
            keys.into_iter()
                .flat_map(|keys| keys.iter())
                .filter_map(move |key| lookup(&self.index, key)),
        )
    }

    /// The values present in the index called `index` (unordered); `None` when there is no
    /// such index.
    pub fn index_values(&self, index: &str) -> Option<impl Iterator<Item = &str>> {
        let position = self.indexers.iter().position(|i| &*i.name == index)?;
        Some(self.indexes.get(position)?.keys().map(String::as_str))
    }

    /// The names of this cache's indexes.
    pub fn index_names(&self) -> impl Iterator<Item = &str> {
        self.indexers.iter().map(|i| i.name())
    }

    /// The object with this name, for cluster-scoped kinds.
    ///
    /// For namespaced kinds use [`get_namespaced`](Self::get_namespaced): a namespaced object is
    /// never found without its namespace.
    pub fn get(&self, name: &str) -> Option<&Arc<K>> {
        self.index.find(None, name)
    }

    /// The object with this namespace and name, for namespaced kinds.
    pub fn get_namespaced(&self, namespace: &str, name: &str) -> Option<&Arc<K>> {
        self.index.find(Some(namespace), name)
    }

    /// The object under this key.
    pub fn get_key(&self, key: &ObjectKey) -> Option<&Arc<K>> {
        lookup(&self.index, key)
    }

    /// Whether an object with this key is present.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.get_key(key).is_some()
    }
}

impl<K> fmt::Debug for Snapshot<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("len", &self.len())
            .field("generation", &self.generation)
            .field("resource_version", &self.resource_version)
            .field("age", &self.age())
            .finish_non_exhaustive()
    }
}

impl<'a, K> IntoIterator for &'a Snapshot<K> {
    type Item = &'a Arc<K>;
    type IntoIter = Iter<'a, K>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a snapshot's objects in (namespace, name) order; see [`Snapshot::iter`].
pub struct Iter<'a, K> {
    inner: imbl::vector::Iter<'a, Arc<K>, imbl::shared_ptr::DefaultSharedPtr>,
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = &'a Arc<K>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K> DoubleEndedIterator for Iter<'_, K> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back()
    }
}

impl<K> ExactSizeIterator for Iter<'_, K> {}

/// Compares two objects' positions in the (namespace, name) order.
pub(crate) fn cmp_objects<K: Resource>(a: &K, b: &K) -> Ordering {
    let (a, b) = (a.meta(), b.meta());
    let a_ns = a.namespace.as_deref().filter(|ns| !ns.is_empty());
    let b_ns = b.namespace.as_deref().filter(|ns| !ns.is_empty());
    a_ns.cmp(&b_ns).then_with(|| {
        a.name
            .as_deref()
            .unwrap_or_default()
            .cmp(b.name.as_deref().unwrap_or_default())
    })
}

/// Compares an object's position in the (namespace, name) order with a key.
pub(crate) fn cmp_object_key<K: Resource>(obj: &K, key: &dyn KeyView) -> Ordering {
    let meta = obj.meta();
    let ns = meta.namespace.as_deref().filter(|ns| !ns.is_empty());
    let name = meta.name.as_deref().unwrap_or_default();
    (&(ns, name) as &dyn KeyView).cmp(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    fn cm(name: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "resourceVersion": "1"},
        }))
        .unwrap()
    }

    fn synced(names: impl IntoIterator<Item = String>) -> Arc<Snapshot<ConfigMap>> {
        let mut writer = crate::Writer::<ConfigMap>::new();
        writer.apply(Event::Init);
        for name in names {
            writer.apply(Event::InitApply(cm(&name)));
        }
        writer.apply(Event::InitDone);
        writer.cache().snapshot()
    }

    fn empty() -> Snapshot<ConfigMap> {
        Snapshot::empty(Clock::new(), Arc::from(Vec::new()))
    }

    /// Waits (bounded, no sleep) until `elapsed` reads more than a microsecond: the monotonic
    /// clock has moved on since the instant it measures from.
    fn moved_on(elapsed: impl Fn() -> Duration) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = elapsed();
            if d > Duration::from_micros(1) {
                return d;
            }
            assert!(Instant::now() < deadline, "the monotonic clock never moved");
            std::thread::yield_now();
        }
    }

    #[test]
    fn an_empty_snapshot_is_empty_and_a_filled_one_is_not() {
        assert!(empty().is_empty());
        assert!(!synced([String::from("a")]).is_empty());
    }

    #[test]
    fn every_name_finds_its_own_object_and_absent_names_find_none() {
        // Enough objects that their hashes share the lookup map's buckets: a key comparison
        // that says "equal" too easily would hand out another object (or lose one).
        let snap = synced((0..200).map(|i| format!("cm-{i:03}")));
        assert_eq!(snap.len(), 200);
        for i in 0..200 {
            let name = format!("cm-{i:03}");
            let found = snap.get(&name).unwrap();
            assert_eq!(found.metadata.name.as_deref(), Some(name.as_str()));
            assert!(snap.get(&format!("absent-{i:03}")).is_none());
        }
    }

    #[test]
    fn age_and_freshness_follow_the_clock() {
        let snap = empty();
        let built = moved_on(|| snap.built_at().elapsed());
        assert!(snap.age() >= built);
        let unconfirmed = moved_on(|| snap.confirmed_at().elapsed());
        assert!(snap.since_confirmed() >= unconfirmed);
        // More than a microsecond since the confirmation: fresh within an hour, not within
        // nothing.
        let hour = Duration::from_secs(3600);
        assert!(snap.is_fresh(hour));
        assert!(!snap.is_fresh(Duration::ZERO));
        // A TTL of zero is no TTL; a nanosecond is long gone.
        assert!(snap.is_within_ttl(Duration::ZERO));
        assert!(snap.is_within_ttl(hour));
        assert!(!snap.is_within_ttl(Duration::from_nanos(1)));
    }
    #[test]
    fn index_names_lists_the_configured_indexes_in_order() {
        let config = crate::CacheConfig::new()
            .index_by("first", |_: &ConfigMap| vec![String::new()])
            .index_by("second", |_: &ConfigMap| Vec::new());
        let writer = crate::Writer::with_config(config);
        let snap = writer.cache().snapshot();
        assert_eq!(snap.index_names().collect::<Vec<_>>(), ["first", "second"]);
    }
    #[test]
    fn keys_find_what_names_find() {
        let snap = synced([String::from("a"), String::from("b")]);
        let a = crate::key::ObjectKey::cluster("a");
        assert_eq!(
            snap.get_key(&a).and_then(|o| o.metadata.name.as_deref()),
            Some("a")
        );
        assert!(snap.contains(&a));
        let absent = crate::key::ObjectKey::cluster("c");
        assert!(snap.get_key(&absent).is_none());
        assert!(!snap.contains(&absent));
        assert!(!snap.contains(&crate::key::ObjectKey::namespaced("ns", "a")));
    }

    fn cm_in(ns: Option<&str>, name: &str, version: u32) -> Arc<ConfigMap> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": version.to_string()},
            }))
            .unwrap(),
        )
    }

    /// One change to the index: upsert (namespace, name) at a version, or remove it.
    #[derive(Clone, Debug)]
    enum Change {
        Put(Option<u8>, u16, u32),
        Remove(Option<u8>, u16),
        /// Take a snapshot here (a clone of the index, as a publish takes).
        Publish,
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        // 2 x 300 keys: enough for the delta to outgrow `REBUILD_MIN` and be folded, often.
        let key = (proptest::option::of(0u8..2), 0u16..300);
        prop_oneof![
            6 => (key.clone(), any::<u32>()).prop_map(|((ns, n), v)| Change::Put(ns, n, v)),
            3 => key.prop_map(|(ns, n)| Change::Remove(ns, n)),
            1 => Just(Change::Publish),
        ]
    }

    type Model = std::collections::HashMap<(Option<String>, String), u32>;

    /// Every key of the universe finds in `index` exactly what `model` holds.
    fn agrees(index: &Index<ConfigMap>, model: &Model) -> Result<(), String> {
        for ns in [None, Some("ns-0".to_owned()), Some("ns-1".to_owned())] {
            for n in 0..300u16 {
                let name = format!("cm-{n}");
                let found = lookup(index, &(ns.as_deref(), name.as_str())).map(|o| {
                    assert_eq!(o.metadata.name.as_deref(), Some(name.as_str()));
                    assert_eq!(o.metadata.namespace, ns);
                    o.metadata
                        .resource_version
                        .clone()
                        .unwrap()
                        .parse::<u32>()
                        .unwrap()
                });
                let want = model.get(&(ns.clone(), name.clone())).copied();
                if found != want {
                    return Err(format!("{ns:?}/{name}: index {found:?}, model {want:?}"));
                }
            }
        }
        if index.len() != model.len() {
            return Err(format!("len {} vs model {}", index.len(), model.len()));
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// The base + delta index against a plain map, after every change; and every snapshot
        /// (a clone taken at a publish) still agrees, at the end, with the model as it was then:
        /// folds and in-place changes never reach a published index.
        #[test]
        fn base_and_delta_agree_with_a_plain_map(
            changes in proptest::collection::vec(change(), 1..800),
        ) {
            let mut index: Index<ConfigMap> = Index::default();
            let mut model = Model::new();
            let mut published: Vec<(Index<ConfigMap>, Model)> = Vec::new();
            let mut step = 0;
            for change in changes {
                match change {
                    Change::Put(ns, n, v) => {
                        let ns = ns.map(|i| format!("ns-{i}"));
                        let name = format!("cm-{n}");
                        index.insert(cm_in(ns.as_deref(), &name, v));
                        let found = lookup(&index, &(ns.as_deref(), name.as_str()))
                            .and_then(|o| o.metadata.resource_version.clone());
                        proptest::prop_assert_eq!(found, Some(v.to_string()));
                        model.insert((ns, name), v);
                    }
                    Change::Remove(ns, n) => {
                        let ns = ns.map(|i| format!("ns-{i}"));
                        let name = format!("cm-{n}");
                        let removed = index.remove_with_key(&(ns.as_deref(), name.as_str()));
                        proptest::prop_assert!(
                            lookup(&index, &(ns.as_deref(), name.as_str())).is_none()
                        );
                        let want = model.remove(&(ns, name));
                        proptest::prop_assert_eq!(removed.is_some(), want.is_some());
                    }
                    Change::Publish => published.push((index.clone(), model.clone())),
                }
                proptest::prop_assert!(index.delta_len() <= REBUILD_MIN + 1 + index.base.len() / REBUILD_FRACTION);
                step += 1;
                // The whole key space now and then (and at the end); every step, the key the
                // change touched, through the same lookup.
                if step % 64 == 0
                    && let Err(e) = agrees(&index, &model)
                {
                    return Err(proptest::test_runner::TestCaseError::fail(e));
                }
            }
            if let Err(e) = agrees(&index, &model) {
                return Err(proptest::test_runner::TestCaseError::fail(e));
            }
            for (snapshot, then) in &published {
                if let Err(e) = agrees(snapshot, then) {
                    return Err(proptest::test_runner::TestCaseError::fail(format!("published: {e}")));
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// An index pre-sized for a batch ([`Index::with_capacity`], a relist's, built aside)
        /// finds exactly what the default index finds after the same changes (inserts, removes,
        /// publishes that send later changes to the delta), whatever the capacity.
        #[test]
        fn a_presized_index_finds_what_a_grown_one_finds(
            capacity in 0usize..1200,
            changes in proptest::collection::vec(change(), 1..600),
        ) {
            let mut sized: Index<ConfigMap> = Index::with_capacity(capacity);
            let mut grown: Index<ConfigMap> = Index::default();
            let mut model = Model::new();
            let mut published = Vec::new();
            for change in changes {
                match change {
                    Change::Put(ns, n, v) => {
                        let ns = ns.map(|i| format!("ns-{i}"));
                        let name = format!("cm-{n}");
                        let obj = cm_in(ns.as_deref(), &name, v);
                        sized.insert(obj.clone());
                        grown.insert(obj);
                        model.insert((ns, name), v);
                    }
                    Change::Remove(ns, n) => {
                        let ns = ns.map(|i| format!("ns-{i}"));
                        let name = format!("cm-{n}");
                        let key = (ns.as_deref(), name.as_str());
                        proptest::prop_assert_eq!(
                            sized.remove_with_key(&key).is_some(),
                            grown.remove_with_key(&key).is_some()
                        );
                        model.remove(&(ns, name));
                    }
                    Change::Publish => published.push((sized.clone(), grown.clone())),
                }
            }
            for index in [&sized, &grown] {
                if let Err(e) = agrees(index, &model) {
                    return Err(proptest::test_runner::TestCaseError::fail(e));
                }
            }
        }
    }

    #[test]
    fn a_published_base_is_not_changed_in_place_and_the_delta_is_folded() {
        let mut index: Index<ConfigMap> = Index::default();
        for n in 0..200 {
            index.insert(cm_in(None, &format!("cm-{n}"), 1));
        }
        // Nothing shares the base yet: every change went straight into it.
        assert_eq!(index.delta_len(), 0);
        let published = index.clone();
        index.insert(cm_in(None, "cm-0", 2));
        assert_eq!(
            index.delta_len(),
            1,
            "a shared base takes changes in the delta"
        );
        let get = |i: &Index<ConfigMap>| {
            lookup(i, &(None, "cm-0")).and_then(|o| o.metadata.resource_version.clone())
        };
        assert_eq!(get(&index).as_deref(), Some("2"));
        assert_eq!(get(&published).as_deref(), Some("1"));
        for v in 3..(3 + REBUILD_MIN as u32 + 200 / REBUILD_FRACTION as u32) {
            index.insert(cm_in(None, &format!("cm-{v}"), v));
        }
        assert_eq!(
            index.delta_len(),
            0,
            "the delta was folded once past its bound"
        );
        assert_eq!(get(&index).as_deref(), Some("2"));
        assert_eq!(get(&published).as_deref(), Some("1"));
        assert_eq!(published.len(), 200);
    }

    #[test]
    fn a_change_once_no_snapshot_shares_the_base_folds_the_delta_first() {
        let mut index: Index<ConfigMap> = Index::default();
        for n in 0..10 {
            index.insert(cm_in(None, &format!("cm-{n}"), 1));
        }
        let published = index.clone();
        // Shared: the removal goes to the delta.
        assert!(index.remove_with_key(&(None, "cm-0")).is_some());
        assert_eq!(index.delta_len(), 1);
        // The writer released the last snapshot that shared the base; the object comes back,
        // straight into the base, which must first take the delta's removal in.
        drop(published);
        index.insert(cm_in(None, "cm-0", 2));
        let found =
            lookup(&index, &(None, "cm-0")).and_then(|o| o.metadata.resource_version.clone());
        assert_eq!(found.as_deref(), Some("2"), "hidden by a stale removal");
        assert_eq!(index.delta_len(), 0);
        assert_eq!(index.len(), 10);
    }

    #[test]
    fn an_entry_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Entry<ConfigMap>>(), 64);
    }

    #[test]
    fn objects_with_keys_too_long_to_inline_are_found_by_their_metadata() {
        let long = |n: usize| format!("{}-{n}", "a-rather-long-package-repository-name".repeat(2));
        let mut index: Index<ConfigMap> = Index::default();
        for n in 0..20 {
            index.insert(cm_in(None, &long(n), 1));
            index.insert(cm_in(Some(&long(n)), "short", 1));
        }
        let published = index.clone();
        index.insert(cm_in(None, &long(3), 2));
        assert!(index.remove_with_key(&(None, long(4).as_str())).is_some());
        for n in 0..20 {
            let rv = |ns: Option<&str>, name: &str| {
                lookup(&index, &(ns, name)).and_then(|o| o.metadata.resource_version.clone())
            };
            let want = match n {
                3 => Some("2"),
                4 => None,
                _ => Some("1"),
            };
            assert_eq!(rv(None, &long(n)).as_deref(), want, "{}", long(n));
            assert_eq!(rv(Some(&long(n)), "short").as_deref(), Some("1"));
            // Same lengths, other bytes: never a match.
            assert_eq!(rv(None, &long(n).replace('a', "b")), None);
            assert_eq!(rv(Some(&long(n)), "shore"), None);
            assert_eq!(rv(Some(&long(n)), &long(n)), None);
        }
        assert_eq!(index.len(), 39);
        drop(published);
    }

    /// Keys too long to inline are compared through the object's metadata, and only match
    /// their own object: in the delta (a `hashbrown` table, which calls the comparison for every
    /// entry whose 7-bit tag matches) as in the base. A comparison that answered "same key"
    /// for every long key (a mutant cargo-mutants found unnoticed) fails here at once.
    #[test]
    fn a_long_key_answers_for_no_other_key_in_the_delta_or_the_base() {
        let long = |n: usize| format!("{}-{n}", "a-rather-long-package-repository-name".repeat(2));
        let mut index: Index<ConfigMap> = Index::default();
        // A base of 800 short keys, then a publish: the 200 long keys go to the delta, which
        // holds up to 64 + 800 / 4 entries before a fold.
        for n in 0..800 {
            index.insert(cm_in(None, &format!("short-{n}"), 1));
        }
        let published = index.clone();
        for n in 0..200 {
            index.insert(cm_in(None, &long(n), 1));
        }
        assert_eq!(index.delta_len(), 200, "the long keys are in the delta");
        let answers_as_itself = |index: &Index<ConfigMap>| {
            let name_found =
                |name: &str| lookup(index, &(None, name)).and_then(|o| o.metadata.name.clone());
            for n in 0..200 {
                assert_eq!(name_found(&long(n)).as_deref(), Some(long(n).as_str()));
            }
            for n in 200..2_000 {
                assert_eq!(name_found(&long(n)), None, "{}", long(n));
            }
        };
        answers_as_itself(&index);
        // Folded into the base: the same answers.
        drop(published);
        for n in 0..200 {
            index.insert(cm_in(None, &long(n), 2));
        }
        assert_eq!(index.delta_len(), 0, "the long keys are in the base");
        answers_as_itself(&index);
    }

    #[test]
    fn iteration_knows_its_length_and_debug_shows_the_figures() {
        let snap = synced([String::from("a"), String::from("b"), String::from("c")]);
        assert_eq!(snap.iter().size_hint(), (3, Some(3)));
        assert_eq!(snap.iter().len(), 3);
        let shown = format!("{snap:?}");
        assert!(shown.starts_with("Snapshot {"), "{shown}");
        assert!(shown.contains("len: 3"), "{shown}");
        assert!(shown.contains("generation: 1"), "{shown}");
    }
}
