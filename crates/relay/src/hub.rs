//! One hub per cached kind: it turns the cache's published changes into watch events (each
//! serialized once, whatever the number of watchers), keeps a bounded history of them for watches
//! that resume from a resourceVersion, and fans them out to the downstream watches through one
//! broadcast ring.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use k8s_selectors::{FieldSelector, LabelSelector};
use k8s_wire::{EventType, WatchStart};
use kube::Resource;
use repocache::{Cache, Change, Snapshot};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};
use tracing::{debug, warn};

/// The names of a kind, as its watch events and bookmarks spell them.
#[derive(Debug, Clone)]
pub(crate) struct KindNames {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub api_version: String,
    pub namespaced: bool,
}

/// What a selector looks at in an object.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjMeta {
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl ObjMeta {
    fn of<K: Resource>(obj: &K) -> Self {
        let meta = obj.meta();
        Self {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
        }
    }
}

/// For a change whose labels changed: what a watch whose selector the object enters or leaves
/// receives instead (upstream's watch cache sends `ADDED` on entering, and on leaving `DELETED`
/// with the previous version at the change's resourceVersion).
#[derive(Debug)]
pub(crate) struct Moved {
    pub before: BTreeMap<String, String>,
    pub added_line: Bytes,
    pub deleted_line: Bytes,
}

/// One change of the kind, as every downstream watch may receive it.
#[derive(Debug)]
pub(crate) struct WireEvent {
    /// The event's resourceVersion (resumes compare against it).
    pub rv: u64,
    /// The generation of the snapshot the change belongs to.
    pub generation: u64,
    pub event_type: EventType,
    /// The whole watch line, `{"type":…,"object":…}\n`.
    pub line: Bytes,
    pub meta: ObjMeta,
    pub moved: Option<Box<Moved>>,
}

/// What a watch selects.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub(crate) fn matches(&self, meta: &ObjMeta, labels: &BTreeMap<String, String>) -> bool {
        if let Some(ns) = &self.namespace
            && meta.namespace.as_deref() != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(|k| labels.get(k).map(String::as_str))
            && self
                .fields
                .matches(Some(meta.name.as_str()), meta.namespace.as_deref())
    }

    /// The line `event` becomes for this watch, if any (selector enter/leave included).
    pub(crate) fn line_for(&self, event: &WireEvent) -> Option<Bytes> {
        let now = self.matches(&event.meta, &event.meta.labels);
        match (&event.moved, event.event_type) {
            (Some(moved), EventType::Modified) => {
                let before = self.matches(&event.meta, &moved.before);
                match (before, now) {
                    (true, true) => Some(event.line.clone()),
                    (false, true) => Some(moved.added_line.clone()),
                    (true, false) => Some(moved.deleted_line.clone()),
                    (false, false) => None,
                }
            }
            _ => now.then(|| event.line.clone()),
        }
    }
}

/// A kind's current state, for a watch that starts with it.
pub(crate) struct Initial {
    pub rv: u64,
    pub lines: Vec<Bytes>,
}

/// A cache seen without its type: the current snapshot's objects as `ADDED` lines.
pub(crate) trait Source: Send + Sync {
    /// The current snapshot, held (cheap); its lines are written by [`Held::initial`].
    fn hold(&self) -> Box<dyn Held>;
}

/// A snapshot held for a watch's initial state.
pub(crate) trait Held: Send {
    fn generation(&self) -> u64;
    /// The resourceVersion the snapshot is known to reflect.
    fn rv(&self) -> u64;
    /// Its objects that `filter` selects, as `ADDED` lines, in (namespace, name) order.
    fn initial(&self, filter: &Filter) -> Initial;
}

struct CacheSource<K>(Cache<K>);

struct HeldSnapshot<K> {
    snapshot: Arc<Snapshot<K>>,
    rv: u64,
}

