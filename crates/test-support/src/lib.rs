//! Helpers shared by the workspace's test suites (a dev-dependency only; never published):
//! waiting on a condition with a timeout instead of a fixed sleep ([`eventually`],
//! [`PATIENCE`]), an apisim on 127.0.0.1 port 0 seeded with the project's fixtures ([`apisim()`],
//! [`apisim_with`], [`start`]) and a client for it without kube's retries
//! ([`client_without_retry`]), request-count baselines that let in-flight work finish before a
//! test asserts that no request was made ([`Baseline`]), and tracing that stays quiet unless
//! `RUST_LOG` is set ([`init_tracing`]).
//!
//! It depends on apisim but not on repocache, so that every crate's tests can use it, repocache's
//! included, without a second copy of the library under test.

use std::time::Duration;

use apisim::{Control, Server, ServerConfig, ServerHandle};

/// The sample objects (the workspace's `fixtures/`, read once, by apisim's `seed` module).
pub use apisim::seed::{PACKAGES_YAML, REPOSITORIES_YAML};

/// How long a test waits for a condition before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How often [`eventually`] and [`Baseline::settle`] look again.
const POLL: Duration = Duration::from_millis(5);

/// Polls `condition` every few milliseconds until it holds; panics with `what` after
/// [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {PATIENCE:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Starts an apisim with exactly `config` on 127.0.0.1 (a free port); panics when it does not
/// start.
pub async fn start(config: ServerConfig) -> ServerHandle {
    Server::start(config)
        .await
        .unwrap_or_else(|e| panic!("apisim does not start: {e}"))
}

/// Starts an apisim on 127.0.0.1 (a free port) seeded with every fixture.
pub async fn apisim() -> ServerHandle {
    apisim_with(ServerConfig::default()).await
}

/// Starts an apisim with `config`, seeded with every fixture (after `config`'s own seeds).
pub async fn apisim_with(config: ServerConfig) -> ServerHandle {
    let config = config
        .with_seed_yaml(REPOSITORIES_YAML)
        .and_then(|c| c.with_seed_yaml(PACKAGES_YAML))
        .unwrap_or_else(|e| panic!("fixtures do not load: {e}"));
    start(config).await
}

/// A client for `server` without kube's built-in retry of 429/503/504, so that a test sees a
/// failing API server fail at once instead of after the client's own retries.
pub fn client_without_retry(server: &ServerHandle) -> kube::Client {
    let url = server
        .url()
        .parse()
        .unwrap_or_else(|e| panic!("apisim's URL does not parse: {e}"));
    let mut config = kube::Config::new(url);
    config.default_retry = false;
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("no client: {e}"))
}

/// How long the request log must stay unchanged before [`Baseline::settle`] trusts it.
pub const QUIET: Duration = Duration::from_millis(150);

/// The server's request log and the runtime's live tasks before a workload that must make
/// no request: [`settle`](Self::settle) lets in-flight work finish before the test counts.
pub struct Baseline {
    control: Control,
    tasks: usize,
    requests: usize,
    watches: usize,
}

impl Baseline {
    /// Takes the baseline: call it before the workload.
    pub fn take(control: &Control) -> Self {
        Self {
            control: control.clone(),
            requests: control.requests().len(),
            watches: control.open_watches(),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        }
    }

    /// Lets in-flight work finish before a test counts the server's requests: waits until the
    /// runtime has no more live tasks than at the baseline (a request spawned in the background
    /// is a task until it completes, however long its connection takes) — or the request log
    /// already grew, which the test's own assertion then reports — and apisim's request log has
    /// not grown for [`QUIET`] (apisim records a request when it completes). A watch opened
    /// since the baseline (a reflector re-watching after its watch ended) explains one extra
    /// task: it is no request the test counts until it ends. Panics after [`PATIENCE`] when that
    /// never happens, with the request log.
    ///
    /// Call it before every assertion that a request was *not* made: without it, a request
    /// still being sent in the background would slip by unseen.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = self.control.requests().len();
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            tokio::task::yield_now().await;
            tokio::time::sleep(POLL).await;
            let tasks = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            let now = self.control.requests().len();
            let new_watches = self.control.open_watches().saturating_sub(self.watches);
            if now != seen || (tasks > self.tasks + new_watches && now == self.requests) {
                seen = now;
                quiet_since = tokio::time::Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let log: Vec<String> = self
                    .control
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}?{}", r.verb, r.path, r.query))
                    .collect();
                panic!(
                    "in-flight work never finished within {PATIENCE:?}: {tasks} live tasks \
                     ({} at the baseline), {now} requests logged ({} at the baseline): {log:?}",
                    self.tasks, self.requests
                );
            }
        }
    }
}

/// Logs to the test's (captured) output when `RUST_LOG` is set, and nothing otherwise.
///
/// Many tests inject faults on purpose, and the reflector logs each at WARN or ERROR: without
/// `RUST_LOG` those lines would flood `cargo test`'s output (tokio's worker threads are not
/// captured by the test harness). `RUST_LOG=repocache=debug cargo test …` brings them back.
///
/// It installs the process's global subscriber once (later calls do nothing): every test of a
/// binary that calls it shares the same quiet subscriber, so grouping such tests in one binary
/// changes nothing.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
