//! The immutable [`Snapshot`]: every object of one kind at one moment, with its indexes.
//!
//! A snapshot is built by the [`Writer`](crate::Writer) and published whole; readers get it with
//! one atomic load and then only read. Its maps are persistent (`imbl`), so the writer derives
//! the next snapshot from the previous one in O(log n) per event and both share almost all of
//! their memory.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use kube::Resource;

use crate::clock::Clock;
use crate::hasher::Hasher;
use crate::index::{IndexMap, Indexer};
use crate::key::{KeyView, ObjectKey};
use crate::ordered::Ordered;

/// Objects by (namespace, name), for O(1) expected-time lookups. The map stores no separate
/// key: each entry is the object's `Arc`, hashed and compared by the object's own metadata.
pub(crate) type Index<K> =
    imbl::GenericHashMap<Slot<K>, (), Hasher, imbl::shared_ptr::DefaultSharedPtr>;

/// A cached object as the lookup map holds it: hashed and compared by its (namespace, name),
/// so copying a map node (as every persistent update does) costs one reference count per entry
/// and the names are not stored twice.
pub(crate) struct Slot<K>(pub(crate) Arc<K>);

impl<K> Clone for Slot<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Resource> KeyView for Slot<K> {
    fn ns(&self) -> Option<&str> {
        namespace_of(self.0.as_ref())
    }
    fn nm(&self) -> &str {
        name_of(self.0.as_ref())
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

impl<K: Resource> Hash for Slot<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state);
    }
}

impl<K: Resource> PartialEq for Slot<K> {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyView) == (other as &dyn KeyView)
    }
}

impl<K: Resource> Eq for Slot<K> {}

impl<'a, K: Resource + 'a> Borrow<dyn KeyView + 'a> for Slot<K> {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// Looks an object up by a borrowed key.
#[inline]
pub(crate) fn lookup<'s, K: Resource>(
    index: &'s Index<K>,
    key: &dyn KeyView,
) -> Option<&'s Arc<K>> {
    index.get_key_value(key).map(|(slot, ())| &slot.0)
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
        lookup(&self.index, &(None, name))
    }

    /// The object with this namespace and name, for namespaced kinds.
    pub fn get_namespaced(&self, namespace: &str, name: &str) -> Option<&Arc<K>> {
        lookup(&self.index, &(Some(namespace), name))
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
