//! The [`Writer`]: turns kube-runtime watcher events into published snapshots.
//!
//! The writer owns the working state (persistent maps shared with the last published snapshot)
//! and is the only code that publishes. Watch events update the working state in O(log n);
//! a relist (`Init` … `InitApply` … `InitDone`) fills a private buffer and replaces the working
//! state in one publish, so readers never see a half-built relist. When anyone subscribes, the
//! writer also records what each publish changed and sends it to the subscribers; it never
//! waits for them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::watcher::Event;
use tokio::sync::broadcast;
use tracing::{debug, error, trace, warn};

use crate::change::{Batch, Change, diff_at_most};
use crate::config::{CacheConfig, Transform};
use crate::index::{self, IndexMap, Indexer};
use crate::key::{KeyView, ObjectKey};
use crate::ordered::{self, Ordered};
use crate::shared::Shared;
use crate::snapshot::{Index, ObjView, Snapshot, cmp_object_key, cmp_objects, has_name, lookup};

/// Applies watcher events to a cache and publishes its snapshots.
///
/// Created with [`Writer::new`] (or [`Writer::with_config`]); [`Writer::cache`] hands out read
/// handles. The reflector (see [`reflector`](crate::reflector())) drives a writer from a live
/// watch; tests and tools can drive one from any sequence of [`Event`]s.
///
/// Each call to [`apply`](Self::apply) that changes the cache publishes one new snapshot;
/// [`apply_batch`](Self::apply_batch) coalesces a burst of events into one publish.
///
/// A driver that applies a steady stream of events (the reflector does) uses
/// [`stage`](Self::stage) and [`publish_due`](Self::publish_due) instead: it publishes at most
/// once per [`CacheConfig::publish_interval`], so that a busy watch does not hand readers a new
/// snapshot (and fresh cache misses) for every event. The driver must call
/// [`publish`](Self::publish) at the instant `publish_due` names.
///
/// # User code and panics
///
/// The writer runs user code: the [`CacheConfig`] transform and index functions, and the object
/// type's own `Resource::meta()` (and `Drop`). It runs the transform, the index functions and
/// every search before it updates any of its maps: when one of them panics and the caller
/// catches the panic (`catch_unwind` around [`apply`](Self::apply)), that event is lost and the
/// writer is whole — it goes on as if the event had never come.
///
/// One step cannot run without user code: the lookup map hashes and compares objects by their
/// `meta()`. When a panic unwinds through an update of the working state (a `meta()` that
/// panics, an object's `Drop` that panics), the update may be half done, and the writer is
/// **poisoned**: at once it logs an error and marks the cache
/// [`Stopped`](crate::CacheState::Stopped) (readiness waiters wake up), and it never publishes
/// again ([`apply`](Self::apply) and [`stage`](Self::stage) drop their event and return
/// [`Applied::Poisoned`], [`publish`](Self::publish) returns `false`,
/// [`publish_due`](Self::publish_due) returns [`Publish::Clean`]). Readers keep the last
/// published snapshot, which is whole. See [`is_poisoned`](Self::is_poisoned).
///
/// A `meta()` that answers differently on successive calls (a name or namespace that changes)
/// makes the cache's contents for such objects unspecified — as a `HashMap` key whose hash
/// changes does — but never unsafe: every snapshot stays whole and readable, and the next
/// relist rebuilds the cache from what the server lists.
pub struct Writer<K> {
    shared: Arc<Shared<K>>,
    index: Index<K>,
    ordered: Ordered<K>,
    indexes: Vec<IndexMap>,
    indexers: Arc<[Indexer<K>]>,
    transform: Option<Transform<K>>,
    resource_version: Option<Arc<str>>,
    generation: u64,
    /// `Some` between `Init` and `InitDone`: the objects of the relist in progress.
    relist: Option<Vec<Arc<K>>>,
    /// The working state differs from the last published snapshot.
    dirty: bool,
    changes: broadcast::Sender<Arc<Batch<K>>>,
    /// The changes since the last publish (recorded only while someone subscribes).
    pending: Vec<Change<K>>,
    /// Some change since the last publish was applied while nobody was recording (or more
    /// changes were staged than the subscriber buffer may hold).
    unrecorded: bool,
    /// The most changes the subscriber buffer may hold, over all its batches.
    buffer_changes: usize,
    /// How many batches the broadcast buffer holds (its capacity, a power of two).
    buffer_slots: usize,
    /// The number of changes in each of the last `buffer_slots` batches sent, oldest first,
    /// and their sum: what the broadcast buffer may still hold.
    buffered: VecDeque<usize>,
    buffered_sum: usize,
    /// Snapshots replaced by a publish that readers still hold. The writer keeps a reference
    /// so that it, not a reader, frees each one (a relist's old snapshot can take milliseconds
    /// to free); see [`Writer::release_retired`].
    retired: Vec<Arc<Snapshot<K>>>,
    /// The shortest time between two publishes by [`Writer::publish_due`].
    publish_interval: Duration,
    /// Set while the working state is being updated; still set afterwards only when a panic
    /// unwound through the update (see [`Updating`]).
    poisoned: bool,
    /// Set while [`Writer::warm`] publishes a persisted snapshot (not a relist: no readiness).
    warming: bool,
}

