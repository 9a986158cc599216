//! [`CacheState`]: where a cache stands between its first sync, freshness, staleness and failure.

use std::fmt;
use std::time::{Duration, Instant};

/// The reason of the [`CacheState::Stale`] state of a cache that serves a persisted snapshot no
/// LIST has verified yet (a warm start; see [`crate::persist`]).
pub const WARM_START: &str = "warm start";

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
    /// Not confirmed for longer than the TTL; a relist is under way. Also the state of a warm
    /// start (reason [`WARM_START`], `since` = when the file was
    /// written): the snapshot came from a persisted file and no LIST has verified it yet; the
    /// cache is not ready until one has (see [`crate::persist`]).
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
    /// The reflector (or the writer) has ended, for whatever reason: stopped by its handle,
    /// the handle dropped, its runtime shut down, or a panic in user code (an indexer, a
    /// transform). The cache is never updated again; it keeps serving its last snapshot, but no
    /// surface reports it ready (`is_ready` is false, `wait_ready` fails with
    /// [`Error::Stopped`](crate::Error::Stopped), the layer passes through, `/readyz` is 503).
    Stopped {
        /// Why it stopped (for a panic, the panic's message).
        reason: String,
    },
}

impl CacheState {
    /// A one-word name: `starting`, `ready`, `stale`, `failed` or `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Stale { .. } => "stale",
            Self::Failed { .. } => "failed",
            Self::Stopped { .. } => "stopped",
        }
    }

    /// Whether the cache has stopped for good (see [`CacheState::Stopped`]).
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped { .. })
    }

    /// Whether this is a warm start's state: serving a persisted snapshot no LIST has verified
    /// yet (see [`crate::persist`]).
    pub fn is_warm_start(&self) -> bool {
        matches!(self, Self::Stale { reason, .. } if reason == WARM_START)
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
            Self::Stopped { reason } => write!(f, "stopped: {reason}"),
            other => f.write_str(other.as_str()),
        }
    }
}
