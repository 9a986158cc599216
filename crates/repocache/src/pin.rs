//! The snapshots each thread keeps pinned for [`Cache::get`](crate::Cache::get): a read checks,
//! with one relaxed load, that its thread's pinned snapshot of the cache is still the newest
//! published one, instead of taking arc-swap's guard (two read-modify-writes per read), and
//! [`unpin_thread`] releases what a thread pinned. ARCHITECTURE ("Reads cost one relaxed load")
//! states the memory bound.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::shared::Shared;
use crate::snapshot::Snapshot;

/// How many caches one thread keeps pinned for [`Cache::get`](crate::Cache::get).
pub(crate) const PINS: usize = 8;

/// One cache a thread has pinned, type-erased: `cache` a `Weak` of the cache's shared state
/// (its address identifies the cache: the `Weak` keeps it allocated, so no other cache can take
/// the address while pinned), and `snapshot` the snapshot the thread last read there. Both erase their type behind the
/// pointer they already are: reading through a pin touches the pinned snapshot itself and this
/// thread's own storage, no further allocation (at 100,000 objects every page a read touches
/// beyond those it must is a likely TLB miss).
///
/// `id` and `at` keep the two addresses a read compares as plain integers: taken from the
/// type-erased pointers on every read they cost a dangling check and the value's offset from
/// the vtable's alignment each (a quarter of the pin's instructions).
struct Pin {
    /// The address of the pinned cache's shared state (`cache`'s).
    id: usize,
    /// The address of the pinned snapshot (`snapshot`'s), compared with the newest published.
    at: usize,
    snapshot: Arc<dyn Any>,
    cache: Weak<dyn Any>,
}

thread_local! {
    /// The caches this thread reads through `Cache::get`, each with the snapshot it last read,
    /// inline in the thread's own storage.
    static PINNED: RefCell<[Option<Pin>; PINS]> = const { RefCell::new([const { None }; PINS]) };
}

/// Runs `read` on the current snapshot of `shared`'s cache through the snapshot this thread
/// keeps pinned for it: one relaxed load (the newest snapshot's address) checks that the pinned
/// one is still current, instead of arc-swap's guard (two read-modify-writes of a shared slot).
///
/// The first read of a cache on a thread pins it; a read that finds a newer snapshot published
/// re-pins (one reference count). Once [`PINS`] caches are pinned, pins whose cache was dropped
/// everywhere are released; a thread reading more live caches than that reads the others
/// through the guard (no allocation, no churn). Re-entrant reads (from a `Resource::meta` or
/// `Drop` that a lookup runs) and reads during thread teardown also take the guard.
///
/// Freshness: the writer stores the newest snapshot's address before it swaps the snapshot in
/// ([`Shared::publish`]), so a thread that has seen a snapshot published (through `current`, a
/// notification or any other synchronization) sees its address here or a newer one, and never
/// reads an older snapshot after a newer one.
#[inline]
pub(crate) fn read_current<K: 'static, R>(
    shared: &Arc<Shared<K>>,
    read: impl Fn(&Snapshot<K>) -> R,
) -> R {
    let id = Arc::as_ptr(shared) as usize;
    let newest = shared.newest.load(Ordering::Relaxed);
    let pinned = PINNED.try_with(|pins| {
        // Held for the whole read: code that `read` runs (an object's `Resource::meta`, a
        // `Drop`) and that reads a cache finds it borrowed and takes the guard path.
        let mut pins = pins.try_borrow_mut().ok()?;
        let at = match pins
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))
        {
            Some(at) => at,
            None => pin(&mut pins, shared)?,
        };
        let pin = pins.get_mut(at)?.as_mut()?;
        if pin.at != newest {
            // The replaced snapshot is only released here (the writer keeps every replaced
            // snapshot until nothing else holds it, and frees it itself).
            let current = shared.current.load_full();
            pin.at = Arc::as_ptr(&current) as usize;
            pin.snapshot = current;
        }
        Some(read(pin.snapshot.downcast_ref::<Snapshot<K>>()?))
    });
    match pinned {
        Ok(Some(out)) => out,
        _ => read(&shared.current.load()),
    }
}

