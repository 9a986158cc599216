//! The object store: objects as JSON by resource, the global resourceVersion counter, the bounded
//! event history that watches resume from, the live event feed, and list-pagination snapshots.
//!
//! Everything lives behind one mutex (held only for in-memory work, never across an await), so a
//! write, its resourceVersion and its event are one atomic step, like an etcd transaction.
//!
//! This file holds the store itself (its lock, the counter, reads and LIST pagination with its
//! continue tokens); the rest is cut by concept:
//! - [`meta`]: object metadata (names, uids, timestamps, `generation`'s spec part);
//! - [`write`]: the API writes (create, update, delete, seed) and their preconditions;
//! - [`history`]: watch events, the history window, subscriptions, compaction and restart;
//! - [`side_door`]: what fault injection puts on the feed or into the objects past the API.

mod history;
mod meta;
mod side_door;
mod write;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_selectors::{FieldSelector, LabelSelector};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::errors::{ApiError, Reason};
use crate::resources::{Registry, ResId, ResourceDef};

pub use history::EventType;
pub(crate) use history::{Feed, Subscription, WatchRecord, WatchStart};
pub(crate) use meta::{meta_str, now_rfc3339, set_rv};
pub(crate) use write::Preconditions;

/// Filters a LIST or WATCH applies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, obj: &Value) -> bool {
        // Plain `get`s, not `Value::pointer` (which splits and unescapes its path on every
        // call): a LIST walks every object of the kind, and a `LIST limit=1` over 10,000
        // objects spent 20 ms here.
        let meta = obj.get("metadata");
        let meta_str = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
        if let Some(ns) = &self.namespace
            && meta_str("namespace") != Some(ns.as_str())
        {
            return false;
        }
        if !self.has_selectors() {
            return true;
        }
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.labels
            .matches(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
            && self.fields.matches(meta_str("name"), meta_str("namespace"))
    }

    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

/// One page of a LIST.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<Value>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

struct PageSnapshot {
    res: ResId,
    /// The objects the LIST selected, shared with the store (a snapshot costs one pointer per
    /// object, not a copy of each: a `LIST limit=1` over 10,000 objects must not copy them).
    items: Arc<Vec<Arc<Value>>>,
    rv: u64,
    created: Instant,
}

type ObjKey = (String, String);

struct Inner {
    rv: u64,
    /// History holds every event with `rv > compacted_rv`.
    compacted_rv: u64,
    /// The objects, each shared with the LIST snapshots that hold it (writes replace the `Arc`).
    objects: Vec<BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<WatchRecord>>,
    snapshots: BTreeMap<u64, PageSnapshot>,
    next_snapshot: u64,
    rng: u64,
}

/// The store. See the module docs.
pub(crate) struct Store {
    pub registry: Registry,
    inner: Mutex<Inner>,
    feed: broadcast::Sender<Feed>,
    history_size: usize,
    continue_ttl: Duration,
}

const MAX_SNAPSHOTS: usize = 256;

impl Inner {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }
}

