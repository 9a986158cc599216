//! The newcomer's demo: an embedded apisim seeded with the project's fixtures and a generated
//! package catalogue, and the same dependency-resolving install run several times — uncached
//! through client-go's client-side rate limiter; through repocache's caches directly; the
//! unchanged uncached code on a client with repocache's [`CacheLayer`] (the limiter below the
//! layer, where only requests that reach the server pay it); the unchanged uncached code
//! pointed at a `repocache relay` (the limiter in the relay's upstream client) — with the API
//! requests, the time spent waiting on the limiter and the total time of each, side by side; and
//! a fifth time as a short-lived process per package, cold and with a warm-start file
//! ([`ShortLivedReport`]).

pub mod catalogue;
pub mod scenario;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apisim::{Control, Server, ServerConfig, ServerHandle};
use glasskube_api::{PackageInfo, PackageRepository};
use kube::api::ListParams;
use kube::{Api, Resource as _};
use repocache::debug::{CacheReport, CacheView};
use repocache::layer::CacheLayer;
use repocache::{Cache, Metrics, ReflectorBuilder, ReflectorHandle};

use crate::ratelimit::TokenBucket;
use crate::table::align;
use catalogue::Catalogue;
use scenario::{Expected, Installed, Reads};

/// The project's sample PackageRepository objects.
pub const REPOSITORIES_YAML: &str = apisim::seed::REPOSITORIES_YAML;
/// The project's sample Package, ClusterPackage and PackageInfo objects.
pub const PACKAGES_YAML: &str = apisim::seed::PACKAGES_YAML;

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Packages to install (the first N of the catalogue).
    pub packages: usize,
    /// How many levels of dependencies each install resolves.
    pub depth: usize,
    /// Packages in the generated catalogue (at least `packages`).
    pub catalogue: usize,
    /// The uncached client's rate limit, requests per second.
    pub qps: f64,
    /// The uncached client's burst.
    pub burst: u32,
    /// How long the cached run may wait for its caches to sync.
    pub sync_timeout: Duration,
    /// Also run the installs as short-lived processes, one per package, cold and warm (the
    /// fourth column; see [`ShortLivedReport`]).
    pub short_lived: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            packages: 6,
            depth: 2,
            catalogue: 40,
            qps: crate::ratelimit::DEFAULT_QPS,
            burst: crate::ratelimit::DEFAULT_BURST,
            sync_timeout: Duration::from_secs(20),
            short_lived: true,
        }
    }
}

/// What the demo reports while it runs.
pub trait Progress: Send + Sync {
    /// A phase begins; `total` reads are expected (0: unknown).
    fn phase(&self, name: &str, total: u64);
    /// One read done.
    fn read(&self);
    /// The phase ended, with a summary.
    fn finish(&self, summary: &str);
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: u64) {}
    fn read(&self) {}
    fn finish(&self, _: &str) {}
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// API requests, by (verb, resource), as apisim counted them.
    pub requests: BTreeMap<(String, String), u64>,
    /// Time spent waiting on the client-side rate limiter.
    pub limiter_wait: Duration,
    /// Wall time of the run (for the cached run: starting and syncing the caches included).
    pub total: Duration,
    /// What the installs installed.
    pub installed: Vec<Vec<Installed>>,
}

