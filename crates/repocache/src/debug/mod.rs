//! The debug endpoint (feature `debug`): an HTTP server that the embedding process starts with
//! one call and that shows what its caches hold.
//!
//! ```no_run
//! # use glasskube_api::PackageRepository;
//! # async fn demo(repos: repocache::Cache<PackageRepository>, metrics: repocache::Metrics)
//! # -> Result<(), repocache::debug::DebugError> {
//! let handle = repocache::debug::DebugServer::builder()
//!     .cache(&repos)
//!     .metrics(&metrics)
//!     .token("s3cret")                       // optional: Authorization: Bearer s3cret
//!     .bind(([127, 0, 0, 1], 9464).into())
//!     .start()
//!     .await?;
//! println!("debug endpoint on http://{}", handle.local_addr());
//! # Ok(()) }
//! ```
//!
//! Routes:
//!
//! | route | answers |
//! |---|---|
//! | `GET /debug/caches` | JSON ([`CachesReport`]): per cache its state, readiness, TTL, resourceVersion, generation, object count, snapshot age, last relist and every [`Stats`](crate::Stats) figure. `?objects=true` adds the objects (redacted), `?kind=K` selects caches by kind, `?secrets=true` asks for unredacted objects (403 unless the server was started with [`DebugServerBuilder::allow_secrets`]). |
//! | `GET /metrics` | the Prometheus text exposition of a [`Metrics`](crate::Metrics) |
//! | `GET /healthz` | 200 `ok` while the server runs |
//! | `GET /readyz` | 200 when every cache is ready and none is stale beyond its TTL; 503 otherwise |
//!
//! Safety defaults: the server binds 127.0.0.1 unless told otherwise, and refuses a
//! non-loopback address unless [`allow_remote`](DebugServerBuilder::allow_remote) is set, which
//! in turn needs a token ([`DebugError::RemoteWithoutToken`] otherwise). With a
//! [`token`](DebugServerBuilder::token), `/debug/*` and `/metrics` answer 401 to a request
//! without `Authorization: Bearer <token>` (compared in constant time); the probes `/healthz`
//! and `/readyz` stay open (they reveal no object data). Objects always pass through the
//! redaction hook ([`DebugServerBuilder::redact`], default [`redact_credentials`]): each
//! credential becomes a [`redaction_marker`] (an object where the schema wants a string, so a
//! response applied back to a cluster is refused rather than overwrite anything), and the
//! [`LAST_APPLIED_ANNOTATION`] is dropped. Each connection must send its request headers (and
//! body) within [`header_read_timeout`](DebugServerBuilder::header_read_timeout), bodies are
//! limited ([`max_request_body`](DebugServerBuilder::max_request_body)), and at most
//! [`max_connections`](DebugServerBuilder::max_connections) are served at once (one more gets
//! 503).

mod redact;
mod report;
mod server;
mod view;

pub use redact::{
    CREDENTIAL_KEYS, LAST_APPLIED_ANNOTATION, REDACTED, REDACTION_MARKER_KEY, Redactor,
    display_markers, mask_url_userinfo, redact_credentials, redaction_marker,
    redaction_marker_text,
};
pub use report::{CacheReport, CachesReport, LastRelist, StatsReport};
pub use server::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUEST_BODY, DebugError,
    DebugHandle, DebugServer, DebugServerBuilder,
};
pub use view::{CacheView, Keep, ViewChange};
