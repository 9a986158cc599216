//! The library's error type.

use std::time::Duration;

use kube::Resource;

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
    /// The cache's reflector (or writer) stopped: it will never sync or refresh again.
    #[error("{kind} cache is stopped: {reason}")]
    Stopped {
        /// The kind the cache holds.
        kind: String,
        /// Why it stopped (as [`CacheState::Stopped`](crate::CacheState::Stopped) says).
        reason: String,
    },
    /// The cache has no secondary index of this name.
    #[error("{kind} cache has no index named {index:?}")]
    NoSuchIndex {
        /// The kind the cache holds.
        kind: String,
        /// The index asked for.
        index: String,
    },
    /// The cache did not reach a resourceVersion within the time the caller allowed (see
    /// [`Cache::wait_for`](crate::Cache::wait_for)).
    #[error(
        "{kind} cache did not reach resourceVersion {version} within {waited:?} (at {reached:?})"
    )]
    VersionTimeout {
        /// The kind the cache holds.
        kind: String,
        /// The resourceVersion waited for.
        version: String,
        /// The newest resourceVersion the cache was known to reflect when the time ran out.
        reached: Option<u64>,
        /// How long the caller waited.
        waited: Duration,
    },
    /// A resourceVersion that cannot be compared: it (or the cache's) is not an integer.
    /// resourceVersions are opaque to clients; repocache orders them only when both parse as
    /// integers (as etcd's revisions do), and otherwise refuses to guess.
    #[error("{kind}: resourceVersion {version:?} cannot be compared with the cache's")]
    IncomparableVersion {
        /// The kind the cache holds.
        kind: String,
        /// The resourceVersion asked for.
        version: String,
    },
    /// A live request to the API server failed.
    #[error("live request for {kind} failed: {source}")]
    Api {
        /// The kind the request was for.
        kind: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub(crate) fn request<K: Resource>(source: kube::Error) -> Self
    where
        K::DynamicType: Default,
    {
        Error::Api {
            kind: K::kind(&Default::default()).into_owned(),
            source,
        }
    }
}
