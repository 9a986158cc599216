//! Secondary indexes: named functions from an object to index values, and the persistent maps
//! from each value to the keys of the objects that produce it.
//!
//! Indexes live inside the [`Snapshot`](crate::Snapshot), so an index and the objects it points
//! to are always from the same moment. The writer updates them with each event in O(log n).
//! Index functions are user code: the writer runs them before it updates any of its maps, so
//! one that panics costs the event it ran for and nothing else.

use std::fmt;
use std::sync::Arc;

use crate::key::ObjectKey;

/// The function behind an index: the values an object is indexed under (none, one or several).
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// A named index function.
pub struct Indexer<K> {
    pub(crate) name: Arc<str>,
    pub(crate) values: IndexFn<K>,
}

impl<K> Indexer<K> {
    /// An index called `name`, computing each object's values with `values`.
    pub fn new(
        name: impl Into<Arc<str>>,
        values: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            values: Arc::new(values),
        }
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<K> Clone for Indexer<K> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K> fmt::Debug for Indexer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Indexer").field("name", &self.name).finish()
    }
}

/// One index's data: value → keys of the objects indexed under it, in key order.
pub(crate) type IndexMap = imbl::GenericHashMap<
    String,
    imbl::OrdSet<ObjectKey>,
    crate::hasher::Hasher,
    imbl::shared_ptr::DefaultSharedPtr,
>;

/// The values `obj` is indexed under: the user's index function, run before the writer
/// touches any of its maps (see [`Writer`](crate::Writer), "Panics").
pub(crate) fn values_of<K>(indexer: &Indexer<K>, obj: &K) -> Vec<String> {
    (indexer.values)(obj)
}

/// Adds `key` under each of `obj`'s values.
pub(crate) fn insert<K>(map: &mut IndexMap, indexer: &Indexer<K>, key: &ObjectKey, obj: &K) {
    insert_values(map, key, values_of(indexer, obj));
}

/// Adds `key` under each of these values (computed beforehand with [`values_of`]).
pub(crate) fn insert_values(map: &mut IndexMap, key: &ObjectKey, values: Vec<String>) {
    for value in values {
        map.entry(value).or_default().insert(key.clone());
    }
}

/// Removes `key` from under each of these values (computed beforehand with [`values_of`]),
/// dropping values left empty.
pub(crate) fn remove_values(map: &mut IndexMap, key: &ObjectKey, values: &[String]) {
    for value in values {
        let now_empty = match map.get_mut(value) {
            Some(keys) => {
                keys.remove(key);
                keys.is_empty()
            }
            None => false,
        };
        if now_empty {
            map.remove(value);
        }
    }
}
