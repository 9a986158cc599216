//! Changes: what subscribers receive, and how two snapshots differ.

use std::cmp::Ordering;
use std::sync::Arc;

use kube::Resource;

use crate::ordered::{Ordered, search};
use crate::snapshot::cmp_objects;

/// One change to a cache, as a subscriber sees it. Every change carries the generation of the
/// snapshot it belongs to: after the changes of generation `g`, the subscriber's view equals
/// that snapshot.
#[derive(Debug)]
pub enum Change<K> {
    /// An object appeared.
    Added {
        /// The new object.
        object: Arc<K>,
        /// The snapshot generation this change belongs to.
        generation: u64,
    },
    /// An object changed.
    Updated {
        /// The version the subscriber saw before.
        old: Arc<K>,
        /// The new version.
        new: Arc<K>,
        /// The snapshot generation this change belongs to.
        generation: u64,
    },
    /// An object disappeared (deleted, or gone from a relist).
    Deleted {
        /// The last version the subscriber saw.
        object: Arc<K>,
        /// The snapshot generation this change belongs to.
        generation: u64,
    },
    /// The subscriber's view now equals the snapshot of this generation: sent after the
    /// current state a new subscriber receives first, and after every resync.
    Synced {
        /// The snapshot generation the view equals.
        generation: u64,
    },
    /// The subscriber fell behind its buffer and missed changes. The changes that follow bring
    /// its view to the current snapshot (computed by diffing), then [`Change::Synced`] follows.
    Lagged {
        /// How many batches of changes were missed.
        missed: u64,
        /// The generation the resync brings the view to.
        generation: u64,
    },
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Added { object, generation } => Self::Added {
                object: object.clone(),
                generation: *generation,
            },
            Self::Updated {
                old,
                new,
                generation,
            } => Self::Updated {
                old: old.clone(),
                new: new.clone(),
                generation: *generation,
            },
            Self::Deleted { object, generation } => Self::Deleted {
                object: object.clone(),
                generation: *generation,
            },
            Self::Synced { generation } => Self::Synced {
                generation: *generation,
            },
            Self::Lagged { missed, generation } => Self::Lagged {
                missed: *missed,
                generation: *generation,
            },
        }
    }
}

impl<K> Change<K> {
    /// The snapshot generation this change belongs to.
    pub fn generation(&self) -> u64 {
        match self {
            Self::Added { generation, .. }
            | Self::Updated { generation, .. }
            | Self::Deleted { generation, .. }
            | Self::Synced { generation }
            | Self::Lagged { generation, .. } => *generation,
        }
    }

    /// The object this change is about: the new version for added and updated objects, the
    /// last version for deleted ones; `None` for markers.
    pub fn object(&self) -> Option<&Arc<K>> {
        match self {
            Self::Added { object, .. } | Self::Deleted { object, .. } => Some(object),
            Self::Updated { new, .. } => Some(new),
            Self::Synced { .. } | Self::Lagged { .. } => None,
        }
    }

    pub(crate) fn with_generation(mut self, g: u64) -> Self {
        match &mut self {
            Self::Added { generation, .. }
            | Self::Updated { generation, .. }
            | Self::Deleted { generation, .. }
            | Self::Synced { generation }
            | Self::Lagged { generation, .. } => *generation = g,
        }
        self
    }
}

/// What one publish changed, as sent to subscribers.
///
/// A batch holds no snapshot: the broadcast buffer keeps the last batches for a subscriber
/// that has not read them, and a snapshot in each would keep that many whole generations of
/// objects alive. The writer also bounds the changes the buffer holds (see
/// [`CacheConfig::subscriber_buffer_changes`](crate::CacheConfig::subscriber_buffer_changes)).
pub(crate) struct Batch<K> {
    /// The generation of the published snapshot.
    pub(crate) generation: u64,
    /// The changes from the previous snapshot, or `None` when the writer did not record them
    /// (no subscriber was listening when they were applied, or there were more than the buffer
    /// may hold): subscribers diff their view against the current snapshot instead.
    pub(crate) changes: Option<Vec<Change<K>>>,
}

/// The changes that turn `old` into `new`, in (namespace, name) order, tagged with `generation`.
///
/// A merge of the two ordered object lists: O(n + m). Objects that are the same `Arc` in both,
/// or have the same resourceVersion, are unchanged.
pub(crate) fn diff<K: Resource>(
    old: &Ordered<K>,
    new: &Ordered<K>,
    generation: u64,
) -> Vec<Change<K>> {
    diff_at_most(old, new, generation, usize::MAX).unwrap_or_default()
}