/// Marks the writer poisoned while it updates its working state. [`Updating::end`] clears the
/// mark; when a panic unwinds through the update instead, the guard's `Drop` logs it and marks
/// the cache stopped, and the mark stays.
struct Updating<'a, K> {
    shared: &'a Shared<K>,
    poisoned: &'a mut bool,
}

impl<'a, K> Updating<'a, K> {
    fn begin(shared: &'a Shared<K>, poisoned: &'a mut bool) -> Self {
        *poisoned = true;
        Self { shared, poisoned }
    }

    fn end(self) {
        *self.poisoned = false;
        std::mem::forget(self);
    }
}

impl<K> Drop for Updating<'_, K> {
    fn drop(&mut self) {
        // Only reached when a panic unwinds through the update: `end` forgets the guard.
        error!(
            kind = %self.shared.kind,
            "a panic unwound through an update of the writer's working state: the writer is \
             poisoned and publishes nothing more; the cache is stopped"
        );
        self.shared.mark_stopped();
    }
}

/// What [`Writer::publish_due`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// A new snapshot was published.
    Published,
    /// Nothing changed since the last publish; nothing was published.
    Clean,
    /// The working state changed, but the last publish was less than the publish interval
    /// ago: publish (with [`Writer::publish`]) at this instant.
    Deferred(Instant),
}

/// What one event did to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The working state changed; the next publish carries the change.
    Changed,
    /// The event confirmed the cache without changing it (a repeated or stale object version,
    /// a delete of an unknown object, an `InitDone` without a relist in progress).
    Unchanged,
    /// The event went into the buffer of a relist in progress (`Init`, `InitApply`).
    Buffered,
    /// A relist completed (`InitDone`): its objects replace the working state.
    Relisted,
    /// The object has no name and cannot be cached; it was skipped.
    Skipped,
    /// The writer is poisoned (a panic unwound through an earlier update; see [`Writer`],
    /// "User code and panics"): the event was dropped.
    Poisoned,
}

