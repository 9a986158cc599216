//! [`CacheConfig`]: what a cache does to objects before it stores them, which indexes it keeps,
//! and how far a subscriber may fall behind.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;

use crate::index::Indexer;
pub use crate::line_guard::{DEFAULT_MAX_LINE, MIN_MAX_LINE};

/// A hook applied to every object before it enters a snapshot.
pub type Transform<K> = Arc<dyn Fn(&mut K) + Send + Sync>;

/// How many publishes a subscriber may fall behind before it is resynced.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 128;

/// How many changes the subscriber buffer holds at most, over all its publishes (see
/// [`CacheConfig::subscriber_buffer_changes`]).
pub const DEFAULT_SUBSCRIBER_BUFFER_CHANGES: usize = 4096;

/// The shortest time between two snapshots a reflector publishes: 1 ms.
///
/// A quiet watch's event is published as soon as it arrives; under a steady stream of events
/// (a busy cluster sends thousands a second) the reflector publishes at most about this often,
/// each snapshot carrying every event since the last. Every publish costs readers fresh cache
/// misses on the new snapshot: with 10 objects and 10,000 events/s, publishing each one made
/// the p99.9 read 2.5x its idle figure, against 1.7x with this interval (docs/BENCHMARKS.md).
/// An event that arrives within the interval waits for its end (less than 1 ms); code that
/// writes an object and waits to see it before its next write meets that on every write, and
/// may prefer an interval of zero.
pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_millis(1);

/// The longest publish interval: [`CacheConfig::publish_interval`] clamps longer ones to it.
pub const MAX_PUBLISH_INTERVAL: Duration = Duration::from_secs(3600);

/// Per-cache options for the [`Writer`](crate::Writer) (and so for a reflector or a cache set).
///
/// By default the cache drops `metadata.managedFields` and the
/// [`LAST_APPLIED_ANNOTATION`] from every object (they are large, no reader of a cache needs
/// them, and the annotation repeats every credential of an object created with `kubectl apply`)
/// and shrinks its `finalizers` and `ownerReferences` to fit
/// (see [`drop_managed_fields`]), keeps no secondary index, and lets a subscriber fall
/// [`DEFAULT_SUBSCRIBER_BUFFER`] publishes behind; a reflector publishes at most every
/// [`DEFAULT_PUBLISH_INTERVAL`] while events keep arriving.
pub struct CacheConfig<K> {
    pub(crate) transform: Option<Transform<K>>,
    pub(crate) indexers: Vec<Indexer<K>>,
    pub(crate) subscriber_buffer: usize,
    pub(crate) subscriber_buffer_changes: usize,
    pub(crate) publish_interval: Duration,
    pub(crate) max_line: usize,
    /// Where the snapshot is persisted for a warm start (see [`crate::persist`]).
    pub(crate) persist: Option<crate::persist::Plan<K>>,
}

impl<K: Resource + 'static> Default for CacheConfig<K> {
    fn default() -> Self {
        Self {
            transform: Some(Arc::new(drop_managed_fields::<K>)),
            indexers: Vec::new(),
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            subscriber_buffer_changes: DEFAULT_SUBSCRIBER_BUFFER_CHANGES,
            publish_interval: DEFAULT_PUBLISH_INTERVAL,
            max_line: crate::line_guard::DEFAULT_MAX_LINE,
            persist: None,
        }
    }
}

impl<K> Clone for CacheConfig<K> {
    fn clone(&self) -> Self {
        Self {
            transform: self.transform.clone(),
            indexers: self.indexers.clone(),
            subscriber_buffer: self.subscriber_buffer,
            subscriber_buffer_changes: self.subscriber_buffer_changes,
            publish_interval: self.publish_interval,
            max_line: self.max_line,
            persist: self.persist.clone(),
        }
    }
}

impl<K> fmt::Debug for CacheConfig<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("transform", &self.transform.is_some())
            .field("indexers", &self.indexers)
            .field("subscriber_buffer", &self.subscriber_buffer)
            .field("subscriber_buffer_changes", &self.subscriber_buffer_changes)
            .field("publish_interval", &self.publish_interval)
            .field("max_line", &self.max_line)
            .field("persist", &self.persist.as_ref().map(|p| &p.persist))
            .finish()
    }
}

