//! What the relay counts: its downstream watches and the requests it passes upstream.

use std::sync::atomic::{AtomicU64, Ordering};

/// The relay's counters (shared by every connection).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub watches_served: AtomicU64,
    pub watches_open: AtomicU64,
    pub watches_closed_slow: AtomicU64,
    pub watches_ended_cache_stopped: AtomicU64,
    pub watch_expired: AtomicU64,
    pub watches_passed: AtomicU64,
    pub proxied: AtomicU64,
    pub denied: AtomicU64,
}

/// The relay's figures now (the cached GET/LIST answers are counted by the layer:
/// [`Relay::layer_stats`](crate::Relay::layer_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Watches of cached kinds served from the relay's hubs since start.
    pub watches_served: u64,
    /// Of those, open now.
    pub watches_open: u64,
    /// Watches closed because their client fell behind (more than the watch buffer behind for
    /// the slow grace, or out of the ring).
    pub watches_closed_slow: u64,
    /// Watches ended because their kind's cache stopped (the stream ends cleanly; the client
    /// resumes or re-lists, and the hub passes new watches of the kind upstream).
    pub watches_ended_cache_stopped: u64,
    /// Watches answered 410 Expired (a resourceVersion older than the event history).
    pub watch_expired: u64,
    /// Watches of cached kinds that went upstream instead (no state yet, options the relay
    /// does not judge, other media types).
    pub watches_passed: u64,
    /// Requests handed to the cache layer's client: GET and LIST of cached kinds (which the
    /// layer answers from snapshots or passes upstream, counted in
    /// [`Relay::layer_stats`](crate::Relay::layer_stats)) and everything else, which goes
    /// upstream (writes, other kinds, discovery, …).
    pub proxied: u64,
    /// Requests refused by the authorization check (`--authorize`).
    pub denied: u64,
}

impl Counters {
    pub(crate) fn stats(&self) -> RelayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayStats {
            watches_served: get(&self.watches_served),
            watches_open: get(&self.watches_open),
            watches_closed_slow: get(&self.watches_closed_slow),
            watches_ended_cache_stopped: get(&self.watches_ended_cache_stopped),
            watch_expired: get(&self.watch_expired),
            watches_passed: get(&self.watches_passed),
            proxied: get(&self.proxied),
            denied: get(&self.denied),
        }
    }
}
