//! The library's error type.

use std::time::Duration;

/// Errors returned by repocache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cache did not complete its first sync within the time the caller allowed.
    #[error("{kind} cache not ready after {waited:?}")]
    ReadyTimeout {
        /// The kind the cache holds.
        kind: String,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The cache's writer stopped before the cache ever became ready.
    #[error("{kind} cache stopped before its first sync")]
    Stopped {
        /// The kind the cache holds.
        kind: String,
    },
}