/// Pins `shared`'s cache for this thread; returns its place, or `None` when every place is
/// held by a live cache.
#[cold]
fn pin<K: 'static>(pins: &mut [Option<Pin>; PINS], shared: &Arc<Shared<K>>) -> Option<usize> {
    let free = match pins.iter().position(Option::is_none) {
        Some(free) => free,
        None => {
            // Release the pins whose cache is gone. Their snapshots are dropped here, inside
            // the borrow: an object's `Drop` that reads a cache finds `pins` borrowed and takes
            // the guard path.
            for pin in pins.iter_mut() {
                if pin.as_ref().is_some_and(|p| p.cache.strong_count() == 0) {
                    *pin = None;
                }
            }
            pins.iter().position(Option::is_none)?
        }
    };
    let cache: Weak<Shared<K>> = Arc::downgrade(shared);
    let snapshot = shared.current.load_full();
    let slot = pins.get_mut(free)?;
    *slot = Some(Pin {
        id: Arc::as_ptr(shared) as usize,
        at: Arc::as_ptr(&snapshot) as usize,
        snapshot,
        cache,
    });
    Some(free)
}

/// Releases every snapshot this thread pinned through [`Cache::get`](crate::Cache::get).
///
/// A thread pins each cache it reads with `Cache::get` (at most eight at a time), keeping the
/// snapshot it last read there until its next read of that cache. A pin never keeps a cache
/// itself alive (its reflector stops when the last handle goes), but a thread that stops
/// reading keeps one possibly superseded snapshot per pinned cache alive — after a relist, the
/// whole previous state; after the cache is dropped, its last snapshot — until it reads again,
/// pins a ninth cache, calls this, or exits. Call it from a thread that goes idle for long after
/// reading a cache whose relists replace much memory.
pub fn unpin_thread() {
    let released = PINNED.try_with(|pins| {
        pins.try_borrow_mut()
            .map(|mut p| std::mem::replace(&mut *p, [const { None }; PINS]))
    });
    // Dropped here, outside the borrow: freeing objects runs their `Drop`.
    drop(released);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;
    use std::sync::Arc;

    fn cm(name: &str, rv: u32) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "resourceVersion": rv.to_string()},
        }))
        .unwrap()
    }

    fn pinned() -> usize {
        PINNED.with(|p| p.borrow().iter().flatten().count())
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
    fn a_read_after_a_publish_on_another_thread_sees_it() {
        unpin_thread();
        let mut writer = crate::Writer::<ConfigMap>::new();
        let cache = writer.cache();
        writer.apply(Event::Apply(cm("a", 1)));
        assert_eq!(rv(&cache, "a").as_deref(), Some("1"));
        let writer = std::thread::spawn(move || {
            for v in 2..=50 {
                writer.apply(Event::Apply(cm("a", v)));
            }
            writer
        })
        .join()
        .unwrap();
        // Joined: the publishes happened before this read, which must not answer from the
        // snapshot this thread pinned before them.
        assert_eq!(rv(&cache, "a").as_deref(), Some("50"));
        drop(writer);
        unpin_thread();
    }

    #[test]
    fn a_pin_keeps_neither_the_cache_nor_its_address_for_another_cache() {
        unpin_thread();
        let mut writer = crate::Writer::<ConfigMap>::new();
        let cache = writer.cache();
        writer.apply(Event::Apply(cm("a", 1)));
        let strong = Arc::strong_count(&cache.shared);
        assert_eq!(rv(&cache, "a").as_deref(), Some("1"));
        assert_eq!(
            Arc::strong_count(&cache.shared),
            strong,
            "a pin holds no strong reference to the cache"
        );
        let weak = Arc::downgrade(&cache.shared);
        drop(cache);
        drop(writer);
        assert_eq!(weak.strong_count(), 0, "the cache is gone although pinned");
        // A new cache cannot take the dead one's address while the pin holds it, so it reads
        // its own objects, never the dead cache's pinned snapshot.
        for round in 0..20 {
            let mut w = crate::Writer::<ConfigMap>::new();
            let c = w.cache();
            w.apply(Event::Apply(cm("b", round + 1)));
            assert!(c.get("a").is_none());
            assert_eq!(rv(&c, "b"), Some((round + 1).to_string()));
        }
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
