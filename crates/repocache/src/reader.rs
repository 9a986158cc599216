//! [`Reader`]: a per-thread read handle whose reads cost one relaxed pointer load plus the
//! lookup, for hot loops that read a cache millions of times.
//!
//! [`Cache::get`](crate::Cache::get) works from any number of threads through `&self`, and first
//! finds the snapshot its thread keeps pinned for the cache (`pin`). A `Reader` keeps the
//! current snapshot itself (`arc_swap::Cache`) and only checks, with one relaxed load, that it
//! is still current; it reloads the snapshot when the writer has published a newer one. It
//! needs `&mut self`, so each thread or task keeps its own.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::shared::Shared;
use crate::snapshot::Snapshot;

/// Lets `arc_swap::Cache` reach the cache's `ArcSwap` through the shared state.
pub(crate) struct SharedSwap<K>(pub(crate) Arc<Shared<K>>);

impl<K> Deref for SharedSwap<K> {
    type Target = ArcSwap<Snapshot<K>>;

    fn deref(&self) -> &Self::Target {
        &self.0.current
    }
}

/// A read handle for one thread, from [`Cache::reader`](crate::Cache::reader).
///
/// [`Cache::get`](crate::Cache::get) works from any number of threads through `&self` and first
/// finds its thread's pin for the cache. A `Reader` keeps the current snapshot itself
/// (`arc_swap::Cache`) and only checks, with one relaxed load, that it is still current; it
/// reloads when the writer has published. It needs `&mut self`: each thread or task keeps its own.
///
/// Reads never block and never do I/O; they see a newly published snapshot at their next call.
/// Holding a `Reader` keeps the snapshot it last read alive until its next read.
pub struct Reader<K> {
    inner: arc_swap::Cache<SharedSwap<K>, Arc<Snapshot<K>>>,
    shared: Arc<Shared<K>>,
}

impl<K> fmt::Debug for Reader<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl<K> Reader<K> {
    pub(crate) fn new(shared: Arc<Shared<K>>) -> Self {
        Self {
            inner: arc_swap::Cache::new(SharedSwap(shared.clone())),
            shared,
        }
    }

    /// The current snapshot, by reference: no reference count is touched unless the writer
    /// published since the last call.
    pub fn snapshot(&mut self) -> &Arc<Snapshot<K>> {
        self.inner.load()
    }

    fn count(&self, hit: bool) {
        let counters = &self.shared.counters;
        if hit {
            counters.hits.incr();
        } else {
            counters.misses.incr();
        }
    }
}

impl<K: kube::Resource> Reader<K> {
    /// The cluster-scoped object with this name.
    pub fn get(&mut self, name: &str) -> Option<Arc<K>> {
        let found = self.inner.load().get(name).cloned();
        self.count(found.is_some());
        found
    }

    /// The namespaced object with this namespace and name.
    pub fn get_namespaced(&mut self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let found = self.inner.load().get_namespaced(namespace, name).cloned();
        self.count(found.is_some());
        found
    }
}
