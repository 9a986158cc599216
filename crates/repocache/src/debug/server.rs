//! The HTTP server: builder, routes, authentication and the running handle.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::redact::{Redactor, redact_credentials};
use super::report::CachesReport;
use super::view::CacheView;
use crate::cache::Cache;
use crate::metrics::Metrics;

/// Why the debug server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DebugError {
    /// The address is not a loopback address and remote access was not allowed.
    #[error(
        "refusing to serve the debug endpoint on non-loopback address {addr}: allow it explicitly (allow_remote / --allow-remote)"
    )]
    RemoteBindRefused {
        /// The refused address.
        addr: SocketAddr,
    },
    /// The token is empty (it would protect nothing).
    #[error("the debug endpoint's token is empty")]
    EmptyToken,
    /// Remote access was allowed without a token: anyone who reaches the address would read
    /// every cached object.
    #[error(
        "refusing to allow remote access to the debug endpoint without a token: set one (token / --token / REPOCACHE_TOKEN)"
    )]
    RemoteWithoutToken,
    /// The address could not be bound.
    #[error("cannot bind the debug endpoint to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How long a client may take to send a request's headers (and its body), by default: a
/// connection that sends nothing, or sends slowly, is closed after this long.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body accepted by default (the routes take none): larger gets 413.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 16 * 1024;
/// How many connections are served at once by default; one more is answered 503 and closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// The debug endpoint. Start one with [`DebugServer::builder`].
#[derive(Debug)]
pub struct DebugServer;

impl DebugServer {
    /// A builder: 127.0.0.1 on a free port, no token, no cache yet, generic redaction.
    pub fn builder() -> DebugServerBuilder {
        DebugServerBuilder {
            caches: Vec::new(),
            metrics: None,
            own_metrics: Metrics::new(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            allow_remote: false,
            token: None,
            redact: Arc::new(redact_credentials),
            allow_secrets: false,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Configures and starts a debug endpoint (see the [module docs](super)).
pub struct DebugServerBuilder {
    caches: Vec<CacheView>,
    metrics: Option<Metrics>,
    /// Tracks exactly the caches given to this builder; `/metrics` without [`Self::metrics`].
    own_metrics: Metrics,
    addr: SocketAddr,
    allow_remote: bool,
    token: Option<String>,
    redact: Redactor,
    allow_secrets: bool,
    header_read_timeout: Duration,
    max_request_body: usize,
    max_connections: usize,
}

impl fmt::Debug for DebugServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugServerBuilder")
            .field("caches", &self.caches)
            .field("addr", &self.addr)
            .field("allow_remote", &self.allow_remote)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allow_secrets", &self.allow_secrets)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_request_body", &self.max_request_body)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl DebugServerBuilder {
    /// Serves this cache (its objects must serialize).
    #[must_use]
    pub fn cache<K: kube::Resource + Serialize + Send + Sync + 'static, F>(
        mut self,
        cache: &Cache<K, F>,
    ) -> Self {
        self.caches.push(CacheView::new(cache));
        self.own_metrics.track(cache);
        self
    }

    /// What `/metrics` renders. Without it, `/metrics` renders a [`Metrics`] that tracks
    /// exactly the caches given to this builder.
    #[must_use]
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port). A non-loopback
    /// address needs [`allow_remote`](Self::allow_remote).
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Allows binding a non-loopback address (default: refused). Needs a
    /// [`token`](Self::token): [`start`](Self::start) fails with
    /// [`DebugError::RemoteWithoutToken`] otherwise.
    #[must_use]
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }

    /// Requires `Authorization: Bearer <token>` on `/debug/*` and `/metrics`.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The redaction hook every served object passes through (replaces the default,
    /// [`redact_credentials`]; call that from your hook to keep it).
    #[must_use]
    pub fn redact(mut self, hook: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) -> Self {
        self.redact = Arc::new(hook);
        self
    }

    /// Lets a request reveal credentials with `?secrets=true` (default: such a request gets
    /// 403, and objects are always redacted). Meant for local debugging sessions only.
    #[must_use]
    pub fn allow_secrets(mut self, allow: bool) -> Self {
        self.allow_secrets = allow;
        self
    }

