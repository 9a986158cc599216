//! Answering GET and LIST of one registered kind from its cache's snapshot.
//!
//! A registration is type-erased behind [`Serve`], so that one layer can hold caches of many
//! kinds. Deciding whether to answer ([`Serve::plan`]) is cheap and happens where the service is
//! called; the work itself (one lookup and one object's JSON for a GET, a page of objects for a
//! LIST) is returned as a [`Job`] and runs in the caller's task, when its response future is
//! polled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use futures::future::BoxFuture;
use http::Response;
use k8s_selectors::{FieldSelector, LabelSelector};
use kube::Resource;
use serde::Serialize;
use tracing::warn;

use super::respond::{self, ListMeta};
use super::route::{Params, Verb, VersionNeed};
use super::stats::{Counters, Outcome};
use crate::cache::{Cache, Local};
use crate::policy::ReadPolicy;
use crate::snapshot::Snapshot;
use crate::state::CacheState;

/// At most this many older snapshots are held per kind for continue tokens.
const MAX_HELD: usize = 8;

/// The work of answering one request locally: the response and its outcome.
pub(crate) type Job = Box<dyn FnOnce() -> (Response<Bytes>, Outcome) + Send>;

/// What the layer knows about a registered kind.
#[derive(Debug, Clone)]
pub(crate) struct KindInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub api_version: String,
    pub list_kind: String,
    pub namespaced: bool,
    /// `Some(ns)`: the cache holds only this namespace's objects.
    pub namespace: Option<String>,
}

/// The layer-wide settings a registration needs to answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    /// This layer's identity in continue tokens.
    pub layer_id: u64,
    /// The registration's index in the layer.
    pub index: usize,
    /// `None`: serve while the cache's state is `Ready`; `Some(policy)`: as
    /// [`CacheLayer::read_policy`](super::CacheLayer::read_policy) says.
    pub read_policy: Option<ReadPolicy>,
    /// How long a snapshot stays held for a continue token.
    pub continue_ttl: Duration,
    /// Whether reads wait for (or pass through until) the writes through this layer.
    pub read_your_writes: bool,
    /// Whether a cache that is `Failed` or `Stale` (after its first sync) still answers, from
    /// its last snapshot, with a `Warning` header.
    pub serve_stale: bool,
}

/// A GET or LIST the layer may answer.
#[derive(Debug)]
pub(crate) struct LocalRequest<'a> {
    pub verb: Verb,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub params: Params,
}

/// One registered cache, type-erased.
pub(crate) trait Serve: Send + Sync {
    fn info(&self) -> &KindInfo;
    fn counters(&self) -> &Arc<Counters>;
    /// Decides whether to answer `req` locally: the work to do, or why the request must go to
    /// the server.
    fn plan(self: Arc<Self>, req: LocalRequest<'_>, ctx: Ctx) -> Result<Job, Outcome>;
    /// Records the resourceVersion a successful write through the layer returned; later reads
    /// are answered locally only from a snapshot that reflects it. Returns the wait (at most
    /// `wait`) for the snapshot to reach it, if it has not yet.
    fn observe_write(
        self: Arc<Self>,
        resource_version: &str,
        wait: Duration,
    ) -> Option<BoxFuture<'static, ()>>;
}

/// A snapshot kept for the continue tokens that point into it.
struct Held<K> {
    generation: u64,
    at: Instant,
    snapshot: Arc<Snapshot<K>>,
}

impl<K> Clone for Held<K> {
    fn clone(&self) -> Self {
        Self {
            generation: self.generation,
            at: self.at,
            snapshot: self.snapshot.clone(),
        }
    }
}

/// A registered `Cache<K>`.
pub(crate) struct Registered<K> {
    cache: Cache<K, Local>,
    info: KindInfo,
    counters: Arc<Counters>,
    /// Recent snapshots that continue tokens point into (replaced whole: readers never lock).
    held: ArcSwap<Vec<Held<K>>>,
    /// The newest (integer) resourceVersion a write through the layer returned: a read is
    /// answered locally only from a snapshot that reflects it (0: none yet).
    written: AtomicU64,
    /// A write returned a resourceVersion that is not an integer: reads pass through until the
    /// snapshot's version is exactly that one (it cannot be ordered, so nothing else is safe).
    written_opaque: ArcSwapOption<String>,
}

impl<K> Registered<K> {
    pub(crate) fn new(cache: Cache<K, Local>, info: KindInfo) -> Self {
        Self {
            counters: Arc::new(Counters::new(info.kind.clone())),
            cache,
            info,
            held: ArcSwap::from_pointee(Vec::new()),
            written: AtomicU64::new(0),
            written_opaque: ArcSwapOption::empty(),
        }
    }

