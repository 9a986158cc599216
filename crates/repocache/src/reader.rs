//! [`Reader`]: a per-thread read handle whose reads cost one relaxed pointer load plus the
//! lookup, for hot loops that read a cache millions of times.
//!
//! [`Cache::get`](crate::Cache::get) works from any number of threads through `&self`, and pays
//! `arc-swap`'s guard (a few nanoseconds) on every read. A `Reader` keeps the current snapshot
//! itself (`arc_swap::Cache`) and only checks, with one relaxed load, that it is still current;
//! it reloads the snapshot when the writer has published a newer one. It needs `&mut self`, so
//! each thread or task keeps its own.

use std::any::Any;
use std::cell::RefCell;
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
/// [`Cache::get`](crate::Cache::get) works from any number of threads through `&self` and pays
/// `arc-swap`'s guard on every read. A `Reader` keeps the current snapshot itself
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

    /// Whether anything but this reader holds its cache's shared state (a reader holds two
    /// references: its own and the one inside `arc_swap::Cache`).
    fn held_elsewhere(&self) -> bool {
        Arc::strong_count(&self.shared) > 2
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

/// How many caches one thread keeps pinned for [`Cache::get`](crate::Cache::get).
pub(crate) const PINS: usize = 8;

/// One cache a thread has pinned: the cache's identity (the address of its shared state, which
/// the pin keeps alive, so the address is never reused while pinned) and the thread's
/// [`Reader`] on it, type-erased.
struct Pin {
    id: usize,
    reader: Box<dyn Any>,
    /// Whether anyone but this pin still holds the cache (monomorphized for its kind).
    held_elsewhere: fn(&dyn Any) -> bool,
}

/// [`Pin::held_elsewhere`] for a cache of `K`.
fn held_elsewhere<K: 'static>(reader: &dyn Any) -> bool {
    reader
        .downcast_ref::<Reader<K>>()
        .is_some_and(Reader::held_elsewhere)
}

thread_local! {
    /// The caches this thread reads through `Cache::get`, each with the snapshot it last read.
    static PINNED: RefCell<Vec<Pin>> = const { RefCell::new(Vec::new()) };
}

/// Runs `read` on the current snapshot of `shared`'s cache, through this thread's pinned
/// [`Reader`] on it: one relaxed load to check that the pinned snapshot is still current instead
/// of arc-swap's guard.
///
/// The first read of a cache on a thread pins it (one allocation, once per thread and cache);
/// once [`PINS`] caches are pinned, pins whose cache is dropped everywhere else are released,
/// and a thread that reads more live caches than that reads the others through the guard (no
/// allocation, no eviction churn). Re-entrant reads (from an object's `Drop` or `meta()` run by
/// a lookup) and reads during thread teardown also take the guard.
#[inline]
pub(crate) fn read_current<K: 'static, R>(
    shared: &Arc<Shared<K>>,
    read: impl Fn(&Snapshot<K>) -> R,
) -> R {
    let id = Arc::as_ptr(shared) as *const () as usize;
    let pinned = PINNED.try_with(|pins| {
        let mut pins = pins.try_borrow_mut().ok()?;
        let at = match pins.iter().position(|p| p.id == id) {
            Some(at) => at,
            None => pin(&mut pins, id, shared)?,
        };
        let reader = pins.get_mut(at)?.reader.downcast_mut::<Reader<K>>()?;
        Some(read(reader.snapshot()))
    });
    match pinned {
        Ok(Some(out)) => out,
        _ => read(&shared.current.load()),
    }
}

/// Pins `shared`'s cache for this thread; returns its place, or `None` when every place is
/// held by a live cache.
#[cold]
fn pin<K: 'static>(pins: &mut Vec<Pin>, id: usize, shared: &Arc<Shared<K>>) -> Option<usize> {
    if pins.len() >= PINS {
        // Release the pins whose cache nobody else holds any more. An object's `Drop` run by
        // this that reads a cache finds `pins` borrowed and takes the guard path.
        pins.retain(|p| (p.held_elsewhere)(p.reader.as_ref()));
        if pins.len() >= PINS {
            return None;
        }
    }
    pins.push(Pin {
        id,
        reader: Box::new(Reader::new(shared.clone())),
        held_elsewhere: held_elsewhere::<K>,
    });
    Some(pins.len() - 1)
}