impl<K> Writer<K>
where
    K: Resource + Send + Sync + 'static,
    K::DynamicType: Default,
{
    /// A writer over an empty, not-yet-ready cache, with the default [`CacheConfig`].
    pub fn new() -> Self {
        Self::with_config(CacheConfig::default())
    }

    /// A writer over an empty, not-yet-ready cache, with this config.
    pub fn with_config(config: CacheConfig<K>) -> Self {
        let indexers: Arc<[Indexer<K>]> = config.indexers.into();
        let (changes, _) = broadcast::channel(config.subscriber_buffer);
        let shared = Arc::new(Shared::new(
            K::kind(&Default::default()).into_owned(),
            indexers.clone(),
            changes.downgrade(),
        ));
        Self {
            shared,
            index: Index::default(),
            ordered: Ordered::new(),
            indexes: vec![IndexMap::default(); indexers.len()],
            indexers,
            transform: config.transform,
            resource_version: None,
            generation: 0,
            relist: None,
            dirty: false,
            changes,
            pending: Vec::new(),
            unrecorded: false,
            buffer_changes: config.subscriber_buffer_changes,
            // tokio's broadcast channel rounds its capacity up to a power of two.
            buffer_slots: config.subscriber_buffer.max(1).next_power_of_two(),
            buffered: VecDeque::new(),
            buffered_sum: 0,
            retired: Vec::new(),
            publish_interval: config.publish_interval,
            poisoned: false,
            warming: false,
        }
    }
}

impl<K> Drop for Writer<K> {
    fn drop(&mut self) {
        // Nobody can make the cache ready any more: wake readers waiting for it.
        self.shared.mark_stopped();
    }
}

impl<K> Default for Writer<K>
where
    K: Resource + Send + Sync + 'static,
    K::DynamicType: Default,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Writer<K>