    /// Whether `snapshot` reflects every write that came back through the layer.
    fn has_own_writes(&self, snapshot: &Snapshot<K>) -> bool {
        if let Some(opaque) = &*self.written_opaque.load() {
            if snapshot.resource_version() != Some(opaque.as_str()) {
                return false;
            }
            self.written_opaque.store(None);
        }
        let written = self.written.load(Ordering::Acquire);
        written == 0
            || self
                .cache
                .shared()
                .version_of(snapshot)
                .is_some_and(|rv| rv >= written)
    }

    /// The current snapshot, if the cache may answer now under the layer's policy; with the
    /// snapshot's age when it answers only because the layer serves stale snapshots on error.
    fn fresh(&self, ctx: &Ctx) -> Result<(Arc<Snapshot<K>>, Option<Duration>), Outcome> {
        // A stopped cache is never served from, whatever the bound (and even if it was ready).
        let state = self.cache.state();
        if state.is_stopped() {
            return Err(Outcome::Stale);
        }
        if !self.cache.is_ready() {
            return Err(Outcome::NotReady);
        }
        let snapshot = self.cache.snapshot();
        if ctx.read_your_writes && !self.has_own_writes(&snapshot) {
            return Err(Outcome::Behind);
        }
        let fresh = match ctx.read_policy {
            None => match state {
                CacheState::Ready => true,
                CacheState::Starting => return Err(Outcome::NotReady),
                _ => false,
            },
            Some(ReadPolicy::Cached) => true,
            Some(ReadPolicy::MaxStaleness(bound)) => snapshot.is_fresh(bound),
            // The layer never waits on a read: a snapshot behind the version passes through.
            Some(ReadPolicy::AtLeast(rv)) => {
                if !not_older_than(&self.cache, &snapshot, rv) {
                    return Err(Outcome::Behind);
                }
                true
            }
            // Neither can be honoured without a request of its own: the server answers.
            Some(ReadPolicy::Consistent | ReadPolicy::Fresh) => return Err(Outcome::Bypass),
        };
        if fresh {
            return Ok((snapshot, None));
        }
        // Serve-stale-on-error answers only for a cache whose watch is in trouble, not for one
        // merely older than the layer's bound.
        let in_trouble = matches!(state, CacheState::Failed { .. } | CacheState::Stale { .. });
        if ctx.serve_stale && in_trouble {
            let age = snapshot.since_confirmed();
            return Ok((snapshot, Some(age)));
        }
        Err(Outcome::Stale)
    }

    /// Keeps `snapshot` for the continue tokens that point into it.
    fn hold(&self, snapshot: &Arc<Snapshot<K>>, ttl: Duration) {
        let generation = snapshot.generation();
        if self.held.load().iter().any(|h| h.generation == generation) {
            return;
        }
        let now = Instant::now();
        self.held.rcu(|held| {
            let mut kept: Vec<Held<K>> = held
                .iter()
                .filter(|h| h.generation != generation && now.duration_since(h.at) < ttl)
                .cloned()
                .collect();
            kept.push(Held {
                generation,
                at: now,
                snapshot: snapshot.clone(),
            });
            let excess = kept.len().saturating_sub(MAX_HELD);
            kept.drain(..excess);
            kept
        });
    }

    /// The snapshot of `generation`: the current one, or one still held.
    fn held(&self, generation: u64, ttl: Duration) -> Option<Arc<Snapshot<K>>> {
        let current = self.cache.snapshot();
        if current.generation() == generation {
            return Some(current);
        }
        self.held
            .load()
            .iter()
            .find(|h| h.generation == generation && h.at.elapsed() < ttl)
            .map(|h| h.snapshot.clone())
    }
}

/// A continue token minted by the layer: `rc1.<layer>.<index>.<generation>.<position>`.
///
/// The position is the index, in the snapshot's (namespace, name) order, of the first object
/// the next page may hold (like upstream's "start key", it does not depend on the selectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub layer: u64,
    pub index: usize,
    pub generation: u64,
    pub position: usize,
}

