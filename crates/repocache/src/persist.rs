//! Warm start: a cache persists its verified snapshot to a file, and a new process starts from
//! it instead of from nothing.
//!
//! Configure it with [`Persist`] through [`CacheConfig::persist`](crate::CacheConfig::persist)
//! (or [`ReflectorBuilder::persist`](crate::ReflectorBuilder::persist), or a
//! [`KindOptions`](crate::KindOptions)' `configure_cache`). Then:
//!
//! 1. **Start**: when the cache's file exists and is whole (right magic, format version,
//!    checksum, kind, apiVersion and key), its objects are published at once as an
//!    *unverified* snapshot. [`Cache::state`](crate::Cache::state) is
//!    [`CacheState::Stale`](crate::CacheState::Stale) with the reason [`WARM_START`] and
//!    `since` = when the file was written; [`ReadPolicy::Cached`](crate::ReadPolicy::Cached)
//!    reads answer from it, and [`ReadPolicy::MaxStaleness`](crate::ReadPolicy::MaxStaleness)`(d)`
//!    does while the file's age is within `d` (the snapshot's
//!    [`since_confirmed`](crate::Snapshot::since_confirmed) is the file's age). The cache is
//!    **not ready**: `wait_ready`, `is_ready`, `AtLeast` and `Consistent` treat it as not yet
//!    synced.
//! 2. **Verify**: the reflector starts as a cold one does, with one LIST; it never resumes a
//!    watch from the file's resourceVersion (the API server keeps ~75 s of watch history, etcd
//!    compacts every 5 minutes, a restarted server may have none). The LIST replaces the
//!    unverified snapshot in one publish, reusing the `Arc` of every object whose
//!    resourceVersion and uid did not change; subscribers receive exactly what changed while
//!    the process was away; then the cache is ready.
//! 3. **Write**: once verified, the file is rewritten at most every
//!    [`rewrite_interval`](Persist::rewrite_interval) while the snapshot changes, and when the
//!    reflector task ends (stop, handle dropped, runtime shut down).
//!
//! A file that is corrupt, truncated, bit-flipped, of another format version, another kind or
//! another server/user/scope is reported with one warning, moved aside (`<file>.bad-<ms>`) and
//! treated as absent: the cache starts cold. See [`format`](mod@format) for the layout.
//!
//! # Security
//!
//! The directory is made `0700` and every file `0600`. Inline credentials are not written by
//! default: the [`redact`](Persist::redact) hook (by default [`strip_inline_credentials`])
//! removes them before an object is written, and such an object is flagged and **not served
//! from the unverified snapshot** (it appears once the LIST verified it).
//! [`keep_credentials`](Persist::keep_credentials) is the documented opt-in that writes them.
//! The file name is a hash of the server, the user, the kind and the scope: a user name (or a
//! token someone passed as identity) never appears in clear.

pub mod file;
pub mod format;
pub mod key;
mod load;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, warn};

use crate::snapshot::Snapshot;
use format::{FLAG_REDACTED, FormatError, Header, Record};
use key::FileKey;

pub use crate::state::WARM_START;

/// How often a cache rewrites its file at most, while its snapshot changes: 30 s.
pub const DEFAULT_REWRITE_INTERVAL: Duration = Duration::from_secs(30);

/// A hook that removes inline credentials from an object's JSON before it is written; returns
/// whether it removed any.
pub type Redact = Arc<dyn Fn(&mut Value) -> bool + Send + Sync>;

/// Where and how a cache persists its snapshot (see the [module docs](self)).
#[derive(Clone)]
pub struct Persist {
    pub(crate) dir: PathBuf,
    pub(crate) server: String,
    pub(crate) user: String,
    pub(crate) rewrite_interval: Duration,
    pub(crate) keep_credentials: bool,
    pub(crate) redact: Redact,
}

impl fmt::Debug for Persist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The server and user identities are left out: a user name is a credential, and a
        // server URL may carry userinfo.
        f.debug_struct("Persist")
            .field("dir", &self.dir)
            .field("rewrite_interval", &self.rewrite_interval)
            .field("keep_credentials", &self.keep_credentials)
            .finish_non_exhaustive()
    }
}

