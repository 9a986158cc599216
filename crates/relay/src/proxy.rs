//! One downstream request: a watch of a cached kind is served from its hub; a connection upgrade
//! is spliced to the API server's (`upgrade.rs`); everything else goes through the cache layer
//! (which answers GET and LIST of cached kinds from snapshots) to the API server, unchanged and
//! streaming.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Limited};
use k8s_wire::{Reason, Status, Target, Verb};
use tokio::sync::Notify;
use tracing::{debug, trace};

use crate::hub::Hub;
use crate::respond::{full, status_response, upstream_request};
use crate::watch::{self, PassThrough};
use crate::{BoxError, Inner, RelayBody};

/// The largest request body passed upstream (far above the API server's own limit of 3 MiB).
const MAX_REQUEST_BODY: usize = 32 << 20;

/// How long a watch of a cached kind waits for its hub's first state before it goes upstream.
const HUB_WAIT: Duration = Duration::from_secs(5);

/// Whether every media range the client accepts is plain JSON (what the relay's watch serves).
fn accepts_plain_json(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().all(|value| {
        value.to_str().is_ok_and(|value| {
            value.split(',').all(|range| {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim();
                matches!(media, "application/json" | "application/*" | "*/*")
                    && parts.all(|p| !p.trim_start().starts_with("as="))
            })
        })
    })
}

/// kubectl asks for `application/json;as=Table;…, application/json`: a Table, or plain JSON as
/// a fallback. The relay answers cached kinds from snapshots with the fallback, so such an
/// `Accept` is narrowed to plain JSON (kubectl then prints its default columns).
fn narrow_to_json_fallback(headers: &mut HeaderMap) -> bool {
    let mut fallback = false;
    let mut other = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let params: Vec<&str> = parts.map(str::trim).collect();
            if media == "application/json" && params.iter().all(|p| !p.starts_with("as=")) {
                fallback = true;
            } else if media == "application/json" && params.contains(&"as=Table") {
                // A Table range: the fallback stands in for it.
            } else {
                other = true;
            }
        }
    }
    if fallback && !other {
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        return true;
    }
    false
}

fn impersonated(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-"))
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Answers one downstream request.
pub(crate) async fn handle<B>(
    inner: Arc<Inner>,
    req: Request<B>,
    kill: Arc<Notify>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Response<RelayBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if crate::upgrade::requested(req.headers()) {
        return crate::upgrade::proxy(&inner, req, stop).await;
    }
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    if let Ok(request) = k8s_wire::Request::parse(&parts.method, &path, &query)
        && matches!(request.verb, Verb::Get | Verb::List | Verb::Watch)
        && request.target.subresource.is_none()
        && let Some(hub) = inner.hub_for(&request.target)
    {
        if let Some(gate) = &inner.gate {
            let read = crate::gate::Read {
                verb: request.verb.as_str(),
                group: &hub.names.group,
                version: &hub.names.version,
                resource: &hub.names.plural,
                namespace: request.target.namespace,
                name: request.target.name,
            };
            if let Err(denied) = gate.check(bearer(&parts.headers), read).await {
                inner.counters.denied.fetch_add(1, Ordering::Relaxed);
                return denied.map(full);
            }
        }
        narrow_to_json_fallback(&mut parts.headers);
        if request.verb == Verb::Watch
            && accepts_plain_json(&parts.headers)
            && !impersonated(&parts.headers)
        {
            if !hub.is_started() {
                hub.wait_started(HUB_WAIT).await;
            }
            match watch::serve(
                hub.clone(),
                request.target.namespace,
                &request.options,
                inner.watch,
                kill,
                inner.counters.clone(),
            ) {
                Ok(response) => return response,
                Err(PassThrough(why)) => {
                    inner
                        .counters
                        .watches_passed
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(kind = %hub.names.kind, why, "watch passed upstream");
                }
            }
        }
    }
    proxy(&inner, parts, body).await
}

/// Passes a request to the API server through the cache layer.
async fn proxy<B>(inner: &Inner, parts: http::request::Parts, body: B) -> Response<RelayBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let bytes = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            let status = Status::failure(
                Reason::for_code(413),
                format!("the request body could not be read: {err}"),
            )
            .with_code(413);
            return status_response(&status);
        }
    };
    // A write's response is read whole before it is answered: the layer records the
    // resourceVersion it returns (read-your-own-writes) when the body ends, and a client that
    // has the whole body (Content-Length) would otherwise read again before that.
    let buffered = !matches!(parts.method, Method::GET | Method::HEAD);
    let (request, path_and_query) =
        match upstream_request(&parts, bytes, inner.forward_credentials, false) {
            Ok(built) => built,
            Err(err) => {
                return status_response(&Status::failure(
                    Reason::BadRequest,
                    format!("the request cannot be forwarded: {err}"),
                ));
            }
        };
    inner.counters.proxied.fetch_add(1, Ordering::Relaxed);
    trace!(path = %path_and_query, "passed upstream");
    match inner.client.send(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in ["connection", "keep-alive"] {
                parts.headers.remove(HeaderName::from_static(name));
            }
            if buffered {
                return match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                    Ok(collected) => Response::from_parts(parts, full(collected.to_bytes())),
                    Err(err) => status_response(
                        &Status::failure(
                            Reason::for_code(502),
                            format!("the API server's response could not be read: {err}"),
                        )
                        .with_code(502),
                    ),
                };
            }
            Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
        }
        Err(err) => {
            debug!(error = %err, "upstream request failed");
            status_response(
                &Status::failure(
                    Reason::for_code(503),
                    format!("the relay could not reach the API server: {err}"),
                )
                .with_code(503),
            )
        }
    }
}

impl Inner {
    /// The hub of the cached kind `target` names, if any (a cluster-scoped kind only without a
    /// namespace).
    pub(crate) fn hub_for(&self, target: &Target<'_>) -> Option<&Arc<Hub>> {
        self.hubs.iter().find(|h| {
            h.names.plural == target.resource
                && h.names.group == target.group
                && h.names.version == target.version
                && (h.names.namespaced || target.namespace.is_none())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(accept));
        h
    }

    #[test]
    fn kubectls_table_request_narrows_to_its_json_fallback() {
        let mut h = headers(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert!(narrow_to_json_fallback(&mut h));
        assert_eq!(h[header::ACCEPT], "application/json");
        assert!(accepts_plain_json(&h));
        // Without a plain JSON fallback, or with another media type, nothing changes.
        let mut h = headers("application/json;as=Table;v=v1;g=meta.k8s.io");
        assert!(!narrow_to_json_fallback(&mut h));
        let mut h = headers("application/vnd.kubernetes.protobuf,application/json");
        assert!(!narrow_to_json_fallback(&mut h));
        assert!(!accepts_plain_json(&h));
    }

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
