//! Errors: the Kubernetes `Status` objects the server answers with, and the library's own error type.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use k8s_wire::qualified_resource;
use serde_json::{Value, json};

/// The `reason` of a Kubernetes `Status` (apimachinery's `StatusReason`): `k8s-wire`'s.
pub use k8s_wire::Reason;

/// An API error, rendered as a Kubernetes `Status` object with the matching HTTP code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {}: {message}", reason.as_str())]
pub struct ApiError {
    /// HTTP status code (normally `reason.code()`).
    pub code: u16,
    /// The `Status.reason`.
    pub reason: Reason,
    /// Human-readable message.
    pub message: String,
    /// `Status.details` (`name`, `group`, `kind`, `causes`, `retryAfterSeconds`), if any.
    pub details: Option<Value>,
    /// `Retry-After` header value in seconds (429 and friends).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error with the code that belongs to `reason`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code: reason.code(),
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Attach `Status.details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The error a `k8s-wire` `Status` describes (its code, reason, message and details).
    pub fn from_wire(status: k8s_wire::Status) -> Self {
        ApiError {
            code: status.code,
            reason: status.reason,
            message: status.message,
            details: status.details.and_then(|d| serde_json::to_value(d).ok()),
            retry_after: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// 404 for a path that names no resource (upstream's generic message).
    pub fn path_not_found() -> Self {
        Self::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 404 for a missing object: `packagerepositories.packages.glasskube.dev "x" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified_resource(group, plural)),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            Reason::AlreadyExists,
            format!(
                "{} \"{name}\" already exists",
                qualified_resource(group, plural)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified_resource(group, plural)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 422 Invalid with one field cause.
    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, detail: &str) -> Self {
        Self::new(
            Reason::Invalid,
            format!(
                "{} \"{name}\" is invalid: {field}: {detail}",
                qualified_resource(group, kind)
            ),
        )
        .with_details(json!({
            "name": name, "group": group, "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]
        }))
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    /// 410 Expired: a watch asked for a resourceVersion older than the history window.
    pub fn too_old(requested: u64, oldest: u64) -> Self {
        Self::new(
            Reason::Expired,
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 504 Timeout: a resourceVersion newer than the server's.
    pub fn too_large(requested: u64, current: u64) -> Self {
        Self::new(
            Reason::Timeout,
            format!("Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}))
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// An injected failure with an arbitrary HTTP code.
    pub fn injected(code: u16, message: Option<String>, retry_after: Option<u64>) -> Self {
        let reason = Reason::for_code(code);
        let message = message.unwrap_or_else(|| match reason {
            Reason::TooManyRequests => "Too many requests, please try again later.".to_string(),
            Reason::ServiceUnavailable => "the server is currently unable to handle the request".to_string(),
            Reason::Timeout => "the server was unable to return a response in the time allotted, but may still be processing the request".to_string(),
            _ => "an error on the server (\"apisim injected failure\") has prevented the request from succeeding".to_string(),
        });
        let mut e = ApiError {
            code,
            reason,
            message,
            details: None,
            retry_after,
        };
        if let Some(secs) = retry_after {
            e.details = Some(json!({"retryAfterSeconds": secs}));
        }
        e
    }

    /// The `Status` body, as upstream writes it (`k8s-wire`). `details` that do not have the
    /// shape of `StatusDetails` are left out (every constructor here writes that shape).
    pub fn wire_status(&self) -> k8s_wire::Status {
        let status =
            k8s_wire::Status::failure(self.reason, self.message.clone()).with_code(self.code);
        match self
            .details
            .as_ref()
            .map(|d| serde_json::from_value::<k8s_wire::StatusDetails>(d.clone()))
        {
            Some(Ok(details)) => status.with_details(details),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Status details of an unexpected shape left out");
                status
            }
            None => status,
        }
    }

    /// The `Status` object as JSON.
    pub fn to_status(&self) -> Value {
        serde_json::to_value(self.wire_status()).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.wire_status().to_json();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Errors of the library API (starting the server, loading seeds, writing files).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or serving failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A seed document was not valid YAML, or not an object.
    #[error("invalid seed YAML: {0}")]
    SeedYaml(String),
    /// A seed object names a kind that is not registered.
    #[error("seed object {0}: no resource registered for this apiVersion/kind")]
    UnknownKind(String),
    /// A seed object was rejected by the store.
    #[error("seed object rejected: {0}")]
    Seed(ApiError),
    /// Building the kube client failed.
    #[error("building kube client: {0}")]
    Client(String),
    /// Serialising a kubeconfig failed.
    #[error("serialising kubeconfig: {0}")]
    Kubeconfig(String),
    /// An API-level error from a handle operation.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A policy file that does not parse (see [`Policy`](crate::policy::Policy)).
    #[error("invalid policy: {0}")]
    Policy(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shape() {
        let s =
            ApiError::not_found("packages.glasskube.dev", "packagerepositories", "x").to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["kind"], "packagerepositories");
        assert_eq!(
            s["message"],
            "packagerepositories.packages.glasskube.dev \"x\" not found"
        );
    }

    #[test]
    fn injected_429_has_retry_after() {
        let e = ApiError::injected(429, None, Some(3));
        assert_eq!(e.reason, Reason::TooManyRequests);
        let r = e.into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }
}
