//! `Status` bodies: how the API server reports a failed request (and a watch's `ERROR` event).

use serde::{Deserialize, Serialize};

use crate::target::qualified_resource;

/// Upstream's message for a continue token whose list snapshot is gone (410 Expired).
pub const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

/// The `reason` of a `Status` (apimachinery's `StatusReason`), with the HTTP code that goes
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reason {
    /// 400
    BadRequest,
    /// 401, the request carries no valid credentials
    Unauthorized,
    /// 403, the caller may not do this
    Forbidden,
    /// 404
    NotFound,
    /// 409, the object already exists
    AlreadyExists,
    /// 409, optimistic concurrency failed
    Conflict,
    /// 405
    MethodNotAllowed,
    /// 410, resource version or continue token too old
    Expired,
    /// 410 (other)
    Gone,
    /// 413
    RequestEntityTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 422
    Invalid,
    /// 429
    TooManyRequests,
    /// 500
    InternalError,
    /// 503
    ServiceUnavailable,
    /// 504
    Timeout,
    /// A reason this crate does not know (decoding only; written as the empty string).
    #[serde(other, rename = "")]
    Unknown,
}

impl Reason {
    /// The wire spelling of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::Expired => "Expired",
            Reason::Gone => "Gone",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
            Reason::Unknown => "",
        }
    }

    /// The HTTP status code that goes with the reason (500 for [`Reason::Unknown`]).
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::MethodNotAllowed => 405,
            Reason::Expired | Reason::Gone => 410,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::TooManyRequests => 429,
            Reason::InternalError | Reason::Unknown => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }

    /// The reason for a bare HTTP code (410 is `Expired`, anything unlisted `InternalError`).
    pub fn for_code(code: u16) -> Reason {
        match code {
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            405 => Reason::MethodNotAllowed,
            409 => Reason::Conflict,
            410 => Reason::Expired,
            413 => Reason::RequestEntityTooLarge,
            415 => Reason::UnsupportedMediaType,
            422 => Reason::Invalid,
            429 => Reason::TooManyRequests,
            503 => Reason::ServiceUnavailable,
            504 => Reason::Timeout,
            _ => Reason::InternalError,
        }
    }
}

/// One cause in `Status.details.causes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// Machine-readable (`FieldValueInvalid`, `ResourceVersionTooLarge`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field the cause is about (`spec.url`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `Status.details`: what the failure is about. Empty strings and lists are left out, as Go's
/// `omitempty` leaves them out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The API group (empty for the core group).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The kind, or the resource (upstream writes the plural for NotFound).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The object's UID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// When to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// Anything in `Status.metadata` (always empty here; unknown keys are ignored when decoding).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMeta {}

/// A `Status` body, fields in the order upstream writes them: `kind`, `apiVersion`, `metadata`,
/// `status`, `message`, `reason`, `details`, `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// Always empty.
    #[serde(default)]
    pub metadata: StatusMeta,
    /// `Failure` (or `Success`).
    pub status: String,
    /// Human-readable.
    #[serde(default)]
    pub message: String,
    /// Machine-readable.
    #[serde(default = "unknown")]
    pub reason: Reason,
    /// What it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    #[serde(default)]
    pub code: u16,
}

fn unknown() -> Reason {
    Reason::Unknown
}

impl Status {
    /// A `Failure` with `reason`, its code, and `message`.
    pub fn failure(reason: Reason, message: impl Into<String>) -> Self {
        Status {
            kind: "Status".to_owned(),
            api_version: "v1".to_owned(),
            metadata: StatusMeta {},
            status: "Failure".to_owned(),
            message: message.into(),
            reason,
            details: None,
            code: reason.code(),
        }
    }

    /// The same status with another HTTP code (an injected failure with an unusual code).
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = code;
        self
    }

    /// The same status with `details`.
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for a missing object: `<resource>.<group> "<name>" not found`, with its details.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Status::failure(
            Reason::NotFound,
            format!(
                "{} \"{name}\" not found",
                qualified_resource(group, resource)
            ),
        )
        .with_details(StatusDetails {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: resource.to_owned(),
            ..StatusDetails::default()
        })
    }

    /// 401 Unauthorized, as upstream's authentication filter answers a request whose credentials
    /// are missing or not valid: message `Unauthorized`, no details.
    pub fn unauthorized() -> Self {
        Status::failure(Reason::Unauthorized, "Unauthorized")
    }

    /// 403 Forbidden, as upstream's authorization filter answers a resource request it denies
    /// (apiserver's `responsewriters.Forbidden`):
    /// `<resource>.<group> "<name>" is forbidden: User "<user>" cannot <verb> resource "<resource>[/<subresource>]" in API group "<group>" in the namespace "<ns>"`
    /// (`at the cluster scope` without a namespace; no `"<name>"` for a request naming no object),
    /// with details `{name, group, kind: <resource>}`.
    pub fn forbidden(user: &str, verb: &str, target: &ForbiddenTarget<'_>) -> Self {
        let mut resource = target.resource.to_owned();
        if let Some(sub) = target.subresource.filter(|s| !s.is_empty()) {
            resource.push('/');
            resource.push_str(sub);
        }
        let group = target.group;
        let scope = match target.namespace.filter(|n| !n.is_empty()) {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let why = format!(
            "User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        );
        let qualified = qualified_resource(group, target.resource);
        let name = target.name.unwrap_or_default();
        let message = if name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} \"{name}\" is forbidden: {why}")
        };
        Status::failure(Reason::Forbidden, message).with_details(StatusDetails {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: target.resource.to_owned(),
            ..StatusDetails::default()
        })
    }

    /// 410 Expired for a continue token whose list snapshot is gone.
    pub fn expired_continue() -> Self {
        Status::failure(Reason::Expired, EXPIRED_CONTINUE)
    }

    /// The body's JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a body.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// What a denied request names, for [`Status::forbidden`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForbiddenTarget<'a> {
    /// The API group (empty for the core group).
    pub group: &'a str,
    /// The resource (plural).
    pub resource: &'a str,
    /// The subresource (`status`), if any.
    pub subresource: Option<&'a str>,
    /// The namespace; `None` (or empty) for a cluster-scoped request.
    pub namespace: Option<&'a str>,
    /// The object's name; `None` (or empty) for a request naming no object (LIST, WATCH, create).
    pub name: Option<&'a str>,
}
