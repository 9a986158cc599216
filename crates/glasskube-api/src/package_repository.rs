//! `PackageRepository`: a cluster-scoped source of Glasskube packages (an index URL plus optional
//! credentials). This is the kind the repocache cache is built around.
//!
//! Credentials (inline `spec.auth.basic.username`/`password`, `spec.auth.bearer.token`, the
//! userinfo of `spec.url`, and copies of all of them in the
//! [`LAST_APPLIED_ANNOTATION`]) must never be printed unless explicitly asked for:
//!
//! - the `Debug` output of [`PackageRepositorySpec`] and the auth types masks them;
//! - [`PackageRepository::redacted`] is the typed display form (`<redacted>` strings, the URL as
//!   `https://<redacted>@host/…`, the annotation dropped): for logs and tables, never for writing
//!   back;
//! - [`redact_json`] is the form of machine-readable dumps: each credential becomes a
//!   [`redaction_marker`], a JSON *object* `{"redacted": "<redacted>"}` where the CRD's schema
//!   requires a string, so that an API server refuses (422 Invalid, naming the field) to store a
//!   dump that is applied back, instead of overwriting the real credential with a placeholder.

use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, HasConditions, READY, condition_status, find_condition};

pub use k8s_openapi::api::core::v1::SecretKeySelector;

/// Annotation that marks the default repository; its value must be exactly `"true"`.
pub const DEFAULT_REPOSITORY_ANNOTATION: &str = "packages.glasskube.dev/default-repository";

/// Replacement text for redacted inline credentials.
pub const REDACTED: &str = "<redacted>";

/// The annotation `kubectl apply` keeps the whole applied object in (credentials included).
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The key of a [`redaction_marker`].
pub const REDACTION_MARKER_KEY: &str = "redacted";

/// What [`redact_json`] puts in place of a credential: `{"redacted": <display>}`, an object where
/// the schema requires a string, so that no API server accepts it back as the credential's value.
/// `display` is what a human may see ([`REDACTED`], or a URL with its userinfo masked).
pub fn redaction_marker(display: &str) -> serde_json::Value {
    serde_json::json!({ REDACTION_MARKER_KEY: display })
}

/// The display text of a [`redaction_marker`], or `None` if `value` is not one.
pub fn redaction_marker_text(value: &serde_json::Value) -> Option<&str> {
    match value.as_object() {
        Some(map) if map.len() == 1 => map.get(REDACTION_MARKER_KEY)?.as_str(),
        _ => None,
    }
}

/// `url` (with or without a scheme) with its userinfo replaced by [`REDACTED`], or `None` when
/// it has none; a string that does not parse as a URL but contains an `@` is masked whole.
/// [`k8s_selectors::url::mask_userinfo`] does the work (`http::Uri` parses).
pub fn mask_url_userinfo(url: &str) -> Option<String> {
    k8s_selectors::url::mask_userinfo(url, REDACTED)
}

/// Desired state of a PackageRepository.
// `Debug` (implemented below) masks the userinfo of `url`; the auth types mask their inline
// credentials. (A doc comment here would change the CRD's description.)
// Several `printcolumn(..)` entries repeat `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, PartialEq, Default, JsonSchema)]
#[kube(
    group = "packages.glasskube.dev",
    version = "v1alpha1",
    kind = "PackageRepository",
    plural = "packagerepositories",
    status = "PackageRepositoryStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "PackageRepository is a source of Glasskube packages (cluster-scoped).",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PackageRepositorySpec {
    /// Base URL of the repository index (required).
    pub url: String,
    /// Credentials for the repository, if it is private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<PackageRepositoryAuthSpec>,
}

/// `spec.auth`: either basic or bearer authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageRepositoryAuthSpec {
    /// HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<PackageRepositoryBasicAuthSpec>,
    /// HTTP bearer-token authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<PackageRepositoryBearerAuthSpec>,
}

/// `spec.auth.basic`: username and password, each inline or from a Secret key.
///
/// `Debug` masks the inline `username` and `password`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageRepositoryBasicAuthSpec {
    /// Inline username (a credential: redacted in dumps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret key holding the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretKeySelector>,
    /// Inline password (a credential: redacted in dumps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
}

/// `spec.auth.bearer`: a token, inline or from a Secret key.
///
/// `Debug` masks the inline `token`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageRepositoryBearerAuthSpec {
    /// Inline bearer token (a credential: redacted in dumps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Secret key holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeySelector>,
}

/// Observed state of a PackageRepository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageRepositoryStatus {
    /// Standard conditions; the operator writes `Ready` with reason `SyncCompleted`/`SyncFailed`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::tight::vec"
    )]
    pub conditions: Vec<Condition>,
}

