//! The check a cached read passes in `--authorize` mode, as a trait, so that the relay's request
//! path does not depend on how callers are authenticated and authorized.
//!
//! The relay watches with its own identity, so without a check any caller could read through it
//! whatever that identity may read. By default the relay therefore serves only the local user
//! (loopback or a unix socket of mode 0600), like `kubectl proxy`. With a [`CallerCheck`]
//! ([`RelayBuilder::authorize`](crate::RelayBuilder::authorize)), every GET, LIST and WATCH of a
//! cached kind is checked before it is answered, and every proxied request carries the caller's
//! own `Authorization` header upstream.
//!
//! [`authorize::Authorizer`](crate::authorize) (TokenReview + SubjectAccessReview against the
//! upstream API server) implements it.

use bytes::Bytes;
use futures::future::BoxFuture;

/// One read of a cached kind, as a SubjectAccessReview describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read<'a> {
    /// `get`, `list` or `watch`.
    pub verb: &'a str,
    /// The API group (empty for the core group).
    pub group: &'a str,
    /// The API version.
    pub version: &'a str,
    /// The resource (plural).
    pub resource: &'a str,
    /// The namespace, for a namespaced request.
    pub namespace: Option<&'a str>,
    /// The object's name, for a GET.
    pub name: Option<&'a str>,
}

/// Decides whether a caller may make a cached read.
pub trait CallerCheck: Send + Sync + 'static {
    /// `Ok(())` to serve the read; otherwise the response the API server itself would give
    /// (401 without a valid token, 403 when the caller may not read it, 5xx when the decision
    /// could not be made), never data.
    fn check<'a>(
        &'a self,
        bearer_token: Option<&'a str>,
        read: Read<'a>,
    ) -> BoxFuture<'a, Result<(), http::Response<Bytes>>>;
}

mod authorizer {
    use super::*;
    use crate::authorize::{Authorizer, ResourceAttributes};

    impl CallerCheck for Authorizer {
        fn check<'a>(
            &'a self,
            bearer_token: Option<&'a str>,
            read: Read<'a>,
        ) -> BoxFuture<'a, Result<(), http::Response<Bytes>>> {
            Box::pin(async move {
                // No token: the TokenReview of an empty token is the API server's 401.
                let user = self
                    .authenticate(bearer_token.unwrap_or(""))
                    .await
                    .map_err(|denied| denied.into_response())?;
                let attributes = ResourceAttributes {
                    verb: read.verb.to_owned(),
                    group: read.group.to_owned(),
                    version: read.version.to_owned(),
                    resource: read.resource.to_owned(),
                    namespace: read.namespace.map(str::to_owned),
                    name: read.name.map(str::to_owned),
                };
                self.authorize(&user, &attributes)
                    .await
                    .map_err(|denied| denied.into_response())
            })
        }
    }
}
