//! Driving a kube-runtime `Controller` from a cache, without a second watch per kind.
//!
//! kube-runtime's `Controller` reads its primary objects from a `reflector::Store` and is
//! triggered by a stream of objects. [`store_bridge`] keeps such a store in step with a cache
//! (fed from a [`Cache::subscribe`] stream, not from the API server) and yields the trigger
//! stream; [`changed_objects`] turns a secondary kind's changes into a trigger stream for
//! `Controller::watches_stream`, whose mapper can read other caches' indexes:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use glasskube_api::{Package, PackageRepository};
//! # use kube::runtime::{Controller, controller::Action, reflector::ObjectRef};
//! # use futures::StreamExt;
//! # async fn demo(repos: repocache::Cache<PackageRepository>, packages: repocache::Cache<Package>) {
//! # async fn reconcile(_: Arc<Package>, _: Arc<()>) -> Result<Action, kube::Error> { Ok(Action::await_change()) }
//! # fn error_policy(_: Arc<Package>, _: &kube::Error, _: Arc<()>) -> Action { Action::await_change() }
//! let (store, triggers) = repocache::controller::store_bridge(&packages);
//! let users = packages.clone();
//! Controller::for_stream(triggers, store)
//!     .watches_stream(repocache::controller::changed_objects(&repos), move |repo: PackageRepository| {
//!         let name = repo.metadata.name.clone().unwrap_or_default();
//!         users
//!             .by_index(repocache::glasskube::BY_REPOSITORY, &name)
//!             .unwrap_or_default()
//!             .into_iter()
//!             .map(|p| ObjectRef::from_obj(p.as_ref()))
//!             .collect::<Vec<_>>()
//!     })
//!     .run(reconcile, error_policy, Arc::new(()))
//!     .for_each(|_| async {})
//!     .await;
//! # }
//! ```
//!
//! `Controller::for_stream` and `watches_stream` need kube's `unstable-runtime` feature.
//! The bridged store holds its own copy of each primary object (kube's store clones what it is
//! given); the cache remains the one that talks to the API server.

use std::fmt::Debug;
use std::hash::Hash;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};

use crate::cache::Cache;
use crate::change::Change;

/// A kube-runtime store kept in step with `cache`, and the stream that keeps it so while
/// yielding every added, updated and deleted object (the trigger stream for
/// `Controller::for_stream`).
///
/// The store is filled as the stream is polled: the controller polls it. Its first sync (and
/// every resync after the subscriber lagged) is applied as a relist, so the store becomes ready
/// like a reflector's.
pub fn store_bridge<K, F>(
    cache: &Cache<K, F>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + use<K, F>,
)
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let mut writer = reflector::store::Writer::<K>::new(Default::default());
    let store = writer.as_reader();
    let mut listing = true;
    writer.apply_watcher_event(&Event::Init);
    let triggers = cache.subscribe().filter_map(move |change| {
        let out = match change {
            Change::Added { object, .. } | Change::Updated { new: object, .. } => {
                let obj = K::clone(&object);
                writer.apply_watcher_event(&if listing {
                    Event::InitApply(obj.clone())
                } else {
                    Event::Apply(obj.clone())
                });
                Some(Ok(obj))
            }
            Change::Deleted { object, .. } => {
                let obj = K::clone(&object);
                writer.apply_watcher_event(&Event::Delete(obj.clone()));
                Some(Ok(obj))
            }
            Change::Synced { .. } => {
                if listing {
                    writer.apply_watcher_event(&Event::InitDone);
                    listing = false;
                }
                None
            }
            Change::Lagged { .. } => None,
        };
        std::future::ready(out)
    });
    (store, triggers)
}

/// The objects of `cache` that change from now on (added, updated or deleted; not the ones
/// already there), as a trigger stream for `Controller::watches_stream`.
pub fn changed_objects<K, F>(
    cache: &Cache<K, F>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K, F>
where
    K: Resource + Clone + Send + Sync + 'static,
{
    let mut synced = false;
    cache.subscribe().filter_map(move |change| {
        let out = match change {
            Change::Synced { .. } => {
                synced = true;
                None
            }
            change if synced => change.object().map(|o| Ok(K::clone(o))),
            _ => None,
        };
        std::future::ready(out)
    })
}

/// The changes of `cache` from now on (not the objects already there), with both versions of
/// an update: for a `watches_stream` mapper that must know what an object *was* (e.g. a
/// repository that stopped being the default). Markers (`Synced`, `Lagged`) are passed on.
pub fn changes<K, F>(cache: &Cache<K, F>) -> impl Stream<Item = Change<K>> + Send + use<K, F>
where
    K: Resource + Send + Sync + 'static,
{
    let mut synced = false;
    cache.subscribe().filter(move |change| {
        let pass = synced;
        if matches!(change, Change::Synced { .. }) {
            synced = true;
        }
        std::future::ready(pass)
    })
}
