//! Counters the writer and reflector keep, and the plain [`Stats`] figures read from them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lock-free counters shared by a cache's writer and readers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    events: AtomicU64,
    decode_failures: AtomicU64,
    watch_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn record_event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_decode_failure(&self) {
        self.decode_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_watch_error(&self) {
        self.watch_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> Stats {
        Stats {
            events: self.events.load(Ordering::Relaxed),
            decode_failures: self.decode_failures.load(Ordering::Relaxed),
            watch_errors: self.watch_errors.load(Ordering::Relaxed),
        }
    }
}

/// A cache's counters at one moment, for programs that do not use a metrics registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Watch events received and applied (including relist events).
    pub events: u64,
    /// Objects skipped because they did not decode as the cache's kind.
    pub decode_failures: u64,
    /// Watch errors (each retried with backoff).
    pub watch_errors: u64,
}
