//! Response bodies the relay makes itself: bytes it has whole, and `Status` errors. Below both
//! `proxy` and `upgrade`, which use them.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use k8s_wire::Status;

use crate::{BoxError, RelayBody};

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
