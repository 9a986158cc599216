//! [`CacheConfig`]: what a cache does to objects before it stores them, which indexes it keeps,
//! and how far a subscriber may fall behind.

use std::fmt;
use std::sync::Arc;

use kube::Resource;

use crate::index::Indexer;

/// A hook applied to every object before it enters a snapshot.
pub type Transform<K> = Arc<dyn Fn(&mut K) + Send + Sync>;

/// How many publishes a subscriber may fall behind before it is resynced.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 128;

/// Per-cache options for the [`Writer`](crate::Writer) (and so for a reflector or a cache set).
///
/// By default the cache drops `metadata.managedFields` from every object (they are large and
/// no reader of a cache needs them), keeps no secondary index, and lets a subscriber fall
/// [`DEFAULT_SUBSCRIBER_BUFFER`] publishes behind.
pub struct CacheConfig<K> {
    pub(crate) transform: Option<Transform<K>>,
    pub(crate) indexers: Vec<Indexer<K>>,
    pub(crate) subscriber_buffer: usize,
}

impl<K: Resource + 'static> Default for CacheConfig<K> {
    fn default() -> Self {
        Self {
            transform: Some(Arc::new(drop_managed_fields::<K>)),
            indexers: Vec::new(),
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
        }
    }
}

impl<K> Clone for CacheConfig<K> {
    fn clone(&self) -> Self {
        Self {
            transform: self.transform.clone(),
            indexers: self.indexers.clone(),
            subscriber_buffer: self.subscriber_buffer,
        }
    }
}

impl<K> fmt::Debug for CacheConfig<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("transform", &self.transform.is_some())
            .field("indexers", &self.indexers)
            .field("subscriber_buffer", &self.subscriber_buffer)
            .finish()
    }
}

impl<K: Resource + 'static> CacheConfig<K> {
    /// The defaults: drop managedFields, no index, the default subscriber buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the transform (the default drops managedFields; call
    /// [`drop_managed_fields`] inside yours to keep that).
    pub fn transform(mut self, transform: impl Fn(&mut K) + Send + Sync + 'static) -> Self {
        self.transform = Some(Arc::new(transform));
        self
    }

    /// Stores objects exactly as the server sent them.
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
}

/// The default transform: drops `metadata.managedFields`.
pub fn drop_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}