impl<K> Source for CacheSource<K>
where
    K: Resource + Serialize + Clone + Send + Sync + 'static,
{
    fn hold(&self) -> Box<dyn Held> {
        let snapshot = self.0.snapshot();
        let own = parse_rv(snapshot.resource_version());
        let rv = match self.0.version() {
            Some(v) if self.0.snapshot().generation() == snapshot.generation() => v.max(own),
            _ => own,
        };
        Box::new(HeldSnapshot { snapshot, rv })
    }
}

impl<K> Held for HeldSnapshot<K>
where
    K: Resource + Serialize + Send + Sync + 'static,
{
    fn generation(&self) -> u64 {
        self.snapshot.generation()
    }

    fn rv(&self) -> u64 {
        self.rv
    }

    fn initial(&self, filter: &Filter) -> Initial {
        let lines = self
            .snapshot
            .iter()
            .filter_map(|obj| {
                let meta = ObjMeta::of(&**obj);
                if !filter.matches(&meta, &meta.labels) {
                    return None;
                }
                match serde_json::to_value(&**obj) {
                    Ok(value) => Some(line(EventType::Added, &value)),
                    Err(err) => {
                        warn!(name = %meta.name, error = %err, "cached object does not serialize; left out of a watch");
                        None
                    }
                }
            })
            .collect();
        Initial { rv: self.rv, lines }
    }
}

fn parse_rv(rv: Option<&str>) -> u64 {
    rv.and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn line(event_type: EventType, object: &Value) -> Bytes {
    Bytes::from(k8s_wire::encode_line(event_type.as_str(), object))
}

fn set_rv(value: &mut Value, rv: u64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// The hub's mutable state (one short lock per published change and per watch start; never
/// on the GET/LIST path).
struct State {
    history: VecDeque<Arc<WireEvent>>,
    /// Every change after this resourceVersion is in `history` (a resume from an older one is
    /// answered 410 Expired).
    oldest: u64,
    /// The resourceVersion every event sent so far is at or below: what a bookmark carries.
    current: u64,
    /// The generation of the newest change handled.
    generation: u64,
}

/// How a watch starts, decided under the hub's lock (so that nothing falls between its
/// initial state or replay and its live events).
pub(crate) enum Start {
    /// The resourceVersion is older than the history: 410 Expired.
    Expired { requested: u64, oldest: u64 },
    /// Served from here.
    Go(Box<Subscribed>),
}

pub(crate) struct Subscribed {
    /// The snapshot to send first as `ADDED` events (state-then-changes, streaming lists).
    pub initial: Option<Box<dyn Held>>,
    /// Events from the history to send first (a resume).
    pub replay: Vec<Arc<WireEvent>>,
    /// The live events.
    pub rx: broadcast::Receiver<Arc<WireEvent>>,
    /// Live events of this generation or older are already in `initial`.
    pub skip_through: u64,
    /// Live events at or below this resourceVersion are older than the watch's start (a
    /// version the client had from elsewhere, which the hub had not reached yet).
    pub after_rv: u64,
}

/// The settings of a kind's hub.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HubConfig {
    /// At most this many events kept for resumes.
    pub history: usize,
    /// The broadcast ring: a watch task more than this many events behind is closed.
    pub ring: usize,
}

/// One cached kind's watch events.
pub(crate) struct Hub {
    pub names: KindNames,
    source: Box<dyn Source>,
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<WireEvent>>,
    started: AtomicBool,
    started_notify: Notify,
    /// Becomes `true` when the kind's cache stops (its change stream ended): every open watch
    /// of the kind ends, and new ones pass through.
    stopped: watch::Sender<bool>,
    config: HubConfig,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state (each update is one step).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the hub has its first state (before that, watches pass through).
    pub(crate) fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Waits until the hub has its first state, at most `timeout`.
    pub(crate) async fn wait_started(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.started_notify.notified();
            if self.is_started() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_started();
            }
        }
    }

    /// A receiver that sees `true` once the kind's cache has stopped.
    pub(crate) fn stopped(&self) -> watch::Receiver<bool> {
        self.stopped.subscribe()
    }

    /// The cache stopped: no more events will come. Open watches end (their clients see the
    /// stream end and re-list or resume, upstream), and new watches pass through.
    fn stop(&self) {
        self.started.store(false, Ordering::Release);
        self.stopped.send_replace(true);
    }

    /// The resourceVersion a bookmark may carry now: every event at or below it has been sent to
    /// the broadcast ring already.
    pub(crate) fn current(&self) -> u64 {
        self.lock().current
    }

    /// The oldest resourceVersion a watch may resume from, and the newest event's.
    pub(crate) fn window(&self) -> (u64, u64) {
        let st = self.lock();
        (st.oldest, st.current)
    }

    /// Starts a downstream watch at `start`.
    pub(crate) fn subscribe(&self, start: WatchStart) -> Start {
        let st = self.lock();
        match start {
            WatchStart::StateThenChanges | WatchStart::InitialEvents { .. } => {
                let held = self.source.hold();
                Start::Go(Box::new(Subscribed {
                    skip_through: held.generation(),
                    initial: Some(held),
                    replay: Vec::new(),
                    rx: self.tx.subscribe(),
                    after_rv: 0,
                }))
            }
            WatchStart::ChangesFromNow => Start::Go(Box::new(Subscribed {
                initial: None,
                replay: Vec::new(),
                rx: self.tx.subscribe(),
                skip_through: 0,
                after_rv: 0,
            })),
            WatchStart::ChangesAfter(rv) => {
                if rv < st.oldest {
                    return Start::Expired {
                        requested: rv,
                        oldest: st.oldest,
                    };
                }
                Start::Go(Box::new(Subscribed {
                    initial: None,
                    replay: st.history.iter().filter(|e| e.rv > rv).cloned().collect(),
                    rx: self.tx.subscribe(),
                    skip_through: 0,
                    after_rv: rv,
                }))
            }
        }
    }

    /// Adds one event: to the history (dropping the oldest beyond the bound) and to the ring.
    fn publish(&self, event: WireEvent) {
        let event = Arc::new(event);
        let mut st = self.lock();
        st.current = st.current.max(event.rv);
        st.generation = st.generation.max(event.generation);
        st.history.push_back(event.clone());
        while st.history.len() > self.config.history {
            if let Some(gone) = st.history.pop_front() {
                st.oldest = st.oldest.max(gone.rv);
            }
        }
        // No receiver is fine: nobody watches.
        let _ = self.tx.send(event);
    }
}

