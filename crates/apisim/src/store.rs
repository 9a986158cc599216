//! The object store: objects as JSON by resource, the global resourceVersion counter, the bounded
//! event history that watches resume from, the live event feed, and list-pagination snapshots.
//!
//! Everything lives behind one mutex (held only for in-memory work, never across an await), so a
//! write, its resourceVersion and its event are one atomic step, like an etcd transaction.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_selectors::{FieldSelector, LabelSelector};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::errors::{ApiError, Reason};
use crate::resources::{Registry, ResId, ResourceDef};

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created (or entered a selector).
    Added,
    /// Object changed.
    Modified,
    /// Object removed (or left a selector).
    Deleted,
}

impl EventType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, as kept in the history window and fanned out to watches.
#[derive(Debug, Clone)]
pub(crate) struct WatchRecord {
    pub rv: u64,
    pub res: ResId,
    pub kind: EventType,
    /// The object after the change (for DELETED: last state, with the deletion's resourceVersion).
    pub object: Value,
    /// The object before the change (MODIFIED only): lets selector watches synthesize ADDED/DELETED.
    pub prev: Option<Value>,
}

/// What the live feed carries to open watches.
#[derive(Debug, Clone)]
pub(crate) enum Feed {
    /// A committed change.
    Event(Arc<WatchRecord>),
    /// An injected raw line (fault injection), for watches of `res` (or all when `None`).
    /// When `cut`, the line is sent as it is (no newline) and the watch then ends: a line cut
    /// in the middle by a dropped connection.
    Raw {
        res: Option<ResId>,
        line: String,
        cut: bool,
    },
    /// Injected bytes (fault injection), sent to watches of `res` as they are: no newline is
    /// added and they need not be UTF-8.
    Bytes { res: ResId, bytes: bytes::Bytes },
}

/// Filters a LIST or WATCH applies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && obj.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let str_at = |path: &str| obj.pointer(path).and_then(Value::as_str);
        self.labels
            .matches(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
            && self
                .fields
                .matches(str_at("/metadata/name"), str_at("/metadata/namespace"))
    }

    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WatchStart {
    /// Current state as ADDED events, then live events.
    Current,
    /// Replay the events after this resourceVersion, then live events.
    From(u64),
}

/// What a watch gets when it subscribes.
pub(crate) struct Subscription {
    pub rx: broadcast::Receiver<Feed>,
    /// Current objects (for [`WatchStart::Current`]).
    pub state: Vec<Value>,
    /// History to replay (for [`WatchStart::From`]).
    pub replay: Vec<Arc<WatchRecord>>,
    /// The store's resourceVersion at subscription time.
    pub rv: u64,
}

/// One page of a LIST.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<Value>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Preconditions for a write (from DeleteOptions or the object itself).
#[derive(Debug, Clone, Default)]
pub(crate) struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

struct PageSnapshot {
    res: ResId,
    items: Arc<Vec<Value>>,
    rv: u64,
    created: Instant,
}

type ObjKey = (String, String);

struct Inner {
    rv: u64,
    /// History holds every event with `rv > compacted_rv`.
    compacted_rv: u64,
    objects: Vec<BTreeMap<ObjKey, Value>>,
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

/// Current time as RFC 3339 UTC with second precision, like `metav1.Time`.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_rfc3339(secs)
}

fn format_rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `metadata.X` as a string.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Some(map) = obj.as_object_mut() else {
        unreachable!("just made an object")
    };
    let m = map.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    match m.as_object_mut() {
        Some(m) => m,
        None => unreachable!("just made an object"),
    }
}

pub(crate) fn set_rv(obj: &mut Value, rv: u64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// DNS-1123 subdomain, as upstream validates object names.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Everything but metadata (and status when it is a subresource): what bumps `metadata.generation`.
fn spec_part(obj: &Value, status_sub: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("kind");
        m.remove("apiVersion");
        if status_sub {
            m.remove("status");
        }
    }
    v
}

