//! [`CacheView`]: a type-erased handle on a `Cache<K>` whose objects serialize to JSON.

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;
use serde_json::Value;

use super::redact::Redactor;
use super::report::CacheReport;
use crate::cache::{AnyCache, Cache, Local};
use crate::change::Change;
use crate::state::CacheState;
use crate::stats::Stats;

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

/// Which objects a view serializes, by their metadata (see [`CacheView::objects_where`]).
pub type Keep<'a> = dyn Fn(&ObjectMeta) -> bool + 'a;

/// The objects of one snapshot of `cache` that `keep` keeps (all without it), serialized, with
/// the snapshot's generation. Objects left out are never serialized.
fn objects_of<K: Resource + Serialize>(
    cache: &Cache<K, Local>,
    keep: Option<&Keep<'_>>,
) -> (u64, Vec<Value>) {
    let snapshot = cache.snapshot();
    let objects = snapshot
        .iter()
        .filter(|obj| keep.is_none_or(|keep| keep(obj.meta())))
        .filter_map(|obj| match serde_json::to_value(&**obj) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(kind = %cache.kind(), %err, "object does not serialize; left out of the debug view");
                None
            }
        })
        .collect();
    (snapshot.generation(), objects)
}

/// What only a typed cache can do for the view: serialize its objects, and type its changes.
type Objects = Arc<dyn Fn(Option<&Keep<'_>>) -> (u64, Vec<Value>) + Send + Sync>;
type Changes = Arc<dyn Fn() -> BoxStream<'static, ViewChange> + Send + Sync>;

/// A cache of any kind whose objects serialize, seen as JSON: what the debug endpoint serves
/// and what tools (the `repocache` command) print.
///
/// Cheap to clone. Built from a [`Cache`] with [`CacheView::new`].
#[derive(Clone)]
pub struct CacheView {
    /// The cache, type-erased as every holder of caches of several kinds erases it.
    cache: Arc<dyn AnyCache>,
    objects: Objects,
    changes: Changes,
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
        let typed = cache.local();
        let objects: Objects = {
            let cache = typed.clone();
            Arc::new(move |keep| objects_of(&cache, keep))
        };
        let changes: Changes = Arc::new(move || {
            crate::controller::changes(&typed)
                .filter_map(|change| std::future::ready(view_change(change)))
                .boxed()
        });
        Self {
            cache: cache.erased(),
            objects,
            changes,
        }
    }

    /// The kind the cache holds.
    pub fn kind(&self) -> &str {
        self.cache.kind()
    }

    /// Whether the first sync has completed.
    pub fn is_ready(&self) -> bool {
        self.cache.is_ready()
    }

    /// Whether the snapshot went unconfirmed for longer than the TTL.
    pub fn is_stale(&self) -> bool {
        self.cache.is_stale()
    }

    /// The cache's state.
    pub fn state(&self) -> CacheState {
        self.cache.state()
    }

    /// The cache's figures now.
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }

    /// The current snapshot's generation (changes with every publish).
    pub fn generation(&self) -> u64 {
        self.cache.generation()
    }

    /// The objects of one snapshot, serialized, in (namespace, name) order, each passed
    /// through `redact` when given; with the snapshot's generation.
    pub fn objects(&self, redact: Option<&Redactor>) -> (u64, Vec<Value>) {
        self.objects_selected(None, redact)
    }

    /// The objects of one snapshot that `keep` keeps, by their metadata, as
    /// [`objects`](Self::objects) would list them (same order, same JSON, same redaction) but
    /// without serializing or redacting the others: what a tool that shows a few objects of a
    /// large cache (`repocache get NAME`) asks for.
    pub fn objects_where(&self, keep: &Keep<'_>, redact: Option<&Redactor>) -> (u64, Vec<Value>) {
        self.objects_selected(Some(keep), redact)
    }

    fn objects_selected(
        &self,
        keep: Option<&Keep<'_>>,
        redact: Option<&Redactor>,
    ) -> (u64, Vec<Value>) {
        let (generation, mut objects) = (self.objects)(keep);
        if let Some(redact) = redact {
            objects.iter_mut().for_each(|o| redact(o));
        }
        (generation, objects)
    }

    /// Every change the cache publishes from now on (not the objects already there), in
    /// order, as the writer publishes them: nothing is coalesced or skipped.
    pub fn changes(&self) -> BoxStream<'static, ViewChange> {
        (self.changes)()
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

    /// The cache's report with the objects `keep` keeps (see
    /// [`objects_where`](Self::objects_where)); its figures still describe the whole cache.
    pub fn report_where(&self, keep: &Keep<'_>, redact: Option<&Redactor>) -> CacheReport {
        let stats = self.stats();
        let mut report = CacheReport::from_stats(&stats, self.is_stale());
        report.objects = Some(self.objects_where(keep, redact).1);
        report
    }
}