/// Starts the hub of `cache`'s kind: its task waits for the cache's first state, then turns
/// every published change into an event.
pub(crate) fn start<K>(
    cache: Cache<K>,
    names: KindNames,
    config: HubConfig,
) -> (Arc<Hub>, tokio::task::JoinHandle<()>)
where
    K: Resource + Serialize + Clone + Send + Sync + 'static,
{
    let (tx, _) = broadcast::channel(config.ring.max(1));
    let hub = Arc::new(Hub {
        names,
        source: Box::new(CacheSource(cache.clone())),
        state: Mutex::new(State {
            history: VecDeque::new(),
            oldest: 0,
            current: 0,
            generation: 0,
        }),
        tx,
        started: AtomicBool::new(false),
        started_notify: Notify::new(),
        stopped: watch::channel(false).0,
        config,
    });
    let task = tokio::spawn(feed(cache, hub.clone()));
    (hub, task)
}

/// How often a quiet hub moves its bookmark version to what the cache proved (upstream
/// bookmarks), so that downstream bookmarks advance on quiet kinds too.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

async fn feed<K>(cache: Cache<K>, hub: Arc<Hub>)
where
    K: Resource + Serialize + Clone + Send + Sync + 'static,
{
    feed_changes(cache, &hub).await;
    debug!(kind = %hub.names.kind, "cache stopped; relay hub ends its watches");
    hub.stop();
}

