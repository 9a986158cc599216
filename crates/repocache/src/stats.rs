//! The figures a cache keeps about itself: lock-free counters updated by the reflector and the
//! read path, and the plain [`Stats`] struct read from them. The Prometheus view
//! ([`Metrics`](crate::Metrics)) renders the same figures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use crate::line_guard::LineRejection;
use crate::state::CacheState;
use crate::striped::StripedCounter;

/// Why the cache made a live request to the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiReason {
    /// A policy read fell back to the server because the cache was not ready or too stale.
    Fallback,
    /// A [`ReadPolicy::Fresh`](crate::ReadPolicy::Fresh) read (the bypass).
    Fresh,
    /// A LIST (or streaming list) that fills the cache.
    Relist,
    /// A WATCH request that keeps the cache current.
    Watch,
    /// A small LIST (`limit=1`) that learns the server's current resourceVersion for a
    /// [`ReadPolicy::Consistent`](crate::ReadPolicy::Consistent) read.
    Version,
}

impl ApiReason {
    /// Every reason, in the order figures report them.
    pub const ALL: [ApiReason; 5] = [
        Self::Fallback,
        Self::Fresh,
        Self::Relist,
        Self::Watch,
        Self::Version,
    ];

    /// The label value: `fallback`, `fresh`, `relist`, `watch` or `version`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fallback => "fallback",
            Self::Fresh => "fresh",
            Self::Relist => "relist",
            Self::Watch => "watch",
            Self::Version => "version",
        }
    }
}

/// Why a relist happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelistReason {
    /// The first sync.
    Initial,
    /// The watch could not resume: its resourceVersion had expired (410 Gone).
    Expired,
    /// The snapshot went unconfirmed for longer than its TTL.
    Ttl,
    /// A caller asked for it ([`Cache::refresh`](crate::Cache::refresh)).
    Manual,
    /// The previous list or watch failed with another error.
    Error,
    /// The safety net: a snapshot that bookmarks kept confirming was not relisted for
    /// [`RESYNC_TTLS`](crate::reflector::RESYNC_TTLS) TTLs.
    Resync,
}

impl RelistReason {
    /// Every reason, in the order figures report them.
    pub const ALL: [RelistReason; 6] = [
        Self::Initial,
        Self::Expired,
        Self::Ttl,
        Self::Manual,
        Self::Error,
        Self::Resync,
    ];

    /// The label value: `initial`, `expired`, `ttl`, `manual`, `error` or `resync`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Expired => "expired",
            Self::Ttl => "ttl",
            Self::Manual => "manual",
            Self::Error => "error",
            Self::Resync => "resync",
        }
    }
}

/// How the reflector decodes the objects it watches (see [`Decoded`](crate::decode::Decoded)).
///
/// A reflector starts on the typed fast path and switches to per-object decoding, for the rest
/// of its life, the first time an object does not decode as its kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DecodingMode {
    /// Every object decodes straight into the cache's kind, in one pass (as kube-runtime's own
    /// reflector does). An object that does not decode ends this mode.
    #[default]
    Fast,
    /// Each object is decoded on its own ([`Decoded`](crate::decode::Decoded)): one that does not decode
    /// is counted in [`Stats::decode_failures`] and skipped, at the cost of one more pass over
    /// each object's text.
    Robust,
}

impl DecodingMode {
    /// The label value: `fast` or `robust`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Robust => "robust",
        }
    }
}

/// The kind of a watcher event, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `Apply`: an object was added or modified.
    Apply,
    /// `Delete`: an object was deleted.
    Delete,
    /// `Init`: a relist started.
    Init,
    /// `InitApply`: an object of a relist.
    InitApply,
    /// `InitDone`: a relist completed.
    InitDone,
    /// A watch or list error (retried with backoff).
    Error,
    /// A watch BOOKMARK that confirmed the snapshot (seen on the wire; see the reflector).
    Bookmark,
}

impl EventType {
    /// Every type, in the order figures report them.
    pub const ALL: [EventType; 7] = [
        Self::Apply,
        Self::Delete,
        Self::Init,
        Self::InitApply,
        Self::InitDone,
        Self::Error,
        Self::Bookmark,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Delete => "delete",
            Self::Init => "init",
            Self::InitApply => "init_apply",
            Self::InitDone => "init_done",
            Self::Error => "error",
            Self::Bookmark => "bookmark",
        }
    }
}

/// Upper bounds (seconds) of the event-to-visible delay histogram buckets.
pub const DELAY_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
    0.25,
];

