//! One hub per cached kind: it turns the cache's published changes into watch events (each
//! serialized once, whatever the number of watchers), keeps them in one bounded ring (the history
//! that resumes start from, and what live watches read), and wakes the downstream watches when
//! events arrive. A live watch is no task of its own: its response body reads the ring from its
//! [`Cursor`] each time the connection polls it, and a watch that stays too far behind is closed
//! by the hub's periodic sweep.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use k8s_selectors::{FieldSelector, LabelSelector};
use k8s_wire::{EventType, WatchStart};
use kube::Resource;
use repocache::{Cache, Change, Snapshot};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
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
    /// The event's place in the hub's ring (one more per event).
    pub seq: u64,
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

/// The hub's mutable state (one short lock per published change, per watch start and per poll
/// of a live watch; never on the GET/LIST path).
struct State {
    /// The newest events, oldest first: at most [`HubConfig::ring`] (or `history`, if larger).
    events: VecDeque<Arc<WireEvent>>,
    /// The `seq` the next event gets.
    next_seq: u64,
    /// Every change after this resourceVersion is among the newest [`HubConfig::history`]
    /// events (a resume from an older one is answered 410 Expired).
    oldest: u64,
    /// The resourceVersion every event in the ring so far is at or below: what a bookmark
    /// carries.
    current: u64,
    /// The generation of the newest change handled.
    generation: u64,
    /// The live watches waiting for the next event (woken, and emptied, by each publish).
    wakers: Vec<Waker>,
    /// Bumped by each publish: a watch registered in this round is not registered twice.
    round: u64,
    /// The watches, for the sweep that closes those that stay behind.
    cursors: Vec<Weak<Cursor>>,
    /// The kind's cache stopped: no more events.
    stopped: bool,
}

/// How a watch starts, decided under the hub's lock (so that nothing falls between its
/// initial state or replay and its live events).
pub(crate) enum Start {
    /// The resourceVersion is older than the history: 410 Expired.
    Expired { requested: u64, oldest: u64 },
    /// The kind's cache stopped meanwhile: the watch goes upstream.
    Stopped,
    /// Served from here.
    Go(Box<Subscribed>),
}

pub(crate) struct Subscribed {
    /// The snapshot to send first as `ADDED` events (state-then-changes, streaming lists).
    pub initial: Option<Box<dyn Held>>,
    /// Events from the history to send first (a resume).
    pub replay: Vec<Arc<WireEvent>>,
    /// Where the watch reads its live events from (registered with the hub's sweep).
    pub cursor: Arc<Cursor>,
    /// Live events of this generation or older are already in `initial`.
    pub skip_through: u64,
    /// Live events at or below this resourceVersion are older than the watch's start (a
    /// version the client had from elsewhere, which the hub had not reached yet).
    pub after_rv: u64,
}

/// What the hub knows of one downstream watch: where it reads, and how to close it if it stays
/// behind.
pub(crate) struct Cursor {
    /// The `seq` of the next event the watch takes.
    next: AtomicU64,
    /// The publish round the watch's waker is registered for (plus one; 0: none).
    registered: AtomicU64,
    /// Whether it has sent its initial state or replay (only a live watch is swept).
    live: AtomicBool,
    /// Set once the watch is closed for falling behind.
    closed: AtomicBool,
    /// Since when it has been more than `slow.buffer` events behind (swept).
    behind_since: Mutex<Option<Instant>>,
    slow: Slow,
}

/// When a live watch counts as fallen behind, and what closing it does.
#[derive(Clone)]
pub(crate) struct Slow {
    /// Events a watch may be behind the newest.
    pub buffer: u64,
    /// How long it may stay further behind.
    pub grace: Duration,
    /// Closes its connection.
    pub kill: Arc<Notify>,
    /// Counts it closed.
    pub closed_slow: Arc<dyn Fn() + Send + Sync>,
}

impl Cursor {
    /// Marks the watch live: its initial state or replay is out, its live events count.
    pub(crate) fn set_live(&self) {
        self.live.store(true, Ordering::Release);
    }

    /// Whether the watch was closed for falling behind.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the watch for falling behind (once): counted, and its connection dropped.
    pub(crate) fn close_slow(&self, why: &'static str) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            (self.slow.closed_slow)();
            debug!(why, "relay watch fell behind; closing its connection");
            self.slow.kill.notify_one();
        }
    }

    /// Whether the watch has stayed more than its buffer behind `head` for its grace period.
    fn overdue(&self, head: u64, now: Instant) -> bool {
        if !self.live.load(Ordering::Acquire) || self.is_closed() {
            return false;
        }
        let behind = head.saturating_sub(self.next.load(Ordering::Acquire));
        let mut since = self.behind_since.lock().unwrap_or_else(|e| e.into_inner());
        if behind <= self.slow.buffer {
            *since = None;
            return false;
        }
        now.duration_since(*since.get_or_insert(now)) >= self.slow.grace
    }
}

/// What [`Hub::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Took {
    /// Events were appended; `caught_up`: they reach the newest, so a bookmark at `current`
    /// may follow them.
    Events { caught_up: bool, current: u64 },
    /// Nothing new; the caller's waker is registered for the next publish. A bookmark at
    /// `current` may be sent.
    Pending { current: u64 },
    /// The watch is further behind than the ring holds.
    Lagged,
    /// The kind's cache stopped and every event has been taken.
    Stopped,
}

/// The settings of a kind's hub.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HubConfig {
    /// At most this many events kept for resumes.
    pub history: usize,
    /// The ring live watches read: a watch further behind than this is closed.
    pub ring: usize,
}

/// One cached kind's watch events.
pub(crate) struct Hub {
    pub names: KindNames,
    source: Box<dyn Source>,
    state: Mutex<State>,
    started: AtomicBool,
    started_notify: Notify,
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