where
    K: Resource + Send + Sync + 'static,
{
    /// Applies one event and publishes the result if it changed the cache.
    pub fn apply(&mut self, event: Event<K>) -> Applied {
        let applied = self.stage(event);
        self.publish();
        applied
    }

    /// Applies a burst of events and publishes once at the end (at most one new generation).
    pub fn apply_batch(&mut self, events: impl IntoIterator<Item = Event<K>>) {
        for event in events {
            self.stage(event);
        }
        self.publish();
    }

    /// Applies one event to the working state without publishing it: readers see it after the
    /// next [`publish`](Self::publish) (or [`publish_due`](Self::publish_due) that publishes).
    ///
    /// A completed relist (`InitDone`) is the exception: it always publishes at once, and makes
    /// the cache ready.
    pub fn stage(&mut self, event: Event<K>) -> Applied {
        if self.poisoned {
            return Applied::Poisoned;
        }
        match event {
            Event::Init => {
                if self.relist.is_some() {
                    debug!(kind = %self.shared.kind, "relist restarted before it completed");
                }
                self.relist = Some(Vec::new());
                Applied::Buffered
            }
            Event::InitApply(obj) => {
                if !has_name(&obj) {
                    warn!(kind = %self.shared.kind, "listed object without a name skipped");
                    return Applied::Skipped;
                }
                let obj = self.transformed(obj);
                self.relist
                    .get_or_insert_with(|| {
                        warn!("InitApply without Init; starting a relist buffer");
                        Vec::new()
                    })
                    .push(obj);
                Applied::Buffered
            }
            Event::InitDone => self.finish_relist(),
            Event::Apply(obj) => {
                if self.relist.is_some() {
                    // The watcher never interleaves these; if it did, the newest version wins.
                    return self.stage(Event::InitApply(obj));
                }
                let obj = self.transformed(obj);
                self.upsert(obj)
            }
            Event::Delete(obj) => {
                if !has_name(&obj) {
                    warn!(kind = %self.shared.kind, "delete of an object without a name skipped");
                    return Applied::Skipped;
                }
                self.remove(&ObjView(&obj), obj.meta().resource_version.as_deref())
            }
        }
    }

    fn transformed(&self, mut obj: K) -> Arc<K> {
        if let Some(transform) = &self.transform {
            transform(&mut obj);
        }
        Arc::new(obj)
    }

    /// Whether to record the change being applied: someone subscribes, and the changes since
    /// the last publish still fit the subscriber buffer. Otherwise the next publish is sent
    /// without its changes (subscribers diff instead).
    fn recording(&mut self) -> bool {
        if self.changes.receiver_count() > 0 && self.pending.len() < self.buffer_changes {
            return true;
        }
        self.unrecorded = true;
        self.pending = Vec::new();
        false
    }

    /// Inserts or replaces one object in the working state.
    fn upsert(&mut self, obj: Arc<K>) -> Applied {
        if !has_name(obj.as_ref()) {
            warn!(kind = %self.shared.kind, "object without a name skipped");
            return Applied::Skipped;
        }
        let new_rv = obj.meta().resource_version.as_deref();
        let old = lookup(&self.index, &ObjView(obj.as_ref())).cloned();
        if let Some(old) = &old
            && !is_newer(new_rv, old.meta().resource_version.as_deref())
        {
            trace!(kind = %self.shared.kind, key = %ObjView(obj.as_ref()).display(), rv = ?new_rv, "repeated or stale version ignored");
            self.confirm();
            return Applied::Unchanged;
        }
        // User code first (the index functions, and `meta()` in the search and the key): when
        // it panics, the working state is as it was.
        let position = ordered::search(&self.ordered, |o| cmp_objects(o.as_ref(), obj.as_ref()));
        let index_updates = self.index_updates(obj.as_ref(), old.as_deref(), Some(obj.as_ref()));
        let new_rv = obj.meta().resource_version.clone();
        let updating = Updating::begin(&self.shared, &mut self.poisoned);
        // The one step that runs user code: the map hashes and compares by `meta()`.
        self.index.insert(obj.clone());
        match position {
            Ok(pos) => {
                self.ordered.set(pos, obj.clone());
            }
            Err(pos) => self.ordered.insert(pos, obj.clone()),
        }
        if let Some((key, updates)) = index_updates {
            for (map, (old_values, new_values)) in self.indexes.iter_mut().zip(updates) {
                index::remove_values(map, &key, &old_values);
                index::insert_values(map, &key, new_values);
            }
        }
        updating.end();
        if self.recording() {
            self.pending.push(match old {
                Some(old) => Change::Updated {
                    old,
                    new: obj,
                    generation: 0,
                },
                None => Change::Added {
                    object: obj,
                    generation: 0,
                },
            });
        }
        self.note_version(new_rv);
        self.dirty = true;
        Applied::Changed
    }

    /// Removes one object from the working state (or the relist buffer in progress).
    pub(crate) fn remove(&mut self, key: &dyn KeyView, rv: Option<&str>) -> Applied {
        if let Some(buffer) = &mut self.relist {
            buffer.retain(|o| cmp_object_key(o.as_ref(), key).is_ne());
            return Applied::Buffered;
        }
        let Some(old) = lookup(&self.index, key).cloned() else {
            trace!(kind = %self.shared.kind, key = %key.display(), "delete of an object the cache does not hold");
            self.confirm();
            return Applied::Unchanged;
        };
        // User code first (the index functions, `meta()` in the search and the key); then the
        // update. `removed` (the same object as `old` unless `meta()` is inconsistent) is
        // dropped after the update.
        let position = ordered::search(&self.ordered, |o| cmp_object_key(o.as_ref(), key));
        let index_updates = self.index_updates(old.as_ref(), Some(old.as_ref()), None);
        let updating = Updating::begin(&self.shared, &mut self.poisoned);
        // The one step that runs user code: the map hashes and compares by `meta()`.
        let removed = self.index.remove_with_key(key);
        if let Ok(pos) = position {
            self.ordered.remove(pos);
        }
        if let Some((key, updates)) = index_updates {
            for (map, (old_values, _)) in self.indexes.iter_mut().zip(updates) {
                index::remove_values(map, &key, &old_values);
            }
        }
        updating.end();
        drop(removed);
        if self.recording() {
            self.pending.push(Change::Deleted {
                object: old,
                generation: 0,
            });
        }
        self.note_version(rv.map(str::to_owned));
        self.dirty = true;
        Applied::Changed
    }

    /// Completes a relist: the buffered objects become the working state.
    fn finish_relist(&mut self) -> Applied {
        let Some(mut listed) = self.relist.take() else {
            // A repeated InitDone: nothing was relisted, the cache stays as it is.
            self.confirm();
            self.shared.mark_ready();
            return Applied::Unchanged;
        };
        // A stable sort by (namespace, name): of duplicates, the last one listed (the newest)
        // comes last.
        listed.sort_by(|a, b| cmp_objects(a.as_ref(), b.as_ref()));
        // Of duplicates keep the last one listed; re-use the previous version of every object
        // the relist returned unchanged.
        let mut entries: Vec<Arc<K>> = Vec::with_capacity(listed.len());
        let mut newest: Option<String> = None;
        // Nothing to reuse from an empty state (a cold start's first LIST, a warm start).
        let reuse = !self.ordered.is_empty();
        for obj in listed {
            let rv = obj.meta().resource_version.as_deref();
            // A persisted snapshot proves no version (see below): nothing to track.
            if !self.warming && is_newer(rv, newest.as_deref()) {
                newest = rv.map(str::to_owned);
            }
            let old = if reuse {
                lookup(&self.index, &ObjView(obj.as_ref()))
            } else {
                None
            };
            let obj = match old {
                // The uid too: a server restored or replaced between two runs of a warm start
                // may reuse a resourceVersion for another object of the same name.
                Some(old)
                    if rv.is_some()
                        && old.meta().resource_version.as_deref() == rv
                        && old.meta().uid == obj.meta().uid =>
                {
                    old.clone()
                }
                _ => obj,
            };
            match entries.last_mut() {
                Some(last) if cmp_objects(last.as_ref(), obj.as_ref()).is_eq() => *last = obj,
                _ => entries.push(obj),
            }
        }
        let mut ordered = Ordered::new();
        let mut index = Index::with_capacity(entries.len());
        let mut indexes = vec![IndexMap::default(); self.indexers.len()];
        // The new state is built aside (user code included: index functions, `meta()`); a
        // panic leaves the working state as it was, without the relist.
        for obj in entries {
            index.insert(obj.clone());
            if !self.indexers.is_empty()
                && let Some(key) = ObjectKey::of(obj.as_ref())
            {
                for (map, indexer) in indexes.iter_mut().zip(self.indexers.iter()) {
                    index::insert(map, indexer, &key, obj.as_ref());
                }
            }
            ordered.push_back(obj);
        }
        debug!(kind = %self.shared.kind, objects = ordered.len(), rv = ?newest, "relist complete");
        // Everything staged since the last publish is covered by this diff (unless it has
        // more changes than the subscriber buffer may hold: then subscribers diff themselves).
        let recorded = self.recording().then(|| {
            let before = self.shared.current.load();
            diff_at_most(&before.ordered, &ordered, 0, self.buffer_changes)
        });
        // From here on no user code runs until the relist is published: the replaced state
        // (whose objects' `Drop` is user code) is dropped at the end.
        let replaced_pending = match recorded {
            Some(Some(changes)) => {
                self.unrecorded = false;
                std::mem::replace(&mut self.pending, changes)
            }
            Some(None) => {
                self.unrecorded = true;
                std::mem::take(&mut self.pending)
            }
            None => Vec::new(),
        };
        let replaced = (
            std::mem::replace(&mut self.index, index),
            std::mem::replace(&mut self.ordered, ordered),
            std::mem::replace(&mut self.indexes, indexes),
        );
        // The list's own resourceVersion is not reported by the watcher; its newest object
        // stands in for it, but never moves the snapshot's version back (a delete seen before
        // the relist may be newer than every listed object). A persisted snapshot proves no
        // version (it is unverified; see `warm`).
        if !self.warming {
            self.note_version(newest);
        }
        self.dirty = true;
        self.publish();
        if !self.warming {
            // The first LIST after a warm start verifies the cache (before it is ready).
            self.shared.set_unverified(false);
            self.shared.mark_ready();
        }
        drop((replaced, replaced_pending));
        Applied::Relisted
    }

    /// Publishes a persisted snapshot's objects (already transformed when they were written) as
    /// one unverified snapshot, last confirmed `age` ago: readers see it at once, the cache is
    /// not ready, and its version is unknown (none). The next completed relist verifies it,
    /// reusing the `Arc` of every object it returns unchanged (see [`crate::persist`]).
    pub(crate) fn warm(&mut self, mut objects: Vec<Arc<K>>, age: Duration) {
        objects.retain(|o| has_name(o.as_ref()));
        self.relist = Some(objects);
        self.warming = true;
        self.finish_relist();
        self.warming = false;
        let clock = self.shared.clock;
        let now = clock.now();
        let written = now.checked_sub(age).unwrap_or(now);
        // Not `confirm` (it only moves forward): the data was last confirmed when written.
        self.shared
            .current
            .load()
            .confirmed
            .store(clock.nanos(written), std::sync::atomic::Ordering::Relaxed);
        self.shared.set_unverified(true);
    }

    /// The index updates for an object `old` → `new` (either absent) under `key_of`'s key: per
    /// indexer, the values to remove and the values to add. Runs the user's index functions;
    /// `None` without indexes.
    #[allow(clippy::type_complexity)]
    fn index_updates(
        &self,
        key_of: &K,
        old: Option<&K>,
        new: Option<&K>,
    ) -> Option<(ObjectKey, Vec<(Vec<String>, Vec<String>)>)> {
        if self.indexers.is_empty() {
            return None;
        }
        let key = ObjectKey::of(key_of)?;
        let updates = self
            .indexers
            .iter()
            .map(|indexer| {
                (
                    old.map(|o| index::values_of(indexer, o))
                        .unwrap_or_default(),
                    new.map(|n| index::values_of(indexer, n))
                        .unwrap_or_default(),
                )
            })
            .collect();
        Some((key, updates))
    }

    fn snapshot_of(
        &self,
        index: &Index<K>,
        ordered: &Ordered<K>,
        indexes: &[IndexMap],
        generation: u64,
    ) -> Snapshot<K> {
        let clock = self.shared.clock;
        let now = clock.now();
        Snapshot {
            index: index.clone(),
            ordered: ordered.clone(),
            resource_version: self.resource_version.clone(),
            generation,
            built_at: now,
            confirmed: clock.nanos(now).into(),
            clock,
            indexers: self.indexers.clone(),
            indexes: indexes.to_vec(),
        }
    }

    /// Publishes the working state if it changed and the last publish was at least the
    /// publish interval ago; otherwise says when to publish. See [`Publish`].
    pub fn publish_due(&mut self) -> Publish {
        if !self.dirty || self.poisoned {
            return Publish::Clean;
        }
        if !self.publish_interval.is_zero() {
            // The current snapshot was built when it was published.
            let due = self.shared.current.load().built_at() + self.publish_interval;
            if self.shared.clock.now() < due {
                return Publish::Deferred(due);
            }
        }
        self.publish();
        Publish::Published
    }

    /// The shortest time between two publishes by [`publish_due`](Self::publish_due) (see
    /// [`CacheConfig::publish_interval`]).
    pub fn publish_interval(&self) -> Duration {
        self.publish_interval
    }

    /// Publishes the working state as a new snapshot now if it changed (whatever the publish
    /// interval); returns whether it did. A poisoned writer never publishes.
    pub fn publish(&mut self) -> bool {
        if !self.dirty || self.poisoned {
            return false;
        }
        self.generation += 1;
        let snapshot =
            Arc::new(self.snapshot_of(&self.index, &self.ordered, &self.indexes, self.generation));
        self.dirty = false;
        let pending = std::mem::take(&mut self.pending);
        let unrecorded = std::mem::replace(&mut self.unrecorded, false);
        // Readers never wait for a publish, and never free a replaced snapshot either: the
        // writer keeps it until no reader holds it, then frees it (below, after the state is
        // updated: freeing runs the objects' `Drop`, which is user code).
        let replaced = self.shared.publish(snapshot);
        self.shared.notify_published();
        self.retired.push(replaced);
        if self.changes.receiver_count() > 0 {
            let generation = self.generation;
            // The slot this batch takes in the broadcast buffer drops the oldest batch when the
            // buffer is full; the changes the buffer holds stay within `buffer_changes`.
            let freed = if self.buffered.len() == self.buffer_slots {
                self.buffered.pop_front().unwrap_or_default()
            } else {
                0
            };
            self.buffered_sum -= freed;
            let fits = self.buffered_sum + pending.len() <= self.buffer_changes;
            let changes = (!unrecorded && fits).then(|| {
                pending
                    .into_iter()
                    .map(|c| c.with_generation(generation))
                    .collect::<Vec<_>>()
            });
            let sent = changes.as_ref().map_or(0, Vec::len);
            self.buffered.push_back(sent);
            self.buffered_sum += sent;
            // Never blocks: a subscriber that falls behind the buffer lags and resyncs.
            let _ = self.changes.send(Arc::new(Batch {
                generation,
                changes,
            }));
        }
        self.release_retired();
        true
    }

    /// Frees the replaced snapshots that no reader holds any more (on the writer's thread).
    ///
    /// Called at every publish; the reflector also calls it when it is idle. Returns how many
    /// are still held by readers.
    pub fn release_retired(&mut self) -> usize {
        self.retired
            .retain(|snapshot| Arc::strong_count(snapshot) > 1);
        self.retired.len()
    }

    pub(crate) fn shared(&self) -> Arc<Shared<K>> {
        self.shared.clone()
    }

    /// Whether a panic unwound through an update of the working state: the writer publishes
    /// nothing more, and the cache is stopped (see [`Writer`], "User code and panics").
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether a relist is in progress (between `Init` and `InitDone`).
    pub fn relist_in_progress(&self) -> bool {
        self.relist.is_some()
    }

    /// Advances the snapshot's resourceVersion to `rv` unless that is older than the current
    /// one (a late or out-of-order event must not move it back).
    fn note_version(&mut self, rv: Option<String>) {
        if let Some(rv) = rv
            && is_newer(Some(&rv), self.resource_version.as_deref())
        {
            self.resource_version = Some(Arc::from(rv));
        }
    }

    fn confirm(&self) {
        self.shared.current.load().confirm(self.shared.clock.now());
    }
}