impl Persist {
    /// Files in `dir` (created `0700` if missing), for the API server identified by `server`
    /// (e.g. its URL; a cache of another server never reads this one's file).
    pub fn new(dir: impl Into<PathBuf>, server: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            server: server.into(),
            user: String::new(),
            rewrite_interval: DEFAULT_REWRITE_INTERVAL,
            keep_credentials: false,
            redact: Arc::new(strip_inline_credentials),
        }
    }

    /// The user identity the cache reads as (e.g. the kubeconfig user): two users never share
    /// a file, as they may not see the same objects. Hashed into the file name, never stored in
    /// clear.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// How often the file is rewritten at most while the snapshot changes (default
    /// [`DEFAULT_REWRITE_INTERVAL`]; zero: at the reflector's next housekeeping tick, about
    /// once a second). It is also written when the reflector task ends.
    pub fn rewrite_interval(mut self, interval: Duration) -> Self {
        self.rewrite_interval = interval;
        self
    }

    /// Opt-in: writes inline credentials to the file (the file is still `0600`), and serves
    /// objects that carry them from the unverified snapshot. Off by default.
    pub fn keep_credentials(mut self, keep: bool) -> Self {
        self.keep_credentials = keep;
        self
    }

    /// Replaces the hook that removes inline credentials before an object is written (default
    /// [`strip_inline_credentials`]).
    pub fn redact(mut self, redact: impl Fn(&mut Value) -> bool + Send + Sync + 'static) -> Self {
        self.redact = Arc::new(redact);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The default [`Persist::redact`] hook: removes the inline credentials repocache knows of:
/// a PackageRepository's `spec.auth.basic.username`/`password` and `spec.auth.bearer.token`,
/// the userinfo of its `spec.url`, and a Secret's `data` and `stringData`.
pub fn strip_inline_credentials(obj: &mut Value) -> bool {
    let mut removed = false;
    if obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && let Some(map) = obj.as_object_mut()
    {
        removed |= map.remove("data").is_some();
        removed |= map.remove("stringData").is_some();
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return removed;
    };
    if let Some(auth) = spec.get_mut("auth").and_then(Value::as_object_mut) {
        if let Some(basic) = auth.get_mut("basic").and_then(Value::as_object_mut) {
            removed |= basic.remove("username").is_some();
            removed |= basic.remove("password").is_some();
        }
        if let Some(bearer) = auth.get_mut("bearer").and_then(Value::as_object_mut) {
            removed |= bearer.remove("token").is_some();
        }
    }
    if let Some(Value::String(url)) = spec.get_mut("url")
        && let Some((scheme, rest)) = url.split_once("://")
    {
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            *url = format!("{scheme}://{}", &rest[at + 1..]);
            removed = true;
        }
    }
    removed
}

/// Decodes one stored object's JSON (written by serde_json): with sonic-rs, a SIMD JSON parser
/// that drives the same `Deserialize` implementations about a third faster than serde_json on
/// these objects (decoding is most of a warm start), and with serde_json, the reference, when
/// sonic-rs refuses the bytes (a type that relies on serde_json's internals, such as
/// `RawValue`) or when they may hold a negative zero (`-0.0`, which sonic-rs reads as `0.0`):
/// a file serde_json reads is never rejected, nor read differently, for the faster path's
/// sake. Every other JSON in the crate is serde_json's.
pub(crate) fn decode_object<K: DeserializeOwned>(json: &[u8]) -> Result<K, String> {
    let reference = |json| serde_json::from_slice::<K>(json).map_err(|e| e.to_string());
    // serde_json writes a negative zero as `-0.0` (and nothing else as those bytes outside a
    // string): a match inside a string only costs the slower decoder. (One searcher for every
    // object: building one per call cost more than the search itself.)
    static NEGATIVE_ZERO: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"-0.0"));
    if NEGATIVE_ZERO.find(json).is_some() {
        return reference(json);
    }
    match sonic_rs::from_slice::<K>(json) {
        Ok(object) => Ok(object),
        Err(fast) => reference(json).inspect_err(|_| {
            debug!(sonic_rs = %fast, "stored object refused by both JSON decoders");
        }),
    }
}