impl<K: Resource + 'static> CacheConfig<K> {
    /// The defaults: drop managedFields and the last-applied annotation, no index, the default subscriber buffer and publish
    /// interval.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the transform (the default drops managedFields and the last-applied
    /// annotation; call
    /// [`drop_managed_fields`] inside yours to keep that).
    pub fn transform(mut self, transform: impl Fn(&mut K) + Send + Sync + 'static) -> Self {
        self.transform = Some(Arc::new(transform));
        self
    }

    /// Stores objects exactly as the server sent them (byte-equal when serialized again),
    /// managedFields and the [`LAST_APPLIED_ANNOTATION`] included.
    pub fn no_transform(mut self) -> Self {
        self.transform = None;
        self
    }

    /// Adds a secondary index called `name`: `values` gives the values each object is indexed
    /// under; read it with [`Snapshot::by_index`](crate::Snapshot::by_index).
    pub fn index_by(
        mut self,
        name: impl Into<Arc<str>>,
        values: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.indexers.push(Indexer::new(name, values));
        self
    }

    /// How many publishes a subscriber may fall behind before it gets
    /// [`Change::Lagged`](crate::Change::Lagged) and a resync (at least 1).
    pub fn subscriber_buffer(mut self, publishes: usize) -> Self {
        self.subscriber_buffer = publishes.max(1);
        self
    }

    /// How many changes the subscriber buffer holds at most, over all the publishes it holds
    /// (default [`DEFAULT_SUBSCRIBER_BUFFER_CHANGES`], 4,096; zero sends no change at all).
    ///
    /// This bounds what a subscriber that never reads costs (see
    /// [`Subscription`](crate::Subscription), "What a subscriber holds"): each buffered change
    /// keeps one or two object versions alive. A publish whose changes do not fit (a relist that
    /// replaced many objects, say) is sent without them; subscribers then diff their view
    /// against the current snapshot, which delivers the same net changes.
    pub fn subscriber_buffer_changes(mut self, changes: usize) -> Self {
        self.subscriber_buffer_changes = changes;
        self
    }

    /// The shortest time between two published snapshots while events keep arriving
    /// (default [`DEFAULT_PUBLISH_INTERVAL`], 1 ms); zero publishes every batch of events as
    /// soon as it is applied. A relist is always published at once.
    ///
    /// Longer intervals disturb readers less under a busy watch and make an event visible
    /// later (by at most the interval); see [`Writer::publish_due`](crate::Writer::publish_due).
    ///
    /// Range: zero to [`MAX_PUBLISH_INTERVAL`] (one hour); a longer interval is clamped to it.
    pub fn publish_interval(mut self, interval: Duration) -> Self {
        self.publish_interval = interval.min(MAX_PUBLISH_INTERVAL);
        self
    }

    /// The longest watch line a reflector accepts, in bytes (default
    /// [`DEFAULT_MAX_LINE`], 16 MiB; values below
    /// [`MIN_MAX_LINE`], 4 KiB, are raised to it). A watch line is one
    /// event with its whole object; a longer one is never buffered whole: it is counted in
    /// [`Stats::rejected_lines`](crate::Stats::rejected_lines), skipped, and the reflector
    /// relists. The API server's own limit on an object is far below the default.
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes.max(crate::line_guard::MIN_MAX_LINE);
        self
    }

    /// Persists the cache's verified snapshot for a warm start (see [`crate::persist`]): a
    /// reflector with this option starts by serving the file's objects unverified
    /// ([`CacheState::Stale`](crate::CacheState::Stale) with reason
    /// [`WARM_START`](crate::persist::WARM_START), not ready), verifies them with one LIST, and
    /// rewrites the file at most every [`Persist::rewrite_interval`](crate::persist::Persist::rewrite_interval)
    /// and when it stops. A [`Writer`](crate::Writer) driven by hand ignores it.
    pub fn persist(mut self, persist: crate::persist::Persist) -> Self
    where
        K: serde::Serialize,
    {
        self.persist = Some(crate::persist::Plan {
            persist,
            to_json: Arc::new(|obj: &K| serde_json::to_value(obj)),
        });
        self
    }
}

/// The annotation `kubectl apply` keeps the whole applied object in: about the object's size
/// again, and a copy of every inline credential the object carries.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The default transform: drops `metadata.managedFields` and the [`LAST_APPLIED_ANNOTATION`]
/// (and `metadata.annotations` when that was the only one), and shrinks `metadata.finalizers`
/// and `metadata.ownerReferences` to fit.
///
/// Decoding JSON text, serde grows a list by doubling from empty (the text gives no length up
/// front), so an object with one finalizer arrives with room for four; a cached object keeps that
/// slack for as long as it is cached. Shrinking makes each list's capacity equal its length; the
/// object's content, and so its JSON, is unchanged.
pub fn drop_managed_fields<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut()
        && annotations.remove(LAST_APPLIED_ANNOTATION).is_some()
        && annotations.is_empty()
    {
        meta.annotations = None;
    }
    if let Some(finalizers) = meta.finalizers.as_mut() {
        finalizers.shrink_to_fit();
    }
    if let Some(owner_references) = meta.owner_references.as_mut() {
        owner_references.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    #[test]
    fn drop_managed_fields_shrinks_metadata_lists_to_fit() {
        // Decoded from text, as a watch delivers it: serde sees no lengths and over-allocates.
        let json = r#"{
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "settings",
                "namespace": "default",
                "finalizers": ["example.org/cleanup"],
                "ownerReferences": [{
                    "apiVersion": "packages.glasskube.dev/v1alpha1",
                    "kind": "Package",
                    "name": "cert-manager",
                    "uid": "3f6e0c2a-0001-4b1d-9a7e-000000001eef"
                }],
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "data": {"key": "value"}
        }"#;
        let mut cm: ConfigMap = serde_json::from_str(json).unwrap();
        let before = serde_json::to_value(&cm).unwrap();
        drop_managed_fields(&mut cm);
        let meta = &cm.metadata;
        assert!(meta.managed_fields.is_none());
        let finalizers = meta.finalizers.as_ref().unwrap();
        assert_eq!(finalizers.len(), 1);
        assert_eq!(finalizers.capacity(), finalizers.len());
        let owners = meta.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners.capacity(), owners.len());
        // Nothing but managedFields changed.
        let mut expected = before;
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(serde_json::to_value(&cm).unwrap(), expected);
    }

    #[test]
    fn drop_managed_fields_drops_the_last_applied_annotation_only() {
        let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "annotations": {
                LAST_APPLIED_ANNOTATION: "{\"data\":{\"password\":\"pw\"}}",
                "team": "platform"}},
        }))
        .unwrap();
        drop_managed_fields(&mut cm);
        let annotations = cm.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["team"], "platform");
        // The only annotation: no empty map is left behind.
        let mut alone: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "b", "annotations": {LAST_APPLIED_ANNOTATION: "{}"}},
        }))
        .unwrap();
        drop_managed_fields(&mut alone);
        assert!(alone.metadata.annotations.is_none());
    }
}
