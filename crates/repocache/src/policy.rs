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
/// | `AtLeast(rv)` | the snapshot once it reflects resourceVersion `rv` (waits up to [`DEFAULT_VERSION_WAIT`]); else one live read | none when reached, one on timeout |
/// | `Consistent` | the snapshot once it reflects the server's current resourceVersion (learned with one `LIST limit=1`, waits up to [`DEFAULT_VERSION_WAIT`]); else one live read | one small LIST, plus one live read on timeout |
/// | `Fresh` | one live GET or LIST (the bypass) | one per read |
///
/// While the cache is ready and fresh, a miss is authoritative: `None` means the object was not on
/// the server as of the snapshot, and no policy asks the server again, except `Fresh`.
///
/// Which to use: `Cached` for reconcilers and anything that runs often (the watch keeps the
/// snapshot current to within milliseconds); `MaxStaleness` for tools that must not act on data
/// older than a bound (e.g. "the repository list as of the last 30 s"), so that a stalled watch
/// costs one request instead of a wrong answer; `AtLeast(rv)` right after a write of one's own
/// (`rv` is the write response's `metadata.resourceVersion`): read-your-own-writes without a live
/// read; `Consistent` for a linearizable answer (what the server would answer now) at the price
/// of one small request instead of a full live read; `Fresh` for the few operations that must
/// see the server's own answer.
///
/// `AtLeast` and `Consistent` compare resourceVersions as integers (as etcd's revisions are);
/// when a version does not parse, they take the safe answer: a live read, never a guess. How
/// far a snapshot has got is its own resourceVersion or a later one proven by a watch BOOKMARK
/// (see [`Cache::version`](crate::Cache::version)); on a quiet kind the server's current version
/// is usually newer than any event of the kind, so `Consistent` answers from the snapshot only
/// once a bookmark has proven it current, and otherwise falls back to a live read after the
/// wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadPolicy {
    /// The snapshot, whatever its age. Never does I/O.
    #[default]
    Cached,
    /// The snapshot if confirmed within this bound, else one live read.
    MaxStaleness(Duration),
    /// The snapshot once it reflects this resourceVersion (waiting up to
    /// [`DEFAULT_VERSION_WAIT`]), else one live read. Build it from a version string with
    /// [`ReadPolicy::at_least`].
    AtLeast(u64),
    /// A linearizable read: learns the server's current resourceVersion with one `LIST limit=1`,
    /// then answers from the snapshot once it reflects that version (waiting up to
    /// [`DEFAULT_VERSION_WAIT`]), else with one live read (KEP-2340's consistent reads, on the
    /// client).
    Consistent,
    /// Always one live read.
    Fresh,
}

/// How long [`ReadPolicy::AtLeast`] and [`ReadPolicy::Consistent`] wait for the snapshot to
/// reach a version before they fall back to a live read. For another bound, call
/// [`Cache::wait_for`](crate::Cache::wait_for) and read the snapshot it returns.
pub const DEFAULT_VERSION_WAIT: Duration = Duration::from_millis(300);

impl ReadPolicy {
    /// `AtLeast` of this resourceVersion, or `Fresh` when it does not parse as an integer (it
    /// cannot be compared, so only a live read is safe).
    pub fn at_least(resource_version: &str) -> Self {
        match resource_version.parse() {
            Ok(rv) => Self::AtLeast(rv),
            Err(_) => Self::Fresh,
        }
    }
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