/// Why a warm-start file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a whole warm-start file of this cache.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: FormatError,
    },
    /// An object in the file does not decode as the cache's kind (the kind's schema changed),
    /// or an object could not be encoded.
    #[error("{path}: object {index}: {message}")]
    Object {
        /// The file.
        path: PathBuf,
        /// The object's position in the file.
        index: usize,
        /// The decoder's message.
        message: String,
    },
}

/// Serializes an object to JSON (captured where `K: Serialize` is known).
pub(crate) type ToJson<K> = Arc<dyn Fn(&K) -> serde_json::Result<Value> + Send + Sync>;

/// A [`Persist`] with the kind's serializer: what [`CacheConfig`](crate::CacheConfig) holds.
pub(crate) struct Plan<K> {
    pub(crate) persist: Persist,
    pub(crate) to_json: ToJson<K>,
}

impl<K> Clone for Plan<K> {
    fn clone(&self) -> Self {
        Self {
            persist: self.persist.clone(),
            to_json: self.to_json.clone(),
        }
    }
}

/// What a warm-start file held, as loaded.
pub(crate) struct Loaded<K> {
    /// The objects to serve unverified (those stored without credentials are left out), each
    /// in its `Arc` (allocated by the decoding threads).
    pub(crate) objects: Vec<Arc<K>>,
    /// Objects stored without their credentials: not served until verified.
    pub(crate) withheld: usize,
    /// How old the file was when loaded.
    pub(crate) age: Duration,
}

/// One cache's file: where it is, what it must hold, and how to write it.
pub(crate) struct Store<K> {
    plan: Plan<K>,
    key: FileKey,
    path: PathBuf,
    api_version: String,
    kind: String,
    /// The server's hashed identity ([`key::server_id`]).
    server: String,
    /// The generation last written (0: none); serializes writers within the process.
    written: Mutex<u64>,
}

