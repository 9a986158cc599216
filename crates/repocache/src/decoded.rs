//! Per-object decoding: [`Decoded<K>`] wraps a watched object that may or may not decode as `K`.
//!
//! A typed LIST fails as a whole when one item does not decode, and a typed watch ends on one
//! bad event. The reflector therefore watches `Decoded<K>`, which always deserializes: either
//! as the typed object or as its metadata plus the decode error, so that one bad object is
//! counted, logged and skipped while every other object keeps syncing.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::DynamicResourceScope;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A watched object: decoded as `K`, or kept as metadata with the reason it did not decode.
// `Valid` is the common case and lives only until the writer takes the object: boxing it
// would cost an allocation per object to shrink the rare `Invalid`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Decoded<K> {
    /// The object decoded as `K`.
    Valid(K),
    /// The object did not decode as `K`.
    Invalid(InvalidObject),
}

/// What is known of an object that did not decode: its metadata (as far as it decoded) and the
/// decode error.
#[derive(Clone, Debug, Default)]
pub struct InvalidObject {
    /// The object's metadata; empty when even the metadata did not decode.
    pub metadata: ObjectMeta,
    /// Why the object did not decode.
    pub error: String,
}

impl<K: DeserializeOwned> Decoded<K> {
    /// Decodes one object from JSON, never failing: a bad object becomes [`Decoded::Invalid`].
    pub fn from_value(value: &serde_json::Value) -> Self {
        match K::deserialize(value) {
            Ok(obj) => Decoded::Valid(obj),
            Err(err) => Decoded::Invalid(InvalidObject {
                metadata: value
                    .get("metadata")
                    .and_then(|m| ObjectMeta::deserialize(m).ok())
                    .unwrap_or_default(),
                error: err.to_string(),
            }),
        }
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Self::from_value(&value))
    }
}

impl<K: Resource> Resource for Decoded<K> {
    type DynamicType = K::DynamicType;
    type Scope = DynamicResourceScope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn url_path(dt: &Self::DynamicType, namespace: Option<&str>) -> String {
        K::url_path(dt, namespace)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Decoded::Valid(obj) => obj.meta(),
            Decoded::Invalid(bad) => &bad.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Decoded::Valid(obj) => obj.meta_mut(),
            Decoded::Invalid(bad) => &mut bad.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    #[test]
    fn valid_object_decodes() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        match Decoded::<ConfigMap>::from_value(&v) {
            Decoded::Valid(cm) => assert_eq!(cm.data.unwrap()["k"], "v"),
            Decoded::Invalid(bad) => panic!("unexpected: {}", bad.error),
        }
    }

    #[test]
    fn invalid_object_keeps_its_metadata_and_error() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "bad", "resourceVersion": "7"}, "data": {"k": 5}});
        match Decoded::<ConfigMap>::from_value(&v) {
            Decoded::Invalid(bad) => {
                assert_eq!(bad.metadata.name.as_deref(), Some("bad"));
                assert_eq!(bad.metadata.resource_version.as_deref(), Some("7"));
                assert!(!bad.error.is_empty());
            }
            Decoded::Valid(_) => panic!("a number is not a string"),
        }
    }

    #[test]
    fn a_list_with_one_bad_item_still_decodes() {
        let list = json!([
            {"metadata": {"name": "a"}, "data": {"k": "v"}},
            {"metadata": {"name": "b"}, "data": {"k": 1}},
            "not even an object",
        ]);
        let items: Vec<Decoded<ConfigMap>> = serde_json::from_value(list).unwrap();
        assert!(matches!(items[0], Decoded::Valid(_)));
        assert!(matches!(items[1], Decoded::Invalid(_)));
        assert!(matches!(&items[2], Decoded::Invalid(bad) if bad.metadata.name.is_none()));
    }
}
