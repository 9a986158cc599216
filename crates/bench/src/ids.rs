//! Names shared by the criterion benches (which write `<group>/<id>/<size>/new/estimates.json`)
//! and the report (which reads them back).

/// Cache sizes of the micro benchmarks.
pub const SIZES: &[usize] = &[10, 1_000, 10_000];

/// Criterion group: `get` by name, no writer.
pub const GET: &str = "get";
/// repocache `Cache::get`.
pub const GET_REPOCACHE: &str = "repocache";
/// repocache `Reader::get` (the per-thread, guard-free handle).
pub const GET_REPOCACHE_READER: &str = "repocache-reader";
/// kube-runtime `Store::get`.
pub const GET_KUBE: &str = "kube-store";
/// `parking_lot::RwLock<HashMap>`.
pub const GET_RWLOCK: &str = "rwlock-hashmap";
/// Unsynchronized `HashMap::get` + `Arc` clone.
pub const GET_LIMIT: &str = "hashmap";

/// Criterion group: list / snapshot.
pub const LIST: &str = "list";
/// repocache `Cache::snapshot()`.
pub const LIST_SNAPSHOT: &str = "repocache-snapshot";
/// repocache `snapshot().iter().count()`.
pub const LIST_SNAPSHOT_ITER: &str = "repocache-snapshot-iter";
/// repocache `Cache::list()`.
pub const LIST_REPOCACHE_LIST: &str = "repocache-list";
/// kube-runtime `Store::state()`.
pub const LIST_KUBE_STATE: &str = "kube-state";

/// Criterion group: event apply.
pub const APPLY: &str = "apply";
/// repocache as the reflector drives its writer: `stage` + `publish_due` per event (at most one
/// publish per default publish interval, 1 ms).
pub const APPLY_REPOCACHE: &str = "repocache-apply-default";
/// repocache `Writer::apply`, one publish per event.
pub const APPLY_REPOCACHE_PER_EVENT: &str = "repocache-apply";
/// repocache `Writer::apply_batch` of [`APPLY_BATCH`] events.
pub const APPLY_REPOCACHE_BATCH: &str = "repocache-apply-batch";
/// kube-runtime `Writer::apply_watcher_event`.
pub const APPLY_KUBE: &str = "kube-apply";
/// Events per `apply_batch` call.
pub const APPLY_BATCH: usize = 100;