/// A fixed-bucket histogram in atomics (written by the reflector only).
#[derive(Debug, Default)]
pub(crate) struct DelayHistogram {
    buckets: [AtomicU64; DELAY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl DelayHistogram {
    pub(crate) fn observe(&self, delay: Duration) {
        let secs = delay.as_secs_f64();
        let i = DELAY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DELAY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn read(&self) -> Delays {
        let per_bucket: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        Delays {
            count: per_bucket.iter().sum(),
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
            per_bucket,
        }
    }
}

/// Lock-free counters shared by a cache's reflector and readers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: StripedCounter,
    pub(crate) misses: StripedCounter,
    api: [AtomicU64; ApiReason::ALL.len()],
    events: [AtomicU64; EventType::ALL.len()],
    relists: [AtomicU64; RelistReason::ALL.len()],
    decode_failures: AtomicU64,
    rejected_lines: [AtomicU64; 4],
    /// Set once the reflector decodes each object on its own ([`DecodingMode::Robust`]).
    robust: AtomicBool,
    pub(crate) delays: DelayHistogram,
}

fn index_of<T: PartialEq>(all: &[T], x: &T) -> usize {
    all.iter().position(|a| a == x).unwrap_or(0)
}

impl Counters {
    pub(crate) fn record_api(&self, reason: ApiReason) {
        self.api[index_of(&ApiReason::ALL, &reason)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_event(&self, ty: EventType) {
        self.events[index_of(&EventType::ALL, &ty)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_relist(&self, reason: RelistReason) {
        self.relists[index_of(&RelistReason::ALL, &reason)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_decode_failure(&self) {
        self.decode_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_rejected_line(&self, why: LineRejection) {
        self.rejected_lines[index_of(&LineRejection::ALL, &why)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the switch to [`DecodingMode::Robust`]; false if it had already happened.
    pub(crate) fn record_robust_decoding(&self) -> bool {
        !self.robust.swap(true, Ordering::Relaxed)
    }

    pub(crate) fn decoding(&self) -> DecodingMode {
        if self.robust.load(Ordering::Relaxed) {
            DecodingMode::Robust
        } else {
            DecodingMode::Fast
        }
    }

    pub(crate) fn api(&self, reason: ApiReason) -> u64 {
        self.api[index_of(&ApiReason::ALL, &reason)].load(Ordering::Relaxed)
    }

    pub(crate) fn relists(&self, reason: RelistReason) -> u64 {
        self.relists[index_of(&RelistReason::ALL, &reason)].load(Ordering::Relaxed)
    }

    pub(crate) fn fill(&self, stats: &mut Stats) {
        stats.hits = self.hits.get();
        stats.misses = self.misses.get();
        stats.api_requests = ApiReason::ALL.map(|r| (r, self.api(r)));
        stats.events = EventType::ALL.map(|t| {
            (
                t,
                self.events[index_of(&EventType::ALL, &t)].load(Ordering::Relaxed),
            )
        });
        stats.relists = RelistReason::ALL.map(|r| (r, self.relists(r)));
        stats.decode_failures = self.decode_failures.load(Ordering::Relaxed);
        stats.rejected_lines = LineRejection::ALL.map(|r| {
            (
                r,
                self.rejected_lines[index_of(&LineRejection::ALL, &r)].load(Ordering::Relaxed),
            )
        });
        stats.decoding = self.decoding();
        stats.event_to_visible = self.delays.read();
    }
}

/// The event-to-visible delay distribution: from an event's arrival at the reflector to the
/// publish that made it visible to readers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delays {
    /// Events measured.
    pub count: u64,
    /// Sum of all delays.
    pub sum: Duration,
    /// Events per bucket of [`DELAY_BUCKETS`] (not cumulative), plus one last bucket for
    /// everything slower.
    pub per_bucket: Vec<u64>,
}

/// A cache's figures at one moment, for programs that do not use a metrics registry.
///
/// [`Metrics`](crate::Metrics) renders exactly these figures for Prometheus.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Stats {
    /// The kind the cache holds.
    pub kind: String,
    /// The cache's state.
    pub state: CacheState,
    /// Whether the first sync has completed.
    pub ready: bool,
    /// The configured TTL (zero: disabled).
    pub ttl: Duration,
    /// `get`/`get_namespaced` calls that found their object.
    pub hits: u64,
    /// `get`/`get_namespaced` calls that found nothing.
    pub misses: u64,
    /// Live requests to the API server, by reason.
    pub api_requests: [(ApiReason, u64); 5],
    /// Watcher events received, by type.
    pub events: [(EventType, u64); 7],
    /// Completed relists, by reason.
    pub relists: [(RelistReason, u64); 6],
    /// Objects skipped because they did not decode as the cache's kind (counted once per event
    /// in [`DecodingMode::Robust`]; the object that ends the fast path is counted when the relist
    /// that follows meets it, if it still does not decode).
    pub decode_failures: u64,
    /// Watch lines rejected before decoding, by reason: longer than
    /// [`CacheConfig::max_line`](crate::CacheConfig::max_line), not UTF-8, not a JSON object,
    /// or an ERROR event that is not a Status. Each costs that line and one relist.
    pub rejected_lines: [(LineRejection, u64); 4],
    /// How the reflector decodes objects now: the typed fast path, or each object on its own
    /// since one did not decode.
    pub decoding: DecodingMode,
    /// Objects in the current snapshot.
    pub objects: usize,
    /// The current snapshot's generation.
    pub generation: u64,
    /// The current snapshot's resourceVersion.
    pub resource_version: Option<String>,
    /// The newest resourceVersion the current snapshot is known to reflect: its own, or a later
    /// one a watch BOOKMARK proved it current to ([`Cache::version`](crate::Cache::version)).
    pub version: Option<u64>,
    /// How long ago the current snapshot was built.
    pub snapshot_age: Duration,
    /// How long ago the current snapshot was last confirmed by the watch.
    pub since_confirmed: Duration,
    /// The last completed relist: its reason and how long ago it completed.
    pub last_relist: Option<(RelistReason, Duration)>,
    /// The event-to-visible delay distribution.
    pub event_to_visible: Delays,
}

impl Stats {
    /// Live API requests made for this reason.
    pub fn api(&self, reason: ApiReason) -> u64 {
        self.api_requests
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Completed relists for this reason.
    pub fn relists(&self, reason: RelistReason) -> u64 {
        self.relists
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Events received of this type.
    pub fn events(&self, ty: EventType) -> u64 {
        self.events
            .iter()
            .find(|(t, _)| *t == ty)
            .map_or(0, |(_, n)| *n)
    }

    /// Watch lines rejected for this reason.
    pub fn rejected_lines(&self, why: LineRejection) -> u64 {
        self.rejected_lines
            .iter()
            .find(|(r, _)| *r == why)
            .map_or(0, |(_, n)| *n)
    }

    /// Completed relists, all reasons together.
    pub fn relists_total(&self) -> u64 {
        self.relists.iter().map(|(_, n)| n).sum()
    }
}