/// Whether resourceVersion `new` should replace `old` (an object's, or the snapshot's).
///
/// resourceVersions are opaque to clients, but every etcd-backed API server sends integers (its
/// revisions). When both parse as `u64`, an older version never replaces a newer one, and an
/// equal one changes nothing. A version that does not parse (not a number, or past `u64`) is
/// not ordered against one that does: the safe answer is to keep the numeric one, so such a
/// version never replaces a numeric one (the event is ignored as a stale one is), while a
/// numeric one replaces it. The snapshot's version therefore never moves backwards, nor leaves
/// the integers once it holds one. When neither parses (a server with opaque versions), the
/// later event wins, as the watch's order is the only order there is.
fn is_newer(new: Option<&str>, old: Option<&str>) -> bool {
    // The common case without parsing: two canonical decimals (digits, no leading zero) short
    // enough for a u64 compare as numbers by length, then bytewise.
    if let (Some(n), Some(o)) = (new, old)
        && is_short_decimal(n)
        && is_short_decimal(o)
    {
        return (n.len(), n.as_bytes()) > (o.len(), o.as_bytes());
    }
    match (new, old) {
        (Some(new), Some(old)) => match (new.parse::<u64>(), old.parse::<u64>()) {
            (Ok(n), Ok(o)) => n > o,
            (Ok(_), Err(_)) => true,
            (Err(_), Ok(_)) => false,
            (Err(_), Err(_)) => new != old,
        },
        (_, None) => true,
        (None, Some(_)) => true,
    }
}

