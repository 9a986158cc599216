//! The redaction hook and its generic default.

use std::sync::Arc;

use serde_json::{Map, Value, json};

/// What a redacted credential shows as (the text inside a [`redaction_marker`]).
pub const REDACTED: &str = "<redacted>";

pub use crate::config::LAST_APPLIED_ANNOTATION;

/// The key of a [`redaction_marker`].
pub const REDACTION_MARKER_KEY: &str = "redacted";

/// Keys whose non-empty string values [`redact_credentials`] replaces anywhere under `spec`
/// (compared ASCII-case-insensitively).
pub const CREDENTIAL_KEYS: [&str; 10] = [
    "password",
    "token",
    "bearerToken",
    "username",
    "apiKey",
    "secret",
    "clientSecret",
    "secretKey",
    "accessKey",
    "privateKey",
];

/// A redaction hook: rewrites one serialized object in place before it leaves the process.
pub type Redactor = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// What redaction puts in place of a credential: `{"redacted": <display>}`.
///
/// It is an object where a schema requires a string (a password, a URL) or a base64 string (a
/// Secret's `data`), so an API server refuses a redacted dump that is applied back (422
/// Invalid, or 400 for built-in kinds) instead of storing a placeholder over the real value.
/// `display` is what a human may see: [`REDACTED`], or a URL with its userinfo masked. Tables
/// show the display text ([`redaction_marker_text`]).
pub fn redaction_marker(display: &str) -> Value {
    json!({ REDACTION_MARKER_KEY: display })
}

/// The display text of a [`redaction_marker`], or `None` if `value` is not one.
pub fn redaction_marker_text(value: &Value) -> Option<&str> {
    match value.as_object() {
        Some(map) if map.len() == 1 => map.get(REDACTION_MARKER_KEY)?.as_str(),
        _ => None,
    }
}

/// Replaces every [`redaction_marker`] in `value` by its display text, in place: the form
/// tables and other human-only outputs decode (it is not meant to be applied anywhere).
pub fn display_markers(value: &mut Value) {
    if let Some(text) = redaction_marker_text(value) {
        *value = Value::String(text.to_owned());
        return;
    }
    match value {
        Value::Object(map) => map.values_mut().for_each(display_markers),
        Value::Array(items) => items.iter_mut().for_each(display_markers),
        _ => {}
    }
}

/// `url` with its userinfo replaced by [`REDACTED`], or `None` when it is no `scheme://` URL or
/// has no userinfo. A `scheme://` string that does not parse as a URL but contains an `@` is
/// masked whole. The scheme is required because this scans every string of an object of any
/// kind (`user@example.org` is an address, not a URL); [`k8s_selectors::url::mask_userinfo`]
/// does the work, as it does for glasskube-api's `spec.url`.
pub fn mask_url_userinfo(url: &str) -> Option<String> {
    if !url.contains("://") {
        return None;
    }
    k8s_selectors::url::mask_userinfo(url, REDACTED)
}

/// The generic default redaction, for kinds whose schema the library does not know:
///
/// - the non-empty string value of every key named in [`CREDENTIAL_KEYS`] anywhere under the
///   object's `spec` becomes a [`redaction_marker`] of [`REDACTED`];
/// - every string anywhere in the object that is a `scheme://` URL with userinfo becomes a
///   marker of the URL with its userinfo masked ([`mask_url_userinfo`]);
/// - for a `Secret` (`apiVersion: v1`), every value of `data` and `stringData` becomes a marker;
/// - the [`LAST_APPLIED_ANNOTATION`] (a copy of the whole applied object) is removed.
///
/// Redacting twice changes nothing. The library does not know the schema of the kinds it
/// caches; pass a schema-aware hook (for Glasskube, `glasskube_api::redact_json`) to
/// [`DebugServerBuilder::redact`](super::DebugServerBuilder::redact) in addition to, or instead
/// of, this one.
pub fn redact_credentials(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(annotations) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let is_secret = map.get("kind").and_then(Value::as_str) == Some("Secret")
        && map.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if is_secret {
        for field in ["data", "stringData"] {
            if let Some(data) = map.get_mut(field).and_then(Value::as_object_mut) {
                data.values_mut()
                    .filter(|v| redaction_marker_text(v).is_none())
                    .for_each(|v| *v = redaction_marker(REDACTED));
            }
        }
    }
    if let Some(spec) = map.get_mut("spec") {
        redact_tree(spec);
    }
    mask_urls(map);
}

