//! The redaction hook and its generic default.

use std::sync::Arc;

use serde_json::Value;

/// What a redacted credential is replaced with.
pub const REDACTED: &str = "<redacted>";

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

/// The generic default redaction: replaces the non-empty string value of every key named in
/// [`CREDENTIAL_KEYS`] anywhere under the object's `spec` with [`REDACTED`].
///
/// The library does not know the schema of the kinds it caches; pass a schema-aware hook (for
/// Glasskube, `glasskube_api::redact_json`) to [`DebugServerBuilder::redact`](super::DebugServerBuilder::redact)
/// in addition to, or instead of, this one.
pub fn redact_credentials(object: &mut Value) {
    if let Some(spec) = object.get_mut("spec") {
        redact_tree(spec);
    }
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
                        *s = REDACTED.to_owned();
                    }
                    other => redact_tree(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_tree),
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
        assert_eq!(obj["spec"]["auth"]["basic"]["username"], REDACTED);
        assert_eq!(obj["spec"]["auth"]["basic"]["password"], REDACTED);
        assert_eq!(
            obj["spec"]["auth"]["basic"]["passwordSecretRef"]["key"],
            "password"
        );
        assert_eq!(obj["spec"]["auth"]["bearer"]["token"], REDACTED);
        assert_eq!(obj["spec"]["auth"]["bearer"]["Token"], "");
        assert_eq!(obj["spec"]["list"][0]["apiKey"], REDACTED);
        assert_eq!(obj["status"]["token"], "kept");
        assert_eq!(obj["metadata"]["name"], "token");
    }
}