impl<K> Store<K>
where
    K: Resource,
    K::DynamicType: Default,
{
    /// The file of this cache: kind, namespace and selectors complete the key.
    pub(crate) fn new(
        plan: Plan<K>,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Self {
        let dt = K::DynamicType::default();
        let api_version = K::api_version(&dt).into_owned();
        let kind = K::kind(&dt).into_owned();
        let key = FileKey::new(
            &plan.persist.server,
            &plan.persist.user,
            &api_version,
            &kind,
            namespace,
            label_selector,
            field_selector,
        );
        let path = plan.persist.dir.join(key.file_name());
        let server = key::server_id(&plan.persist.server);
        Self {
            server,
            plan,
            key,
            path,
            api_version,
            kind,
            written: Mutex::new(0),
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How often to rewrite at most.
    pub(crate) fn rewrite_interval(&self) -> Duration {
        self.plan.persist.rewrite_interval
    }

    /// Loads the file: `None` when it is absent, or bad (then it is reported with one warning
    /// and moved aside).
    pub(crate) fn load(&self) -> Option<Loaded<K>>
    where
        K: DeserializeOwned + Send + Sync,
    {
        match self.try_load() {
            Ok(loaded) => loaded,
            Err(err) => {
                let aside = file::move_aside(&self.path);
                warn!(
                    kind = %self.kind,
                    error = %err,
                    moved_to = ?aside.as_ref().ok(),
                    "warm-start file ignored (starting cold)"
                );
                None
            }
        }
    }

    fn try_load(&self) -> Result<Option<Loaded<K>>, PersistError>
    where
        K: DeserializeOwned + Send + Sync,
    {
        let io = |source| PersistError::Io {
            path: self.path.clone(),
            source,
        };
        // The stages' times go to the debug event below (see the `warm_profile` example).
        let started = Instant::now();
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                debug!(kind = %self.kind, path = %self.path.display(), "no warm-start file");
                return Ok(None);
            }
            Err(e) => return Err(io(e)),
        };
        let len = file.metadata().map_err(io)?.len();
        let reader = format::Reader::new(file, len).map_err(|e| load::read_error(&self.path, e))?;
        let loaded = load::load::<K, _>(
            reader,
            &self.path,
            self.plan.persist.keep_credentials,
            |header| {
                format::check(
                    header,
                    &self.api_version,
                    &self.kind,
                    &self.server,
                    self.key.hash(),
                )
            },
        )?;
        let decoded = started.elapsed();
        let written = UNIX_EPOCH + Duration::from_millis(loaded.header.written_at_ms);
        let age = SystemTime::now()
            .duration_since(written)
            .unwrap_or_default();
        debug!(
            kind = %self.kind,
            objects = loaded.objects.len(),
            withheld = loaded.withheld,
            ?age,
            read = ?loaded.read,
            ?decoded,
            threads = loaded.threads,
            per_thread = ?loaded.per_thread,
            buffers = loaded.buffers,
            "warm-start file loaded (read: the last batch read, decoded: all decoded and the \
             file checked, since the load started; batches decoded per thread, this one first)"
        );
        Ok(Some(Loaded {
            objects: loaded.objects,
            withheld: loaded.withheld,
            age,
        }))
    }
}

impl<K> Store<K> {
    /// Writes `snapshot` unless a newer or equal generation was written already. Returns
    /// whether it wrote.
    pub(crate) fn save(&self, snapshot: &Snapshot<K>) -> Result<bool, PersistError> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if snapshot.generation() <= *written {
            return Ok(false);
        }
        let bytes = self.encode(snapshot)?;
        let dir = &self.plan.persist.dir;
        file::write_atomic(dir, &self.key.file_name(), &bytes).map_err(|source| {
            PersistError::Io {
                path: self.path.clone(),
                source,
            }
        })?;
        *written = snapshot.generation();
        debug!(kind = %self.kind, objects = snapshot.len(), bytes = bytes.len(), "warm-start file written");
        Ok(true)
    }

    /// The file's bytes for `snapshot`.
    pub(crate) fn encode(&self, snapshot: &Snapshot<K>) -> Result<Vec<u8>, PersistError> {
        let persist = &self.plan.persist;
        let mut records = Vec::with_capacity(snapshot.len());
        for (index, obj) in snapshot.iter().enumerate() {
            let mut value = (self.plan.to_json)(obj).map_err(|e| PersistError::Object {
                path: self.path.clone(),
                index,
                message: e.to_string(),
            })?;
            let redacted = !persist.keep_credentials && (persist.redact)(&mut value);
            let json = serde_json::to_vec(&value).map_err(|e| PersistError::Object {
                path: self.path.clone(),
                index,
                message: e.to_string(),
            })?;
            records.push(Record {
                flags: if redacted { FLAG_REDACTED } else { 0 },
                json,
            });
        }
        let header = Header {
            kind: self.kind.clone(),
            api_version: self.api_version.clone(),
            server: self.server.clone(),
            key: self.key.hash().to_owned(),
            resource_version: snapshot.resource_version().map(str::to_owned),
            written_at_ms: file::unix_ms(SystemTime::now()),
            objects: 0,
            credentials: persist.keep_credentials,
        };
        Ok(format::encode(&header, &records))
    }
}

/// Keeps the file of a verified cache up to date (owned by the reflector task).
pub(crate) struct Persister<K> {
    pub(crate) store: Arc<Store<K>>,
    /// When the last write started (`None`: never).
    last: Option<Instant>,
    /// The cache has been verified by a LIST: its snapshot may be written.
    verified: bool,
    shared: Arc<crate::shared::Shared<K>>,
}

impl<K> Persister<K>
where
    K: Resource + Send + Sync + 'static,
    K::DynamicType: Default,
{
    pub(crate) fn new(store: Arc<Store<K>>, shared: Arc<crate::shared::Shared<K>>) -> Self {
        Self {
            store,
            last: None,
            verified: false,
            shared,
        }
    }

    /// The cache was verified (a relist completed): its snapshots may be written.
    pub(crate) fn verified(&mut self) {
        self.verified = true;
    }

    /// Writes the current snapshot in the background when it changed and the rewrite interval
    /// has passed since the last write.
    pub(crate) fn tick(&mut self) {
        if !self.verified
            || self
                .last
                .is_some_and(|at| at.elapsed() < self.store.rewrite_interval())
        {
            return;
        }
        let snapshot = self.shared.current.load_full();
        if snapshot.generation() <= *self.store.written.lock().unwrap_or_else(|p| p.into_inner()) {
            return;
        }
        self.last = Some(Instant::now());
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = store.save(&snapshot) {
                warn!(error = %err, "warm-start file not written");
            }
        });
    }
}

