//! Per-object decoding: [`Decoded<K>`] wraps a watched object that may or may not decode as `K`.
//!
//! A typed LIST fails as a whole when one item does not decode, and a typed watch loses a bad
//! event. `Decoded<K>` always deserializes: either as the typed object or as its metadata plus
//! the decode error, so that one bad object is counted, logged and skipped while every other
//! object keeps syncing. An object that names another kind in its `apiVersion` or `kind` does
//! not decode as `K` (even when `K`'s own decoding ignores those fields, as kube's derived
//! custom resources do), and is marked [`InvalidObject::foreign`]. The reflector starts on a typed fast path (no `Decoded`) and watches
//! `Decoded<K>` from the first object that does not decode on (see `decode::stream`).
//!
//! Decoding costs one extra pass over the object's text, not a second decode: from serde_json's
//! own deserializer (which is what kube's client uses for lists and watch lines) the object is
//! taken as its raw JSON text, skipped over without allocating, and decoded as `K` from that
//! text; only when that fails is the text parsed again, for the metadata. Any other deserializer
//! (e.g. serde's buffering of a watch event whose `object` precedes its `type`) goes through a
//! `serde_json::Value`.

use std::borrow::Cow;
use std::cell::Cell;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::DynamicResourceScope;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, Visitor};
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
    /// The object names another kind in its `apiVersion` or `kind`: it is not one of the
    /// cache's objects at all, so not even its delete applies.
    pub foreign: bool,
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

impl<K> Decoded<K>
where
    K: Resource + DeserializeOwned,
    K::DynamicType: Default,
{
    /// Decodes one object from its JSON text, never failing: a bad object (one that does not
    /// decode as `K`, or whose `apiVersion` or `kind` names another kind) becomes
    /// [`Decoded::Invalid`].
    pub fn from_json(text: &str) -> Self {
        let foreign = Cell::new(false);
        let mut de = serde_json::Deserializer::from_str(text);
        let decoded = deserialize_checked_with::<K, _>(&mut de, &foreign)
            .and_then(|obj| de.end().map(|()| obj));
        match decoded {
            Ok(obj) => Decoded::Valid(obj),
            Err(err) => Decoded::Invalid(InvalidObject {
                metadata: serde_json::from_str::<MetadataOnly>(text)
                    .map(|m| m.metadata)
                    .unwrap_or_default(),
                error: err.to_string(),
                foreign: foreign.get(),
            }),
        }
    }

    /// Decodes one object from JSON, never failing: a bad object becomes [`Decoded::Invalid`].
    pub fn from_value(value: &serde_json::Value) -> Self {
        let foreign = Cell::new(false);
        match deserialize_checked_with::<K, _>(value, &foreign) {
            Ok(obj) => Decoded::Valid(obj),
            Err(err) => Decoded::Invalid(InvalidObject {
                metadata: value
                    .get("metadata")
                    .and_then(|m| ObjectMeta::deserialize(m).ok())
                    .unwrap_or_default(),
                error: err.to_string(),
                foreign: foreign.get(),
            }),
        }
    }
}

impl<'de, K> Deserialize<'de> for Decoded<K>
where
    K: Resource + DeserializeOwned,
    K::DynamicType: Default,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(RAW_VALUE_TOKEN, DecodedVisitor(PhantomData))
    }
}

/// A string, borrowed from the input when the deserializer can lend it.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> Text<'de> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
        }
    }

    /// Hands the string on to `seed`, as the deserializer gave it.
    fn into_seed<S: DeserializeSeed<'de>, E: serde::de::Error>(
        self,
        seed: S,
    ) -> Result<S::Value, E> {
        match self {
            Text::Borrowed(s) => seed.deserialize(BorrowedStrDeserializer::new(s)),
            Text::Owned(s) => seed.deserialize(StringDeserializer::new(s)),
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

impl<'de, K> Visitor<'de> for DecodedVisitor<K>
where
    K: Resource + DeserializeOwned,
    K::DynamicType: Default,
{
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

/// Decodes `K` from `deserializer`, refusing an object whose `apiVersion` or `kind` is given and
/// names something else than `K` (an object that is not what the cache holds). An object that
/// gives neither (as the items of some lists do) is taken as `K`; a kind whose type-level names
/// are empty (a dynamic type without its `DynamicType`) and a metadata-only kind
/// (`PartialObjectMeta<K>`, whose objects say `PartialObjectMetadata`) are not checked.
///
/// The check costs no extra pass: only the object's top-level `apiVersion` and `kind` entries
/// are looked at, as `K`'s own decoding reads them.
pub(crate) fn deserialize_checked<'de, K, D>(deserializer: D) -> Result<K, D::Error>
where
    K: Resource + Deserialize<'de>,
    K::DynamicType: Default,
    D: Deserializer<'de>,
{
    deserialize_checked_with(deserializer, &Cell::new(false))
}

/// [`deserialize_checked`], which also sets `foreign` when the object names another kind.
fn deserialize_checked_with<'de, K, D>(deserializer: D, foreign: &Cell<bool>) -> Result<K, D::Error>
where
    K: Resource + Deserialize<'de>,
    K::DynamicType: Default,
    D: Deserializer<'de>,
{
    let dt = K::DynamicType::default();
    let kind = K::kind(&dt);
    // Metadata-only objects call themselves `meta.k8s.io/v1` `PartialObjectMetadata`.
    if kind.is_empty() || K::metadata_api() {
        return K::deserialize(deserializer);
    }
    let api_version = K::api_version(&dt);
    K::deserialize(Checked {
        inner: deserializer,
        expect: Expect {
            api_version: &api_version,
            kind: &kind,
            foreign,
        },
    })
}

/// What an object must call itself, if it does.
#[derive(Clone, Copy)]
struct Expect<'a> {
    api_version: &'a str,
    kind: &'a str,
    /// Set when the object names another kind.
    foreign: &'a Cell<bool>,
}

/// A deserializer that hands `K`'s visitor a map whose `apiVersion` and `kind` are checked.
struct Checked<'a, D> {
    inner: D,
    expect: Expect<'a>,
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* visitor)
        })*
    };
}