/// Which authentication a repository is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthKind {
    /// No `spec.auth`, or neither `basic` nor `bearer` set.
    None,
    /// `spec.auth.basic` is set.
    Basic,
    /// `spec.auth.bearer` is set (and `basic` is not).
    Bearer,
}

impl AuthKind {
    /// Lower-case name (`none`, `basic`, `bearer`), e.g. for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Basic => "basic",
            AuthKind::Bearer => "bearer",
        }
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `true` when an optional inline credential carries a (non-empty) value.
fn is_set(value: Option<&String>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// Replaces a non-empty inline credential with [`REDACTED`].
fn redact_field(value: &mut Option<String>) {
    if is_set(value.as_ref()) {
        *value = Some(REDACTED.to_owned());
    }
}

/// Debug representation of an inline credential: never the value itself.
fn masked(value: Option<&String>) -> Option<&'static str> {
    value.map(|v| if v.is_empty() { "" } else { REDACTED })
}

impl fmt::Debug for PackageRepositorySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = mask_url_userinfo(&self.url);
        f.debug_struct("PackageRepositorySpec")
            .field("url", &url.as_deref().unwrap_or(&self.url))
            .field("auth", &self.auth)
            .finish()
    }
}

impl fmt::Debug for PackageRepositoryBasicAuthSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackageRepositoryBasicAuthSpec")
            .field("username", &masked(self.username.as_ref()))
            .field("username_secret_ref", &self.username_secret_ref)
            .field("password", &masked(self.password.as_ref()))
            .field("password_secret_ref", &self.password_secret_ref)
            .finish()
    }
}

impl fmt::Debug for PackageRepositoryBearerAuthSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackageRepositoryBearerAuthSpec")
            .field("token", &masked(self.token.as_ref()))
            .field("token_secret_ref", &self.token_secret_ref)
            .finish()
    }
}

impl PackageRepositoryAuthSpec {
    /// Which authentication this spec configures (`basic` wins if both are set).
    pub fn kind(&self) -> AuthKind {
        if self.basic.is_some() {
            AuthKind::Basic
        } else if self.bearer.is_some() {
            AuthKind::Bearer
        } else {
            AuthKind::None
        }
    }

    /// `true` if an inline username, password or token is set (non-empty).
    pub fn has_inline_credentials(&self) -> bool {
        let basic = self
            .basic
            .as_ref()
            .is_some_and(|b| is_set(b.username.as_ref()) || is_set(b.password.as_ref()));
        let bearer = self
            .bearer
            .as_ref()
            .is_some_and(|b| is_set(b.token.as_ref()));
        basic || bearer
    }

    /// Replaces inline username, password and token with [`REDACTED`]; Secret refs stay as they
    /// are.
    pub fn redact_credentials(&mut self) {
        if let Some(basic) = self.basic.as_mut() {
            redact_field(&mut basic.username);
            redact_field(&mut basic.password);
        }
        if let Some(bearer) = self.bearer.as_mut() {
            redact_field(&mut bearer.token);
        }
    }
}

impl PackageRepository {
    /// `true` if the repository carries the [`DEFAULT_REPOSITORY_ANNOTATION`] with value `"true"`.
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_REPOSITORY_ANNOTATION))
            .is_some_and(|v| v == "true")
    }

    /// The `Ready` condition, if the status has one.
    pub fn ready_condition(&self) -> Option<&Condition> {
        find_condition(self.conditions(), READY)
    }

    /// `Some(true)`/`Some(false)` from the `Ready` condition; `None` if absent or `Unknown`.
    pub fn is_ready(&self) -> Option<bool> {
        self.ready_condition().and_then(condition_status)
    }

    /// Which authentication the repository uses.
    pub fn auth_kind(&self) -> AuthKind {
        self.spec
            .auth
            .as_ref()
            .map_or(AuthKind::None, PackageRepositoryAuthSpec::kind)
    }

    /// `true` if the spec holds an inline username, password or token (as opposed to Secret
    /// references only).
    pub fn has_inline_credentials(&self) -> bool {
        self.spec
            .auth
            .as_ref()
            .is_some_and(PackageRepositoryAuthSpec::has_inline_credentials)
    }

    /// Replaces inline username, password and token with [`REDACTED`], masks the userinfo of
    /// `spec.url` and drops the [`LAST_APPLIED_ANNOTATION`], in place.
    pub fn redact_credentials(&mut self) {
        if let Some(auth) = self.spec.auth.as_mut() {
            auth.redact_credentials();
        }
        if let Some(masked) = mask_url_userinfo(&self.spec.url) {
            self.spec.url = masked;
        }
        if let Some(annotations) = self.metadata.annotations.as_mut() {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
    }

    /// A copy with inline credentials replaced by [`REDACTED`], the URL's userinfo masked and
    /// the [`LAST_APPLIED_ANNOTATION`] dropped: what logs and tables show unless credentials
    /// were explicitly asked for. It is a display form: written back to a server it would
    /// replace the credentials with the placeholder; machine-readable dumps use [`redact_json`].
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        copy.redact_credentials();
        copy
    }
}

