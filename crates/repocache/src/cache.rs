//! [`Cache`]: the cheap, cloneable read handle, and the state it shares with its writer.
//!
//! The read path is `ArcSwap::load` (one atomic load, no lock, no I/O) followed by plain
//! lookups in the immutable [`Snapshot`]. Nothing on it waits for the writer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::error::Error;
use crate::snapshot::Snapshot;
use crate::stats::{Counters, Stats};

/// Whether a cache has completed its first full sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Readiness {
    /// No relist has completed yet.
    Pending,
    /// The first relist completed; stays so for the life of the cache.
    Ready,
    /// The writer stopped before the first relist completed.
    Stopped,
}

/// What a [`Cache`] shares with its [`Writer`](crate::Writer).
pub(crate) struct Shared<K> {
    /// The current snapshot; replaced whole by the writer.
    pub(crate) current: ArcSwap<Snapshot<K>>,
    readiness: watch::Sender<Readiness>,
    pub(crate) clock: Clock,
    /// The kind's name, for logs and errors.
    pub(crate) kind: String,
    pub(crate) counters: Counters,
}

impl<K> Shared<K> {
    pub(crate) fn new(kind: String) -> Self {
        let clock = Clock::new();
        Self {
            current: ArcSwap::from_pointee(Snapshot::empty(clock)),
            readiness: watch::Sender::new(Readiness::Pending),
            clock,
            kind,
            counters: Counters::default(),
        }
    }

    pub(crate) fn mark_ready(&self) {
        self.readiness.send_if_modified(|r| {
            let changed = *r != Readiness::Ready;
            *r = Readiness::Ready;
            changed
        });
    }

    /// Records that no writer will ever make this cache ready.
    pub(crate) fn mark_stopped(&self) {
        self.readiness.send_if_modified(|r| {
            let pending = *r == Readiness::Pending;
            if pending {
                *r = Readiness::Stopped;
            }
            pending
        });
    }
}

/// A read handle on a cache of `K` objects: cheap to clone, `Send + Sync`.
///
/// Reads never do I/O and never wait on the writer: [`snapshot`](Self::snapshot) is one
/// atomic load, and [`get`](Self::get) / [`get_namespaced`](Self::get_namespaced) add one
/// hash lookup. A miss while the cache [is ready](Self::is_ready) is authoritative: the object
/// was not on the server as of the snapshot.
///
/// For several reads that must see one moment, take one [`Snapshot`] and read from it.
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
            .field("ready", &self.is_ready())
            .field("len", &snapshot.len())
            .field("generation", &snapshot.generation())
            .finish()
    }
}

impl<K> Cache<K> {
    pub(crate) fn from_shared(shared: Arc<Shared<K>>) -> Self {
        Self { shared }
    }

    /// The current snapshot: one atomic load, no lock, no I/O.
    ///
    /// The snapshot stays valid (and unchanged) for as long as it is held, whatever the
    /// writer publishes meanwhile.
    pub fn snapshot(&self) -> Arc<Snapshot<K>> {
        self.shared.current.load_full()
    }

    /// The cluster-scoped object with this name, from the current snapshot.
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        self.shared.current.load().get(name).cloned()
    }

    /// The namespaced object with this namespace and name, from the current snapshot.
    pub fn get_namespaced(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.shared
            .current
            .load()
            .get_namespaced(namespace, name)
            .cloned()
    }

    /// Every object of the current snapshot, ordered by namespace then name.
    ///
    /// This allocates the returned vector (one `Arc` clone per object); to walk the objects
    /// without allocating, iterate a [`snapshot`](Self::snapshot) instead.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.shared.current.load().to_vec()
    }

    /// The kind this cache holds, e.g. `PackageRepository`.
    pub fn kind(&self) -> &str {
        &self.shared.kind
    }

    /// The cache's counters now.
    pub fn stats(&self) -> Stats {
        self.shared.counters.read()
    }

    /// Whether the first full sync has completed. Stays true across later relists.
    pub fn is_ready(&self) -> bool {
        *self.shared.readiness.borrow() == Readiness::Ready
    }

    /// Waits until the first full sync has completed.
    ///
    /// Returns at once when the cache is already ready. Fails with [`Error::Stopped`] when the
    /// writer stopped before the first sync.
    pub async fn ready(&self) -> Result<(), Error> {
        let mut rx = self.shared.readiness.subscribe();
        let result = rx.wait_for(|r| *r != Readiness::Pending).await;
        match result.map(|r| *r) {
            Ok(Readiness::Ready) => Ok(()),
            _ => Err(Error::Stopped {
                kind: self.shared.kind.clone(),
            }),
        }
    }

    /// Waits at most `timeout` for the first full sync.
    ///
    /// Fails with [`Error::ReadyTimeout`] when the time runs out first.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.ready()).await {
            Ok(result) => result,
            Err(_) => Err(Error::ReadyTimeout {
                kind: self.shared.kind.clone(),
                waited: timeout,
            }),
        }
    }
}