impl<K> Drop for Persister<K> {
    fn drop(&mut self) {
        // The reflector task ended: write what it verified last (blocking, once).
        if !self.verified {
            return;
        }
        let snapshot = self.shared.current.load_full();
        if let Err(err) = self.store.save(&snapshot) {
            warn!(error = %err, "warm-start file not written at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use glasskube_api::{ClusterPackage, Package, PackageInfo, PackageRepository};
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::decode_object;

    /// An object's JSON as a cache writes it to its file ([`super::Store::encode`]).
    fn stored<K: Serialize>(object: &K) -> Vec<u8> {
        serde_json::to_vec(&serde_json::to_value(object).unwrap()).unwrap()
    }

    /// The fast decoder itself (not its serde_json fallback) reads `object`'s stored JSON back
    /// as an object that serializes to the same bytes, and equal to serde_json's (the
    /// reference) wherever serde_json reproduces those bytes too; [`decode_object`] gives the
    /// fast decoder's. (serde_json's default float parsing may be one ULP off, which sonic-rs
    /// is not: there the fast path is the exact one. A `Time` is stored at whole seconds, as
    /// Kubernetes does, by both.)
    fn same_through_both<K>(object: &K)
    where
        K: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let json = stored(object);
        if memchr::memmem::find(&json, b"-0.0").is_some() {
            // Left to serde_json by design (sonic-rs reads a negative zero as 0.0).
            assert_eq!(
                decode_object::<K>(&json).unwrap(),
                serde_json::from_slice(&json).unwrap()
            );
            return;
        }
        let fast: K = sonic_rs::from_slice(&json)
            .unwrap_or_else(|e| panic!("sonic-rs refused {}: {e}", String::from_utf8_lossy(&json)));
        let reference: K = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&stored(&fast)),
            String::from_utf8_lossy(&json),
            "the fast decoder's object does not reproduce the stored JSON"
        );
        if stored(&reference) == json {
            assert_eq!(fast, reference);
        }
        assert_eq!(decode_object::<K>(&json).unwrap(), fast);
    }

