//! What `proxy` and `upgrade` share, below both: the bodies the relay makes itself (bytes it has
//! whole, `Status` errors) and the upstream request built from a caller's (without the headers
//! that are never forwarded).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use k8s_wire::Status;

use crate::{BoxError, RelayBody};

/// Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1), and `host`
/// (the upstream client sets its own).
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "host",
];

/// A response with a `Status` body.
pub(crate) fn status_response(status: &Status) -> Response<RelayBody> {
    let mut response = Response::new(full(Bytes::from(status.to_json())));
    *response.status_mut() =
        StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A body of bytes the relay has whole.
pub(crate) fn full(bytes: Bytes) -> RelayBody {
    Full::new(bytes)
        .map_err(|never| -> BoxError { match never {} })
        .boxed_unsync()
}

/// The upstream request for a caller's request (`parts`, its body read whole): the same method,
/// path and query, and the caller's headers except the hop-by-hop ones and, unless
/// `forward_credentials`, its `Authorization` (default mode: the relay's own credentials go
/// upstream). With `upgrade`, the upgrade offer itself goes along (`Upgrade` and `Connection:
/// Upgrade`). Also returns the path and query, for logs.
pub(crate) fn upstream_request(
    parts: &http::request::Parts,
    body: Bytes,
    forward_credentials: bool,
    upgrade: bool,
) -> Result<(Request<kube::client::Body>, String), http::Error> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(&path_and_query);
    if upgrade {
        builder = builder.header(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in &parts.headers {
            let offer = upgrade && name == header::UPGRADE;
            if !offer && HOP_BY_HOP.contains(&name.as_str()) {
                continue;
            }
            if !forward_credentials && name == header::AUTHORIZATION {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
    }
    Ok((
        builder.body(kube::client::Body::from(body))?,
        path_and_query,
    ))
}