/// Whether `rv` is a decimal of at most 19 digits without a leading zero (so it parses as a
/// u64 and compares as one by length, then bytewise).
fn is_short_decimal(rv: &str) -> bool {
    let b = rv.as_bytes();
    (1..=19).contains(&b.len())
        && (b.len() == 1 || b.first() != Some(&b'0'))
        && b.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::is_newer;

    #[test]
    fn resource_version_ordering() {
        assert!(is_newer(Some("10"), Some("9")));
        assert!(!is_newer(Some("9"), Some("10")));
        assert!(!is_newer(Some("10"), Some("10")));
        // Not a number, or past u64: never newer than a number; a number replaces it.
        assert!(!is_newer(Some("abc"), Some("10")));
        assert!(!is_newer(Some("18446744073709551616"), Some("10")));
        assert!(is_newer(Some("10"), Some("abc")));
        assert!(is_newer(Some("10"), Some("18446744073709551616")));
        assert!(is_newer(Some("18446744073709551615"), Some("10")));
        // Both opaque: the later event wins, a repeat changes nothing.
        assert!(is_newer(Some("abc"), Some("abd")));
        assert!(!is_newer(Some("abc"), Some("abc")));
        assert!(is_newer(Some("1"), None));
        assert!(is_newer(None, Some("1")));
        // Leading zeros compare as numbers: the same number is not newer.
        assert!(is_newer(Some("010"), Some("9")));
        assert!(!is_newer(Some("09"), Some("10")));
        assert!(!is_newer(Some("010"), Some("10")));
        assert!(!is_newer(Some("10"), Some("010")));
    }

    fn cm(name: &str, rv: u64) -> k8s_openapi::api::core::v1::ConfigMap {
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.name = Some(name.to_owned());
        cm.metadata.resource_version = Some(rv.to_string());
        cm
    }

    /// The subscriber buffer holds at most `subscriber_buffer_changes` changes: a publish whose
    /// changes would pass that bound together with those already buffered is sent without them
    /// (subscribers diff), and the changes of a batch that leaves the buffer are freed from the
    /// count, so that single changes keep being sent whole however many publishes go by.
    #[test]
    fn the_subscriber_buffer_holds_at_most_its_changes_and_frees_what_leaves_it() {
        use kube::runtime::watcher::Event;
        let config = crate::CacheConfig::new()
            .subscriber_buffer(2)
            .subscriber_buffer_changes(3);
        let mut writer = super::Writer::with_config(config);
        let mut rx = writer.changes.subscribe();
        let mut rv = 0;
        let mut next = |name: &str| {
            rv += 1;
            Event::Apply(cm(name, rv))
        };
        let recorded = |rx: &mut tokio::sync::broadcast::Receiver<_>| {
            let batch: std::sync::Arc<super::Batch<_>> = rx.try_recv().unwrap();
            batch.changes.as_ref().map(Vec::len)
        };
        // One change a publish, many more publishes than slots: each is sent whole.
        for i in 0..8 {
            writer.apply(next(&format!("single-{i}")));
            assert_eq!(recorded(&mut rx), Some(1), "publish {i}");
        }
        // Two changes buffered (one in each slot); a batch of three more would hold five: the
        // oldest slot's one is freed, 1 + 3 > 3, so it goes without its changes.
        writer.apply_batch([next("a"), next("b"), next("c")]);
        assert_eq!(recorded(&mut rx), None);
    }

    proptest::proptest! {
        /// The comparison without parsing answers as parsing both would, for every shape of
        /// decimal (leading zeros, past u64) and for opaque versions.
        #[test]
        fn the_unparsed_comparison_agrees_with_parsing(
            new in "0{0,2}[0-9]{0,21}|[a-c0-9]{1,3}",
            old in "0{0,2}[0-9]{0,21}|[a-c0-9]{1,3}",
        ) {
            let parsed = match (new.parse::<u64>(), old.parse::<u64>()) {
                (Ok(n), Ok(o)) => n > o,
                (Ok(_), Err(_)) => true,
                (Err(_), Ok(_)) => false,
                (Err(_), Err(_)) => new != old,
            };
            proptest::prop_assert_eq!(is_newer(Some(&new), Some(&old)), parsed);
        }
    }
}
