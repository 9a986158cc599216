//! Object keys: the `(namespace, name)` pair that identifies an object in a snapshot.
//!
//! Lookups must not allocate, so the map is keyed by an owned [`ObjectKey`] but queried through
//! the borrowed `KeyView` trait object: `(Option<&str>, &str)` hashes and compares exactly like
//! the owned key it stands for.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use kube::Resource;

/// The identity of a cached object: its namespace (`None` for cluster-scoped kinds) and name.
///
/// Keys order by namespace, then name; cluster-scoped keys (no namespace) sort first. This is the
/// order in which a [`Snapshot`](crate::Snapshot) iterates.
///
/// The strings are shared (`Arc<str>`): the persistent maps copy keys whenever they copy a node,
/// and a copy must cost a reference count, not an allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectKey {
    namespace: Option<Arc<str>>,
    name: Arc<str>,
}

impl ObjectKey {
    /// A key for a cluster-scoped object.
    pub fn cluster(name: &str) -> Self {
        Self {
            namespace: None,
            name: Arc::from(name),
        }
    }

    /// A key for a namespaced object.
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Some(Arc::from(namespace)),
            name: Arc::from(name),
        }
    }

    /// The key of an object, or `None` when the object has no `metadata.name`.
    pub fn of<K: Resource>(obj: &K) -> Option<Self> {
        let meta = obj.meta();
        Some(Self {
            namespace: meta
                .namespace
                .as_deref()
                .filter(|ns| !ns.is_empty())
                .map(Arc::from),
            name: Arc::from(meta.name.as_deref().filter(|n| !n.is_empty())?),
        })
    }

    /// The namespace, `None` for cluster-scoped objects.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A borrowed view of a key, so that maps keyed by [`ObjectKey`] can be queried with
/// `(Option<&str>, &str)` without building an owned key.
pub(crate) trait KeyView {
    fn ns(&self) -> Option<&str>;
    fn nm(&self) -> &str;

    /// `namespace/name`, or `name`, for logs.
    fn display(&self) -> String {
        match self.ns() {
            Some(ns) => format!("{ns}/{}", self.nm()),
            None => self.nm().to_owned(),
        }
    }
}

impl KeyView for ObjectKey {
    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn nm(&self) -> &str {
        &self.name
    }
}

impl KeyView for (Option<&str>, &str) {
    fn ns(&self) -> Option<&str> {
        self.0
    }
    fn nm(&self) -> &str {
        self.1
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ns().hash(state);
        self.nm().hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.nm() == other.nm() && self.ns() == other.ns()
    }
}

impl Eq for dyn KeyView + '_ {}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ns()
            .cmp(&other.ns())
            .then_with(|| self.nm().cmp(other.nm()))
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for ObjectKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

// The owned key must hash and order exactly like its borrowed view.
impl Hash for ObjectKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state);
    }
}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self as &dyn KeyView).cmp(other as &dyn KeyView)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    #[test]
    fn borrowed_view_hashes_like_owned_key() {
        let s = RandomState::new();
        let owned = ObjectKey::namespaced("ns", "a");
        let view: &dyn KeyView = &(Some("ns"), "a");
        assert_eq!(s.hash_one(&owned), s.hash_one(view));
        let owned = ObjectKey::cluster("a");
        let view: &dyn KeyView = &(None, "a");
        assert_eq!(s.hash_one(&owned), s.hash_one(view));
        let other: &dyn KeyView = &(Some(""), "a");
        assert_ne!(s.hash_one(&owned), s.hash_one(other));
    }

    #[test]
    fn cluster_scoped_keys_sort_first_then_namespace_then_name() {
        let mut keys = [
            ObjectKey::namespaced("b", "a"),
            ObjectKey::namespaced("a", "z"),
            ObjectKey::cluster("m"),
            ObjectKey::namespaced("a", "b"),
            ObjectKey::cluster("c"),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["c", "m", "a/b", "a/z", "b/a"]);
    }
}
