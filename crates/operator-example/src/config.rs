//! [`Config`]: how often the controllers reconcile, how many at once, how long to wait.

use std::time::Duration;

/// The operator's settings. `Config::default()` reconciles on change only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Reconcile every package again this long after its last reconcile, even without a
    /// change; `None`: only when the package or a repository it uses changes.
    pub requeue: Option<Duration>,
    /// How long to wait before retrying a reconcile that failed (default 5 s).
    pub error_requeue: Duration,
    /// At most this many reconciles run at once in each controller; 0: unbounded (default 16).
    pub concurrency: u16,
    /// Trailing-edge debounce of reconcile requests (default: none).
    pub debounce: Duration,
    /// How long [`Operator::start`](crate::Operator::start) waits for the caches' first sync
    /// (default 30 s).
    pub ready_timeout: Duration,
    /// The TTL of every cache: how long a snapshot may go unconfirmed before the cache relists
    /// (default: repocache's [`DEFAULT_TTL`](repocache::reflector::DEFAULT_TTL)).
    pub cache_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            requeue: None,
            error_requeue: Duration::from_secs(5),
            concurrency: 16,
            debounce: Duration::ZERO,
            ready_timeout: Duration::from_secs(30),
            cache_ttl: repocache::reflector::DEFAULT_TTL,
        }
    }
}

impl Config {
    /// Reconciles every package again `every` after its last reconcile (`None`: on change only).
    pub fn requeue(mut self, every: Option<Duration>) -> Self {
        self.requeue = every;
        self
    }

    /// Bounds the concurrent reconciles of each controller (0: unbounded).
    pub fn concurrency(mut self, concurrency: u16) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// How long to wait before retrying a failed reconcile.
    pub fn error_requeue(mut self, after: Duration) -> Self {
        self.error_requeue = after;
        self
    }

    /// How long to wait for the caches' first sync.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }
}
