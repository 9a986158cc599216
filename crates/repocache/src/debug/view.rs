//! [`CacheView`]: a type-erased handle on a `Cache<K>` whose objects serialize to JSON.

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Resource;
use serde::Serialize;
use serde_json::Value;

use super::redact::Redactor;
use super::report::CacheReport;
use crate::cache::{Cache, Local};
use crate::change::Change;
use crate::state::CacheState;
use crate::stats::Stats;

/// What the debug endpoint needs from a cache, without its type parameter.
trait Source: Send + Sync {
    fn kind(&self) -> &str;
    fn is_ready(&self) -> bool;
    fn is_stale(&self) -> bool;
    fn state(&self) -> CacheState;
    fn stats(&self) -> Stats;
    fn generation(&self) -> u64;
    fn objects(&self) -> (u64, Vec<Value>);
    fn changes(&self) -> BoxStream<'static, ViewChange>;
}

/// One change a cache published, without its type: what `repocache watch` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewChange {
    /// `added`, `updated` or `deleted`; `resynced` after the subscriber fell behind (the
    /// changes that follow bring it up to date).
    pub event: &'static str,
    /// `name` or `namespace/name` (empty for `resynced`).
    pub key: String,
    /// The object's resourceVersion (for `deleted`: the last one seen).
    pub resource_version: String,
}

fn view_change<K: Resource>(change: Change<K>) -> Option<ViewChange> {
    let (event, object) = match &change {
        Change::Added { object, .. } => ("added", object),
        Change::Updated { new, .. } => ("updated", new),
        Change::Deleted { object, .. } => ("deleted", object),
        Change::Lagged { .. } => {
            return Some(ViewChange {
                event: "resynced",
                key: String::new(),
                resource_version: String::new(),
            });
        }
        Change::Synced { .. } => return None,
    };
    let meta = object.meta();
    let name = meta.name.clone().unwrap_or_default();
    Some(ViewChange {
        event,
        key: match meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
            Some(ns) => format!("{ns}/{name}"),
            None => name,
        },
        resource_version: meta.resource_version.clone().unwrap_or_default(),
    })
}

impl<K: Resource + Serialize + Send + Sync + 'static> Source for Cache<K, Local> {
    fn changes(&self) -> BoxStream<'static, ViewChange> {
        crate::controller::changes(self)
            .filter_map(|change| std::future::ready(view_change(change)))
            .boxed()
    }

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
    fn objects(&self) -> (u64, Vec<Value>) {
        let snapshot = self.snapshot();
        let objects = snapshot
            .iter()
            .filter_map(|obj| match serde_json::to_value(&**obj) {
                Ok(value) => Some(value),
                Err(err) => {
                    tracing::warn!(kind = %Cache::kind(self), %err, "object does not serialize; left out of the debug view");
                    None
                }
            })
            .collect();
        (snapshot.generation(), objects)
    }
}

/// A cache of any kind whose objects serialize, seen as JSON: what the debug endpoint serves
/// and what tools (the `repocache` command) print.
///
/// Cheap to clone. Built from a [`Cache`] with [`CacheView::new`].
#[derive(Clone)]
pub struct CacheView {
    source: Arc<dyn Source>,
}

impl fmt::Debug for CacheView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheView")
            .field("kind", &self.kind())
            .finish()
    }
}

impl CacheView {
    /// A view of `cache` (shares it; reads stay lock-free).
    pub fn new<K: Resource + Serialize + Send + Sync + 'static, F>(cache: &Cache<K, F>) -> Self {
        Self {
            source: Arc::new(cache.local()),
        }
    }

    /// The kind the cache holds.
    pub fn kind(&self) -> &str {
        self.source.kind()
    }

    /// Whether the first sync has completed.
    pub fn is_ready(&self) -> bool {
        self.source.is_ready()
    }

    /// Whether the snapshot went unconfirmed for longer than the TTL.
    pub fn is_stale(&self) -> bool {
        self.source.is_stale()
    }

    /// The cache's state.
    pub fn state(&self) -> CacheState {
        self.source.state()
    }

    /// The cache's figures now.
    pub fn stats(&self) -> Stats {
        self.source.stats()
    }

    /// The current snapshot's generation (changes with every publish).
    pub fn generation(&self) -> u64 {
        self.source.generation()
    }

    /// The objects of one snapshot, serialized, in (namespace, name) order, each passed
    /// through `redact` when given; with the snapshot's generation.
    pub fn objects(&self, redact: Option<&Redactor>) -> (u64, Vec<Value>) {
        let (generation, mut objects) = self.source.objects();
        if let Some(redact) = redact {
            objects.iter_mut().for_each(|o| redact(o));
        }
        (generation, objects)
    }

    /// Every change the cache publishes from now on (not the objects already there), in
    /// order, as the writer publishes them: nothing is coalesced or skipped.
    pub fn changes(&self) -> BoxStream<'static, ViewChange> {
        self.source.changes()
    }

    /// The cache's report: its figures, and with `objects` its objects (see
    /// [`objects`](Self::objects) for `redact`).
    pub fn report(&self, objects: bool, redact: Option<&Redactor>) -> CacheReport {
        let stats = self.stats();
        let mut report = CacheReport::from_stats(&stats, self.is_stale());
        if objects {
            report.objects = Some(self.objects(redact).1);
        }
        report
    }
}