impl Inner {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uid(&mut self) -> String {
        let a = self.next_rand();
        let b = self.next_rand();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn generate_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| {
                let i = (self.next_rand() % ALPHABET.len() as u64) as usize;
                ALPHABET.get(i).copied().unwrap_or(b'x') as char
            })
            .collect()
    }

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
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
    }

    /// Commits one write: the next resourceVersion, the stored object (or, for `Deleted`, its
    /// removal) and the watch event — one step under the lock, as etcd's revision and its event
    /// are. Returns the object as written.
    fn commit(
        &self,
        inner: &mut Inner,
        res: ResId,
        key: ObjKey,
        mut object: Value,
        kind: EventType,
        prev: Option<Value>,
    ) -> Value {
        let rv = inner.bump();
        set_rv(&mut object, rv);
        if let Some(objects) = inner.objects.get_mut(res) {
            if kind == EventType::Deleted {
                objects.remove(&key);
            } else {
                objects.insert(key, object.clone());
            }
        }
        self.emit(
            inner,
            WatchRecord {
                rv,
                res,
                kind,
                object: object.clone(),
                prev,
            },
        );
        object
    }

    fn emit(&self, inner: &mut Inner, rec: WatchRecord) {
        let rec = Arc::new(rec);
        inner.history.push_back(rec.clone());
        while inner.history.len() > self.history_size {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted_rv = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.feed.send(Feed::Event(rec));
    }

    /// Send a raw line to open watches (fault injection).
    pub fn send_raw(&self, res: Option<ResId>, line: String) -> usize {
        self.feed
            .send(Feed::Raw {
                res,
                line,
                cut: false,
            })
            .unwrap_or(0)
    }

    /// Send bytes as they are to open watches of `res` (fault injection).
    pub fn send_bytes(&self, res: ResId, bytes: bytes::Bytes) -> usize {
        self.feed.send(Feed::Bytes { res, bytes }).unwrap_or(0)
    }

    /// Send the first part of a line to open watches of `res`, then end them (fault injection).
    pub fn send_cut(&self, res: ResId, line: String) -> usize {
        self.feed
            .send(Feed::Raw {
                res: Some(res),
                line,
                cut: true,
            })
            .unwrap_or(0)
    }

    pub fn get(&self, res: ResId, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let def = self.def(res)?;
        let inner = self.inner.lock();
        Self::existing(&inner, def, res, &Self::key(def, ns, name), name)
    }

    fn filtered(inner: &Inner, res: ResId, filter: &Filter) -> Vec<Value> {
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
            .map(<[Value]>::to_vec)
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

    /// Insert a seed object as is (keeps status), filling in system metadata. No event.
    pub fn seed(&self, res: ResId, mut obj: Value) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.name",
                "Invalid value: a lowercase RFC 1123 subdomain is required",
            ));
        }
        let ns = if def.namespaced {
            Some(meta_str(&obj, "namespace").unwrap_or("default").to_string())
        } else {
            None
        };
        let key = Self::key(&def, ns.as_deref(), &name);
        let uid = inner.uid();
        let rv = inner.bump();
        let m = meta_mut(&mut obj);
        if let Some(ns) = ns {
            m.insert("namespace".into(), Value::String(ns));
        } else {
            m.remove("namespace");
        }
        m.entry("uid").or_insert(Value::String(uid));
        m.entry("creationTimestamp")
            .or_insert_with(|| Value::String(now_rfc3339()));
        m.entry("generation").or_insert(json!(1));
        set_rv(&mut obj, rv);
        if let Some(o) = inner.objects.get_mut(res) {
            o.insert(key, obj.clone());
        }
        inner.compacted_rv = inner.rv;
        Ok(obj)
    }

    /// Create (POST). `ns` is the namespace from the URL.
    pub fn create(
        &self,
        res: ResId,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let given = meta_str(&obj, "name").unwrap_or_default().to_string();
        let name = if given.is_empty() {
            match meta_str(&obj, "generateName") {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix = inner.generate_suffix();
                    format!("{prefix}{suffix}")
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        } else {
            given
        };
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.name",
                &format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        let ns = if def.namespaced {
            let body_ns = meta_str(&obj, "namespace").filter(|s| !s.is_empty());
            match (ns, body_ns) {
                (Some(u), Some(b)) if u != b => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(u), _) => Some(u.to_string()),
                (None, Some(b)) => Some(b.to_string()),
                (None, None) => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        &name,
                        "metadata.namespace",
                        "Required value",
                    ));
                }
            }
        } else {
            None
        };
        let key = Self::key(&def, ns.as_deref(), &name);
        if inner.objects.get(res).is_some_and(|m| m.contains_key(&key)) {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        let uid = inner.uid();
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), Value::String(def.api_version()));
            o.insert("kind".into(), Value::String(def.kind.clone()));
            if def.status_subresource {
                o.remove("status");
            }
        }
        let m = meta_mut(&mut obj);
        m.insert("name".into(), Value::String(name));
        match ns {
            Some(ns) => m.insert("namespace".into(), Value::String(ns)),
            None => m.remove("namespace"),
        };
        m.insert("uid".into(), Value::String(uid));
        m.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "selfLink",
        ] {
            m.remove(f);
        }
        if dry_run {
            return Ok(obj);
        }
        Ok(self.commit(&mut inner, res, key, obj, EventType::Added, None))
    }

    /// Update (PUT / PATCH, main resource or `status`): `f` computes the desired object from the
    /// current one; system metadata, status (or everything but status) are then carried over.
    pub fn update_with(
        &self,
        res: ResId,
        ns: Option<&str>,
        name: &str,
        status_only: bool,
        dry_run: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let key = Self::key(&def, ns, name);
        let cur = Self::existing(&inner, &def, res, &key, name)?;
        let new = f(&cur)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if let Some(av) = new.get("apiVersion").and_then(Value::as_str)
            && av != def.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
        if let Some(k) = new.get("kind").and_then(Value::as_str)
            && k != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        let new_name = meta_str(&new, "name").unwrap_or(name);
        if new_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({new_name}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced
            && let Some(bns) = meta_str(&new, "namespace").filter(|s| !s.is_empty())
            && Some(bns) != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let cur_rv = meta_str(&cur, "resourceVersion")
            .unwrap_or_default()
            .to_string();
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty())
            && rv != cur_rv
        {
            return Err(ApiError::conflict(&def.group, &def.plural, name));
        }
        let cur_uid = meta_str(&cur, "uid").unwrap_or_default().to_string();
        if let Some(uid) = meta_str(&new, "uid").filter(|s| !s.is_empty())
            && uid != cur_uid
        {
            return Err(ApiError::new(
                Reason::Conflict,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {cur_uid}"
                ),
            )
            .with_details(json!({"name": name, "group": def.group, "kind": def.plural})));
        }

        let mut result = if status_only {
            let mut r = cur.clone();
            if let Some(o) = r.as_object_mut() {
                match new.get("status") {
                    Some(s) => o.insert("status".into(), s.clone()),
                    None => o.remove("status"),
                };
            }
            r
        } else {
            let mut r = new;
            if let Some(o) = r.as_object_mut() {
                o.insert("apiVersion".into(), Value::String(def.api_version()));
                o.insert("kind".into(), Value::String(def.kind.clone()));
                if def.status_subresource {
                    match cur.get("status") {
                        Some(s) => o.insert("status".into(), s.clone()),
                        None => o.remove("status"),
                    };
                }
            }
            // System metadata cannot be changed by an update.
            let cur_meta = cur.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let m = meta_mut(&mut r);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
            ] {
                match cur_meta.get(f) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
            r
        };

        // No new finalizers while deleting.
        let deleting = cur.pointer("/metadata/deletionTimestamp").is_some();
        let new_fins = finalizers(&result);
        if deleting {
            let old_fins = finalizers(&cur);
            if let Some(f) = new_fins.iter().find(|f| !old_fins.contains(f)) {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    name,
                    "metadata.finalizers",
                    &format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{f}\"]"
                    ),
                ));
            }
        }
        if !status_only
            && spec_part(&result, def.status_subresource) != spec_part(&cur, def.status_subresource)
        {
            let g = cur
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut result).insert("generation".into(), json!(g + 1));
        }
        if result == cur {
            // A no-op write: etcd skips it, no new resourceVersion, no event.
            return Ok(cur);
        }
        if dry_run {
            return Ok(result);
        }
        Ok(if deleting && new_fins.is_empty() {
            self.commit(&mut inner, res, key, result, EventType::Deleted, None)
        } else {
            self.commit(&mut inner, res, key, result, EventType::Modified, Some(cur))
        })
    }

    /// Delete (DELETE). With finalizers, marks the object deleting and returns it.
    pub fn delete(
        &self,
        res: ResId,
        ns: Option<&str>,
        name: &str,
        pre: &Preconditions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let mut inner = self.inner.lock();
        let key = Self::key(&def, ns, name);
        let cur = Self::existing(&inner, &def, res, &key, name)?;
        Self::check_preconditions(&def, &cur, name, pre)?;
        let fins = finalizers(&cur);
        if !fins.is_empty() {
            if cur.pointer("/metadata/deletionTimestamp").is_some() || dry_run {
                return Ok(cur);
            }
            let mut marked = cur.clone();
            let m = meta_mut(&mut marked);
            m.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            return Ok(self.commit(&mut inner, res, key, marked, EventType::Modified, Some(cur)));
        }
        if dry_run {
            return Ok(cur);
        }
        Ok(self.commit(&mut inner, res, key, cur, EventType::Deleted, None))
    }

    fn check_preconditions(
        def: &ResourceDef,
        cur: &Value,
        name: &str,
        pre: &Preconditions,
    ) -> Result<(), ApiError> {
        let details = json!({"name": name, "group": def.group, "kind": def.plural});
        let cur_uid = meta_str(cur, "uid").unwrap_or_default();
        if let Some(uid) = &pre.uid
            && uid != cur_uid
        {
            return Err(ApiError::new(
                Reason::Conflict,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {cur_uid}"
                ),
            )
            .with_details(details));
        }
        let cur_rv = meta_str(cur, "resourceVersion").unwrap_or_default();
        if let Some(rv) = &pre.resource_version
            && rv != cur_rv
        {
            return Err(ApiError::new(Reason::Conflict, format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {cur_rv}")).with_details(details));
        }
        Ok(())
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

    /// Subscribe a watch: the feed receiver plus the initial state or the replay, atomically.
    pub fn subscribe(&self, res: ResId, start: WatchStart) -> Result<Subscription, ApiError> {
        let inner = self.inner.lock();
        let rx = self.feed.subscribe();
        match start {
            WatchStart::Current => Ok(Subscription {
                rx,
                state: inner
                    .objects
                    .get(res)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default(),
                replay: Vec::new(),
                rv: inner.rv,
            }),
            WatchStart::From(x) => {
                if x < inner.compacted_rv {
                    return Err(ApiError::too_old(x, inner.compacted_rv));
                }
                if x > inner.rv {
                    return Err(ApiError::too_large(x, inner.rv));
                }
                Ok(Subscription {
                    rx,
                    state: Vec::new(),
                    replay: inner
                        .history
                        .iter()
                        .filter(|r| r.rv > x && r.res == res)
                        .cloned()
                        .collect(),
                    rv: inner.rv,
                })
            }
        }
    }

    /// Drop the history (and continue snapshots): every resume from before now gets 410.
    /// Bumps the counter once so that the current resourceVersion is resumable.
    pub fn compact(&self) -> u64 {
        let mut inner = self.inner.lock();
        let rv = inner.bump();
        inner.history.clear();
        inner.compacted_rv = rv;
        inner.snapshots.clear();
        rv
    }

    /// Restart: history and snapshots go; objects stay or are wiped. The counter continues.
    pub fn restart(&self, keep_objects: bool) -> u64 {
        let mut inner = self.inner.lock();
        if !keep_objects {
            for m in inner.objects.iter_mut() {
                m.clear();
            }
        }
        let rv = inner.bump();
        inner.history.clear();
        inner.compacted_rv = rv;
        inner.snapshots.clear();
        rv
    }

    /// Side door: create or replace an object without an event or history entry.
    pub fn side_put(&self, res: ResId, mut obj: Value) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.name",
                "Invalid value",
            ));
        }
        let ns = meta_str(&obj, "namespace").map(String::from);
        if def.namespaced && ns.is_none() {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                "metadata.namespace",
                "Required value",
            ));
        }
        let key = Self::key(&def, ns.as_deref(), &name);
        let mut inner = self.inner.lock();
        let prev = inner.objects.get(res).and_then(|m| m.get(&key)).cloned();
        let uid = match prev.as_ref().and_then(|p| meta_str(p, "uid")) {
            Some(u) => u.to_string(),
            None => inner.uid(),
        };
        let rv = inner.bump();
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), Value::String(def.api_version()));
            o.insert("kind".into(), Value::String(def.kind.clone()));
        }
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), Value::String(uid));
        m.entry("creationTimestamp")
            .or_insert_with(|| Value::String(now_rfc3339()));
        m.entry("generation").or_insert(json!(1));
        if !def.namespaced {
            m.remove("namespace");
        }
        set_rv(&mut obj, rv);
        if let Some(o) = inner.objects.get_mut(res) {
            o.insert(key, obj.clone());
        }
        Ok(obj)
    }

    /// Side door: delete without an event or history entry.
    pub fn side_delete(&self, res: ResId, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let def = self.def(res)?.clone();
        let key = Self::key(&def, ns, name);
        let mut inner = self.inner.lock();
        let gone = inner
            .objects
            .get_mut(res)
            .and_then(|m| m.remove(&key))
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))?;
        inner.bump();
        Ok(gone)
    }

    /// Take the lock, read the counter, and drain what a receiver has pending: used for bookmarks,
    /// so a bookmark never claims a resourceVersion whose event the watch has not yet processed.
    pub fn drain_at_current(&self, rx: &mut broadcast::Receiver<Feed>) -> (u64, Vec<Feed>, bool) {
        let inner = self.inner.lock();
        let mut pending = Vec::new();
        let mut lagged = false;
        loop {
            match rx.try_recv() {
                Ok(f) => pending.push(f),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    lagged = true;
                    break;
                }
                Err(_) => break,
            }
        }
        (inner.rv, pending, lagged)
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
