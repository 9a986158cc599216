//! The history checker: simulated clients write and read ConfigMaps through the layered client
//! ([`CacheLayer`] over a `kube::Client`) and through [`Cache`] with the version policies
//! (`AtLeast`, `Consistent`) while the chaos schedule's faults run; every operation is recorded
//! with the resourceVersions it returned, and [`check`] then verifies the history:
//!
//! - **Read-your-own-writes**: a read through a client's layer (GET or LIST) or an `AtLeast`
//!   read of its own write's version, made after that client's write of an object, sees that
//!   write's version of the object or a newer one.
//! - **Monotonic reads**: a client never reads an older version of an object than one it already
//!   read (any surface).
//! - **Consistent reads**: a `Consistent` read never answers an object older than the server's
//!   version of it just before the call (read from apisim's store through `Control`).
//! - **Nothing lost or extra**: at the end, the caches hold exactly the server's ConfigMaps.
//!
//! The workload runs on its own kind (ConfigMaps in one namespace) so that the schedule stays
//! the only writer of PackageRepositories (its per-snapshot history depends on it); the
//! server-wide faults (closed, stalled or cut watches, compaction, restarts with and without
//! the objects, malformed lines) hit both kinds. An object absent from an answer (a restart
//! that wiped it, or a snapshot from before its creation) carries no version and is counted,
//! not checked.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use apisim::{Control, ServerHandle};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use repocache::layer::CacheLayer;
use repocache::stats::ApiReason;
use repocache::{Cache, ReadPolicy, ReflectorBuilder};
use serde_json::json;

use super::Rng;

/// The namespace the history clients write to.
pub const NAMESPACE: &str = "chaos-history";
/// The history workload's resource.
pub const HISTORY_RESOURCE: &str = "configmaps";
/// Simulated clients.
const CLIENTS: usize = 3;
/// Names each client writes (every client reads every name).
const NAMES_PER_CLIENT: usize = 3;

/// The surface a read went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Surface {
    /// GET through the client's layer.
    LayerGet,
    /// LIST through the client's layer.
    LayerList,
    /// `Cache::get_with(name, AtLeast(own write))`.
    AtLeast,
    /// `Cache::get_with(name, Consistent)`.
    ConsistentGet,
    /// `Cache::list_with(Consistent)`.
    ConsistentList,
}

/// One recorded operation of one client.
#[derive(Clone, Debug)]
pub enum Op {
    /// A write through the client's layer (read-your-own-writes on) that returned `rv`.
    Write {
        /// The object.
        name: String,
        /// The resourceVersion the write returned.
        rv: u64,
    },
    /// A read: the objects it answered for `names`, each with its resourceVersion (`None`:
    /// absent from the answer).
    Read {
        /// Through which surface.
        surface: Surface,
        /// (name, resourceVersion in the answer).
        items: Vec<(String, Option<u64>)>,
        /// For consistent reads: each object's resourceVersion on the server just before the
        /// call.
        server: BTreeMap<String, u64>,
        /// The version of the surface's cache just after the call: an answered version above it
        /// cannot have come from a snapshot (the answer was live or passed through).
        snapshot: u64,
    },
}

/// What the checker found in one history.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// Operations checked.
    pub operations: u64,
    /// Reads that saw an object older than the client's own earlier write of it.
    pub read_your_writes: u64,
    /// Reads that saw an object older than one the client had already read from a snapshot
    /// of the same cache (snapshots never go back, so this is a violation).
    pub monotonic: u64,
    /// Reads that saw an object older than one the client had read *live* before (a pass-through
    /// or a policy's fallback answered from the server, newer than the snapshot): neither the
    /// layer nor the policies keep a per-client high-water mark of what they answered live, so
    /// this is counted and reported, not a violation.
    pub monotonic_after_live: u64,
    /// Consistent reads older than the server's version at the call.
    pub consistent: u64,
    /// Objects absent from an answer (no version to check).
    pub absent: u64,
    /// The first violations, one line each.
    pub lines: Vec<String>,
}

impl Findings {
    /// All violations.
    pub fn violations(&self) -> u64 {
        self.read_your_writes + self.monotonic + self.consistent
    }

    fn line(&mut self, line: String) {
        if self.lines.len() < 10 {
            self.lines.push(line);
        }
    }
}