    fn each_fixture<K>(text: &str, kind: &str)
    where
        K: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let mut seen = 0;
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value = Value::deserialize(doc).unwrap();
            if value["kind"] == kind {
                same_through_both(&serde_json::from_value::<K>(value).unwrap());
                seen += 1;
            }
        }
        assert!(seen > 0, "no {kind} in the fixtures");
    }

    use serde::Deserialize as _;

    #[test]
    fn every_fixture_decodes_identically_through_both_decoders() {
        let repositories = include_str!("../../../fixtures/packagerepositories.yaml");
        let packages = include_str!("../../../fixtures/packages.yaml");
        each_fixture::<PackageRepository>(repositories, "PackageRepository");
        each_fixture::<Package>(packages, "Package");
        each_fixture::<ClusterPackage>(packages, "ClusterPackage");
        each_fixture::<PackageInfo>(packages, "PackageInfo");
    }

    #[test]
    fn a_full_object_decodes_identically_through_both_decoders() {
        // Every metadata field k8s-openapi carries (managedFields, owner references,
        // timestamps with fractions), as a cache that keeps them (`no_transform`) writes it.
        let object: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "full", "namespace": "ns", "uid": "u-1", "resourceVersion": "42",
                "generation": 7, "generateName": "full-",
                "creationTimestamp": "2026-01-02T03:04:05Z",
                "deletionTimestamp": "2026-01-02T03:04:05.123456789Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {"a": "b", "é": "\u{1F600}"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"x\":\"\\\"\"}"},
                "finalizers": ["f/1"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-2",
                                     "controller": true, "blockOwnerDeletion": false}],
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                                   "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:data": {"f:k": {}}}}]
            },
            "data": {"k": "line\nbreak\ttab \\ \" \u{0001}", "empty": ""},
            "binaryData": {"bin": "AAEC/w=="},
            "immutable": true
        }))
        .unwrap();
        same_through_both(&object);
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"p": "cGFzcw=="}, "stringData": {"q": "r"}, "type": "Opaque"
        }))
        .unwrap();
        same_through_both(&secret);
        // A PackageInfo's free-form manifest: numbers of every shape.
        let info: PackageInfo = serde_json::from_value(json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageInfo",
            "metadata": {"name": "i"},
            "spec": {"name": "i"},
            "status": {"manifest": {"n": [0, -1, 1.5, -0.0, 1e300, 2.2250738585072014e-308,
                18446744073709551615u64, -9223372036854775808i64, 0.1, 123_456_789.123_456_79],
                "null": null, "t": true, "nested": {"a": [[], {}]}}}
        }))
        .unwrap();
        same_through_both(&info);
        // A negative zero keeps its sign (sonic-rs alone would drop it).
        let zero: Value = decode_object(br#"{"z":-0.0}"#).unwrap();
        assert!(zero["z"].as_f64().unwrap().is_sign_negative());
    }

    fn text() -> impl Strategy<Value = String> {
        // Any Unicode, with what JSON must escape well represented.
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('\n'),
                    Just('\u{0}'),
                    Just('\u{1f}'),
                    Just('\u{7f}'),
                    Just('\u{2028}'),
                    Just('\u{1F600}'),
                    any::<char>()
                ],
                0..24
            )
            .prop_map(|c| c.into_iter().collect()),
        ]
    }

    fn manifest() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Generated objects (any strings in names, labels, annotations and data; any JSON in a
        /// manifest): the fast decoder reads each back equal, as serde_json does.
        #[test]
        fn generated_objects_decode_identically_through_both_decoders(
            name in text(),
            labels in proptest::collection::btree_map(text(), text(), 0..4),
            data in proptest::collection::btree_map(text(), text(), 0..4),
            generation in any::<i64>(),
            manifest in manifest(),
        ) {
            let metadata = ObjectMeta {
                name: Some(name.clone()),
                generation: Some(generation),
                labels: Some(labels.clone()),
                annotations: Some(data.clone()),
                ..ObjectMeta::default()
            };
            same_through_both(&ConfigMap {
                metadata: metadata.clone(),
                data: Some(data),
                ..ConfigMap::default()
            });
            let json = stored(&json!({
                "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageInfo",
                "metadata": metadata, "spec": {"name": name}, "status": {"manifest": manifest}
            }));
            let info: PackageInfo = serde_json::from_slice(&json).unwrap();
            same_through_both(&info);
        }
    }

    /// Each inline credential alone makes its object flagged (`true`) and is removed; the rest
    /// of the object stays; an object without any is left alone (`false`). (Each case holds
    /// one credential only: with two, one removal can hide a lost flag of the other.)
    #[test]
    fn every_inline_credential_alone_is_removed_and_flags_its_object() {
        let repo = |spec: Value| {
            json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
                   "metadata": {"name": "r"}, "spec": spec})
        };
        let url = "https://packages.example.org/index";
        let cases = [
            repo(json!({"url": url, "auth": {"basic": {"username": "u"}}})),
            repo(json!({"url": url, "auth": {"basic": {"password": "p"}}})),
            repo(json!({"url": url, "auth": {"bearer": {"token": "t"}}})),
            repo(json!({"url": "https://u:p@packages.example.org/index"})),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"k": "dg=="}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "stringData": {"k": "v"}}),
        ];
        for mut object in cases {
            let before = object.to_string();
            assert!(super::strip_inline_credentials(&mut object), "{before}");
            let after = object.to_string();
            for secret in ["\"u\"", "\"p\"", "\"t\"", "u:p@", "\"data\"", "stringData"] {
                assert!(!after.contains(secret), "{secret} left in {after}");
            }
            assert_eq!(object["metadata"]["name"].as_str().map(str::len), Some(1));
        }
        let mut clean = repo(json!({"url": url, "auth": {"basic": {
            "usernameSecretRef": {"name": "c", "key": "username"}}}}));
        let before = clean.clone();
        assert!(!super::strip_inline_credentials(&mut clean));
        assert_eq!(clean, before);
        // A ConfigMap's `data` is not a credential.
        let mut config = json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert!(!super::strip_inline_credentials(&mut config));
        assert_eq!(config["data"]["k"], "v");
    }

    /// `Persist`'s `Debug` names its directory and options but never the server or the user
    /// (a user name is a credential; a server URL may carry userinfo).
    #[test]
    fn persist_debug_shows_the_directory_and_never_the_identity() {
        let persist = super::Persist::new("/var/cache/x", "https://admin:hunter2@k8s.example")
            .user("alice@example.org");
        let shown = format!("{persist:?}");
        assert!(shown.starts_with("Persist {"), "{shown}");
        assert!(
            shown.contains("/var/cache/x") && shown.contains("keep_credentials"),
            "{shown}"
        );
        for secret in ["hunter2", "admin", "alice", "k8s.example"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    /// A load serves only the objects stored with everything they had: one stored without its
    /// inline credentials is withheld and counted (the count the warm start reports); with the
    /// opt-in, both are stored whole and served.
    #[test]
    fn a_load_withholds_and_counts_the_objects_stored_without_their_credentials() {
        use kube::runtime::watcher::Event;
        use std::sync::Arc;
        let repo = |name: &str, auth: Value| -> PackageRepository {
            serde_json::from_value(json!({
                "apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
                "metadata": {"name": name, "resourceVersion": "1"},
                "spec": {"url": "https://packages.example.org/index", "auth": auth}}))
            .unwrap()
        };
        let mut writer = crate::Writer::<PackageRepository>::new();
        writer.apply(Event::Apply(repo("clean", json!({}))));
        writer.apply(Event::Apply(repo(
            "inline",
            json!({"basic": {"password": "p"}}),
        )));
        writer.apply(Event::Apply(repo("other", json!({}))));
        let snapshot = writer.cache().snapshot();
        for keep in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = super::Store::new(
                super::Plan::<PackageRepository> {
                    persist: super::Persist::new(dir.path(), "https://k8s.example")
                        .keep_credentials(keep),
                    to_json: Arc::new(|o: &PackageRepository| serde_json::to_value(o)),
                },
                None,
                None,
                None,
            );
            assert!(store.save(&snapshot).unwrap());
            let loaded = store.load().expect("the file just written loads");
            let names: Vec<_> = loaded
                .objects
                .iter()
                .map(|o| o.metadata.name.clone().unwrap())
                .collect();
            if keep {
                assert_eq!(names, ["clean", "inline", "other"]);
                assert_eq!(loaded.withheld, 0);
            } else {
                assert_eq!(names, ["clean", "other"]);
                assert_eq!(loaded.withheld, 1);
            }
        }
    }

    /// The reflector's housekeeping writes nothing before the cache is verified (the warm,
    /// unverified snapshot is never written back: its file would look freshly verified), then
    /// writes the first changed snapshot at once and no other within the rewrite interval.
    #[tokio::test]
    async fn ticks_write_only_verified_snapshots_and_at_most_once_per_interval() {
        use kube::runtime::watcher::Event;
        use std::sync::Arc;
        use std::time::Duration;
        let cm = |name: &str, rv: &str| -> ConfigMap {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "resourceVersion": rv}}))
            .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(super::Store::new(
            super::Plan::<ConfigMap> {
                persist: super::Persist::new(dir.path(), "https://k8s.example")
                    .rewrite_interval(Duration::from_secs(3600)),
                to_json: Arc::new(|o: &ConfigMap| serde_json::to_value(o)),
            },
            None,
            None,
            None,
        ));
        let mut writer = crate::Writer::<ConfigMap>::new();
        writer.apply(Event::Apply(cm("a", "1")));
        let mut persister = super::Persister::new(store.clone(), writer.cache().shared.clone());
        let written = || *store.written.lock().unwrap();
        persister.tick();
        assert!(
            persister.last.is_none(),
            "an unverified snapshot was written"
        );
        persister.verified();
        persister.tick();
        let first = persister
            .last
            .expect("the verified snapshot is written at once");
        let generation = writer.cache().snapshot().generation();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while written() < generation {
            assert!(
                std::time::Instant::now() < deadline,
                "the write never finished"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writer.apply(Event::Apply(cm("a", "2")));
        persister.tick();
        assert_eq!(persister.last, Some(first), "rewritten within the interval");
        assert_eq!(written(), generation);
    }
}