async fn feed_changes<K>(cache: Cache<K>, hub: &Hub)
where
    K: Resource + Serialize + Clone + Send + Sync + 'static,
{
    if let Err(err) = cache.ready().await {
        debug!(kind = %hub.names.kind, error = %err, "cache never ready; its watches pass through");
        return;
    }
    let mut changes = cache.subscribe();
    // The first state: `Added` for every object, then `Synced`.
    loop {
        match changes.next().await {
            None => return,
            Some(Change::Synced { generation }) => {
                let held = hub.source.hold();
                let rv = held.rv();
                {
                    let mut st = hub.lock();
                    st.oldest = rv;
                    st.current = rv;
                    st.generation = generation;
                }
                hub.started.store(true, Ordering::Release);
                hub.started_notify.notify_waiters();
                debug!(kind = %hub.names.kind, rv, "relay hub started");
                break;
            }
            Some(_) => {}
        }
    }
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.next() => match change {
                None => break,
                Some(change) => handle(&cache, hub, change),
            },
            _ = tick.tick() => {
                // Handle whatever is ready first: the progress must not overtake queued changes.
                loop {
                    match changes.next().now_or_never() {
                        Some(Some(change)) => handle(&cache, hub, change),
                        Some(None) => return,
                        None => break,
                    }
                }
                let snapshot = cache.snapshot();
                let mut st = hub.lock();
                if snapshot.generation() <= st.generation
                    && let Some(version) = cache.version()
                {
                    st.current = st.current.max(version);
                }
            }
        }
    }
}

fn handle<K>(cache: &Cache<K>, hub: &Hub, change: Change<K>)
where
    K: Resource + Serialize + Clone + Send + Sync + 'static,
{
    let generation = change.generation();
    let event = match change {
        Change::Added { object, .. } => event(&*object, None, EventType::Added, generation, None),
        Change::Updated { old, new, .. } => {
            let old_labels = old.meta().labels.clone().unwrap_or_default();
            event(
                &*new,
                Some((&*old, old_labels)),
                EventType::Modified,
                generation,
                None,
            )
        }
        Change::Deleted { object, .. } => {
            // The change holds the last version the cache saw; the delete's own
            // resourceVersion is the snapshot's (exact when the delete is its last change).
            let snapshot = cache.snapshot();
            let rv = if snapshot.generation() == generation {
                parse_rv(snapshot.resource_version())
            } else {
                cache.version().unwrap_or(0)
            };
            let rv = rv.max(hub.current());
            event(&*object, None, EventType::Deleted, generation, Some(rv))
        }
        Change::Synced { generation } | Change::Lagged { generation, .. } => {
            let mut st = hub.lock();
            st.generation = st.generation.max(generation);
            return;
        }
    };
    match event {
        Ok(event) => hub.publish(event),
        Err(err) => {
            warn!(kind = %hub.names.kind, error = %err, "a change does not serialize; left out of watches")
        }
    }
}

fn event<K: Resource + Serialize>(
    obj: &K,
    old: Option<(&K, BTreeMap<String, String>)>,
    event_type: EventType,
    generation: u64,
    rv_override: Option<u64>,
) -> Result<WireEvent, serde_json::Error> {
    let meta = ObjMeta::of(obj);
    let mut value = serde_json::to_value(obj)?;
    let rv = match rv_override {
        Some(rv) => {
            set_rv(&mut value, rv);
            rv
        }
        None => parse_rv(obj.meta().resource_version.as_deref()),
    };
    let moved = match old {
        Some((old, before)) if before != meta.labels => {
            let mut gone = serde_json::to_value(old)?;
            set_rv(&mut gone, rv);
            Some(Box::new(Moved {
                before,
                added_line: line(EventType::Added, &value),
                deleted_line: line(EventType::Deleted, &gone),
            }))
        }
        _ => None,
    };
    Ok(WireEvent {
        rv,
        generation,
        event_type,
        line: line(event_type, &value),
        meta,
        moved,
    })
}
