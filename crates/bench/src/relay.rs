//! Section 7: the relay (`repocache-relay`, issue #19) in front of `apisim`.
//!
//! - **Request-count proof**: kube-rs watchers, `kubectl get -w` processes and Python watchers
//!   (the official `kubernetes` client) through one relay; apisim's request log then shows what
//!   they cost the API server.
//! - **Fan-out**: server write → downstream delivery latency at a steady write rate to many
//!   downstream watchers; CPU per 1,000 events; memory per idle downstream watch.
//! - **Scale-out simulation**: many relays against one apisim, each with a few clients, at two
//!   client counts: the API server's load is per relay and per kind, not per client.
//!
//! apisim, the relay(s) and the readers run on three separate tokio runtimes of this process
//! (threads `apisim-rt`, `relay-rt`, `reader-rt`), so that the CPU time of each is read from
//! its threads. Every part records the load average when it starts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apisim::{Server, ServerConfig, ServerHandle};
use futures::StreamExt as _;
use glasskube_api::{ClusterPackage, Package, PackageInfo, PackageRepository};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::watcher;
use repocache_relay::{Relay, RelayBuilder};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::runtime::Runtime;

use crate::report::TargetRow;

const REPOS: &str = "/apis/packages.glasskube.dev/v1alpha1/packagerepositories";
const KINDS: [&str; 4] = [
    "packagerepositories",
    "packages",
    "clusterpackages",
    "packageinfos",
];
const MARKER: &str = "relay-proof-marker";

/// The sizes of the relay part.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// `full`, `quick` or `smoke`.
    pub mode: &'static str,
    /// Fan-out rows: downstream watchers per row.
    pub fanout_watchers: Vec<usize>,
    /// Writes per second during the fan-out.
    pub rate: u64,
    /// Seconds of writes per fan-out row.
    pub seconds: u64,
    /// Idle downstream watches for the memory figure.
    pub idle: usize,
    /// kube-rs watchers in the proof.
    pub kube_watchers: usize,
    /// `kubectl get -w` processes in the proof.
    pub kubectl: usize,
    /// Python watchers in the proof.
    pub python: usize,
    /// Relays in the scale-out simulation.
    pub relays: usize,
    /// Clients per relay, the two simulated counts.
    pub clients_per_relay: [usize; 2],
}

impl RelayConfig {
    /// The issue's sizes.
    pub fn full() -> Self {
        Self {
            mode: "full",
            fanout_watchers: vec![100, 10],
            rate: 1_000,
            seconds: 5,
            idle: 1_000,
            kube_watchers: 100,
            kubectl: 20,
            python: 10,
            relays: 20,
            clients_per_relay: [2, 8],
        }
    }

    /// Shorter fan-out phases.
    pub fn quick() -> Self {
        Self {
            mode: "quick",
            seconds: 2,
            ..Self::full()
        }
    }

    /// Tiny, for CI (`cargo xtask bench --check`): every part runs, in seconds.
    pub fn smoke() -> Self {
        Self {
            mode: "smoke",
            fanout_watchers: vec![5],
            rate: 200,
            seconds: 1,
            idle: 20,
            kube_watchers: 3,
            kubectl: 1,
            python: 1,
            relays: 3,
            clients_per_relay: [1, 2],
        }
    }
}

/// The one-minute load average now (`/proc/loadavg`).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// CPU seconds (user + system) of this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    for task in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let get = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += get(11) + get(12);
    }
    ticks as f64 / 100.0
}

fn runtime(name: &'static str, workers: usize) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

/// Three runtimes: apisim (and the writer), the relay(s), the clients.
struct Runtimes {
    apisim: Runtime,
    relay: Runtime,
    reader: Runtime,
}

impl Runtimes {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            apisim: runtime("apisim-rt", 2)?,
            relay: runtime("relay-rt", 2)?,
            // One thread: the readers only read, and one thread reading every ready socket in
            // turn costs less CPU than two waking each other (the machine has two cores, which
            // the readers must not take from the relay).
            reader: runtime("reader-rt", 1)?,
        })
    }

    fn apisim(&self, config: ServerConfig) -> anyhow::Result<ServerHandle> {
        self.apisim
            .block_on(Server::start(config))
            .map_err(|e| anyhow::anyhow!("apisim: {e}"))
    }

    fn relay(&self, builder: RelayBuilder) -> anyhow::Result<Relay> {
        self.relay.block_on(async {
            let relay = builder.start().await?;
            relay.wait_ready(Duration::from_secs(60)).await?;
            Ok(relay)
        })
    }
}