impl Token {
    const PREFIX: &'static str = "rc1";

    pub(crate) fn encode(&self) -> String {
        format!(
            "{}.{:x}.{}.{}.{}",
            Self::PREFIX,
            self.layer,
            self.index,
            self.generation,
            self.position
        )
    }

    /// `None` for a token the layer did not mint (e.g. the server's).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        if parts.next()? != Self::PREFIX {
            return None;
        }
        let layer = u64::from_str_radix(parts.next()?, 16).ok()?;
        let index = parts.next()?.parse().ok()?;
        let generation = parts.next()?.parse().ok()?;
        let position = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            layer,
            index,
            generation,
            position,
        })
    }
}

/// Whether `snapshot` (of `cache`) reflects resourceVersion `min` (numeric versions only; a
/// bookmark may prove a quiet snapshot current to a later version than its own).
fn not_older_than<K>(cache: &Cache<K, Local>, snapshot: &Snapshot<K>, min: u64) -> bool {
    cache
        .shared()
        .version_of(snapshot)
        .is_some_and(|rv| rv >= min)
}

/// For an answer from a snapshot served only because its cache is failing or stale (see
/// [`CacheLayer::serve_stale_on_error`](super::CacheLayer::serve_stale_on_error)): adds the
/// Kubernetes `Warning` header that kubectl and client-go display, and counts it as
/// [`Outcome::ServedStale`].
fn warned(job: Job, stale: Option<Duration>) -> Job {
    let Some(age) = stale else {
        return job;
    };
    Box::new(move || {
        let (mut response, outcome) = job();
        let warning = format!(
            "299 - \"served from a repocache snapshot {} s old\"",
            age.as_secs()
        );
        if let Ok(value) = http::HeaderValue::from_str(&warning) {
            response.headers_mut().insert(http::header::WARNING, value);
        }
        let outcome = match outcome {
            Outcome::Served | Outcome::NotFound => Outcome::ServedStale,
            other => other,
        };
        (response, outcome)
    })
}

/// What a LIST selects.
struct Selection {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selection {
    fn matches<K: Resource>(&self, obj: &K) -> bool {
        let meta = obj.meta();
        if let Some(ns) = &self.namespace
            && meta.namespace.as_deref() != Some(ns.as_str())
        {
            return false;
        }
        let labels = meta.labels.as_ref();
        self.labels
            .matches(|k| labels.and_then(|l| l.get(k)).map(String::as_str))
            && self
                .fields
                .matches(meta.name.as_deref(), meta.namespace.as_deref())
    }

    fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

impl<K> Registered<K>
where
    K: Resource + Serialize + Send + Sync + 'static,
{
    fn get(
        &self,
        snapshot: &Snapshot<K>,
        namespace: Option<&str>,
        name: &str,
    ) -> (Response<Bytes>, Outcome) {
        let found = match namespace {
            Some(ns) => snapshot.get_namespaced(ns, name),
            None => snapshot.get(name),
        };
        // A layered GET is a cache read like `Cache::get`: it shows in the reads figures.
        self.cache.count(found.is_some());
        let generation = snapshot.generation();
        match found {
            Some(obj) => match respond::object(&**obj, generation) {
                Ok(response) => (response, Outcome::Served),
                Err(err) => {
                    warn!(kind = %self.info.kind, %name, error = %err, "cached object does not serialize");
                    (respond::internal(&err.to_string()), Outcome::Error)
                }
            },
            None => (
                respond::not_found(&self.info.group, &self.info.plural, name, generation),
                Outcome::NotFound,
            ),
        }
    }

    fn page(
        &self,
        snapshot: &Arc<Snapshot<K>>,
        start: usize,
        limit: usize,
        selection: &Selection,
        ctx: &Ctx,
    ) -> (Response<Bytes>, Outcome) {
        let mut items: Vec<&Arc<K>> = Vec::new();
        let mut next = None;
        for (i, obj) in snapshot.iter().enumerate().skip(start) {
            if !selection.matches(&**obj) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                next = Some(i);
                break;
            }
            items.push(obj);
        }
        let token = next.map(|position| {
            self.hold(snapshot, ctx.continue_ttl);
            Token {
                layer: ctx.layer_id,
                index: ctx.index,
                generation: snapshot.generation(),
                position,
            }
            .encode()
        });
        // Upstream leaves the count out when selectors make it unknown.
        let remaining = match next {
            Some(position) if !selection.has_selectors() => Some(match selection.namespace {
                None => snapshot.len().saturating_sub(position),
                Some(_) => snapshot
                    .iter()
                    .skip(position)
                    .filter(|o| selection.matches(&***o))
                    .count(),
            }),
            _ => None,
        };
        let meta = ListMeta {
            resource_version: snapshot.resource_version().unwrap_or_default(),
            continue_token: token.as_deref(),
            remaining,
        };
        match respond::list(
            &self.info.api_version,
            &self.info.list_kind,
            &meta,
            items.iter().copied(),
            snapshot.generation(),
        ) {
            Ok(response) => (response, Outcome::Served),
            Err(err) => {
                warn!(kind = %self.info.kind, error = %err, "cached objects do not serialize");
                (respond::internal(&err.to_string()), Outcome::Error)
            }
        }
    }
}

impl<K> Serve for Registered<K>
where
    K: Resource + Serialize + Send + Sync + 'static,
{
    fn info(&self) -> &KindInfo {
        &self.info
    }

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn observe_write(
        self: Arc<Self>,
        resource_version: &str,
        wait: Duration,
    ) -> Option<BoxFuture<'static, ()>> {
        let Ok(rv) = resource_version.parse::<u64>() else {
            // Not orderable: pass reads through until the snapshot is at exactly this version.
            self.written_opaque
                .store(Some(Arc::new(resource_version.to_owned())));
            return None;
        };
        self.written.fetch_max(rv, Ordering::AcqRel);
        if wait.is_zero()
            || self
                .cache
                .shared()
                .version_of(&self.cache.snapshot())
                .is_some_and(|at| at >= rv)
        {
            return None;
        }
        Some(Box::pin(async move {
            if let Err(err) = self.cache.wait_for_version(rv, wait).await {
                tracing::debug!(kind = %self.info.kind, error = %err, "own write not in the snapshot yet; reads pass through until it is");
            }
        }))
    }