fn is_credential_key(key: &str) -> bool {
    CREDENTIAL_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

fn redact_tree(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if is_credential_key(key) && !s.is_empty() => {
                        *v = redaction_marker(REDACTED);
                    }
                    other => redact_tree(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_tree),
        _ => {}
    }
}

fn mask_urls(map: &mut Map<String, Value>) {
    for v in map.values_mut() {
        mask_urls_in(v);
    }
}

fn mask_urls_in(value: &mut Value) {
    if redaction_marker_text(value).is_some() {
        return;
    }
    match value {
        Value::String(s) => {
            if let Some(masked) = mask_url_userinfo(s) {
                *value = redaction_marker(&masked);
            }
        }
        Value::Object(map) => mask_urls(map),
        Value::Array(items) => items.iter_mut().for_each(mask_urls_in),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn redacts_credential_keys_under_spec_only() {
        let mut obj = json!({
            "metadata": {"name": "token"},
            "spec": {"url": "https://x", "auth": {
                "basic": {"username": "deploy", "password": "pw", "passwordSecretRef": {"name": "s", "key": "password"}},
                "bearer": {"token": "t", "Token": ""}},
                "list": [{"apiKey": "k"}]},
            "status": {"token": "kept"}
        });
        redact_credentials(&mut obj);
        let marker = redaction_marker(REDACTED);
        assert_eq!(obj["spec"]["auth"]["basic"]["username"], marker);
        assert_eq!(obj["spec"]["auth"]["basic"]["password"], marker);
        assert_eq!(
            obj["spec"]["auth"]["basic"]["passwordSecretRef"]["key"],
            "password"
        );
        assert_eq!(obj["spec"]["auth"]["bearer"]["token"], marker);
        assert_eq!(obj["spec"]["auth"]["bearer"]["Token"], "");
        assert_eq!(obj["spec"]["list"][0]["apiKey"], marker);
        assert_eq!(obj["status"]["token"], "kept");
        assert_eq!(obj["metadata"]["name"], "token");
        assert_eq!(obj["spec"]["url"], "https://x");
        // Idempotent, a URL marker included.
        obj["spec"]["mirror"] = redaction_marker("https://<redacted>@h/x");
        let once = obj.clone();
        redact_credentials(&mut obj);
        assert_eq!(obj, once);
        // Tables see the display text.
        display_markers(&mut obj);
        assert_eq!(obj["spec"]["auth"]["basic"]["password"], REDACTED);
    }

    #[test]
    fn redacts_secret_data_urls_and_the_last_applied_annotation() {
        let mut secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {
                LAST_APPLIED_ANNOTATION: "{\"data\":{\"password\":\"c2VjcmV0\"}}",
                "keep": "me"}},
            "data": {"password": "c2VjcmV0"},
            "stringData": {"token": "plain-token"},
            "status": {"endpoint": "https://user:pw@host:8443/x?q=1"},
        });
        redact_credentials(&mut secret);
        let text = secret.to_string();
        for leaked in ["c2VjcmV0", "plain-token", "user", ":pw@"] {
            assert!(!text.contains(leaked), "{leaked} in {text}");
        }
        assert_eq!(secret["data"]["password"], redaction_marker(REDACTED));
        assert_eq!(
            secret["status"]["endpoint"],
            redaction_marker("https://<redacted>@host:8443/x?q=1")
        );
        assert_eq!(secret["metadata"]["annotations"], json!({"keep": "me"}));
        // A ConfigMap's data is not a credential.
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
        redact_credentials(&mut cm);
        assert_eq!(cm["data"]["k"], "v");
    }

    #[test]
    fn url_userinfo_masking() {
        assert_eq!(
            mask_url_userinfo("https://u:p@h/x").as_deref(),
            Some("https://<redacted>@h/x")
        );
        assert_eq!(mask_url_userinfo("a@b.example"), None);
        assert_eq!(mask_url_userinfo("u:p@h/x"), None, "no scheme");
        assert_eq!(mask_url_userinfo("https://h/x?u=a@b"), None);
        assert_eq!(
            mask_url_userinfo("https://u:p@[::1]:8443/x").as_deref(),
            Some("https://<redacted>@[::1]:8443/x")
        );
        assert_eq!(
            mask_url_userinfo("https://u:p w@h/x").as_deref(),
            Some("<redacted>"),
            "not a URL, but a credential may be in it"
        );
    }
}