/// Checks the histories of every client (each in the order its operations completed; a client
/// makes one operation at a time).
pub fn check(clients: &[Vec<Op>]) -> Findings {
    let mut f = Findings::default();
    for (c, ops) in clients.iter().enumerate() {
        let mut written: HashMap<&str, u64> = HashMap::new();
        // Per cache (0: the layer's, 1: the policies'), the newest version read from a
        // snapshot; and the newest read at all.
        let mut seen: [HashMap<&str, u64>; 2] = [HashMap::new(), HashMap::new()];
        let mut seen_any: HashMap<&str, u64> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            f.operations += 1;
            match op {
                Op::Write { name, rv } => {
                    let w = written.entry(name).or_default();
                    *w = (*w).max(*rv);
                }
                Op::Read {
                    surface,
                    items,
                    server,
                    snapshot,
                } => {
                    let family =
                        usize::from(!matches!(surface, Surface::LayerGet | Surface::LayerList));
                    for (name, rv) in items {
                        let Some(rv) = *rv else {
                            f.absent += 1;
                            continue;
                        };
                        let ryw_surface = matches!(
                            surface,
                            Surface::LayerGet | Surface::LayerList | Surface::AtLeast
                        );
                        if ryw_surface
                            && let Some(&w) = written.get(name.as_str())
                            && rv < w
                        {
                            f.read_your_writes += 1;
                            f.line(format!(
                                "read-your-writes: client {c} op {i} ({surface:?}) read {name} at rv {rv} after writing rv {w}"
                            ));
                        }
                        let s = seen[family].entry(name).or_default();
                        if rv < *s {
                            f.monotonic += 1;
                            f.line(format!(
                                "monotonic: client {c} op {i} ({surface:?}) read {name} at rv {rv} after reading rv {s} from the same cache's snapshot"
                            ));
                        } else if seen_any.get(name.as_str()).is_some_and(|&a| rv < a) {
                            f.monotonic_after_live += 1;
                        }
                        if rv <= *snapshot {
                            *s = (*s).max(rv);
                        }
                        let a = seen_any.entry(name).or_default();
                        *a = (*a).max(rv);
                        if let Some(&at_call) = server.get(name)
                            && rv < at_call
                        {
                            f.consistent += 1;
                            f.line(format!(
                                "consistent: client {c} op {i} ({surface:?}) read {name} at rv {rv}, the server had rv {at_call} at the call"
                            ));
                        }
                    }
                }
            }
        }
    }
    f
}

/// What the history workload did in one run.
#[derive(Clone, Debug, Default)]
pub struct HistoryReport {
    /// The checker's findings.
    pub findings: Findings,
    /// Operations that failed (faults), not recorded.
    pub failed_ops: u64,
    /// Durations of the writes through the layer (read-your-own-writes on: each waits for the
    /// snapshot to reflect it, up to the layer's bound).
    pub layer_writes: Vec<Duration>,
    /// Durations of the same writes through a plain client (the control: no wait).
    pub plain_writes: Vec<Duration>,
    /// Reads the layers passed through to the server because the snapshot was behind the
    /// client's own write (`Behind`).
    pub behind: u64,
    /// Every read the layers passed through (any reason).
    pub passed_through: u64,
    /// Reads the layers answered locally.
    pub local: u64,
    /// Requests the policies made: version LISTs of `Consistent` and live fallbacks.
    pub policy_requests: u64,
    /// ConfigMaps on the server the caches did not hold at the end, or held extra / stale.
    pub lost: usize,
    /// Objects a cache held at the end that the server did not.
    pub extra: usize,
}

impl HistoryReport {
    /// The requests the consistency features added: layer reads passed through as `Behind`
    /// and the policies' version LISTs and fallbacks.
    pub fn extra_requests(&self) -> u64 {
        self.behind + self.policy_requests
    }
}

/// The running workload.
pub struct Workload {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<ClientLog>>,
    caches: Vec<(Cache<ConfigMap>, repocache::ReflectorHandle)>,
    layers: Vec<CacheLayer>,
}

struct ClientLog {
    ops: Vec<Op>,
    failed: u64,
    layer_writes: Vec<Duration>,
    plain_writes: Vec<Duration>,
}

fn cm_name(client: usize, i: usize) -> String {
    format!("h-{client}-{i}")
}

fn rv_of(cm: &ConfigMap) -> Option<u64> {
    cm.metadata.resource_version.as_deref()?.parse().ok()
}

