//! Per-object decoding: [`Decoded<K>`] wraps a watched object that may or may not decode as `K`.
//!
//! A typed LIST fails as a whole when one item does not decode, and a typed watch loses a bad
//! event. `Decoded<K>` always deserializes: either as the typed object or as its metadata plus
//! the decode error, so that one bad object is counted, logged and skipped while every other
//! object keeps syncing. The reflector starts on a typed fast path (no `Decoded`) and watches
//! `Decoded<K>` from the first object that does not decode on (see the `decoding` module).
//!
//! Decoding costs one extra pass over the object's text, not a second decode: from serde_json's
//! own deserializer (which is what kube's client uses for lists and watch lines) the object is
//! taken as its raw JSON text, skipped over without allocating, and decoded as `K` from that
//! text; only when that fails is the text parsed again, for the metadata. Any other deserializer
//! (e.g. serde's buffering of a watch event whose `object` precedes its `type`) goes through a
//! `serde_json::Value`.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::DynamicResourceScope;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
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

/// An object's metadata and nothing else: every other field is skipped unparsed (serde_json
/// skips a value without a depth limit), so the metadata of an object nested too deep to decode,
/// or whose other fields are broken, is still known.
#[derive(Deserialize)]
struct MetadataOnly {
    #[serde(default)]
    metadata: ObjectMeta,
}

/// The name serde_json's deserializer recognizes to hand out a value's raw text (its
/// `RawValue` token). If a future serde_json stopped recognizing it, deserialization would take
/// the `visit_newtype_struct` path below: slower, never wrong.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<K: DeserializeOwned> Decoded<K> {
    /// Decodes one object from its JSON text, never failing: a bad object becomes
    /// [`Decoded::Invalid`].
    pub fn from_json(text: &str) -> Self {
        match serde_json::from_str::<K>(text) {
            Ok(obj) => Decoded::Valid(obj),
            Err(err) => Decoded::Invalid(InvalidObject {
                metadata: serde_json::from_str::<MetadataOnly>(text)
                    .map(|m| m.metadata)
                    .unwrap_or_default(),
                error: err.to_string(),
            }),
        }
    }

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
        deserializer.deserialize_newtype_struct(RAW_VALUE_TOKEN, DecodedVisitor(PhantomData))
    }
}

/// A string, borrowed from the input when the deserializer can lend it.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text::Borrowed(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text::Owned(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text::Owned(s))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Takes an object as raw JSON text (from serde_json) or as any value (from anything else).
struct DecodedVisitor<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned> Visitor<'de> for DecodedVisitor<K> {
    type Value = Decoded<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    /// serde_json hands a raw value over as a one-entry map `{TOKEN: "<the JSON text>"}`; any
    /// other map is an object given entry by entry.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(key) = map.next_key::<Text<'de>>()? else {
            return Ok(Decoded::from_value(&serde_json::Value::Object(
                Default::default(),
            )));
        };
        if key.as_str() == RAW_VALUE_TOKEN {
            let text = map.next_value::<Text<'de>>()?;
            return Ok(Decoded::from_json(text.as_str()));
        }
        let mut object = serde_json::Map::new();
        object.insert(key.as_str().to_owned(), map.next_value()?);
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            object.insert(k, v);
        }
        Ok(Decoded::from_value(&serde_json::Value::Object(object)))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Decoded::from_value(&value))
    }
}

/// The type-level half of `Resource` for a wrapper around `K` (`Decoded<K>`, and the reflector's
/// typed fast path): kind, group, version, plural, URL and metadata API are `K`'s, the scope is
/// dynamic (so that an `Api` of the wrapper can be narrowed to a namespace for any `K`). The
/// wrapper writes `meta`/`meta_mut` itself.
macro_rules! forward_resource_type {
    () => {
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

        fn metadata_api() -> bool {
            K::metadata_api()
        }
    };
}
pub(crate) use forward_resource_type;

impl<K: Resource> Resource for Decoded<K> {
    forward_resource_type!();

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
    use glasskube_api::PackageInfo;
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
    fn watch_events_decode_whichever_key_comes_first() {
        use kube::core::WatchEvent;
        for line in [
            r#"{"type":"ADDED","object":{"metadata":{"name":"a"},"data":{"k":"v"}}}"#,
            r#"{"object":{"metadata":{"name":"a"},"data":{"k":"v"}},"type":"ADDED"}"#,
        ] {
            match serde_json::from_str::<WatchEvent<Decoded<ConfigMap>>>(line).unwrap() {
                WatchEvent::Added(Decoded::Valid(cm)) => assert_eq!(cm.data.unwrap()["k"], "v"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let bad = r#"{"object":{"metadata":{"name":"b"},"data":{"k":1}},"type":"MODIFIED"}"#;
        match serde_json::from_str::<WatchEvent<Decoded<ConfigMap>>>(bad).unwrap() {
            WatchEvent::Modified(Decoded::Invalid(bad)) => {
                assert_eq!(bad.metadata.name.as_deref(), Some("b"));
            }
            other => panic!("{other:?}"),
        }
        let bad = r#"{"type":"MODIFIED","object":{"metadata":{"name":"c"},"data":{"k":1}}}"#;
        match serde_json::from_str::<WatchEvent<Decoded<ConfigMap>>>(bad).unwrap() {
            WatchEvent::Modified(Decoded::Invalid(bad)) => {
                assert_eq!(bad.metadata.name.as_deref(), Some("c"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_from_bytes_and_readers_too() {
        let list = br#"[{"metadata":{"name":"a"}},{"metadata":{"name":"b"},"data":{"k":1}}]"#;
        let items: Vec<Decoded<ConfigMap>> = serde_json::from_slice(list).unwrap();
        assert!(matches!(items[0], Decoded::Valid(_)));
        assert!(
            matches!(&items[1], Decoded::Invalid(bad) if bad.metadata.name.as_deref() == Some("b"))
        );
        let items: Vec<Decoded<ConfigMap>> = serde_json::from_reader(&list[..]).unwrap();
        assert!(matches!(items[0], Decoded::Valid(_)));
        assert!(matches!(items[1], Decoded::Invalid(_)));
    }

    #[test]
    fn an_object_nested_too_deep_keeps_its_metadata() {
        let mut deep = String::from("\"leaf\"");
        for _ in 0..1000 {
            deep = format!("{{\"n\":{deep}}}");
        }
        // PackageInfo's manifest takes any JSON, at any depth serde_json allows.
        let text = format!(
            r#"{{"metadata":{{"name":"deep","resourceVersion":"5"}},"spec":{{"name":"p"}},"status":{{"manifest":{deep}}}}}"#
        );
        match Decoded::<PackageInfo>::from_json(&text) {
            Decoded::Invalid(bad) => {
                assert_eq!(bad.metadata.name.as_deref(), Some("deep"));
                assert_eq!(bad.metadata.resource_version.as_deref(), Some("5"));
                assert!(bad.error.contains("recursion limit"), "{}", bad.error);
            }
            Decoded::Valid(_) => panic!("nested past the recursion limit"),
        }
        // Inside a list, the raw capture of the item has no depth limit either.
        let list = format!(r#"[{{"metadata":{{"name":"a"}},"spec":{{"name":"p"}}}},{text}]"#);
        let items: Vec<Decoded<PackageInfo>> = serde_json::from_str(&list).unwrap();
        assert!(matches!(items[0], Decoded::Valid(_)));
        assert!(
            matches!(&items[1], Decoded::Invalid(bad) if bad.metadata.name.as_deref() == Some("deep"))
        );
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
