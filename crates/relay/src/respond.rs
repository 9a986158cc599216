//! What `proxy` and `upgrade` share, below both: the bodies the relay makes itself (bytes it has
//! whole, `Status` errors) and the headers that are never forwarded.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
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