impl HasConditions for PackageRepository {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }
}

/// Redacts credentials in raw PackageRepository JSON, in place, and returns how many values it
/// replaced or removed.
///
/// - non-empty `spec.auth.basic.username`, `spec.auth.basic.password` and
///   `spec.auth.bearer.token` become a [`redaction_marker`] of [`REDACTED`];
/// - `spec.url` with userinfo becomes a [`redaction_marker`] of the URL with its userinfo
///   masked ([`mask_url_userinfo`]);
/// - the [`LAST_APPLIED_ANNOTATION`] (a copy of the applied object, credentials included) is
///   removed from `metadata.annotations`.
///
/// Secret references are left alone. Markers are objects where the CRD requires strings, so an
/// API server refuses the redacted object (422) rather than store a placeholder over a real
/// credential. Already redacted values stay as they are (redacting twice changes nothing).
/// Also descends into list objects (`items[]`) and watch events (`object`), so a whole list or
/// event can be passed. Values of other shapes are left unchanged.
pub fn redact_json(value: &mut serde_json::Value) -> usize {
    let Some(object) = value.as_object_mut() else {
        return 0;
    };
    let mut count = 0;
    if let Some(serde_json::Value::Array(items)) = object.get_mut("items") {
        count += items.iter_mut().map(redact_json).sum::<usize>();
    }
    if let Some(inner) = object.get_mut("object") {
        count += redact_json(inner);
    }
    if let Some(annotations) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(serde_json::Value::as_object_mut)
        && annotations.remove(LAST_APPLIED_ANNOTATION).is_some()
    {
        count += 1;
    }
    let Some(spec) = object
        .get_mut("spec")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return count;
    };
    if let Some(url) = spec.get_mut("url")
        && let Some(masked) = url.as_str().and_then(mask_url_userinfo)
    {
        *url = redaction_marker(&masked);
        count += 1;
    }
    let Some(auth) = spec
        .get_mut("auth")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return count;
    };
    if let Some(basic) = auth
        .get_mut("basic")
        .and_then(serde_json::Value::as_object_mut)
    {
        count += redact_json_field(basic, "username");
        count += redact_json_field(basic, "password");
    }
    if let Some(bearer) = auth
        .get_mut("bearer")
        .and_then(serde_json::Value::as_object_mut)
    {
        count += redact_json_field(bearer, "token");
    }
    count
}

/// Replaces `map[key]` with a [`redaction_marker`] unless it is absent, `null`, an empty string
/// or a marker already.
fn redact_json_field(map: &mut serde_json::Map<String, serde_json::Value>, key: &str) -> usize {
    match map.get_mut(key) {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::String(s)) if s.is_empty() => 0,
        Some(v) if redaction_marker_text(v).is_some() => 0,
        Some(v) => {
            *v = redaction_marker(REDACTED);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_userinfo_is_masked_whole() {
        let cases = [
            ("https://u:p@host/x", Some("https://<redacted>@host/x")),
            ("https://tok@host", Some("https://<redacted>@host")),
            ("u:p@host/x", Some("<redacted>@host/x")),
            (
                "https://u:p@[::1]:8443/x",
                Some("https://<redacted>@[::1]:8443/x"),
            ),
            ("https://u:a/b@c@host/x?q=@#f@", Some("<redacted>")),
            ("https://host/x?user=a@b", None),
            ("https://host/x", None),
            ("", None),
        ];
        for (url, masked) in cases {
            assert_eq!(mask_url_userinfo(url).as_deref(), masked, "{url}");
        }
    }

    #[test]
    fn markers_round_trip_their_text() {
        let marker = redaction_marker("https://<redacted>@h");
        assert_eq!(redaction_marker_text(&marker), Some("https://<redacted>@h"));
        assert_eq!(redaction_marker_text(&serde_json::json!("x")), None);
        assert_eq!(
            redaction_marker_text(&serde_json::json!({"redacted": "x", "other": 1})),
            None
        );
    }
}