impl RunReport {
    /// All API requests.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests with `verb` on `resource`.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.requests
            .get(&(verb.to_owned(), resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// The demo's outcome.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// What ran.
    pub config: DemoConfig,
    /// The reads the scenario makes, computed from the catalogue.
    pub expected: Expected,
    /// The uncached run.
    pub uncached: RunReport,
    /// The cached run.
    pub cached: RunReport,
    /// Requests of the cached run after its caches synced (listed, and their watches open at the
    /// server), by (verb, resource).
    pub cached_after_sync: BTreeMap<(String, String), u64>,
    /// The uncached code on a layered client.
    pub layered: RunReport,
    /// Requests of the layered run after its caches synced (listed, and their watches open at the
    /// server), by (verb, resource).
    pub layered_after_sync: BTreeMap<(String, String), u64>,
    /// The uncached code again, unchanged, pointed at a `repocache relay` in front of the API
    /// server (the rate limiter in the relay's upstream client: only requests that reach the
    /// server wait).
    pub relayed: RunReport,
    /// Requests of the relayed run after the relay's caches synced, by (verb, resource).
    pub relayed_after_sync: BTreeMap<(String, String), u64>,
    /// Requests the relay answered from its snapshots during the relayed run (GET and LIST).
    pub relayed_answered: u64,
    /// The PackageRepository cache at the end (objects redacted).
    pub repositories: CacheReport,
    /// The installs as short-lived processes, cold and warm (`None` unless
    /// [`DemoConfig::short_lived`]).
    pub short_lived: Option<ShortLivedReport>,
}

/// The fourth column: the same installs as short-lived processes, one per package, as
/// Glasskube's CLI runs (one `glasskube install` per package, each its own process with its own
/// client and caches, gone when the install is done).
///
/// Each "process" here is an in-process stand-in, as the demo's other runs are: a fresh
/// `kube::Client` (its own connection pool), a fresh client-side limiter, and fresh caches of
/// PackageRepositories and PackageInfos; it installs its package from the caches as soon as they
/// answer, then, as `repocache get` does, waits until its caches are verified and watching
/// (so that the next process's file is current) and stops them (which writes the file).
///
/// - **cold**: no warm-start file (the cache directory is emptied before each process): each
///   process answers only after its caches' initial LIST.
/// - **warm**: each process starts from the file the previous process left (the first from
///   the cold run's last); it answers from the file at once, unverified, and its LIST verifies
///   it afterwards. The files are written with the documented opt-in
///   [`Persist::keep_credentials`](repocache::persist::Persist::keep_credentials) (still
///   `0600` in a `0700` directory): two of the demo's repositories carry inline credentials,
///   and without the opt-in such objects are withheld until the LIST verified them.
#[derive(Clone, Debug, Default)]
pub struct ShortLivedReport {
    /// The processes without a warm-start file.
    pub cold: RunReport,
    /// The processes with a warm-start file.
    pub warm: RunReport,
    /// Per cold process: its start → its caches answer (after their initial sync).
    pub cold_first_answer: Vec<Duration>,
    /// Per warm process: its start → its caches answer (from the file, or verified if that came
    /// first).
    pub warm_first_answer: Vec<Duration>,
    /// How many warm processes answered from the unverified file (the others were verified
    /// before they first looked).
    pub warm_answered_unverified: usize,
    /// How many cold processes answered before their caches were synced (none should: they
    /// have no file).
    pub cold_answered_unverified: usize,
}

impl ShortLivedReport {
    /// The median of per-process durations.
    pub fn median(durations: &[Duration]) -> Duration {
        let mut sorted = durations.to_vec();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    /// Requests of `run` that were not a cache's LIST or WATCH (reads sent to the API server).
    pub fn reads_sent(run: &RunReport) -> u64 {
        run.requests
            .iter()
            .filter(|((verb, resource), _)| {
                !(CACHED_RESOURCES.contains(&resource.as_str())
                    && (verb == "list" || verb == "watch"))
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// What stays up after the demo: apisim and the caches (for `--debug-addr`).
pub struct Session {
    /// The embedded API server.
    pub server: ServerHandle,
    /// The PackageRepository cache.
    pub repositories: Cache<PackageRepository>,
    /// The PackageInfo cache.
    pub package_infos: Cache<PackageInfo>,
    /// The caches' metrics.
    pub metrics: Metrics,
    handles: Vec<ReflectorHandle>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server.url())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Stops the caches and the server.
    pub async fn stop(self) {
        for handle in self.handles {
            handle.stop().await;
        }
        self.server.shutdown().await;
    }
}

/// The uncached code: every read is an `Api` call. Throttled here (client-go's limiter in front
/// of the client) unless `bucket` is `None` (the layered run throttles below the layer).
struct Uncached {
    repos: Api<PackageRepository>,
    infos: Api<PackageInfo>,
    bucket: Option<Arc<TokenBucket>>,
    waited_nanos: Arc<AtomicU64>,
}

impl Uncached {
    async fn throttle(&self) {
        if let Some(bucket) = &self.bucket {
            record_wait(&self.waited_nanos, bucket.acquire().await);
        }
    }
}

fn record_wait(total: &AtomicU64, waited: Duration) {
    let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
    total.fetch_add(nanos, Ordering::Relaxed);
}

/// `client` behind client-go's rate limiter: every request that reaches this transport waits
/// for a token first.
fn throttled(
    client: kube::Client,
    bucket: Arc<TokenBucket>,
    waited: Arc<AtomicU64>,
) -> kube::Client {
    let namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let client = client.clone();
        let bucket = bucket.clone();
        let waited = waited.clone();
        async move {
            record_wait(&waited, bucket.acquire().await);
            client.send(request).await
        }
    });
    kube::Client::new(service, namespace)
}

impl Reads for Uncached {
    async fn list_repositories(&self) -> anyhow::Result<Vec<Arc<PackageRepository>>> {
        self.throttle().await;
        let list = self
            .repos
            .list(&ListParams::default())
            .await
            .context("LIST packagerepositories")?;
        Ok(list.items.into_iter().map(Arc::new).collect())
    }

    async fn get_repository(&self, name: &str) -> anyhow::Result<Option<Arc<PackageRepository>>> {
        self.throttle().await;
        let repo = self
            .repos
            .get_opt(name)
            .await
            .with_context(|| format!("GET packagerepositories/{name}"))?;
        Ok(repo.map(Arc::new))
    }

    async fn get_package_info(&self, name: &str) -> anyhow::Result<Option<Arc<PackageInfo>>> {
        self.throttle().await;
        let info = self
            .infos
            .get_opt(name)
            .await
            .with_context(|| format!("GET packageinfos/{name}"))?;
        Ok(info.map(Arc::new))
    }
}

struct Cached {
    repos: Cache<PackageRepository>,
    infos: Cache<PackageInfo>,
}

impl Reads for Cached {
    async fn list_repositories(&self) -> anyhow::Result<Vec<Arc<PackageRepository>>> {
        Ok(self.repos.list())
    }

    async fn get_repository(&self, name: &str) -> anyhow::Result<Option<Arc<PackageRepository>>> {
        Ok(self.repos.get(name))
    }

    async fn get_package_info(&self, name: &str) -> anyhow::Result<Option<Arc<PackageInfo>>> {
        Ok(self.infos.get(name))
    }
}

/// Starts apisim on 127.0.0.1 seeded with the fixtures and a catalogue of `size` packages.
pub async fn start_apisim(catalogue: &Catalogue) -> anyhow::Result<ServerHandle> {
    let config = ServerConfig::default()
        .with_seed_yaml(REPOSITORIES_YAML)
        .and_then(|c| c.with_seed_yaml(PACKAGES_YAML))
        .context("the fixtures do not load")?
        .with_seed(catalogue.seed());
    Server::start(config)
        .await
        .context("the embedded API server does not start")
}

/// The resources of the demo's caches, as apisim's request log names them.
const CACHED_RESOURCES: [&str; 2] = ["packagerepositories", "packageinfos"];

/// Waits until apisim has answered one WATCH of each cached resource since its request log was
/// last reset. A cache's sync is a LIST and a WATCH, but the reflector is ready after the LIST
/// and opens its watch only then; a "requests after sync" mark taken at readiness alone would
/// count the caches' own watches as reads whenever they reach the server after it. apisim logs
/// a watch once its response head is sent, so the mark is taken with both watches open.
async fn wait_watching(control: &Control, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let missing: Vec<&str> = CACHED_RESOURCES
            .into_iter()
            .filter(|resource| control.count("watch", resource) == 0)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the caches of {} did not open their watch within {}",
                missing.join(", "),
                crate::human_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn install_all(
    reads: &impl Reads,
    catalogue: &Catalogue,
    config: &DemoConfig,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<Vec<Installed>>> {
    let on_read = || progress.read();
    let mut all = Vec::new();
    for package in catalogue.packages.iter().take(config.packages) {
        all.push(
            scenario::install(
                reads,
                &package.name,
                &package.version,
                config.depth,
                &on_read,
            )
            .await?,
        );
    }
    Ok(all)
}

/// Runs the demo: both runs, and what it needs to print. Returns the report and the session
/// (apisim and the caches, still running).
pub async fn run(
    config: DemoConfig,
    progress: &dyn Progress,
) -> anyhow::Result<(DemoReport, Session)> {
    let catalogue = Catalogue::generate(config.catalogue.max(config.packages));
    let expected = Expected::of(&catalogue, config.packages, config.depth);
    let server = start_apisim(&catalogue).await?;
    let control = server.control();
    let client = server.client();

    // 1. Uncached: every read is an API request, through client-go's token bucket.
    control.reset_requests();
    let uncached_reads = Uncached {
        repos: Api::all(client.clone()),
        infos: Api::all(client.clone()),
        bucket: Some(Arc::new(TokenBucket::new(config.qps, config.burst))),
        waited_nanos: Arc::new(AtomicU64::new(0)),
    };
    progress.phase(
        &format!("uncached ({} qps, burst {})", config.qps, config.burst),
        expected.total(),
    );
    let started = Instant::now();
    let installed = install_all(&uncached_reads, &catalogue, &config, progress).await?;
    let uncached = RunReport {
        requests: control.counts(),
        limiter_wait: Duration::from_nanos(uncached_reads.waited_nanos.load(Ordering::Relaxed)),
        total: started.elapsed(),
        installed,
    };
    progress.finish(&format!(
        "uncached: {} API requests in {}",
        uncached.total_requests(),
        crate::human_duration(uncached.total)
    ));

    // 2. Through repocache: a LIST and a WATCH per cache (through the same kind of limiter),
    //    then every read from the snapshots.
    control.reset_requests();
    progress.phase("repocache", expected.total());
    let started = Instant::now();
    let bucket = TokenBucket::new(config.qps, config.burst);
    let mut limiter_wait = Duration::ZERO;
    for _ in 0..4 {
        limiter_wait += bucket.acquire().await;
    }
    let metrics = Metrics::new();
    let (repos, repos_handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client.clone()))
            .metrics(&metrics)
            .start();
    let (infos, infos_handle) = ReflectorBuilder::new(Api::<PackageInfo>::all(client.clone()))
        .metrics(&metrics)
        .start();
    let server_url = server.url().to_owned();
    crate::source::wait_synced(
        &CacheView::new(&repos),
        PackageRepository::plural(&()).as_ref(),
        &server_url,
        config.sync_timeout,
    )
    .await?;
    crate::source::wait_synced(
        &CacheView::new(&infos),
        PackageInfo::plural(&()).as_ref(),
        &server_url,
        config.sync_timeout,
    )
    .await?;
    wait_watching(&control, config.sync_timeout).await?;
    let at_sync = control.counts();
    let cached_reads = Cached {
        repos: repos.clone(),
        infos: infos.clone(),
    };
    let installed = install_all(&cached_reads, &catalogue, &config, progress).await?;
    let total = started.elapsed();
    let requests = control.counts();
    let cached_after_sync = requests
        .iter()
        .filter_map(|(key, n)| {
            let before = at_sync.get(key).copied().unwrap_or(0);
            (*n > before).then(|| (key.clone(), n - before))
        })
        .collect();
    let cached = RunReport {
        requests,
        limiter_wait,
        total,
        installed,
    };
    progress.finish(&format!(
        "repocache: {} API requests in {}",
        cached.total_requests(),
        crate::human_duration(cached.total)
    ));

    // 3. The uncached code, unchanged, on a client whose CacheLayer answers from fresh caches;
    //    the limiter sits below the layer, so only requests that reach the server wait.
    control.reset_requests();
    progress.phase("uncached code, layered client", expected.total());
    let started = Instant::now();
    let bucket = Arc::new(TokenBucket::new(config.qps, config.burst));
    let waited = Arc::new(AtomicU64::new(0));
    let transport = throttled(client.clone(), bucket, waited.clone());
    let (layer_repos, layer_repos_handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(transport.clone())).start();
    let (layer_infos, layer_infos_handle) =
        ReflectorBuilder::new(Api::<PackageInfo>::all(transport.clone())).start();
    for (view, kind) in [
        (CacheView::new(&layer_repos), PackageRepository::plural(&())),
        (CacheView::new(&layer_infos), PackageInfo::plural(&())),
    ] {
        crate::source::wait_synced(&view, &kind, &server_url, config.sync_timeout).await?;
    }
    wait_watching(&control, config.sync_timeout).await?;
    let at_sync = control.counts();
    let layered_client = CacheLayer::new()
        .cache(&layer_repos)
        .cache(&layer_infos)
        .client(transport);
    let layered_reads = Uncached {
        repos: Api::all(layered_client.clone()),
        infos: Api::all(layered_client),
        bucket: None,
        waited_nanos: Arc::new(AtomicU64::new(0)),
    };
    let installed = install_all(&layered_reads, &catalogue, &config, progress).await?;
    let total = started.elapsed();
    let requests = control.counts();
    let layered_after_sync = requests
        .iter()
        .filter_map(|(key, n)| {
            let before = at_sync.get(key).copied().unwrap_or(0);
            (*n > before).then(|| (key.clone(), n - before))
        })
        .collect();
    let layered = RunReport {
        requests,
        limiter_wait: Duration::from_nanos(waited.load(Ordering::Relaxed)),
        total,
        installed,
    };
    layer_repos_handle.stop().await;
    layer_infos_handle.stop().await;
    progress.finish(&format!(
        "layered client: {} API requests in {}",
        layered.total_requests(),
        crate::human_duration(layered.total)
    ));

    // 4. The uncached code, unchanged, pointed at a relay (as another process would be): the
    //    relay lists and watches each kind once and answers the reads from its snapshots; the
    //    limiter sits in the relay's upstream client, so only requests that reach the server wait.
    control.reset_requests();
    progress.phase("uncached code, through the relay", expected.total());
    let started = Instant::now();
    let bucket = Arc::new(TokenBucket::new(config.qps, config.burst));
    let waited = Arc::new(AtomicU64::new(0));
    let upstream = throttled(client.clone(), bucket, waited.clone());
    let relay = repocache_relay::Relay::builder(upstream)
        .kind::<PackageRepository>()
        .kind::<PackageInfo>()
        .start()
        .await
        .context("the relay does not start")?;
    relay
        .wait_ready(config.sync_timeout)
        .await
        .context("the relay's caches did not sync")?;
    wait_watching(&control, config.sync_timeout).await?;
    let at_sync = control.counts();
    let relay_client = {
        let url = relay.url().context("the relay listens on no URL")?;
        let url = url.parse().context("the relay's URL")?;
        kube::Client::try_from(kube::Config::new(url)).context("a client of the relay")?
    };
    let relayed_reads = Uncached {
        repos: Api::all(relay_client.clone()),
        infos: Api::all(relay_client),
        bucket: None,
        waited_nanos: Arc::new(AtomicU64::new(0)),
    };
    let installed = install_all(&relayed_reads, &catalogue, &config, progress).await?;
    let total = started.elapsed();
    let requests = control.counts();
    let relayed_after_sync = requests
        .iter()
        .filter_map(|(key, n)| {
            let before = at_sync.get(key).copied().unwrap_or(0);
            (*n > before).then(|| (key.clone(), n - before))
        })
        .collect();
    let relayed_answered = relay.layer_stats().total_local();
    let relayed = RunReport {
        requests,
        limiter_wait: Duration::from_nanos(waited.load(Ordering::Relaxed)),
        total,
        installed,
    };
    drop(relay);
    progress.finish(&format!(
        "through the relay: {} API requests in {}",
        relayed.total_requests(),
        crate::human_duration(relayed.total)
    ));
    // 5. The same installs as short-lived processes, one per package: cold, then warm.
    let short_lived = if config.short_lived {
        Some(short_lived_runs(&server, &catalogue, &config, progress).await?)
    } else {
        None
    };

    let redactor: repocache::debug::Redactor = Arc::new(crate::redact);
    let repositories = CacheView::new(&repos).report(true, Some(&redactor));
    let report = DemoReport {
        config,
        expected,
        uncached,
        cached,
        cached_after_sync,
        layered,
        layered_after_sync,
        relayed,
        relayed_after_sync,
        relayed_answered,
        repositories,
        short_lived,
    };
    let session = Session {
        server,
        repositories: repos,
        package_infos: infos,
        metrics,
        handles: vec![repos_handle, infos_handle],
    };
    Ok((report, session))
}

/// One short-lived process's outcome.
struct Process {
    installed: Vec<Installed>,
    first_answer: Duration,
    answered_unverified: bool,
    limiter_wait: Duration,
}

/// Waits until both caches answer reads: from a warm-start file (unverified) or synced.
async fn wait_answering(
    repos: &Cache<PackageRepository>,
    infos: &Cache<PackageInfo>,
    server: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answering = |ready: bool, state: repocache::CacheState| ready || state.is_warm_start();
        if answering(repos.is_ready(), repos.state()) && answering(infos.is_ready(), infos.state())
        {
            return Ok(());
        }
        for (state, plural) in [
            (repos.state(), PackageRepository::plural(&())),
            (infos.state(), PackageInfo::plural(&())),
        ] {
            if let repocache::CacheState::Failed { last_error, .. } = state {
                anyhow::bail!("cannot list {plural} from {server}: {last_error}");
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the caches did not answer within {}",
                crate::human_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until apisim has answered at least `n` WATCHes of each cached resource since its
/// request log was last reset.
async fn wait_watches(control: &Control, n: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while CACHED_RESOURCES
        .into_iter()
        .any(|resource| control.count("watch", resource) < n)
    {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the caches did not open their watch within {}",
                crate::human_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// One short-lived process (see [`ShortLivedReport`]): the `index`-th (from 0) of its run.
async fn short_lived_process(
    server: &ServerHandle,
    package: &catalogue::CataloguePackage,
    index: u64,
    dir: &std::path::Path,
    config: &DemoConfig,
    progress: &dyn Progress,
) -> anyhow::Result<Process> {
    let started = Instant::now();
    let url = server.url().to_owned();
    // A process of its own: its own client (connection pool) and limiter.
    let uri: http::Uri = url.parse().context("apisim's URL")?;
    let client = kube::Client::try_from(kube::Config::new(uri)).context("a kube client")?;
    let bucket = TokenBucket::new(config.qps, config.burst);
    let mut limiter_wait = Duration::ZERO;
    for _ in 0..4 {
        limiter_wait += bucket.acquire().await;
    }
    let persist = repocache::persist::Persist::new(dir, url.clone())
        .user("demo")
        .keep_credentials(true);
    let (repos, repos_handle) =
        ReflectorBuilder::new(Api::<PackageRepository>::all(client.clone()))
            .persist(persist.clone())
            .start();
    let (infos, infos_handle) = ReflectorBuilder::new(Api::<PackageInfo>::all(client))
        .persist(persist)
        .start();
    wait_answering(&repos, &infos, &url, config.sync_timeout).await?;
    let first_answer = started.elapsed();
    let answered_unverified = !repos.is_ready() || !infos.is_ready();
    let reads = Cached {
        repos: repos.clone(),
        infos: infos.clone(),
    };
    let on_read = || progress.read();
    let installed = scenario::install(
        &reads,
        &package.name,
        &package.version,
        config.depth,
        &on_read,
    )
    .await?;
    // As `repocache get` does: verified after the answer, so that the next file is current.
    for (view, plural) in [
        (CacheView::new(&repos), PackageRepository::plural(&())),
        (CacheView::new(&infos), PackageInfo::plural(&())),
    ] {
        crate::source::wait_synced(&view, &plural, &url, config.sync_timeout).await?;
    }
    wait_watches(&server.control(), index + 1, config.sync_timeout).await?;
    repos_handle.stop().await;
    infos_handle.stop().await;
    Ok(Process {
        installed,
        first_answer,
        answered_unverified,
        limiter_wait,
    })
}

/// The fourth column: every package installed by a short-lived process of its own, cold (no
/// warm-start file), then warm (the file the previous process left).
async fn short_lived_runs(
    server: &ServerHandle,
    catalogue: &Catalogue,
    config: &DemoConfig,
    progress: &dyn Progress,
) -> anyhow::Result<ShortLivedReport> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "repocache-demo-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let result = short_lived_in(server, catalogue, config, progress, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn short_lived_in(
    server: &ServerHandle,
    catalogue: &Catalogue,
    config: &DemoConfig,
    progress: &dyn Progress,
    dir: &std::path::Path,
) -> anyhow::Result<ShortLivedReport> {
    let control = server.control();
    let mut report = ShortLivedReport::default();
    for warm in [false, true] {
        control.reset_requests();
        progress.phase(
            &format!(
                "a short-lived process per package, {} cache file",
                if warm { "warm" } else { "cold" }
            ),
            Expected::of(catalogue, config.packages, config.depth).total(),
        );
        let started = Instant::now();
        let mut run = RunReport::default();
        let mut first = Vec::new();
        for (index, package) in catalogue.packages.iter().take(config.packages).enumerate() {
            if !warm {
                // No file: this process starts cold (it leaves a file for the next run).
                let _ = std::fs::remove_dir_all(dir);
            }
            let process =
                short_lived_process(server, package, index as u64, dir, config, progress).await?;
            run.installed.push(process.installed);
            run.limiter_wait += process.limiter_wait;
            first.push(process.first_answer);
            if process.answered_unverified {
                if warm {
                    report.warm_answered_unverified += 1;
                } else {
                    report.cold_answered_unverified += 1;
                }
            }
        }
        run.total = started.elapsed();
        run.requests = control.counts();
        if warm {
            report.warm = run;
            report.warm_first_answer = first;
        } else {
            report.cold = run;
            report.cold_first_answer = first;
        }
    }
    progress.finish(&format!(
        "short-lived processes: first answer after {} cold, {} warm (median per process)",
        crate::human_duration(ShortLivedReport::median(&report.cold_first_answer)),
        crate::human_duration(ShortLivedReport::median(&report.warm_first_answer)),
    ));
    Ok(report)
}

fn percent_less(before: f64, after: f64) -> String {
    if before <= 0.0 {
        return "-".to_owned();
    }
    format!("{:.1}%", 100.0 * (1.0 - after / before))
}

/// Prints the side-by-side table, the reduction, and the PackageRepository dump.
pub fn write_report(out: &mut dyn Write, report: &DemoReport) -> anyhow::Result<()> {
    let c = &report.config;
    let installs: usize = report.uncached.installed.iter().map(Vec::len).sum();
    writeln!(
        out,
        "Installed {} packages ({} with dependencies, resolved {} level{} deep) from a catalogue of {} across {} repositories, once per column:",
        c.packages,
        installs,
        c.depth,
        if c.depth == 1 { "" } else { "s" },
        c.catalogue.max(c.packages),
        catalogue::REPOSITORIES.len(),
    )?;
    writeln!(out)?;
    let mut keys: Vec<(String, String)> = report
        .uncached
        .requests
        .keys()
        .chain(report.cached.requests.keys())
        .chain(report.layered.requests.keys())
        .chain(report.relayed.requests.keys())
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    let mut rows = vec![vec![
        String::new(),
        format!("UNCACHED ({} QPS, BURST {})", c.qps, c.burst),
        "REPOCACHE".to_owned(),
        "UNCACHED CODE, LAYERED CLIENT".to_owned(),
        "UNCACHED CODE, THROUGH THE RELAY".to_owned(),
    ]];
    let short = report.short_lived.as_ref();
    if short.is_some() {
        rows[0].push("PROCESS PER PACKAGE, COLD / WARM FILE".to_owned());
    }
    let runs = [
        &report.uncached,
        &report.cached,
        &report.layered,
        &report.relayed,
    ];
    let row = |label: String, value: &dyn Fn(&RunReport) -> String| {
        let mut row = vec![label];
        row.extend(runs.iter().map(|r| value(r)));
        if let Some(s) = short {
            row.push(format!("{} / {}", value(&s.cold), value(&s.warm)));
        }
        row
    };
    rows.push(row("API requests".to_owned(), &|r| {
        r.total_requests().to_string()
    }));
    for (verb, resource) in &keys {
        rows.push(row(format!("  {verb} {resource}"), &|r| {
            r.count(verb, resource).to_string()
        }));
    }
    let after_sync: u64 = report.cached_after_sync.values().sum();
    let layered_after_sync: u64 = report.layered_after_sync.values().sum();
    let mut reads_sent = vec![
        "reads sent to the API server".to_owned(),
        report.uncached.total_requests().to_string(),
        after_sync.to_string(),
        layered_after_sync.to_string(),
        report.relayed_after_sync.values().sum::<u64>().to_string(),
    ];
    if let Some(s) = short {
        reads_sent.push(format!(
            "{} / {}",
            ShortLivedReport::reads_sent(&s.cold),
            ShortLivedReport::reads_sent(&s.warm)
        ));
    }
    rows.push(reads_sent);
    rows.push(row("rate-limiter wait".to_owned(), &|r| {
        crate::human_duration(r.limiter_wait)
    }));
    rows.push(row("total time".to_owned(), &|r| {
        crate::human_duration(r.total)
    }));
    out.write_all(align(&rows).as_bytes())?;
    writeln!(out)?;
    let same = report.uncached.installed == report.cached.installed
        && report.uncached.installed == report.layered.installed;
    for (label, run) in [
        ("repocache", &report.cached),
        ("layered client", &report.layered),
        ("through the relay", &report.relayed),
    ] {
        writeln!(
            out,
            "Reduction, {label}: {} fewer API requests ({} -> {}), {} less time ({} -> {}).",
            percent_less(
                report.uncached.total_requests() as f64,
                run.total_requests() as f64
            ),
            report.uncached.total_requests(),
            run.total_requests(),
            percent_less(report.uncached.total.as_secs_f64(), run.total.as_secs_f64()),
            crate::human_duration(report.uncached.total),
            crate::human_duration(run.total),
        )?;
    }
    writeln!(
        out,
        "Same packages installed by all three: {}.",
        if same { "yes" } else { "NO" }
    )?;
    writeln!(
        out,
        "Through the relay: {} reads answered from its snapshots; same packages installed: {}.",
        report.relayed_answered,
        if report.uncached.installed == report.relayed.installed {
            "yes"
        } else {
            "NO"
        }
    )?;
    if let Some(s) = short {
        let same = s.cold.installed == report.uncached.installed
            && s.warm.installed == report.uncached.installed;
        writeln!(
            out,
            "Process per package (Glasskube's CLI: each its own client and caches), median first \
             answer:\n  {} with no cache file, {} from the previous process's file ({} of {} \
             answered before their LIST\n  verified the file; each waited for it and its watches \
             before exiting). The same requests either way:\n  a warm start costs the verifying \
             LIST and the WATCH, as a cold one. Files written with the\n  keep_credentials \
             opt-in (0600): two repositories carry inline credentials. Same packages installed: {}.",
            crate::human_duration(ShortLivedReport::median(&s.cold_first_answer)),
            crate::human_duration(ShortLivedReport::median(&s.warm_first_answer)),
            s.warm_answered_unverified,
            s.warm_first_answer.len(),
            if same { "yes" } else { "NO" }
        )?;
    }
    writeln!(out)?;
    crate::table::write_dump(
        out,
        std::slice::from_ref(&report.repositories),
        crate::table::Output::Table,
    )?;
    Ok(())
}