fn seeded() -> anyhow::Result<ServerConfig> {
    ServerConfig::default()
        .with_seed_yaml(apisim::seed::REPOSITORIES_YAML)
        .and_then(|c| c.with_seed_yaml(apisim::seed::PACKAGES_YAML))
        .map_err(|e| anyhow::anyhow!("apisim seed: {e}"))
}

fn four_kinds(client: kube::Client) -> RelayBuilder {
    Relay::builder(client)
        .kind::<PackageRepository>()
        .kind::<Package>()
        .kind::<ClusterPackage>()
        .kind::<PackageInfo>()
}

/// A kube client of a relay (no retries: a failure shows), living on `rt`.
fn relay_client(relay: &Relay, rt: &Runtime) -> anyhow::Result<kube::Client> {
    let _enter = rt.enter();
    let url = relay.url().context("the relay has no URL")?;
    let mut config = kube::Config::new(url.parse().context("relay URL")?);
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

/// apisim's request log by (verb, resource), the four Glasskube kinds' LIST and WATCH first.
#[derive(Clone, Debug, Default)]
pub struct RequestLog {
    /// (verb, resource) → requests.
    pub counts: BTreeMap<(String, String), u64>,
}

impl RequestLog {
    fn of(server: &ServerHandle) -> Self {
        Self {
            counts: server.counts(),
        }
    }

    /// Requests with `verb` on `resource`.
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .get(&(verb.to_owned(), resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Requests of any verb other than LIST and WATCH of the four kinds (discovery, …).
    pub fn others(&self) -> u64 {
        self.counts
            .iter()
            .filter(|((verb, res), _)| {
                !(KINDS.contains(&res.as_str()) && (verb == "list" || verb == "watch"))
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// One kind of client in the proof.
#[derive(Clone, Debug)]
pub struct ClientRow {
    /// What the clients are.
    pub what: String,
    /// How many ran (0: not run, with `note`).
    pub count: usize,
    /// How many saw the initial objects and the marker written after they started.
    pub saw_marker: usize,
    /// Why not run, when not.
    pub note: Option<String>,
}

/// The request-count proof.
#[derive(Clone, Debug)]
pub struct Proof {
    /// Load average at the start.
    pub load: f64,
    /// The clients.
    pub clients: Vec<ClientRow>,
    /// apisim's request log after every client saw the marker.
    pub log: RequestLog,
    /// Watches served by the relay's hubs / passed upstream.
    pub watches_served: u64,
    /// Watches the relay passed upstream.
    pub watches_passed: u64,
    /// LISTs and GETs answered from the relay's snapshots.
    pub answered_locally: u64,
}

/// One fan-out row.
#[derive(Clone, Debug)]
pub struct FanoutRow {
    /// Load average at the start.
    pub load: f64,
    /// The readers watch apisim itself, not the relay (the control: what this machine gives a
    /// watch server at that moment).
    pub direct: bool,
    /// Downstream watchers.
    pub watchers: usize,
    /// Writes per second.
    pub rate: u64,
    /// Writes.
    pub events: u64,
    /// Deliveries seen / expected.
    pub delivered: u64,
    /// Expected deliveries.
    pub expected: u64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Max, ms.
    pub max_ms: f64,
    /// CPU seconds per 1,000 writes: the relay's threads (reflector, hub, watch bodies,
    /// connections).
    pub relay_cpu: f64,
    /// The same for apisim's threads (the writes, its one watch to the relay).
    pub apisim_cpu: f64,
    /// The same for the readers' threads.
    pub reader_cpu: f64,
    /// Watches the relay closed as slow.
    pub closed_slow: u64,
}

/// Memory per idle downstream watch.
#[derive(Clone, Debug)]
pub struct IdleRow {
    /// Load average at the start.
    pub load: f64,
    /// Idle watches opened.
    pub watches: usize,
    /// Process RSS growth per watch, bytes (both ends: the relay's side and the client socket).
    pub bytes_per_watch: f64,
}

/// One run of the scale-out simulation.
#[derive(Clone, Debug)]
pub struct SimRow {
    /// Load average at the start.
    pub load: f64,
    /// Relays.
    pub relays: usize,
    /// Clients per relay (each: a kube-rs watcher of PackageRepositories and a LIST of
    /// Packages).
    pub clients_per_relay: usize,
    /// Requests the clients made to their relays (LIST + WATCH per watcher, one LIST).
    pub client_requests: u64,
    /// apisim's LIST and WATCH per kind.
    pub log: RequestLog,
}

/// Everything the relay part measured.
#[derive(Debug, Default)]
pub struct RelayResults {
    /// The proof.
    pub proof: Option<Result<Proof, String>>,
    /// Idle memory.
    pub idle: Option<Result<IdleRow, String>>,
    /// Fan-out rows.
    pub fanout: Vec<Result<FanoutRow, String>>,
    /// Scale-out simulation rows.
    pub sim: Vec<Result<SimRow, String>>,
}

impl RelayResults {
    /// Every part that failed, as text.
    pub fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(Err(e)) = &self.proof {
            out.push(format!("relay proof: {e}"));
        }
        if let Some(Err(e)) = &self.idle {
            out.push(format!("relay idle memory: {e}"));
        }
        for e in self.fanout.iter().filter_map(|r| r.as_ref().err()) {
            out.push(format!("relay fan-out: {e}"));
        }
        for e in self.sim.iter().filter_map(|r| r.as_ref().err()) {
            out.push(format!("relay simulation: {e}"));
        }
        if let Some(Ok(proof)) = &self.proof {
            for c in &proof.clients {
                if c.note.is_none() && c.saw_marker != c.count {
                    out.push(format!(
                        "relay proof: {} of {} {} saw the marker",
                        c.saw_marker, c.count, c.what
                    ));
                }
            }
        }
        out
    }
}

/// Runs the relay part.
pub fn run(cfg: &RelayConfig, progress: impl Fn(&str)) -> RelayResults {
    // The timed parts first: the proof's 30 client processes lift the load average for a minute.
    let mut results = RelayResults {
        idle: Some(idle_memory_in_child(cfg.idle).map_err(|e| format!("{e:#}"))),
        ..RelayResults::default()
    };
    progress("idle memory");
    for &watchers in &cfg.fanout_watchers {
        results
            .fanout
            .push(fanout(watchers, cfg.rate, cfg.seconds, false).map_err(|e| format!("{e:#}")));
        progress(&format!("fan-out to {watchers}"));
    }
    if let Some(&watchers) = cfg.fanout_watchers.first() {
        results
            .fanout
            .push(fanout(watchers, cfg.rate, cfg.seconds, true).map_err(|e| format!("{e:#}")));
        progress(&format!("control: apisim's own fan-out to {watchers}"));
    }
    results.proof = Some(proof(cfg).map_err(|e| format!("{e:#}")));
    progress("request-count proof");
    for &clients in &cfg.clients_per_relay {
        results
            .sim
            .push(simulate(cfg.relays, clients).map_err(|e| format!("{e:#}")));
        progress(&format!("{} relays x {clients} clients", cfg.relays));
    }
    results
}

// ---- the proof ----

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// kubectl from `$KUBECTL` or PATH.
fn kubectl() -> Option<PathBuf> {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .or_else(|| on_path("kubectl"))
}

/// A python3 (`$PYTHON`, or `python3` on PATH) that imports the `kubernetes` module, or why not.
fn python() -> Result<PathBuf, String> {
    let python = std::env::var_os("PYTHON")
        .map(PathBuf::from)
        .or_else(|| on_path("python3"))
        .ok_or("not run: no python3 on PATH")?;
    let ok = std::process::Command::new(&python)
        .args(["-c", "import kubernetes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err("not run: module missing (`pip install kubernetes`)".into())
    }
}

const PYTHON_WATCH: &str = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
api = client.CustomObjectsApi()
for event in watch.Watch().stream(api.list_cluster_custom_object,
                                  "packages.glasskube.dev", "v1alpha1", "packagerepositories"):
    print(event["type"], event["object"]["metadata"]["name"], flush=True)
"#;

/// Counts the children (by index) whose stdout showed `MARKER`.
type Seen = Arc<Mutex<Vec<bool>>>;

fn spawn_child(
    mut cmd: tokio::process::Command,
    index: usize,
    seen: Seen,
) -> anyhow::Result<tokio::process::Child> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawning a client")?;
    let stdout = child.stdout.take().context("child stdout")?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(MARKER) {
                if let Ok(mut seen) = seen.lock()
                    && let Some(slot) = seen.get_mut(index)
                {
                    *slot = true;
                }
                break;
            }
        }
        // Keep reading (and dropping) so that the child never blocks on a full pipe.
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    Ok(child)
}

fn count_seen(seen: &Seen) -> usize {
    seen.lock()
        .map(|s| s.iter().filter(|b| **b).count())
        .unwrap_or(0)
}

fn proof(cfg: &RelayConfig) -> anyhow::Result<Proof> {
    let load = load_average();
    let rts = Runtimes::new()?;
    let server = rts.apisim(seeded()?)?;
    let relay = rts.relay(four_kinds(server.client()))?;
    let through = relay_client(&relay, &rts.reader)?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        relay
            .kubeconfig(None)
            .context("the relay has no kubeconfig")?,
    )?;

    let _guard = rts.reader.enter();
    // kube-rs watchers: half LIST+WATCH, half streaming lists.
    let kube_seen: Seen = Arc::new(Mutex::new(vec![false; cfg.kube_watchers]));
    let mut tasks = Vec::new();
    for i in 0..cfg.kube_watchers {
        let api: Api<PackageRepository> = Api::all(through.clone());
        let config = if i % 2 == 0 {
            watcher::Config::default()
        } else {
            watcher::Config::default().streaming_lists()
        };
        let seen = kube_seen.clone();
        tasks.push(rts.reader.spawn(async move {
            let mut stream = watcher::watcher(api, config).boxed();
            while let Some(event) = stream.next().await {
                let hit = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        o.metadata.name.as_deref() == Some(MARKER)
                    }
                    _ => false,
                };
                if hit
                    && let Ok(mut s) = seen.lock()
                    && let Some(slot) = s.get_mut(i)
                {
                    *slot = true;
                }
            }
        }));
    }
    // kubectl get -w.
    let mut clients = Vec::new();
    let mut children = Vec::new();
    let kubectl_seen: Seen = Arc::new(Mutex::new(vec![false; cfg.kubectl]));
    let kubectl_note = match kubectl() {
        None => Some("not run: kubectl not on PATH".to_owned()),
        Some(kubectl) => {
            for i in 0..cfg.kubectl {
                let mut cmd = tokio::process::Command::new(&kubectl);
                cmd.arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .arg("--cache-dir")
                    .arg(dir.path().join(format!("kubectl-cache-{i}")))
                    .args(["get", "packagerepositories", "-w"]);
                children.push(spawn_child(cmd, i, kubectl_seen.clone())?);
            }
            None
        }
    };
    // Python watchers.
    let python_seen: Seen = Arc::new(Mutex::new(vec![false; cfg.python]));
    let python_note = match python() {
        Err(why) => Some(why),
        Ok(python) => {
            let script = dir.path().join("watch.py");
            std::fs::write(&script, PYTHON_WATCH)?;
            for i in 0..cfg.python {
                let mut cmd = tokio::process::Command::new(&python);
                cmd.arg("-u").arg(&script).arg(&kubeconfig);
                children.push(spawn_child(cmd, i, python_seen.clone())?);
            }
            None
        }
    };
    let expected_watches = cfg.kube_watchers
        + if kubectl_note.is_none() {
            cfg.kubectl
        } else {
            0
        }
        + if python_note.is_none() { cfg.python } else { 0 };
    // Every client's watch open, then one write that each must see.
    let deadline = Instant::now() + Duration::from_secs(120);
    while (relay.stats().watches_open as usize) < expected_watches {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected_watches} watches opened through the relay",
            relay.stats().watches_open
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
        .control()
        .create(json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageRepository",
            "metadata": {"name": MARKER},
            "spec": {"url": "https://marker.example"},
        }))
        .map_err(|e| anyhow::anyhow!("creating the marker: {e}"))?;
    let all_seen = || {
        count_seen(&kube_seen) == cfg.kube_watchers
            && (kubectl_note.is_some() || count_seen(&kubectl_seen) == cfg.kubectl)
            && (python_note.is_some() || count_seen(&python_seen) == cfg.python)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_seen() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = RequestLog::of(&server);
    let stats = relay.stats();
    let layer = relay.layer_stats();
    drop(children);
    for t in &tasks {
        t.abort();
    }
    clients.push(ClientRow {
        what: "kube-rs watchers (half LIST+WATCH, half streaming lists)".into(),
        count: cfg.kube_watchers,
        saw_marker: count_seen(&kube_seen),
        note: None,
    });
    clients.push(ClientRow {
        what: "`kubectl get packagerepositories -w`".into(),
        count: if kubectl_note.is_some() {
            0
        } else {
            cfg.kubectl
        },
        saw_marker: count_seen(&kubectl_seen),
        note: kubectl_note,
    });
    clients.push(ClientRow {
        what: "Python `kubernetes` client, `watch.Watch().stream(list_cluster_custom_object)`"
            .into(),
        count: if python_note.is_some() { 0 } else { cfg.python },
        saw_marker: count_seen(&python_seen),
        note: python_note,
    });
    Ok(Proof {
        load,
        clients,
        log,
        watches_served: stats.watches_served,
        watches_passed: stats.watches_passed,
        answered_locally: layer.total_local(),
    })
}

// ---- fan-out ----

async fn open_watch(addr: &str) -> anyhow::Result<tokio::net::TcpStream> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(
        format!("GET {REPOS}?watch=true&resourceVersion=0&sendInitialEvents=false HTTP/1.1\r\nHost: relay\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    Ok(s)
}

fn relay_addr(relay: &Relay) -> anyhow::Result<String> {
    Ok(relay
        .url()
        .context("the relay has no URL")?
        .trim_start_matches("http://")
        .to_owned())
}

fn wait_open(relay: &Relay, n: usize, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while (relay.stats().watches_open as usize) != n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: {} watches open, waiting for {n}",
            relay.stats().watches_open
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The argument with which the report binary runs [`idle_memory`] in a process of its own
/// ([`idle_memory_in_child`]).
pub const IDLE_MEMORY_CHILD: &str = "--relay-idle-memory-child";

/// [`idle_memory`] in a fresh process (this executable, run with [`IDLE_MEMORY_CHILD`]): RSS
/// growth means nothing in a process whose earlier parts freed hundreds of MB that the
/// allocator hands out again (a full run measured 0.0 KiB per watch that way).
pub fn idle_memory_in_child(idle: usize) -> anyhow::Result<IdleRow> {
    let exe = std::env::current_exe().context("this executable")?;
    let out = std::process::Command::new(exe)
        .args([IDLE_MEMORY_CHILD, &idle.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("the idle-memory process")?;
    anyhow::ensure!(
        out.status.success(),
        "the idle-memory process failed ({})",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(load)), Some(Ok(bytes_per_watch))) => Ok(IdleRow {
            load,
            watches: idle,
            bytes_per_watch,
        }),
        _ => anyhow::bail!("the idle-memory process printed `{}`", text.trim()),
    }
}

/// The child's side of [`idle_memory_in_child`]: measures and prints `LOAD BYTES_PER_WATCH`.
pub fn idle_memory_child(idle: usize) -> anyhow::Result<String> {
    let row = idle_memory(idle)?;
    Ok(format!("{} {}", row.load, row.bytes_per_watch))
}

/// RSS growth per idle downstream watch of PackageRepositories through one relay (`idle` of
/// them, after a warm-up of 50 opened and closed). Run it in a fresh process: see
/// [`idle_memory_in_child`].
pub fn idle_memory(idle: usize) -> anyhow::Result<IdleRow> {
    let load = load_average();
    let rts = Runtimes::new()?;
    let server = rts.apisim(seeded()?)?;
    let relay = rts.relay(Relay::builder(server.client()).kind::<PackageRepository>())?;
    let addr = relay_addr(&relay)?;
    // Warm-up: allocator arenas, the first connections.
    let warm = rts.reader.block_on(async {
        let mut v = Vec::new();
        for _ in 0..50.min(idle) {
            v.push(open_watch(&addr).await?);
        }
        anyhow::Ok(v)
    })?;
    wait_open(&relay, warm.len(), "warm-up")?;
    drop(warm);
    wait_open(&relay, 0, "warm-up closed")?;
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    let streams = rts.reader.block_on(async {
        let mut v = Vec::with_capacity(idle);
        for _ in 0..idle {
            v.push(open_watch(&addr).await?);
        }
        anyhow::Ok(v)
    })?;
    wait_open(&relay, idle, "idle watches")?;
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    drop(streams);
    Ok(IdleRow {
        load,
        watches: idle,
        bytes_per_watch: after.saturating_sub(before) as f64 * 1024.0 / idle.max(1) as f64,
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

/// What a fan-out reader looks for in a line: the send time the writer put in an annotation.
const SENT_NS: &[u8] = b"\"sent-ns\":\"";

/// Reads `stream` (a raw HTTP/1.1 watch response) until `total` lines with a send time have
/// come, and returns now − send time (ns, on `start`'s clock) for each, taken when the line's
/// last byte is read. Cheap on purpose, so that the readers' CPU is not what is measured: lines
/// are found in one reused buffer, and only the annotation is looked at (no JSON decoding, no
/// per-line allocation).
async fn read_send_times(stream: tokio::net::TcpStream, start: Instant, total: u64) -> Vec<u64> {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Some(sent) = sent_ns(&line) else {
            continue;
        };
        let now = start.elapsed().as_nanos() as u64;
        out.push(now.saturating_sub(sent));
    }
    out
}

/// The send time in a line: the digits after `"sent-ns":"`.
fn sent_ns(line: &[u8]) -> Option<u64> {
    let at = line.windows(SENT_NS.len()).position(|w| w == SENT_NS)? + SENT_NS.len();
    let digits = &line[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// `watchers` raw HTTP watches of PackageRepositories through one relay (`direct`: to apisim
/// itself, the control); apisim gets `rate` creations per second for `seconds`, each carrying
/// its send time; every reader records now − send time for each line.
pub fn fanout(watchers: usize, rate: u64, seconds: u64, direct: bool) -> anyhow::Result<FanoutRow> {
    let load = load_average();
    let rts = Runtimes::new()?;
    let server = rts.apisim(
        ServerConfig::default()
            .with_seed_yaml(apisim::seed::REPOSITORIES_YAML)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_history_size(100_000),
    )?;
    let relay = rts.relay(Relay::builder(server.client()).kind::<PackageRepository>())?;
    let addr = if direct {
        server.addr().to_string()
    } else {
        relay_addr(&relay)?
    };
    let total = rate * seconds;
    let start = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut readers = Vec::new();
    for _ in 0..watchers {
        let stream = rts.reader.block_on(open_watch(&addr))?;
        let latencies = latencies.clone();
        readers.push(rts.reader.spawn(async move {
            let mine = read_send_times(stream, start, total).await;
            if let Ok(mut all) = latencies.lock() {
                all.extend(mine);
            }
        }));
    }
    if direct {
        let control = server.control();
        let deadline = Instant::now() + Duration::from_secs(60);
        // The relay's own watch, and the readers'.
        while control.open_watches() < watchers + 1 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "apisim has {} watches open, waiting for {}",
                control.open_watches(),
                watchers + 1
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    } else {
        wait_open(&relay, watchers, "fan-out watches")?;
    }
    let cpu0 = (
        thread_cpu("relay-rt"),
        thread_cpu("apisim-rt"),
        thread_cpu("reader-rt"),
    );
    let control = server.control();
    rts.apisim.block_on(async {
        let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
        let mut next = tokio::time::Instant::now();
        for i in 0..total {
            next += interval;
            tokio::time::sleep_until(next).await;
            let sent = start.elapsed().as_nanos() as u64;
            control
                .create(json!({
                    "apiVersion": "packages.glasskube.dev/v1alpha1",
                    "kind": "PackageRepository",
                    "metadata": {"name": format!("fan-{i}"), "annotations": {"sent-ns": sent.to_string()}},
                    "spec": {"url": "https://fan.example"},
                }))
                .map_err(|e| anyhow::anyhow!("create: {e}"))?;
        }
        anyhow::Ok(())
    })?;
    rts.reader.block_on(async {
        for r in readers {
            let _ = tokio::time::timeout(Duration::from_secs(60), r).await;
        }
    });
    let per_k = total as f64 / 1000.0;
    let cpu = |name: &str, before: f64| (thread_cpu(name) - before) / per_k;
    let mut all = latencies
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    all.sort_unstable();
    Ok(FanoutRow {
        load,
        direct,
        watchers,
        rate,
        events: total,
        delivered: all.len() as u64,
        expected: total * watchers as u64,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        max_ms: all.last().copied().unwrap_or(0) as f64 / 1e6,
        relay_cpu: cpu("relay-rt", cpu0.0),
        apisim_cpu: cpu("apisim-rt", cpu0.1),
        reader_cpu: cpu("reader-rt", cpu0.2),
        closed_slow: relay.stats().watches_closed_slow,
    })
}

// ---- scale-out simulation ----

fn simulate(relays: usize, clients: usize) -> anyhow::Result<SimRow> {
    let load = load_average();
    let rts = Runtimes::new()?;
    let server = rts.apisim(seeded()?)?;
    let mut started = Vec::new();
    for _ in 0..relays {
        started.push(rts.relay(four_kinds(server.client()))?);
    }
    let seeded_repos = server
        .control()
        .list("packagerepositories")
        .map(|l| l.len())
        .unwrap_or(0);
    let mut client_requests = 0u64;
    let mut tasks = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for relay in &started {
        let through = relay_client(relay, &rts.reader)?;
        for _ in 0..clients {
            let api: Api<PackageRepository> = Api::all(through.clone());
            let tx = tx.clone();
            tasks.push(rts.reader.spawn(async move {
                let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
                let mut n = 0;
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::InitApply(_)) => n += 1,
                        Ok(watcher::Event::InitDone) if n >= seeded_repos => {
                            let _ = tx.send(());
                        }
                        _ => {}
                    }
                }
            }));
            let packages: Api<Package> = Api::all(through.clone());
            rts.reader
                .block_on(packages.list(&ListParams::default()))
                .context("a LIST of Packages through a relay")?;
            client_requests += 3;
        }
    }
    drop(tx);
    let want = relays * clients;
    rts.reader.block_on(async {
        for got in 0..want {
            tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .ok()
                .flatten()
                .with_context(|| format!("only {got} of {want} watchers synced"))?;
        }
        anyhow::Ok(())
    })?;
    let log = RequestLog::of(&server);
    for t in &tasks {
        t.abort();
    }
    Ok(SimRow {
        load,
        relays,
        clients_per_relay: clients,
        client_requests,
        log,
    })
}

// ---- rendering ----

fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// The section body and its rows of the targets table.
pub fn render(r: &RelayResults, command: &str) -> (String, Vec<TargetRow>) {
    let mut s = String::new();
    let mut targets = Vec::new();
    let _ = writeln!(
        s,
        "`repocache-relay` in front of apisim (`crates/bench/src/relay.rs`; `{command}`). apisim, \
         the relay(s) and the clients run in this process on three tokio runtimes (apisim and \
         the relay 2 threads each, the clients 1), so the CPU time of each comes from its own \
         threads. The machine has 2 cores shared \
         with other work: each part says the 1-minute load average when it started.\n"
    );

    let _ = writeln!(s, "### 7a. One relay, many clients: apisim's request log\n");
    match &r.proof {
        None => {
            let _ = writeln!(s, "_Not run._\n");
        }
        Some(Err(e)) => {
            let _ = writeln!(s, "_Failed: {e}_\n");
        }
        Some(Ok(p)) => {
            let _ = writeln!(
                s,
                "Load average {:.1}. One relay caching the four Glasskube kinds; the clients start \
                 together, and once every watch is open one PackageRepository is created, which \
                 each client must see.\n",
                p.load
            );
            let _ = writeln!(s, "| clients | ran | saw the new object |\n|---|---:|---:|");
            for c in &p.clients {
                match &c.note {
                    Some(note) => {
                        let _ = writeln!(s, "| {} | {note} | – |", c.what);
                    }
                    None => {
                        let _ = writeln!(s, "| {} | {} | {} |", c.what, c.count, c.saw_marker);
                    }
                }
            }
            let _ = writeln!(
                s,
                "\napisim's request log (every request it received, by verb and resource):\n"
            );
            let _ = writeln!(s, "| verb | resource | requests |\n|---|---|---:|");
            for ((verb, resource), n) in &p.log.counts {
                let resource = if resource.is_empty() {
                    "(discovery, non-resource)"
                } else {
                    resource
                };
                let _ = writeln!(s, "| {verb} | {resource} | {n} |");
            }
            let exact = KINDS
                .iter()
                .all(|k| p.log.get("list", k) == 1 && p.log.get("watch", k) == 1);
            let _ = writeln!(
                s,
                "\nThe relay served {} watches from its hubs and passed {} upstream; its cache \
                 layer answered {} GET/LIST from snapshots. Requests other than LIST/WATCH of the \
                 four kinds at apisim: {} (discovery and the like, passed through).\n",
                p.watches_served,
                p.watches_passed,
                p.answered_locally,
                p.log.others()
            );
            let total: usize = p.clients.iter().map(|c| c.count).sum();
            targets.push(TargetRow {
                what: format!(
                    "{total} clients through one relay: apisim sees 1 LIST + 1 WATCH per kind"
                ),
                measured: KINDS
                    .iter()
                    .map(|k| format!("{k} {}+{}", p.log.get("list", k), p.log.get("watch", k)))
                    .collect::<Vec<_>>()
                    .join(", "),
                met: Some(exact && r.errors().is_empty()),
            });
        }
    }

    let _ = writeln!(s, "### 7b. Fan-out: server write → downstream delivery\n");
    let _ = writeln!(
        s,
        "Raw HTTP watches of PackageRepositories through the relay; apisim gets steady creations, \
         each carrying its send time in an annotation; each reader takes now − send time per \
         line (found in the raw bytes, without decoding the object: the readers must not take \
         the cores from what they measure). CPU per 1,000 writes by runtime: the relay \
         (reflector, hub, connections with their watch bodies), apisim (writes, its watches), the readers (the sockets being read and \
         parsed, which real clients would pay in their own processes). The control row points \
         the same readers at apisim itself (the relay still runs, idle): what the machine gives \
         any watch server at that moment.\n"
    );
    let _ = writeln!(
        s,
        "| load | readers watch | watchers | writes | delivered | p50 | p99 | max | CPU-s / 1k writes: relay | apisim | readers | closed slow |\n|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &r.fanout {
        match row {
            Ok(f) => {
                let _ = writeln!(
                    s,
                    "| {:.1} | {} | {} | {} at {}/s | {}/{} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {} |",
                    f.load,
                    if f.direct {
                        "apisim (control)"
                    } else {
                        "the relay"
                    },
                    f.watchers,
                    f.events,
                    f.rate,
                    f.delivered,
                    f.expected,
                    ms(f.p50_ms),
                    ms(f.p99_ms),
                    ms(f.max_ms),
                    f.relay_cpu,
                    f.apisim_cpu,
                    f.reader_cpu,
                    f.closed_slow
                );
                if f.watchers >= 100 && !f.direct {
                    targets.push(TargetRow {
                        what: format!(
                            "fan-out to {} watchers at {}/s: p99 ≤ 5 ms",
                            f.watchers, f.rate
                        ),
                        measured: format!(
                            "p50 {}, p99 {} (load {:.1})",
                            ms(f.p50_ms),
                            ms(f.p99_ms),
                            f.load
                        ),
                        met: Some(f.p99_ms <= 5.0 && f.delivered == f.expected),
                    });
                }
            }
            Err(e) => {
                let _ = writeln!(s, "| – | – | – | failed: {e} | | | | | | | | |");
            }
        }
    }
    match &r.idle {
        Some(Ok(idle)) => {
            let _ = writeln!(
                s,
                "\nMemory per idle downstream watch (load {:.1}): {} watches opened, process RSS \
                 grew by **{:.1} KiB per watch** (both ends are in this process: the relay's \
                 connection and watch body, and the client's socket).\n",
                idle.load,
                idle.watches,
                idle.bytes_per_watch / 1024.0
            );
            targets.push(TargetRow {
                what: "memory per idle downstream watch ≤ 64 KiB".into(),
                measured: format!("{:.1} KiB", idle.bytes_per_watch / 1024.0),
                met: Some(idle.bytes_per_watch <= 64.0 * 1024.0),
            });
        }
        Some(Err(e)) => {
            let _ = writeln!(s, "\nMemory per idle watch: _failed: {e}_\n");
        }
        None => {}
    }

    let _ = writeln!(s, "### 7c. Scale-out: many relays against one apisim\n");
    let _ = writeln!(
        s,
        "Each relay caches the four Glasskube kinds; each of its clients runs a kube-rs watcher \
         of PackageRepositories (LIST + WATCH) and one LIST of Packages through it. apisim's \
         LIST and WATCH requests per kind once every watcher has synced:\n"
    );
    let _ = writeln!(
        s,
        "| load | relays | clients per relay | client requests to the relays | {} | per relay per kind |\n|---:|---:|---:|---:|{}---|",
        KINDS
            .iter()
            .map(|k| format!("{k} LIST+WATCH"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(KINDS.len())
    );
    let mut per_relay = Vec::new();
    for row in &r.sim {
        match row {
            Ok(sim) => {
                let cells: Vec<String> = KINDS
                    .iter()
                    .map(|k| format!("{}+{}", sim.log.get("list", k), sim.log.get("watch", k)))
                    .collect();
                let per: Vec<f64> = KINDS
                    .iter()
                    .map(|k| {
                        (sim.log.get("list", k) + sim.log.get("watch", k)) as f64
                            / sim.relays.max(1) as f64
                    })
                    .collect();
                let uniform = per.iter().all(|p| (p - per[0]).abs() < 1e-9);
                per_relay.push((per.clone(), sim.relays, sim.clients_per_relay));
                let _ = writeln!(
                    s,
                    "| {:.1} | {} | {} | {} | {} | {} |",
                    sim.load,
                    sim.relays,
                    sim.clients_per_relay,
                    sim.client_requests,
                    cells.join(" | "),
                    if uniform {
                        format!("{:.2}", per[0])
                    } else {
                        per.iter()
                            .map(|p| format!("{p:.2}"))
                            .collect::<Vec<_>>()
                            .join(" / ")
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| – | – | – | failed: {e} | | | | | |");
            }
        }
    }
    let _ = writeln!(s);
    if !per_relay.is_empty() {
        let all_two = per_relay
            .iter()
            .all(|(per, _, _)| per.iter().all(|p| (p - 2.0).abs() < 1e-9));
        let counts: Vec<String> = per_relay
            .iter()
            .map(|(_, relays, c)| format!("{relays} relays × {c} clients"))
            .collect();
        targets.push(TargetRow {
            what: "N relays: apisim sees 2 requests per relay per kind, whatever the clients"
                .into(),
            measured: format!(
                "{} at {}",
                if all_two { "2.00" } else { "not 2" },
                counts.join(" and ")
            ),
            met: Some(all_two && r.sim.iter().all(Result::is_ok)),
        });
    }
    (s, targets)
}

/// Where kubectl and python3 were found, for the section's notes.
pub fn tools() -> String {
    let k = kubectl().map_or("kubectl: not found".to_owned(), |p| {
        format!("kubectl: {}", p.display())
    });
    let p = match python() {
        Ok(p) => format!("python3 with `kubernetes`: {}", p.display()),
        Err(e) => format!("python3: {e}"),
    };
    format!("{k}; {p}")
}
