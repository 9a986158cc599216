//! [`CacheState`]: where a cache stands between its first sync, freshness, staleness and failure.

use std::fmt;
use std::time::{Duration, Instant};

/// The state of a cache, as its reflector sees it.
///
/// Whatever the state, reads keep serving the last published snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheState {
    /// The first sync has not completed yet (and nothing has failed).
    Starting,
    /// Synced, and confirmed by the watch within the TTL.
    Ready,
    /// Not confirmed for longer than the TTL; a relist is under way.
    Stale {
        /// When the snapshot became stale.
        since: Instant,
        /// Why it is stale.
        reason: String,
    },
    /// The last attempt to list or watch failed; retried with backoff.
    Failed {
        /// The error of the last attempt.
        last_error: String,
        /// When the failures began.
        since: Instant,
    },
    /// The reflector was stopped; the cache is never updated again.
    Stopped,
}

impl CacheState {
    /// A one-word name: `starting`, `ready`, `stale`, `failed` or `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Stale { .. } => "stale",
            Self::Failed { .. } => "failed",
            Self::Stopped => "stopped",
        }
    }

    /// How long the cache has been stale or failing, if it is.
    pub fn degraded_for(&self) -> Option<Duration> {
        match self {
            Self::Stale { since, .. } | Self::Failed { since, .. } => Some(since.elapsed()),
            _ => None,
        }
    }
}

impl fmt::Display for CacheState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stale { since, reason } => {
                write!(f, "stale for {:.1?}: {reason}", since.elapsed())
            }
            Self::Failed { last_error, since } => {
                write!(f, "failing for {:.1?}: {last_error}", since.elapsed())
            }
            other => f.write_str(other.as_str()),
        }
    }
}