    fn plan(self: Arc<Self>, req: LocalRequest<'_>, ctx: Ctx) -> Result<Job, Outcome> {
        // Paths the server answers with a 404 of its own (a cluster-scoped kind inside a
        // namespace, a namespaced object without one) are the server's to answer.
        match (self.info.namespaced, req.namespace, req.verb) {
            (false, Some(_), _) | (true, None, Verb::Get) => return Err(Outcome::Unsupported),
            _ => {}
        }
        if let Some(covered) = &self.info.namespace
            && req.namespace != Some(covered.as_str())
        {
            return Err(Outcome::NotCached);
        }
        let params = req.params;
        match req.verb {
            Verb::Get => {
                let name = req.name.ok_or(Outcome::Unsupported)?.to_owned();
                if !params.fits_get() {
                    return Err(Outcome::Unsupported);
                }
                let need = params.version();
                if need == VersionNeed::Unsupported {
                    return Err(Outcome::Unsupported);
                }
                let (snapshot, stale) = self.fresh(&ctx)?;
                if let VersionNeed::NotOlderThan(min) = need
                    && !not_older_than(&self.cache, &snapshot, min)
                {
                    return Err(Outcome::Unsupported);
                }
                let namespace = req.namespace.map(str::to_owned);
                Ok(warned(
                    Box::new(move || self.get(&snapshot, namespace.as_deref(), &name)),
                    stale,
                ))
            }
            Verb::List => {
                if params.unsupported || params.watch {
                    return Err(Outcome::Unsupported);
                }
                let limit = params.limit().map_err(|()| Outcome::Unsupported)?;
                // Selectors are parsed and matched exactly as upstream (`k8s-selectors`); one
                // that does not parse is the server's to answer (with its 400).
                let selection = Selection {
                    namespace: req.namespace.map(str::to_owned),
                    labels: LabelSelector::parse(params.label_selector.as_deref().unwrap_or(""))
                        .map_err(|_| Outcome::Unsupported)?,
                    fields: FieldSelector::parse(params.field_selector.as_deref().unwrap_or(""))
                        .map_err(|_| Outcome::Unsupported)?,
                };
                let need = params.version();
                if need == VersionNeed::Unsupported {
                    return Err(Outcome::Unsupported);
                }
                match params.continue_token.as_deref().filter(|t| !t.is_empty()) {
                    Some(token) => {
                        // Only tokens this registration minted; the server judges the rest.
                        let token = Token::parse(token)
                            .filter(|t| t.layer == ctx.layer_id && t.index == ctx.index)
                            .ok_or(Outcome::Unsupported)?;
                        // A walk that began on a snapshot finishes on it, whatever the cache's
                        // state since: that is what makes the pages one consistent list.
                        Ok(Box::new(move || {
                            match self.held(token.generation, ctx.continue_ttl) {
                                Some(snapshot) => {
                                    self.page(&snapshot, token.position, limit, &selection, &ctx)
                                }
                                None => (respond::expired(), Outcome::Expired),
                            }
                        }))
                    }
                    None => {
                        let (snapshot, stale) = self.fresh(&ctx)?;
                        if snapshot.resource_version().is_none() {
                            return Err(Outcome::NotReady);
                        }
                        if let VersionNeed::NotOlderThan(min) = need
                            && !not_older_than(&self.cache, &snapshot, min)
                        {
                            return Err(Outcome::Unsupported);
                        }
                        Ok(warned(
                            Box::new(move || self.page(&snapshot, 0, limit, &selection, &ctx)),
                            stale,
                        ))
                    }
                }
            }
            _ => Err(Outcome::Verb),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_not_ours() {
        let t = Token {
            layer: 0xdead_beef,
            index: 2,
            generation: 41,
            position: 7,
        };
        assert_eq!(Token::parse(&t.encode()), Some(t));
        for foreign in [
            "3.2",
            "",
            "rc1.x.1.2.3",
            "rc1.1.2.3",
            "rc1.1.2.3.4.5",
            "eyJ2IjoibWV0YS",
        ] {
            assert_eq!(Token::parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn the_read_policy_decides_what_the_snapshot_answers() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::runtime::watcher::Event;

        let mut writer = crate::Writer::<ConfigMap>::new();
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "5"},
        }))
        .unwrap();
        for event in [Event::Init, Event::InitApply(cm), Event::InitDone] {
            writer.apply(event);
        }
        let registered = Registered::new(
            writer.cache(),
            KindInfo {
                group: String::new(),
                version: "v1".into(),
                plural: "configmaps".into(),
                kind: "ConfigMap".into(),
                api_version: "v1".into(),
                list_kind: "ConfigMapList".into(),
                namespaced: true,
                namespace: None,
            },
        );
        let answer = |read_policy| {
            let ctx = Ctx {
                layer_id: 0,
                index: 0,
                read_policy,
                continue_ttl: Duration::from_secs(1),
                read_your_writes: false,
                serve_stale: false,
            };
            registered.fresh(&ctx).map(|_| ()).err()
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(
            answer(None),
            None,
            "the default follows the cache's Ready state"
        );
        assert_eq!(answer(Some(ReadPolicy::Cached)), None);
        assert_eq!(answer(Some(ReadPolicy::MaxStaleness(hour))), None);
        assert_eq!(answer(Some(ReadPolicy::AtLeast(5))), None);
        assert_eq!(answer(Some(ReadPolicy::AtLeast(6))), Some(Outcome::Behind));
        assert_eq!(answer(Some(ReadPolicy::Fresh)), Some(Outcome::Bypass));
        assert_eq!(answer(Some(ReadPolicy::Consistent)), Some(Outcome::Bypass));
        // A stopped cache passes through whatever the policy.
        drop(writer);
        assert_eq!(answer(Some(ReadPolicy::Cached)), Some(Outcome::Stale));
    }
}
