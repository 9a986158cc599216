//! Connection upgrades (`exec`, `attach`, `port-forward`, over WebSocket or SPDY): the request
//! goes upstream with its `Connection: Upgrade` and `Upgrade` headers; when the API server
//! answers `101 Switching Protocols`, the relay answers 101 with the server's headers and
//! splices the two upgraded connections byte for byte until either side closes. Any other
//! answer (400, 403, 404, …) is passed back as it came.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper_util::rt::TokioIo;
use k8s_wire::{Reason, Status};
use tokio::sync::watch;
use tracing::{debug, trace};

use crate::respond::{full, status_response, upstream_request};
use crate::{BoxError, Inner, RelayBody};

/// The largest body an upgrade request may carry (they carry none; SPDY's POST has an empty one).
const MAX_UPGRADE_BODY: usize = 64 << 10;

/// Whether `headers` ask for a connection upgrade (`Connection: upgrade` and an `Upgrade`
/// header, RFC 9110 section 7.8). An offer of `h2c` (HTTP/2 over cleartext, which a client may
/// attach to any request) is not one: such a request is served as usual, the offer dropped.
pub(crate) fn requested(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|protocols| match protocols.to_str() {
            Ok(p) => p
                .split(',')
                .any(|protocol| !protocol.trim().eq_ignore_ascii_case("h2c")),
            // Not text: the API server decides what it is.
            Err(_) => true,
        })
        && headers.get_all(header::CONNECTION).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Passes an upgrade request upstream and, on 101, splices the two connections (until either
/// side closes, or the relay stops).
pub(crate) async fn proxy<B>(
    inner: &Inner,
    mut req: Request<B>,
    stop: watch::Receiver<bool>,
) -> Response<RelayBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let downstream = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_UPGRADE_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return status_response(
                &Status::failure(
                    Reason::for_code(413),
                    format!("the upgrade request's body could not be read: {err}"),
                )
                .with_code(413),
            );
        }
    };
    let (request, path_and_query) =
        match upstream_request(&parts, bytes, inner.forward_credentials, true) {
            Ok(built) => built,
            Err(err) => {
                return status_response(&Status::failure(
                    Reason::BadRequest,
                    format!("the upgrade request cannot be forwarded: {err}"),
                ));
            }
        };
    inner.counters.proxied.fetch_add(1, Ordering::Relaxed);
    trace!(path = %path_and_query, "upgrade passed upstream");
    let mut response = match inner.client.send(request).await {
        Ok(response) => response,
        Err(err) => {
            debug!(error = %err, "upstream upgrade request failed");
            return status_response(
                &Status::failure(
                    Reason::for_code(503),
                    format!("the relay could not reach the API server: {err}"),
                )
                .with_code(503),
            );
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused (or not an upgrade after all): the answer goes back as it came.
        let (mut parts, body) = response.into_parts();
        for name in ["connection", "keep-alive", "upgrade"] {
            parts.headers.remove(name);
        }
        return Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync());
    }
    let upstream = hyper::upgrade::on(&mut response);
    let mut answer = Response::new(full(Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = response.headers().clone();
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    tokio::spawn(splice(downstream, upstream, stop, path_and_query));
    answer
}

/// Copies bytes both ways between the two upgraded connections. When one side closes its
/// half, the other side's write half is shut down; it ends when both directions have ended,
/// either side fails, or the relay stops — dropping (closing) both connections.
async fn splice(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    mut stop: watch::Receiver<bool>,
    path: String,
) {
    let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
        Ok(both) => both,
        Err(err) => {
            debug!(%path, error = %err, "connection upgrade failed");
            return;
        }
    };
    let mut downstream = TokioIo::new(downstream);
    let mut upstream = TokioIo::new(upstream);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut downstream, &mut upstream) => match result {
            Ok((to_upstream, to_downstream)) => {
                debug!(%path, to_upstream, to_downstream, "upgraded connection closed");
            }
            Err(err) => debug!(%path, error = %err, "upgraded connection ended with an error"),
        },
        _ = stop.wait_for(|stopped| *stopped) => {
            debug!(%path, "upgraded connection closed: the relay stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests() {
        let mut h = HeaderMap::new();
        assert!(!requested(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!requested(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(requested(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(!requested(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!requested(&h), "an h2c offer is no upgrade request");
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(requested(&h));
    }
}