macro_rules! checked {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* CheckedVisitor { inner: visitor, expect: self.expect })
        })*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Checked<'_, D> {
    type Error = D::Error;

    checked! {
        deserialize_any(),
        deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
    }

    forward! {
        deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_i128(), deserialize_u8(), deserialize_u16(),
        deserialize_u32(), deserialize_u64(), deserialize_u128(), deserialize_f32(),
        deserialize_f64(), deserialize_char(), deserialize_str(), deserialize_string(),
        deserialize_bytes(), deserialize_byte_buf(), deserialize_option(), deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_seq(), deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any(),
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

struct CheckedVisitor<'a, V> {
    inner: V,
    expect: Expect<'a>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for CheckedVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(CheckedMap {
            inner: map,
            expect: self.expect,
            pending: None,
        })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(seq)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.inner.visit_bool(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.inner.visit_i64(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.inner.visit_u64(v)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.inner.visit_f64(v)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.inner.visit_str(v)
    }
}

/// Which checked entry a value belongs to.
#[derive(Clone, Copy)]
enum Named {
    ApiVersion,
    Kind,
}

struct CheckedMap<'a, A> {
    inner: A,
    expect: Expect<'a>,
    pending: Option<Named>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CheckedMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let Some(key) = self.inner.next_key::<Text<'de>>()? else {
            return Ok(None);
        };
        self.pending = match key.as_str() {
            "apiVersion" => Some(Named::ApiVersion),
            "kind" => Some(Named::Kind),
            _ => None,
        };
        key.into_seed(seed).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let Some(named) = self.pending.take() else {
            return self.inner.next_value_seed(seed);
        };
        let value = self.inner.next_value::<Text<'de>>()?;
        let (field, expected) = match named {
            Named::ApiVersion => ("apiVersion", self.expect.api_version),
            Named::Kind => ("kind", self.expect.kind),
        };
        if value.as_str() != expected {
            self.expect.foreign.set(true);
            return Err(A::Error::custom(format_args!(
                "{field} is {:?}: not a {} {}",
                value.as_str(),
                self.expect.api_version,
                self.expect.kind
            )));
        }
        value.into_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
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
    fn an_object_of_another_kind_is_invalid_and_foreign() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "resourceVersion": "3"}, "data": {}});
        let other_version = json!({"apiVersion": "v2", "kind": "ConfigMap",
            "metadata": {"name": "c"}});
        for v in [secret, other_version] {
            for decoded in [
                Decoded::<ConfigMap>::from_value(&v),
                Decoded::<ConfigMap>::from_json(&v.to_string()),
            ] {
                match decoded {
                    Decoded::Invalid(bad) => {
                        assert!(bad.foreign, "{v}");
                        assert!(bad.error.contains("not a v1 ConfigMap"), "{}", bad.error);
                        assert!(bad.metadata.name.is_some());
                    }
                    Decoded::Valid(_) => panic!("{v} is not a ConfigMap"),
                }
            }
        }
        // A CRD type (whose own decoding ignores apiVersion and kind) is checked the same way.
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "spec": {"name": "p"}});
        assert!(
            matches!(Decoded::<PackageInfo>::from_json(&secret.to_string()),
            Decoded::Invalid(bad) if bad.foreign)
        );
        // The right kind, and an object that names no kind (as some list items), decode.
        let named = json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageInfo",
            "metadata": {"name": "p"}, "spec": {"name": "p"}});
        let unnamed = json!({"metadata": {"name": "p"}, "spec": {"name": "p"}});
        for v in [named, unnamed] {
            assert!(
                matches!(
                    Decoded::<PackageInfo>::from_json(&v.to_string()),
                    Decoded::Valid(_)
                ),
                "{v}"
            );
            assert!(
                matches!(Decoded::<PackageInfo>::from_value(&v), Decoded::Valid(_)),
                "{v}"
            );
        }
        // Metadata-only objects name themselves, not the kind.
        let partial = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "p"}});
        assert!(matches!(
            Decoded::<kube::core::PartialObjectMeta<ConfigMap>>::from_json(&partial.to_string()),
            Decoded::Valid(_)
        ));
        // Any other decode error is not foreign.
        let bad = json!({"metadata": {"name": "b"}, "spec": {"name": 5}});
        assert!(
            matches!(Decoded::<PackageInfo>::from_json(&bad.to_string()),
            Decoded::Invalid(bad) if !bad.foreign)
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