    /// The cache stopped: no more events will come. Open watches end once they have taken
    /// what is in the ring (their clients see the stream end and re-list or resume, upstream),
    /// and new watches pass through.
    fn stop(&self) {
        self.started.store(false, Ordering::Release);
        let wakers = {
            let mut st = self.lock();
            st.stopped = true;
            std::mem::take(&mut st.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The resourceVersion a bookmark may carry now: every event at or below it is in the ring.
    pub(crate) fn current(&self) -> u64 {
        self.lock().current
    }

    /// The oldest resourceVersion a watch may resume from, and the newest event's.
    pub(crate) fn window(&self) -> (u64, u64) {
        let st = self.lock();
        (st.oldest, st.current)
    }

    /// Starts a downstream watch at `start`; `slow` says when it counts as fallen behind.
    pub(crate) fn subscribe(&self, start: WatchStart, slow: Slow) -> Start {
        let mut st = self.lock();
        if st.stopped {
            return Start::Stopped;
        }
        let mut initial = None;
        let mut replay = Vec::new();
        let (mut skip_through, mut after_rv) = (0, 0);
        match start {
            WatchStart::StateThenChanges | WatchStart::InitialEvents { .. } => {
                let held = self.source.hold();
                skip_through = held.generation();
                initial = Some(held);
            }
            WatchStart::ChangesFromNow => {}
            WatchStart::ChangesAfter(rv) => {
                if rv < st.oldest {
                    return Start::Expired {
                        requested: rv,
                        oldest: st.oldest,
                    };
                }
                replay = st.events.iter().filter(|e| e.rv > rv).cloned().collect();
                after_rv = rv;
            }
        }
        let cursor = Arc::new(Cursor {
            next: AtomicU64::new(st.next_seq),
            registered: AtomicU64::new(0),
            live: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            behind_since: Mutex::new(None),
            slow,
        });
        st.cursors.push(Arc::downgrade(&cursor));
        Start::Go(Box::new(Subscribed {
            initial,
            replay,
            cursor,
            skip_through,
            after_rv,
        }))
    }

    /// Appends to `out` the events after `cursor` (at most `max`) and moves it past them; with
    /// nothing new, registers `cx`'s waker for the next publish.
    pub(crate) fn take(
        &self,
        cursor: &Cursor,
        out: &mut Vec<Arc<WireEvent>>,
        max: usize,
        cx: &mut Context<'_>,
    ) -> Took {
        let mut st = self.lock();
        let first = st.next_seq - st.events.len() as u64;
        let next = cursor.next.load(Ordering::Acquire);
        if next < first {
            return Took::Lagged;
        }
        if next < st.next_seq {
            let from = (next - first) as usize;
            let to = st.events.len().min(from + max.max(1));
            out.extend(st.events.range(from..to).cloned());
            let taken = first + to as u64;
            cursor.next.store(taken, Ordering::Release);
            return Took::Events {
                caught_up: taken == st.next_seq,
                current: st.current,
            };
        }
        if st.stopped {
            return Took::Stopped;
        }
        if cursor.registered.swap(st.round + 1, Ordering::AcqRel) != st.round + 1 {
            st.wakers.push(cx.waker().clone());
        }
        Took::Pending {
            current: st.current,
        }
    }

    /// Adds one event to the ring (dropping the oldest beyond the bound) and wakes the watches
    /// waiting for it.
    fn publish(&self, mut event: WireEvent) {
        let wakers = {
            let mut st = self.lock();
            event.seq = st.next_seq;
            st.next_seq += 1;
            st.current = st.current.max(event.rv);
            st.generation = st.generation.max(event.generation);
            st.events.push_back(Arc::new(event));
            let keep = self.config.ring.max(self.config.history);
            while st.events.len() > keep {
                st.events.pop_front();
            }
            // The newest event no longer in the resumable history bounds the resumes.
            if let Some(gone) = st
                .events
                .len()
                .checked_sub(self.config.history + 1)
                .and_then(|i| st.events.get(i))
            {
                st.oldest = st.oldest.max(gone.rv);
            }
            st.round += 1;
            std::mem::take(&mut st.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Closes the live watches that have stayed more than their buffer behind for their grace
    /// period, and forgets the watches that ended.
    fn sweep(&self) {
        let now = Instant::now();
        let overdue: Vec<Arc<Cursor>> = {
            let mut st = self.lock();
            st.cursors.retain(|c| c.strong_count() > 0);
            let head = st.next_seq;
            st.cursors
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|c| c.overdue(head, now))
                .collect()
        };
        for cursor in overdue {
            cursor.close_slow("its buffer stayed full");
        }
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
    let hub = Arc::new(Hub {
        names,
        source: Box::new(CacheSource(cache.clone())),
        state: Mutex::new(State {
            events: VecDeque::new(),
            next_seq: 0,
            oldest: 0,
            current: 0,
            generation: 0,
            wakers: Vec::new(),
            round: 0,
            cursors: Vec::new(),
            stopped: false,
        }),
        started: AtomicBool::new(false),
        started_notify: Notify::new(),
        config,
    });
    let task = tokio::spawn(feed(cache, hub.clone()));
    (hub, task)
}

/// How often a quiet hub moves its bookmark version to what the cache proved (upstream
/// bookmarks), so that downstream bookmarks advance on quiet kinds too; and how often it sweeps
/// its watches for those that stay behind.
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
                {
                    let mut st = hub.lock();
                    if snapshot.generation() <= st.generation
                        && let Some(version) = cache.version()
                    {
                        st.current = st.current.max(version);
                    }
                }
                hub.sweep();
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
        seq: 0,
        rv,
        generation,
        event_type,
        line: line(event_type, &value),
        meta,
        moved,
    })
}
