//! The state a cache's read handles share with its writer and reflector: [`Shared`], the
//! readiness signal and the commands a read handle sends its reflector.
//!
//! It sits below every module that touches it (writer, reflector, read handles, subscriptions,
//! the per-thread reader), so that none of them imports another's file for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{Notify, broadcast, oneshot, watch};

use crate::change::Batch;
use crate::clock::Clock;
use crate::error::Error;
use crate::index::Indexer;
use crate::snapshot::Snapshot;
use crate::state::CacheState;
use crate::stats::{Counters, RelistReason};

/// Whether a cache has completed its first full sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
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
    /// The current snapshot; replaced whole by the writer, through [`Shared::publish`] only.
    pub(crate) current: ArcSwap<Snapshot<K>>,
    /// The address of the newest published snapshot, stored before it goes into `current`: a
    /// thread whose pinned snapshot is at this address reads it without touching `current`
    /// (see `reader::read_current`).
    pub(crate) newest: AtomicUsize,
    pub(crate) readiness: watch::Sender<Readiness>,
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
    /// Where the writer sends its changes (weak: the stream ends when the writer goes).
    pub(crate) changes: broadcast::WeakSender<Arc<Batch<K>>>,
    /// Woken at every publish and every proven progress (for [`Cache::wait_for`](crate::Cache::wait_for)).
    pub(crate) published: Notify,
    /// The newest resourceVersion a watch BOOKMARK proved the current snapshot reflects (0:
    /// none). Only grows: a later snapshot reflects at least what an earlier one did.
    progress: AtomicU64,
    /// The newest bookmark seen on the wire and not applied yet (0: none).
    bookmark: AtomicU64,
    /// Wakes the reflector when a bookmark was seen.
    pub(crate) bookmark_seen: Notify,
    /// The current snapshot came from a warm-start file and no LIST verified it yet.
    unverified: AtomicBool,
}

impl<K> Shared<K> {
    pub(crate) fn new(
        kind: String,
        indexers: Arc<[Indexer<K>]>,
        changes: broadcast::WeakSender<Arc<Batch<K>>>,
    ) -> Self {
        let clock = Clock::new();
        let first = Arc::new(Snapshot::empty(clock, indexers));
        Self {
            newest: AtomicUsize::new(Arc::as_ptr(&first) as usize),
            current: ArcSwap::new(first),
            readiness: watch::Sender::new(Readiness::Pending),
            clock,
            kind,
            counters: Counters::default(),
            state: ArcSwap::from_pointee(CacheState::Starting),
            ttl_nanos: AtomicU64::new(0),
            last_relist: ArcSwapOption::empty(),
            changes,
            published: Notify::new(),
            progress: AtomicU64::new(0),
            bookmark: AtomicU64::new(0),
            bookmark_seen: Notify::new(),
            unverified: AtomicBool::new(false),
        }
    }

    /// Makes `snapshot` the current one; returns the one it replaced. Its address is recorded
    /// first (`Release`), so that anyone who sees it in `current` also sees it as the newest.
    pub(crate) fn publish(&self, snapshot: Arc<Snapshot<K>>) -> Arc<Snapshot<K>> {
        self.newest
            .store(Arc::as_ptr(&snapshot) as usize, Ordering::Release);
        self.current.swap(snapshot)
    }

    /// Whether the current snapshot came from a warm-start file and no LIST verified it yet.
    pub(crate) fn is_unverified(&self) -> bool {
        self.unverified.load(Ordering::Acquire)
    }

    pub(crate) fn set_unverified(&self, unverified: bool) {
        self.unverified.store(unverified, Ordering::Release);
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

    /// Whether the first full sync has completed and the cache has not stopped.
    pub(crate) fn is_ready(&self) -> bool {
        *self.readiness.borrow() == Readiness::Ready && !self.is_stopped()
    }
}