impl Store {
    pub fn new(
        registry: Registry,
        history_size: usize,
        feed_capacity: usize,
        continue_ttl: Duration,
    ) -> Self {
        let n = registry.defs().len();
        let seed = {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5eed);
            h.finish() | 1
        };
        let (feed, _) = broadcast::channel(feed_capacity.max(16));
        Store {
            registry,
            inner: Mutex::new(Inner {
                rv: 0,
                compacted_rv: 0,
                objects: vec![BTreeMap::new(); n],
                history: VecDeque::new(),
                snapshots: BTreeMap::new(),
                next_snapshot: 1,
                rng: seed,
            }),
            feed,
            history_size: history_size.max(1),
            continue_ttl,
        }
    }

    pub fn def(&self, res: ResId) -> Result<&ResourceDef, ApiError> {
        self.registry
            .get(res)
            .ok_or_else(|| ApiError::internal("unknown resource id"))
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.lock().rv
    }

    /// Oldest resourceVersion a watch may resume from.
    pub fn compacted_rv(&self) -> u64 {
        self.inner.lock().compacted_rv
    }

    pub fn history_len(&self) -> usize {
        self.inner.lock().history.len()
    }

    fn key(def: &ResourceDef, ns: Option<&str>, name: &str) -> ObjKey {
        let ns = if def.namespaced { ns.unwrap_or("") } else { "" };
        (ns.to_string(), name.to_string())
    }

    /// The stored object under `key`, or NotFound.
    fn existing(
        inner: &Inner,
        def: &ResourceDef,
        res: ResId,
        key: &ObjKey,
        name: &str,
    ) -> Result<Value, ApiError> {
        inner
            .objects
            .get(res)
            .and_then(|m| m.get(key))
            .map(|o| Value::clone(o))
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
    }

    pub fn get(&self, res: ResId, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let def = self.def(res)?;
        let inner = self.inner.lock();
        Self::existing(&inner, def, res, &Self::key(def, ns, name), name)
    }

    fn filtered(inner: &Inner, res: ResId, filter: &Filter) -> Vec<Arc<Value>> {
        inner
            .objects
            .get(res)
            .map(|m| m.values().filter(|o| filter.matches(o)).cloned().collect())
            .unwrap_or_default()
    }

    /// One LIST page. `limit == 0` means no limit.
    pub fn list(
        &self,
        res: ResId,
        filter: &Filter,
        limit: u64,
        continue_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        let ttl = self.continue_ttl;
        inner
            .snapshots
            .retain(|_, s| now.duration_since(s.created) < ttl);
        let (items, rv, offset, snap_id) = match continue_token {
            Some(tok) => {
                let k8s_wire::ContinueToken {
                    snapshot: id,
                    offset: off,
                } = k8s_wire::ContinueToken::decode(tok)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                let snap = inner
                    .snapshots
                    .get(&id)
                    .ok_or_else(|| ApiError::new(Reason::Expired, k8s_wire::EXPIRED_CONTINUE))?;
                if snap.res != res {
                    return Err(ApiError::bad_request(
                        "continue key is not valid: it belongs to another resource",
                    ));
                }
                (snap.items.clone(), snap.rv, off, Some(id))
            }
            None => (
                Arc::new(Self::filtered(&inner, res, filter)),
                inner.rv,
                0,
                None,
            ),
        };
        let total = items.len();
        let offset = offset.min(total);
        let end = if limit == 0 {
            total
        } else {
            offset
                .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
                .min(total)
        };
        let page: Vec<Value> = items
            .get(offset..end)
            .map(|page| page.iter().map(|o| Value::clone(o)).collect())
            .unwrap_or_default();
        let mut continue_out = None;
        let mut remaining = None;
        if end < total {
            let id = match snap_id {
                Some(id) => id,
                None => {
                    let id = inner.next_snapshot;
                    inner.next_snapshot += 1;
                    inner.snapshots.insert(
                        id,
                        PageSnapshot {
                            res,
                            items: items.clone(),
                            rv,
                            created: now,
                        },
                    );
                    while inner.snapshots.len() > MAX_SNAPSHOTS {
                        inner.snapshots.pop_first();
                    }
                    id
                }
            };
            continue_out = Some(
                k8s_wire::ContinueToken {
                    snapshot: id,
                    offset: end,
                }
                .encode(),
            );
            if !filter.has_selectors() {
                remaining = Some((total - end) as u64);
            }
        } else if let Some(id) = snap_id {
            inner.snapshots.remove(&id);
        }
        Ok(Page {
            items: page,
            rv,
            continue_token: continue_out,
            remaining,
        })
    }

    /// Names (namespace, name) of the objects a filter selects (for deletecollection).
    pub fn keys(&self, res: ResId, filter: &Filter) -> Vec<(Option<String>, String)> {
        let inner = self.inner.lock();
        Self::filtered(&inner, res, filter)
            .iter()
            .map(|o| {
                (
                    meta_str(o, "namespace").map(String::from),
                    meta_str(o, "name").unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Map of per-resource object counts (for diagnostics).
    pub fn counts(&self) -> HashMap<String, usize> {
        let inner = self.inner.lock();
        self.registry
            .defs()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    d.plural.clone(),
                    inner.objects.get(i).map_or(0, BTreeMap::len),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::meta::format_rfc3339;
    use super::*;
    use crate::resources::ResourceDef;

    fn store(history: usize) -> Store {
        Store::new(
            Registry::new(ResourceDef::defaults()),
            history,
            1024,
            Duration::from_secs(60),
        )
    }

    fn repo(name: &str) -> Value {
        json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
               "metadata": {"name": name}, "spec": {"url": format!("https://{name}")}})
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn create_sets_system_metadata_and_rejects_duplicates() {
        let s = store(10);
        let o = s.create(0, None, repo("a"), false).unwrap();
        assert_eq!(meta_str(&o, "resourceVersion"), Some("1"));
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(meta_str(&o, "uid").is_some_and(|u| u.len() == 36));
        let e = s.create(0, None, repo("a"), false).unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(e.reason, Reason::AlreadyExists);
        let g = s
            .create(
                0,
                None,
                json!({"metadata": {"generateName": "gen-"}, "spec": {}}),
                false,
            )
            .unwrap();
        assert!(meta_str(&g, "name").unwrap().starts_with("gen-"));
        assert_eq!(
            s.create(0, None, json!({"metadata": {}}), false)
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            s.create(0, None, repo("Bad_Name"), false).unwrap_err().code,
            422
        );
    }

    #[test]
    fn optimistic_concurrency_and_generation() {
        let s = store(10);
        let o = s.create(0, None, repo("a"), false).unwrap();
        let mut stale = o.clone();
        stale["spec"]["url"] = json!("https://b");
        let u = s
            .update_with(0, None, "a", false, false, |_| Ok(stale.clone()))
            .unwrap();
        assert_eq!(u["metadata"]["generation"], 2);
        assert_eq!(
            s.update_with(0, None, "a", false, false, |_| Ok(stale.clone()))
                .unwrap_err()
                .code,
            409
        );
        // status changes via the main resource are ignored; via status they don't bump generation
        let mut st = u.clone();
        st["status"] = json!({"x": 1});
        let u2 = s
            .update_with(0, None, "a", false, false, |_| Ok(st.clone()))
            .unwrap();
        assert_eq!(u2, u, "status-only change through main resource is a no-op");
        let u3 = s
            .update_with(0, None, "a", true, false, |_| Ok(st.clone()))
            .unwrap();
        assert_eq!(u3["status"]["x"], 1);
        assert_eq!(u3["metadata"]["generation"], 2);
        assert_eq!(
            s.update_with(0, None, "zz", false, false, |c| Ok(c.clone()))
                .unwrap_err()
                .code,
            404
        );
    }

    #[test]
    fn finalizers_defer_deletion() {
        let s = store(10);
        let mut r = repo("a");
        r["metadata"]["finalizers"] = json!(["x/y"]);
        s.create(0, None, r, false).unwrap();
        let d = s
            .delete(0, None, "a", &Preconditions::default(), false)
            .unwrap();
        assert!(d.pointer("/metadata/deletionTimestamp").is_some());
        assert!(s.get(0, None, "a").is_ok());
        // adding a finalizer while deleting is refused
        let mut add = d.clone();
        add["metadata"]["finalizers"] = json!(["x/y", "new/one"]);
        assert_eq!(
            s.update_with(0, None, "a", false, false, |_| Ok(add.clone()))
                .unwrap_err()
                .code,
            422
        );
        let mut cleared = d.clone();
        cleared["metadata"]["finalizers"] = json!([]);
        s.update_with(0, None, "a", false, false, |_| Ok(cleared.clone()))
            .unwrap();
        assert_eq!(s.get(0, None, "a").unwrap_err().code, 404);
        let last = s.inner.lock().history.back().cloned().unwrap();
        assert_eq!(last.kind, EventType::Deleted);
    }

    #[test]
    fn a_list_snapshot_shares_the_objects_instead_of_copying_them() {
        // `LIST limit=1` over many objects (what `ReadPolicy::Consistent` sends) keeps a
        // snapshot for its continue token: it must hold the store's objects, not copies (256
        // copied snapshots of 10,000 objects took 23 GB).
        let s = store(100);
        for i in 0..5 {
            s.create(0, None, repo(&format!("r{i}")), false).unwrap();
        }
        let page = s.list(0, &Filter::default(), 1, None).unwrap();
        assert!(page.continue_token.is_some());
        let inner = s.inner.lock();
        let snapshot = inner
            .snapshots
            .values()
            .next()
            .expect("a snapshot for the token");
        assert_eq!(snapshot.items.len(), 5);
        for item in snapshot.items.iter() {
            let name = meta_str(item, "name").unwrap();
            let stored = &inner.objects[0][&(String::new(), name.to_owned())];
            assert!(
                Arc::ptr_eq(item, stored),
                "{name} was copied into the snapshot"
            );
        }
    }

    #[test]
    fn pagination_is_a_consistent_snapshot() {
        let s = store(100);
        for i in 0..5 {
            s.create(0, None, repo(&format!("r{i}")), false).unwrap();
        }
        let f = Filter::default();
        let p1 = s.list(0, &f, 2, None).unwrap();
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.remaining, Some(3));
        let rv = p1.rv;
        // writes between pages are not seen
        s.delete(0, None, "r3", &Preconditions::default(), false)
            .unwrap();
        s.create(0, None, repo("r9"), false).unwrap();
        let p2 = s.list(0, &f, 2, p1.continue_token.as_deref()).unwrap();
        assert_eq!(p2.rv, rv);
        let names: Vec<_> = p2
            .items
            .iter()
            .map(|o| meta_str(o, "name").unwrap().to_string())
            .collect();
        assert_eq!(names, ["r2", "r3"]);
        let p3 = s.list(0, &f, 2, p2.continue_token.as_deref()).unwrap();
        assert_eq!(p3.items.len(), 1);
        assert!(p3.continue_token.is_none());
        // a used-up or compacted token expires
        assert_eq!(
            s.list(0, &f, 2, p2.continue_token.as_deref())
                .unwrap_err()
                .code,
            410
        );
        let q = s.list(0, &f, 2, None).unwrap();
        s.compact();
        assert_eq!(
            s.list(0, &f, 2, q.continue_token.as_deref())
                .unwrap_err()
                .reason,
            Reason::Expired
        );
        assert_eq!(s.list(0, &f, 2, Some("garbage")).unwrap_err().code, 400);
    }

    #[test]
    fn history_window_and_410() {
        let s = store(3);
        for i in 0..5 {
            s.create(0, None, repo(&format!("r{i}")), false).unwrap();
        }
        assert_eq!(s.history_len(), 3);
        assert_eq!(s.compacted_rv(), 2);
        assert!(s.subscribe(0, WatchStart::From(2)).is_ok());
        let e = s.subscribe(0, WatchStart::From(1)).err().unwrap();
        assert_eq!(e.code, 410);
        assert_eq!(e.message, "too old resource version: 1 (2)");
        let sub = s.subscribe(0, WatchStart::From(3)).unwrap();
        assert_eq!(sub.replay.len(), 2);
        assert_eq!(
            s.subscribe(0, WatchStart::From(99)).err().unwrap().code,
            504
        );
    }

    #[test]
    fn side_door_bumps_counter_silently() {
        let s = store(10);
        s.create(0, None, repo("a"), false).unwrap();
        let before = s.history_len();
        let o = s.side_put(0, repo("b")).unwrap();
        assert_eq!(meta_str(&o, "resourceVersion"), Some("2"));
        s.side_delete(0, None, "a").unwrap();
        assert_eq!(s.current_rv(), 3);
        assert_eq!(s.history_len(), before);
    }
}