fn server_rv(control: &Control, name: &str) -> Option<u64> {
    let obj = control.get(HISTORY_RESOURCE, Some(NAMESPACE), name).ok()?;
    obj["metadata"]["resourceVersion"].as_str()?.parse().ok()
}

/// The policy the "consistent" reads use: `Consistent`, or `Cached` when
/// `CHAOS_HISTORY_CONSISTENT=cached` (a deliberately broken policy answering from whatever
/// snapshot is there, to show the checker reports what follows).
fn consistent_policy() -> ReadPolicy {
    match std::env::var("CHAOS_HISTORY_CONSISTENT").as_deref() {
        Ok("cached") => ReadPolicy::Cached,
        _ => ReadPolicy::Consistent,
    }
}

/// Whether read-your-own-writes is on in the layers (the default; `CHAOS_HISTORY_RYW=off`
/// turns it off, to show the checker reports what follows).
fn read_your_writes() -> bool {
    std::env::var("CHAOS_HISTORY_RYW").map_or(true, |v| v != "off")
}

impl Workload {
    /// Creates the objects, starts two ConfigMap caches (one without a TTL, which serves the
    /// layers; one with `ttl`, which serves the policy reads) and the clients.
    pub async fn start(server: &ServerHandle, seed: u64, ttl: Duration) -> Result<Self, String> {
        let control = server.control();
        for c in 0..CLIENTS {
            for i in 0..NAMES_PER_CLIENT {
                control
                    .create(json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": cm_name(c, i), "namespace": NAMESPACE},
                        "data": {"v": "0"},
                    }))
                    .map_err(|e| format!("history: cannot create {}: {e}", cm_name(c, i)))?;
            }
        }
        let mut caches = Vec::new();
        for ttl in [Duration::ZERO, ttl] {
            let (cache, handle) = ReflectorBuilder::new(Api::<ConfigMap>::all(server.client()))
                .ttl(ttl)
                .start();
            cache
                .wait_ready(Duration::from_secs(20))
                .await
                .map_err(|e| format!("history: cache not ready: {e}"))?;
            caches.push((cache, handle));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        let mut layers = Vec::new();
        for c in 0..CLIENTS {
            let layer = CacheLayer::new()
                .cache(&caches[0].0)
                .read_your_writes(read_your_writes());
            layers.push(layer.clone());
            let ctx = Client {
                id: c,
                layered: Api::namespaced(layer.client(server.client()), NAMESPACE),
                plain: Api::namespaced(server.client(), NAMESPACE),
                cache: caches[1].0.clone(),
                layer_cache: caches[0].0.clone(),
                control: control.clone(),
                rng: Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(c as u64)),
            };
            clients.push(tokio::spawn(ctx.run(stop.clone())));
        }
        Ok(Self {
            stop,
            clients,
            caches,
            layers,
        })
    }

    /// Stops the clients, waits for the caches to converge (within `within`), checks the
    /// history and stops the caches.
    pub async fn finish(self, control: &Control, within: Duration) -> HistoryReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = HistoryReport::default();
        let mut histories = Vec::new();
        for client in self.clients {
            match client.await {
                Ok(log) => {
                    report.failed_ops += log.failed;
                    report.layer_writes.extend(log.layer_writes);
                    report.plain_writes.extend(log.plain_writes);
                    histories.push(log.ops);
                }
                Err(_) => report.findings.line("a history client panicked".into()),
            }
        }
        let mut findings = check(&histories);
        findings.lines.append(&mut report.findings.lines);
        report.findings = findings;
        for layer in &self.layers {
            let stats = layer.stats();
            report.behind += stats.count(
                "ConfigMap",
                repocache::layer::Verb::Get,
                repocache::layer::Outcome::Behind,
            ) + stats.count(
                "ConfigMap",
                repocache::layer::Verb::List,
                repocache::layer::Outcome::Behind,
            );
            report.passed_through += stats.total_passed_through();
            report.local += stats.total_local();
        }
        let stats = self.caches[1].0.stats();
        report.policy_requests = stats.api(ApiReason::Version) + stats.api(ApiReason::Fallback);

        // Nothing lost or extra: every cache ends equal to the server.
        let want = || -> BTreeMap<String, String> {
            control
                .list(HISTORY_RESOURCE)
                .unwrap_or_default()
                .iter()
                .filter_map(|o| {
                    let m = &o["metadata"];
                    Some((
                        m["name"].as_str()?.to_owned(),
                        m["resourceVersion"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        };
        let held = |cache: &Cache<ConfigMap>| -> BTreeMap<String, String> {
            crate::cached_versions(cache).into_iter().collect()
        };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && !self.caches.iter().all(|(c, _)| held(c) == want()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let server = want();
        for (i, (cache, _)) in self.caches.iter().enumerate() {
            let held = held(cache);
            let lost: Vec<_> = server
                .iter()
                .filter(|(k, v)| held.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            let extra: Vec<_> = held
                .keys()
                .filter(|k| !server.contains_key(*k))
                .cloned()
                .collect();
            if !(lost.is_empty() && extra.is_empty()) {
                report.findings.line(format!(
                    "history cache {i}: did not converge within {within:?}: lost or stale {lost:?}, extra {extra:?}"
                ));
            }
            report.lost += lost.len();
            report.extra += extra.len();
        }
        for (_, handle) in self.caches {
            handle.stop().await;
        }
        report
    }
}

struct Client {
    id: usize,
    layered: Api<ConfigMap>,
    plain: Api<ConfigMap>,
    cache: Cache<ConfigMap>,
    layer_cache: Cache<ConfigMap>,
    control: Control,
    rng: Rng,
}

impl Client {
    async fn run(mut self, stop: Arc<AtomicBool>) -> ClientLog {
        let mut log = ClientLog {
            ops: Vec::new(),
            failed: 0,
            layer_writes: Vec::new(),
            plain_writes: Vec::new(),
        };
        let mut n = 0u64;
        let mut own_rv: HashMap<String, u64> = HashMap::new();
        let names: Vec<String> = (0..CLIENTS)
            .flat_map(|c| (0..NAMES_PER_CLIENT).map(move |i| cm_name(c, i)))
            .collect();
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let own = cm_name(self.id, self.rng.below(NAMES_PER_CLIENT as u64) as usize);
            let any = self.rng.pick(&names).clone();
            let patch = Patch::Merge(json!({"data": {"v": format!("{}-{n}", self.id)}}));
            match self.rng.below(8) {
                // A write through the layer (it waits for the snapshot to reflect it).
                0 | 1 => {
                    let t = Instant::now();
                    let result = match self
                        .layered
                        .patch(&own, &PatchParams::default(), &patch)
                        .await
                    {
                        Err(kube::Error::Api(s)) if s.code == 404 => {
                            let cm: ConfigMap = serde_json::from_value(json!({
                                "metadata": {"name": own, "namespace": NAMESPACE},
                                "data": {"v": "re"},
                            }))
                            .unwrap_or_default();
                            self.layered.create(&PostParams::default(), &cm).await
                        }
                        other => other,
                    };
                    let took = t.elapsed();
                    match result.ok().as_ref().and_then(rv_of) {
                        Some(rv) => {
                            log.layer_writes.push(took);
                            own_rv.insert(own.clone(), rv);
                            log.ops.push(Op::Write { name: own, rv });
                        }
                        None => log.failed += 1,
                    }
                }
                // The same write through a plain client: the control for the layer's wait
                // (not a write through the layer, so not recorded as one).
                2 => {
                    let t = Instant::now();
                    match self
                        .plain
                        .patch(&own, &PatchParams::default(), &patch)
                        .await
                    {
                        Ok(_) => log.plain_writes.push(t.elapsed()),
                        Err(_) => log.failed += 1,
                    }
                }
                3 => match self.layered.get(&any).await {
                    Ok(cm) => log.ops.push(Op::Read {
                        surface: Surface::LayerGet,
                        items: vec![(any, rv_of(&cm))],
                        server: BTreeMap::new(),
                        snapshot: self.layer_cache.version().unwrap_or(0),
                    }),
                    Err(kube::Error::Api(s)) if s.code == 404 => log.ops.push(Op::Read {
                        surface: Surface::LayerGet,
                        items: vec![(any, None)],
                        server: BTreeMap::new(),
                        snapshot: self.layer_cache.version().unwrap_or(0),
                    }),
                    Err(_) => log.failed += 1,
                },
                4 => match self.layered.list(&ListParams::default()).await {
                    Ok(list) => {
                        let got: HashMap<String, Option<u64>> = list
                            .items
                            .iter()
                            .map(|cm| (cm.metadata.name.clone().unwrap_or_default(), rv_of(cm)))
                            .collect();
                        let items = names
                            .iter()
                            .map(|n| (n.clone(), got.get(n).copied().flatten()))
                            .collect();
                        log.ops.push(Op::Read {
                            surface: Surface::LayerList,
                            items,
                            server: BTreeMap::new(),
                            snapshot: self.layer_cache.version().unwrap_or(0),
                        });
                    }
                    Err(_) => log.failed += 1,
                },
                // AtLeast the client's own last write of the object (or any version).
                5 => {
                    let policy = ReadPolicy::AtLeast(own_rv.get(&own).copied().unwrap_or(0));
                    match self.cache.get_with(&own, policy).await {
                        Ok(read) => log.ops.push(Op::Read {
                            surface: Surface::AtLeast,
                            items: vec![(own, read.value.as_deref().and_then(rv_of))],
                            server: BTreeMap::new(),
                            snapshot: self.cache.version().unwrap_or(0),
                        }),
                        Err(_) => log.failed += 1,
                    }
                }
                6 => {
                    let server: BTreeMap<String, u64> = server_rv(&self.control, &any)
                        .map(|rv| (any.clone(), rv))
                        .into_iter()
                        .collect();
                    match self.cache.get_with(&any, consistent_policy()).await {
                        Ok(read) => log.ops.push(Op::Read {
                            surface: Surface::ConsistentGet,
                            items: vec![(any, read.value.as_deref().and_then(rv_of))],
                            server,
                            snapshot: self.cache.version().unwrap_or(0),
                        }),
                        Err(_) => log.failed += 1,
                    }
                }
                _ => {
                    let server: BTreeMap<String, u64> = names
                        .iter()
                        .filter_map(|n| Some((n.clone(), server_rv(&self.control, n)?)))
                        .collect();
                    match self.cache.list_with(consistent_policy()).await {
                        Ok(read) => {
                            let got: HashMap<String, Option<u64>> = read
                                .value
                                .iter()
                                .filter(|cm| cm.metadata.namespace.as_deref() == Some(NAMESPACE))
                                .map(|cm| (cm.metadata.name.clone().unwrap_or_default(), rv_of(cm)))
                                .collect();
                            let items = names
                                .iter()
                                .map(|n| (n.clone(), got.get(n).copied().flatten()))
                                .collect();
                            log.ops.push(Op::Read {
                                surface: Surface::ConsistentList,
                                items,
                                server,
                                snapshot: self.cache.version().unwrap_or(0),
                            });
                        }
                        Err(_) => log.failed += 1,
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(self.rng.range(1, 6))).await;
        }
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(surface: Surface, name: &str, rv: u64) -> Op {
        Op::Read {
            surface,
            items: vec![(name.into(), Some(rv))],
            server: BTreeMap::new(),
            snapshot: 100,
        }
    }

    #[test]
    fn the_checker_finds_each_kind_of_violation() {
        let ok = vec![vec![
            Op::Write {
                name: "a".into(),
                rv: 5,
            },
            read(Surface::LayerGet, "a", 5),
            read(Surface::LayerList, "a", 7),
        ]];
        assert_eq!(check(&ok).violations(), 0);
        let stale = vec![vec![
            Op::Write {
                name: "a".into(),
                rv: 5,
            },
            read(Surface::LayerGet, "a", 4),
        ]];
        assert_eq!(check(&stale).read_your_writes, 1);
        let backwards = vec![vec![
            read(Surface::ConsistentGet, "a", 7),
            read(Surface::AtLeast, "a", 6),
        ]];
        assert_eq!(check(&backwards).monotonic, 1);
        // Newer than the snapshot: read live; an older snapshot answer after it is counted apart.
        let after_live = vec![vec![
            read(Surface::LayerGet, "a", 170),
            read(Surface::LayerGet, "a", 60),
        ]];
        let found = check(&after_live);
        assert_eq!((found.monotonic, found.monotonic_after_live), (0, 1));
        let old = vec![vec![Op::Read {
            surface: Surface::ConsistentGet,
            items: vec![("a".into(), Some(3))],
            server: [("a".to_owned(), 4)].into(),
            snapshot: 100,
        }]];
        assert_eq!(check(&old).consistent, 1);
    }
}
