//! Watch events: the bounded history window watches resume from, the live feed, subscriptions,
//! and what forgets history (compaction, restart).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Inner, Store};
use crate::errors::ApiError;
use crate::resources::ResId;

/// The type of a committed change: the watch event it becomes (see the `From` impl below).
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
    /// The wire spelling (`k8s-wire`'s).
    pub fn as_str(self) -> &'static str {
        k8s_wire::EventType::from(self).as_str()
    }
}

/// A committed change is one of the watch event types `k8s-wire` writes (never a BOOKMARK or an
/// ERROR, which are not changes: that is why the store keeps a type of its own).
impl From<EventType> for k8s_wire::EventType {
    fn from(e: EventType) -> Self {
        match e {
            EventType::Added => Self::Added,
            EventType::Modified => Self::Modified,
            EventType::Deleted => Self::Deleted,
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
    /// The server restarted (objects kept or wiped): every watch subscribed before it ends
    /// here, before it sends anything else — above all a bookmark, which would claim a
    /// post-restart resourceVersion for a watch that never saw what the restart did (a wipe's
    /// deletions), so that the client would resume from it instead of relisting.
    Restart,
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

impl Store {
    pub(super) fn emit(&self, inner: &mut Inner, rec: WatchRecord) {
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
                    .map(|m| m.values().map(|o| Value::clone(o)).collect())
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
        // Under the lock: a watch that subscribed before this sees the marker before any
        // later event, and `drain_at_current` (bookmarks) sees it before it can read `rv`.
        let _ = self.feed.send(Feed::Restart);
        rv
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
}