/// Releases every cache this thread pinned through [`Cache::get`](crate::Cache::get), and the
/// snapshots they hold.
///
/// A thread pins each cache it reads with `Cache::get` (at most eight), keeping the snapshot it
/// last read there until its next read of that cache: a thread that stops reading keeps one
/// possibly superseded snapshot per pinned cache alive (after a relist, the whole previous
/// state) until it reads again, calls this, or exits. Call it from a thread that goes idle for
/// long after reading a cache whose relists replace much memory.
pub fn unpin_thread() {
    let released =
        PINNED.try_with(|pins| pins.try_borrow_mut().map(|mut p| std::mem::take(&mut *p)));
    // Dropped here, outside the borrow: freeing objects runs their `Drop`.
    drop(released);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    fn cm(name: &str, rv: u32) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "resourceVersion": rv.to_string()},
        }))
        .unwrap()
    }

    fn pinned() -> usize {
        PINNED.with(|p| p.borrow().len())
    }

    fn rv(cache: &crate::Cache<ConfigMap, crate::cache::Local>, name: &str) -> Option<String> {
        cache
            .get(name)
            .and_then(|o| o.metadata.resource_version.clone())
    }

    #[test]
    fn a_pinned_read_sees_every_publish_at_once_and_unpinning_frees_the_old_snapshot() {
        unpin_thread();
        let mut writer = crate::Writer::<ConfigMap>::new();
        let cache = writer.cache();
        writer.apply(Event::Apply(cm("a", 1)));
        assert_eq!(rv(&cache, "a").as_deref(), Some("1"));
        assert_eq!(pinned(), 1);
        writer.apply(Event::Apply(cm("a", 2)));
        // The pinned snapshot is checked current on every read.
        assert_eq!(rv(&cache, "a").as_deref(), Some("2"));
        writer.apply(Event::Apply(cm("a", 3)));
        // This thread still pins the snapshot of version 2: the writer cannot free it.
        assert_eq!(writer.release_retired(), 1);
        unpin_thread();
        assert_eq!(pinned(), 0);
        assert_eq!(writer.release_retired(), 0);
        assert_eq!(rv(&cache, "a").as_deref(), Some("3"));
        assert!(cache.get("b").is_none());
        unpin_thread();
    }

    #[test]
    fn a_thread_pins_a_bounded_number_of_caches_and_releases_dropped_ones() {
        unpin_thread();
        let mut writers: Vec<_> = (0..PINS + 2)
            .map(|i| {
                let mut w = crate::Writer::<ConfigMap>::new();
                w.apply(Event::Apply(cm("a", i as u32 + 1)));
                w
            })
            .collect();
        let caches: Vec<_> = writers.iter().map(crate::Writer::cache).collect();
        for (i, cache) in caches.iter().enumerate() {
            assert_eq!(rv(cache, "a"), Some((i + 1).to_string()));
        }
        // The caches beyond the bound are read through the guard, and read right.
        assert_eq!(pinned(), PINS);
        for (i, (w, cache)) in writers.iter_mut().zip(&caches).enumerate() {
            w.apply(Event::Apply(cm("a", 100 + i as u32)));
            assert_eq!(rv(cache, "a"), Some((100 + i).to_string()));
        }
        // Drop two pinned caches everywhere: the next new cache takes one of their places.
        drop(caches);
        let dropped: Vec<_> = writers.drain(..2).collect();
        drop(dropped);
        let kept: Vec<_> = writers.iter().map(crate::Writer::cache).collect();
        let mut fresh = crate::Writer::<ConfigMap>::new();
        fresh.apply(Event::Apply(cm("z", 7)));
        assert_eq!(rv(&fresh.cache(), "z").as_deref(), Some("7"));
        assert_eq!(pinned(), PINS - 1, "the two dead pins were released");
        drop(kept);
        unpin_thread();
    }
}
