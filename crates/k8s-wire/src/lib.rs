//! The Kubernetes API wire protocol, as apimachinery speaks it, shared by a server (apisim), a
//! proxy layer answering from a cache, and a client's request sniffing:
//!
//! - [`Target`] and [`Verb`]: what a resource path names (group, version, namespace, resource,
//!   name, subresource) and the verb of a request for it; [`Target::path`] builds it back;
//! - [`ListOptions`]: the list/watch query parameters, parsed and built, with upstream's
//!   resourceVersion rules as functions ([`ListOptions::list_version`],
//!   [`ListOptions::watch_start`]);
//! - [`ContinueToken`]: the continue tokens of paginated lists;
//! - [`WatchEvent`] and [`encode_line`]: watch-event lines;
//! - [`Status`]: failure bodies as upstream writes them.
//!
//! Parsing and building are inverse: the crate's tests run one table of requests in both
//! directions (`parse(build(x)) == x` and `build(parse(s)) == s`).
//!
//! ```
//! use k8s_wire::{ListOptions, ListVersion, Target, Verb};
//! let t = Target::parse("/api/v1/namespaces/kube-system/configmaps").unwrap();
//! let q = ListOptions::parse("resourceVersion=0&watch=true").unwrap();
//! assert_eq!(t.verb(&http::Method::GET, q.watch().unwrap()), Some(Verb::Watch));
//! assert_eq!(q.list_version(), Ok(ListVersion::Any));
//! ```

mod continue_token;
mod event;
mod query;
mod status;
mod target;

pub use continue_token::{ContinueError, ContinueToken};
pub use event::{EventError, EventType, WatchEvent, encode_line};
pub use query::{ListOptions, ListVersion, QueryError, WatchStart, parse_bool};
pub use status::{
    EXPIRED_CONTINUE, ForbiddenTarget, Reason, Status, StatusCause, StatusDetails, StatusMeta,
};
pub use target::{Target, TargetError, Verb, qualified_resource};

/// A whole request line: its method, path and query parsed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// What the path names.
    pub target: Target<'a>,
    /// The verb.
    pub verb: Verb,
    /// The query parameters.
    pub options: ListOptions,
}

/// Why a request is not a resource request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The path is not a resource path.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The query does not parse.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The method is no Kubernetes verb (OPTIONS, CONNECT, …).
    #[error("method {0} is no Kubernetes verb")]
    Method(http::Method),
}

impl<'a> Request<'a> {
    /// Parses a request's method, path and query (without the `?`). A `watch` value that is no
    /// boolean makes no watch here (the verb is LIST); [`ListOptions::watch`] tells.
    pub fn parse(method: &http::Method, path: &'a str, query: &str) -> Result<Self, RequestError> {
        let target = Target::parse(path)?;
        let options = ListOptions::parse(query)?;
        let verb = target
            .verb(method, options.watch().unwrap_or(false))
            .ok_or_else(|| RequestError::Method(method.clone()))?;
        Ok(Request {
            target,
            verb,
            options,
        })
    }

    /// The method, path and query a client sends for this request.
    pub fn build(&self) -> (http::Method, String, String) {
        (
            self.verb.method(),
            self.target.path(),
            self.options.to_query(),
        )
    }
}

#[cfg(test)]
mod table;