    /// How long a client may take to send a request's headers, and then its body (default
    /// [`DEFAULT_HEADER_READ_TIMEOUT`]); an idle keep-alive connection is closed after as long.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The largest request body accepted (default [`DEFAULT_MAX_REQUEST_BODY`]); a larger one
    /// gets 413.
    #[must_use]
    pub fn max_request_body(mut self, bytes: usize) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// How many connections are served at once (default [`DEFAULT_MAX_CONNECTIONS`], at
    /// least 1); a connection beyond that is answered `503` and closed.
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Binds and starts serving on the current Tokio runtime.
    pub async fn start(self) -> Result<DebugHandle, DebugError> {
        let addr = self.addr;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(DebugError::RemoteBindRefused { addr });
        }
        if self.token.as_deref().is_some_and(str::is_empty) {
            return Err(DebugError::EmptyToken);
        }
        if self.allow_remote && self.token.is_none() {
            return Err(DebugError::RemoteWithoutToken);
        }
        let metrics = self.metrics.unwrap_or(self.own_metrics);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DebugError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| DebugError::Bind { addr, source })?;
        let app = Arc::new(App {
            caches: self.caches,
            metrics,
            token: self.token,
            redact: self.redact,
            allow_secrets: self.allow_secrets,
        });
        let limits = Limits {
            header_read_timeout: self.header_read_timeout,
            max_request_body: self.max_request_body,
            max_connections: self.max_connections,
        };
        let router = Router::new()
            .route("/debug/caches", get(caches))
            .route("/metrics", get(metrics_route))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(app)
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| limit_body(req, next, limits),
            ));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, limits, stop_rx));
        tracing::info!(addr = %local_addr, "debug endpoint listening");
        Ok(DebugHandle {
            local_addr,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A running debug endpoint. Dropping it stops the server.
#[derive(Debug)]
pub struct DebugHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DebugHandle {
    /// The bound address (with the port picked when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local_addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting, finishes the requests in flight, and waits until the server ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DebugHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The connection limits of a running server.
#[derive(Clone, Copy, Debug)]
struct Limits {
    header_read_timeout: Duration,
    max_request_body: usize,
    max_connections: usize,
}

/// What a connection beyond the cap is told before it is closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 54\r\nconnection: close\r\n\r\n{\"error\":\"too many connections to the debug endpoint\"}\n";

/// The accept loop: each connection served by hyper with the header-read timeout, at most
/// `max_connections` at once; on stop, every connection finishes its request in flight.
async fn serve(listener: TcpListener, router: Router, limits: Limits, stop: oneshot::Receiver<()>) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(%err, "debug endpoint: accept failed");
                        // E.g. out of file descriptors: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::warn!(%peer, max = limits.max_connections, "debug endpoint: too many connections, refusing one");
                    connections.spawn(refuse(stream));
                    continue;
                };
                let service = TowerToHyperService::new(router.clone());
                let mut closing = closing_rx.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_read_timeout);
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    let served = tokio::select! {
                        served = connection.as_mut() => served,
                        _ = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if let Err(err) = served {
                        tracing::debug!(%peer, %err, "debug endpoint: connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// Answers a connection beyond the cap with 503 and closes it (without reading its request).
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(TOO_MANY_CONNECTIONS).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Reads the request body up to `max_request_body` bytes within the header-read timeout:
/// larger gets 413, slower 408.
async fn limit_body(req: Request, next: Next, limits: Limits) -> Response {
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        limits.header_read_timeout,
        axum::body::to_bytes(body, limits.max_request_body),
    )
    .await;
    match read {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, bytes.into())).await,
        Ok(Err(_)) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} bytes (or broken)",
                limits.max_request_body
            ),
        ),
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time".to_owned(),
        ),
    }
}

struct App {
    caches: Vec<CacheView>,
    metrics: Metrics,
    token: Option<String>,
    redact: Redactor,
    allow_secrets: bool,
}

/// Equal in time independent of where the inputs differ: `subtle`'s constant-time comparison
/// (inputs of different lengths compare unequal at once; the token's length is all that leaks).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

impl App {
    /// `None` when the request may proceed; else the 401 response.
    fn check_token(&self, headers: &HeaderMap) -> Option<Response> {
        let expected = self.token.as_deref()?;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".to_owned(),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"repocache\""),
        );
        Some(response)
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| matches!(v.as_str(), "" | "1" | "true" | "yes"))
}

async fn caches(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(denied) = app.check_token(&headers) {
        return denied;
    }
    let objects = flag(&query, "objects");
    let secrets = flag(&query, "secrets");
    if secrets && !app.allow_secrets {
        return error(
            StatusCode::FORBIDDEN,
            "this debug endpoint does not reveal credentials (it was not started with allow_secrets)".to_owned(),
        );
    }
    let selected: Vec<&CacheView> = match query.get("kind") {
        Some(kind) => app
            .caches
            .iter()
            .filter(|c| c.kind().eq_ignore_ascii_case(kind))
            .collect(),
        None => app.caches.iter().collect(),
    };
    if let (Some(kind), true) = (query.get("kind"), selected.is_empty()) {
        let served: Vec<&str> = app.caches.iter().map(CacheView::kind).collect();
        return error(
            StatusCode::NOT_FOUND,
            format!("no cache for kind {kind} (serving: {})", served.join(", ")),
        );
    }
    let redact = (!secrets).then_some(&app.redact);
    let report = CachesReport {
        caches: selected
            .into_iter()
            .map(|c| c.report(objects, redact))
            .collect(),
    };
    axum::Json(report).into_response()
}

async fn metrics_route(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(denied) = app.check_token(&headers) {
        return denied;
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let mut body = String::new();
    let mut ready = true;
    for cache in &app.caches {
        // One load of the state: a stopped cache is never ready, whatever its snapshot's age.
        let state = cache.state();
        let this = cache.is_ready() && !cache.is_stale() && !state.is_stopped();
        ready &= this;
        body.push_str(&format!(
            "{}: {}\n",
            cache.kind(),
            if this {
                "ready".to_owned()
            } else {
                state.to_string()
            }
        ));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
