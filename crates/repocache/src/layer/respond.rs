//! Building the responses the API server would send: one object, a `…List` page, and the
//! `Status` failures a snapshot can decide on its own (404 NotFound, 410 Expired), the bodies
//! written by `k8s-wire`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use k8s_wire::{Reason, Status};
use serde::Serialize;

/// The header every locally answered response carries: the generation of the snapshot that
/// answered it (handy in logs and tests; the API server never sends it).
pub const GENERATION_HEADER: &str = "x-repocache-generation";

fn json(status: StatusCode, body: Vec<u8>, generation: Option<u64>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    if let Some(generation) = generation {
        headers.insert(GENERATION_HEADER, HeaderValue::from(generation));
    }
    response
}

/// 200 with one object.
pub(crate) fn object<K: Serialize>(
    obj: &K,
    generation: u64,
) -> Result<Response<Bytes>, serde_json::Error> {
    Ok(json(
        StatusCode::OK,
        serde_json::to_vec(obj)?,
        Some(generation),
    ))
}

/// The `metadata` of a list page.
pub(crate) struct ListMeta<'a> {
    pub resource_version: &'a str,
    pub continue_token: Option<&'a str>,
    pub remaining: Option<usize>,
}

/// 200 with a `<Kind>List`: `{"apiVersion","items","kind","metadata"}`, keys in the order
/// upstream's (unstructured) encoder writes them. Each object is serialized straight into the
/// body; nothing else is copied.
pub(crate) fn list<'a, K: Serialize + 'a>(
    api_version: &str,
    list_kind: &str,
    meta: &ListMeta<'_>,
    items: impl IntoIterator<Item = &'a Arc<K>>,
    generation: u64,
) -> Result<Response<Bytes>, serde_json::Error> {
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"apiVersion\":");
    serde_json::to_writer(&mut body, api_version)?;
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &**item)?;
    }
    body.extend_from_slice(b"],\"kind\":");
    serde_json::to_writer(&mut body, list_kind)?;
    body.extend_from_slice(b",\"metadata\":{");
    if let Some(token) = meta.continue_token {
        body.extend_from_slice(b"\"continue\":");
        serde_json::to_writer(&mut body, token)?;
        body.push(b',');
    }
    if let Some(remaining) = meta.remaining {
        body.extend_from_slice(format!("\"remainingItemCount\":{remaining},").as_bytes());
    }
    body.extend_from_slice(b"\"resourceVersion\":");
    serde_json::to_writer(&mut body, meta.resource_version)?;
    body.extend_from_slice(b"}}");
    Ok(json(StatusCode::OK, body, Some(generation)))
}

/// A `Status` failure (`k8s-wire`'s, as upstream writes it).
fn status(status: &Status, generation: Option<u64>) -> Response<Bytes> {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, status.to_json().into_bytes(), generation)
}

/// 404 NotFound for a missing object: `<plural>.<group> "<name>" not found`, with details.
pub(crate) fn not_found(group: &str, plural: &str, name: &str, generation: u64) -> Response<Bytes> {
    status(&Status::not_found(group, plural, name), Some(generation))
}

/// 410 Expired for a continue token whose snapshot is no longer held.
pub(crate) fn expired() -> Response<Bytes> {
    status(&Status::expired_continue(), None)
}

/// 500 InternalError when an object would not serialize (it never should).
pub(crate) fn internal(message: &str) -> Response<Bytes> {
    status(&Status::failure(Reason::InternalError, message), None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn not_found_is_upstreams_status() {
        let r = not_found("packages.glasskube.dev", "packagerepositories", "x", 3);
        assert_eq!(r.status(), 404);
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"packagerepositories.packages.glasskube.dev \"x\" not found",
                "reason":"NotFound","details":{"name":"x","group":"packages.glasskube.dev","kind":"packagerepositories"},
                "code":404})
        );
        let core = not_found("", "configmaps", "x", 3);
        let body: Value = serde_json::from_slice(core.body()).unwrap();
        assert_eq!(body["message"], "configmaps \"x\" not found");
        assert_eq!(body["details"], json!({"name":"x","kind":"configmaps"}));
    }

    #[test]
    fn list_shape() {
        let items = [Arc::new(json!({"a": 1})), Arc::new(json!({"b": "\""}))];
        let meta = ListMeta {
            resource_version: "7",
            continue_token: Some("tok"),
            remaining: Some(3),
        };
        let r = list("g/v1", "ThingList", &meta, items.iter(), 1).unwrap();
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body,
            json!({"apiVersion":"g/v1","kind":"ThingList","items":[{"a":1},{"b":"\""}],
                "metadata":{"resourceVersion":"7","continue":"tok","remainingItemCount":3}})
        );
        let meta = ListMeta {
            resource_version: "7",
            continue_token: None,
            remaining: None,
        };
        let r = list::<Value>("g/v1", "ThingList", &meta, [], 1).unwrap();
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["items"], json!([]));
        assert_eq!(body["metadata"], json!({"resourceVersion":"7"}));
    }
}
