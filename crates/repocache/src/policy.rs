//! Read policies: how fresh a read must be, and where its answer came from.
//!
//! [`Cache::get`](crate::Cache::get) and friends always answer from the snapshot. The `*_with`
//! reads take a [`ReadPolicy`] and may make one live request when the policy asks for it.

use std::time::Duration;

/// How fresh a policy read must be.
///
/// | policy | answers from | API requests |
/// |---|---|---|
/// | `Cached` | the snapshot, whatever its age | none, ever |
/// | `MaxStaleness(d)` | the snapshot if the cache is ready and was confirmed within `d`; otherwise one live read | none while fresh, one when stale or not ready |
/// | `Fresh` | one live GET or LIST (the bypass) | one per read |
///
/// While the cache is ready and fresh, a miss is authoritative: `None` means the object was not on
/// the server as of the snapshot, and no policy asks the server again, except `Fresh`.
///
/// Which to use: `Cached` for reconcilers and anything that runs often (the watch keeps the
/// snapshot current to within milliseconds); `MaxStaleness` for tools that must not act on data
/// older than a bound (e.g. "the repository list as of the last 30 s"), so that a stalled watch
/// costs one request instead of a wrong answer; `Fresh` for the few operations that must see the
/// server now, e.g. read-modify-write right after a write of one's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadPolicy {
    /// The snapshot, whatever its age. Never does I/O.
    #[default]
    Cached,
    /// The snapshot if confirmed within this bound, else one live read.
    MaxStaleness(Duration),
    /// Always one live read.
    Fresh,
}

/// Where a policy read's answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// From the snapshot of this generation, last confirmed this long ago.
    Snapshot {
        /// The snapshot's generation.
        generation: u64,
        /// How long ago the watch last confirmed it.
        since_confirmed: Duration,
    },
    /// From a live request to the API server.
    Live,
}

/// A policy read's answer and where it came from (and so, how stale it may be).
#[derive(Clone, Debug, PartialEq)]
pub struct Read<T> {
    /// The answer.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Read<T> {
    /// The answer, dropping where it came from.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Whether the answer came from a live request.
    pub fn is_live(&self) -> bool {
        self.source == Source::Live
    }
}
