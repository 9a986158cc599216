//! The crate's error type.

/// Errors of the operator: starting it, and reconciling one package.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caches did not complete their first sync (timeout, or a reflector stopped).
    #[error("caches not ready: {0}")]
    NotReady(#[source] repocache::Error),
    /// A cache read failed in a way no package can cause (e.g. a preset index is missing).
    #[error("cache read failed: {0}")]
    Cache(#[source] repocache::Error),
    /// A repository lookup failed in a way no condition describes (see
    /// [`desired_condition`](crate::desired_condition)).
    #[error("repository lookup failed: {0}")]
    Lookup(#[source] repocache::glasskube::Error),
    /// A package has no name or (for a Package) no namespace.
    #[error("{kind} without {field}")]
    MissingMetadata {
        /// `Package` or `ClusterPackage`.
        kind: &'static str,
        /// The missing field (`metadata.name`, `metadata.namespace`).
        field: &'static str,
    },
    /// The status patch could not be built.
    #[error("cannot encode the status patch: {0}")]
    Encode(#[from] serde_json::Error),
    /// The API server refused or failed the status patch.
    #[error("status patch of {kind} {key} failed: {source}")]
    Patch {
        /// `Package` or `ClusterPackage`.
        kind: &'static str,
        /// `namespace/name` or `name`.
        key: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A controller ended although no shutdown was asked for (its cache stopped).
    #[error("the {0} controller stopped unexpectedly")]
    ControllerStopped(&'static str),
}