/// [`diff`], or `None` as soon as there are more than `limit` changes.
pub(crate) fn diff_at_most<K: Resource>(
    old: &Ordered<K>,
    new: &Ordered<K>,
    generation: u64,
    limit: usize,
) -> Option<Vec<Change<K>>> {
    let mut changes = Vec::new();
    let mut olds = old.iter().peekable();
    let mut news = new.iter().peekable();
    loop {
        let order = match (olds.peek(), news.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(o), Some(n)) => cmp_objects(o.as_ref(), n.as_ref()),
        };
        if changes.len() > limit {
            return None;
        }
        match order {
            Ordering::Less => {
                if let Some(o) = olds.next() {
                    changes.push(Change::Deleted {
                        object: o.clone(),
                        generation,
                    });
                }
            }
            Ordering::Greater => {
                if let Some(n) = news.next() {
                    changes.push(Change::Added {
                        object: n.clone(),
                        generation,
                    });
                }
            }
            Ordering::Equal => {
                if let (Some(o), Some(n)) = (olds.next(), news.next())
                    && !Arc::ptr_eq(o, n)
                    && (o.meta().resource_version.is_none()
                        || o.meta().resource_version != n.meta().resource_version)
                {
                    changes.push(Change::Updated {
                        old: o.clone(),
                        new: n.clone(),
                        generation,
                    });
                }
            }
        }
    }
    (changes.len() <= limit).then_some(changes)
}

/// Applies one change to an ordered view of objects (a subscriber's view of the cache), finding
/// its place with [`search`].
pub(crate) fn apply_to<K: Resource>(view: &mut Ordered<K>, change: &Change<K>) {
    match change {
        Change::Added { object, .. } | Change::Updated { new: object, .. } => {
            match search(view, |o| cmp_objects(o.as_ref(), object.as_ref())) {
                Ok(pos) => {
                    view.set(pos, object.clone());
                }
                Err(pos) => view.insert(pos, object.clone()),
            }
        }
        Change::Deleted { object, .. } => {
            if let Ok(pos) = search(view, |o| cmp_objects(o.as_ref(), object.as_ref())) {
                view.remove(pos);
            }
        }
        Change::Synced { .. } | Change::Lagged { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str, rv: u32) -> Arc<ConfigMap> {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.to_owned());
        cm.metadata.resource_version = Some(rv.to_string());
        Arc::new(cm)
    }

    fn ordered(objects: &[Arc<ConfigMap>]) -> Ordered<ConfigMap> {
        objects.iter().cloned().collect()
    }

    fn names(changes: &[Change<ConfigMap>]) -> Vec<(&'static str, String)> {
        changes
            .iter()
            .map(|c| {
                let what = match c {
                    Change::Added { .. } => "added",
                    Change::Updated { .. } => "updated",
                    Change::Deleted { .. } => "deleted",
                    Change::Synced { .. } => "synced",
                    Change::Lagged { .. } => "lagged",
                };
                let name = c
                    .object()
                    .and_then(|o| o.metadata.name.clone())
                    .unwrap_or_default();
                (what, name)
            })
            .collect()
    }

    /// Every change of a diff carries the generation it was made for, and says what happened
    /// to which object, in (namespace, name) order.
    #[test]
    fn a_diff_tags_every_change_with_its_generation() {
        let (a, b, c) = (cm("a", 1), cm("b", 1), cm("c", 1));
        let old = ordered(&[a.clone(), b, c.clone()]);
        let new = ordered(&[cm("a", 2), c, cm("d", 1)]);
        let changes = diff(&old, &new, 7);
        assert_eq!(
            names(&changes),
            [
                ("updated", "a".to_owned()),
                ("deleted", "b".to_owned()),
                ("added", "d".to_owned())
            ]
        );
        assert!(changes.iter().all(|c| c.generation() == 7));
        let marker: Change<ConfigMap> = Change::Synced { generation: 9 };
        assert_eq!(marker.generation(), 9);
        assert_eq!(changes[0].clone().with_generation(3).generation(), 3);
    }

    /// The limit is the most changes a diff may hold: a diff of exactly `limit` changes is
    /// given whole (even when unchanged objects follow), one change more gives `None`.
    #[test]
    fn a_diff_of_exactly_the_limit_is_given_and_one_more_is_not() {
        let (c, d) = (cm("c", 1), cm("d", 1));
        let old = ordered(&[cm("a", 1), cm("b", 1), c.clone(), d.clone()]);
        let two = ordered(&[cm("a", 2), cm("b", 2), c.clone(), d.clone()]);
        let three = ordered(&[cm("a", 2), cm("b", 2), c, cm("d", 2)]);
        assert_eq!(diff_at_most(&old, &two, 1, 2).map(|c| c.len()), Some(2));
        assert!(diff_at_most(&old, &three, 1, 2).is_none());
        assert_eq!(diff_at_most(&old, &three, 1, 3).map(|c| c.len()), Some(3));
        assert_eq!(diff_at_most(&old, &old, 1, 0).map(|c| c.len()), Some(0));
    }
}
