//! Where the command's data comes from: a running process's debug endpoint (`--endpoint`), or
//! fresh caches built from a cluster (`--kubeconfig`, `--context`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::future::{BoxFuture, FutureExt as _, Shared};
use http_body_util::BodyExt as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use repocache::debug::{CacheReport, CacheView, CachesReport};
use repocache::{CacheState, ReflectorHandle};
use serde::de::DeserializeOwned;

use crate::kinds::Kind;
use crate::select::Selection;

/// How to reach a cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterArgs {
    /// The kubeconfig file; `None`: `$KUBECONFIG`, `~/.kube/config`, or in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None`: the current context.
    pub context: Option<String>,
}

/// A cluster the command talks to.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// The server's URL, userinfo masked (for messages).
    pub server: String,
    /// The context's namespace (`default` when the context names none), as kubectl's default
    /// for namespaced kinds.
    pub namespace: String,
    /// The server's URL as configured (part of the warm-start file's hashed key; never shown).
    pub url: String,
    /// The kubeconfig user the command reads as (`in-cluster` without a kubeconfig): part of the
    /// warm-start file's hashed key, never shown.
    pub user: String,
    /// The reachability probe (`GET /version`): why the server did not answer, or `None`.
    /// A lenient connect does not wait for it (see [`Cluster::unreachable`]).
    probe: Shared<BoxFuture<'static, Option<String>>>,
}

impl Cluster {
    /// Why the server did not answer the reachability probe, `None` when it did: waits for
    /// the probe (at most [`PROBE_TIMEOUT`] from the connect).
    pub async fn unreachable(&self) -> Option<String> {
        self.probe.clone().await
    }
}

/// How long the reachability probe waits for the server's answer: a server that takes
/// connections and never answers (a hung API server, a load balancer without backends) is
/// unreachable after this, instead of a command that hangs (kube's client sets no read
/// timeout).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends the probe: `GET /version`, any HTTP answer within [`PROBE_TIMEOUT`] means the server is
/// there; otherwise why not, kubectl-style.
async fn probe(client: Client, server: String) -> Option<String> {
    let what = format!("the server {server}");
    let request = match http::Request::get("/version").body(kube::client::Body::from(Vec::new())) {
        Ok(request) => request,
        Err(err) => return Some(format!("cannot build the request to {what}: {err}")),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, client.send(request)).await {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some(unreachable(&err, &what, "--kubeconfig or --context")),
        Err(_) => Some(format!(
            "{what} did not answer within {}s - is it reachable from here? (check --kubeconfig or --context)",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// A client for the cluster `args` names, and the server's URL (for messages).
pub async fn cluster_client(args: &ClusterArgs) -> anyhow::Result<(Client, String)> {
    let cluster = connect(args).await?;
    Ok((cluster.client, cluster.server))
}

/// The kubeconfig files kube would read: `--kubeconfig`, else `$KUBECONFIG`'s entries, else
/// `~/.kube/config`; `None` when none of them exists (kube would then try in-cluster).
fn kubeconfig_files(args: &ClusterArgs) -> anyhow::Result<Option<Kubeconfig>> {
    if let Some(path) = &args.kubeconfig {
        if !path.exists() {
            bail!(
                "kubeconfig {} does not exist: pass an existing file with --kubeconfig",
                path.display()
            );
        }
        return Kubeconfig::read_from(path).map(Some).map_err(|e| {
            anyhow!(
                "kubeconfig {} is not valid: {}",
                path.display(),
                root_cause(&e)
            )
        });
    }
    let from_env = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let candidates: Vec<PathBuf> = match &from_env {
        Some(list) => std::env::split_paths(list).collect(),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".kube").join("config"))
            .into_iter()
            .collect(),
    };
    if !candidates.iter().any(|p| p.exists()) {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            return Ok(None);
        }
        let looked = match &from_env {
            Some(_) => format!(
                "KUBECONFIG={} does not exist",
                std::env::join_paths(&candidates)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            None => "~/.kube/config does not exist and KUBECONFIG is not set".to_owned(),
        };
        bail!(
            "no kubeconfig found ({looked}): pass --kubeconfig PATH or set KUBECONFIG, or read a running process with --endpoint URL"
        );
    }
    Kubeconfig::read()
        .map(Some)
        .map_err(|e| anyhow!("the kubeconfig is not valid: {}", root_cause(&e)))
}

/// Connects to the cluster `args` names: checks the kubeconfig and the context first, then
/// that the server answers, so that each failure is one line saying what to do.
pub async fn connect(args: &ClusterArgs) -> anyhow::Result<Cluster> {
    connect_lenient(args, false).await
}

/// [`connect`], but with `lenient` an unreachable server is no error, and the connect does not
/// wait for the probe: it runs while the caller loads warm-start files, and
/// [`Cluster::unreachable`] waits for its verdict when the caller needs it (an answer from a
/// warm-start file needs none).
pub async fn connect_lenient(args: &ClusterArgs, lenient: bool) -> anyhow::Result<Cluster> {
    let mut user = "in-cluster".to_owned();
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = match kubeconfig_files(args)? {
        Some(kubeconfig) => {
            let wanted = args
                .context
                .clone()
                .or_else(|| kubeconfig.current_context.clone());
            let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
            match wanted {
                Some(name) if !known.contains(&name.as_str()) => bail!(
                    "context {name:?} is not in the kubeconfig (it has: {}): pick one with --context",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
                None => bail!(
                    "the kubeconfig has no current context: pick one with --context (it has: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
                Some(_) => {}
            }
            if let Some(context) = kubeconfig
                .contexts
                .iter()
                .find(|c| Some(&c.name) == wanted.as_ref())
                .and_then(|c| c.context.as_ref())
            {
                user = context.user.clone().unwrap_or_default();
            }
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| anyhow!("the kubeconfig is not usable: {}", root_cause(&e)))?
        }
        None => Config::incluster().map_err(|e| {
            anyhow!(
                "no kubeconfig found and the in-cluster configuration is not usable ({}): pass --kubeconfig PATH or set KUBECONFIG",
                root_cause(&e)
            )
        })?,
    };
    config.connect_timeout = Some(Duration::from_secs(5));
    let url = config.cluster_url.to_string();
    let server = shown_url(url.trim_end_matches('/'));
    let url = url.trim_end_matches('/').to_owned();
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config)
        .map_err(|e| anyhow!("cannot build a client for {server}: {}", root_cause(&e)))?;
    // One cheap request, on a task of its own so that it runs while the caller goes on.
    let probe = tokio::spawn(probe(client.clone(), server.clone()))
        .map(|done| {
            done.unwrap_or_else(|err| Some(format!("the reachability probe failed: {err}")))
        })
        .boxed()
        .shared();
    if !lenient && let Some(why) = probe.clone().await {
        bail!("{why}");
    }
    Ok(Cluster {
        client,
        server,
        namespace,
        url,
        user,
        probe,
    })
}

/// Where fresh caches keep their warm-start files by default: `$XDG_CACHE_HOME/repocache`, else
/// `$HOME/.cache/repocache` (`None` when neither variable is set to an absolute path).
pub fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("repocache"))
}

/// How fresh caches use warm-start files.
#[derive(Clone, Debug, Default)]
pub struct WarmStart {
    /// Where the files are (`None`: no file; every run lists from scratch).
    pub persist: Option<repocache::persist::Persist>,
    /// Answer from a file not older than this without waiting for the LIST that verifies it
    /// (`None`: always wait).
    pub max_staleness: Option<Duration>,
}

impl WarmStart {
    /// Files in `dir` (if any) for `cluster`'s server and user; answers up to `max_staleness`
    /// old.
    pub fn new(dir: Option<PathBuf>, cluster: &Cluster, max_staleness: Option<Duration>) -> Self {
        Self {
            persist: dir.map(|dir| {
                repocache::persist::Persist::new(dir, cluster.url.clone())
                    .user(cluster.user.clone())
            }),
            max_staleness,
        }
    }
}

/// How old the unverified warm-start snapshot `view` serves is, when it serves one.
pub fn warm_age(view: &CacheView) -> Option<Duration> {
    (!view.is_ready() && view.generation() > 0 && !view.state().is_stopped())
        .then(|| view.stats().since_confirmed)
}

/// The [`std::io::ErrorKind`] somewhere in `err`'s chain.
pub fn io_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = e.source();
    }
    None
}

/// A failed connection to `what`, kubectl-style: what happened and what to check.
pub fn unreachable(err: &(dyn std::error::Error + 'static), what: &str, check: &str) -> String {
    use std::io::ErrorKind;
    match io_kind(err) {
        Some(ErrorKind::ConnectionRefused) => {
            format!(
                "the connection to {what} was refused - did you specify the right host or port? (check {check})"
            )
        }
        Some(ErrorKind::TimedOut) => {
            format!("{what} did not answer in time - is it reachable from here? (check {check})")
        }
        Some(
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof,
        ) => {
            format!(
                "{what} closed the connection - is it the right address and protocol (http/https)? (check {check})"
            )
        }
        _ => format!("cannot reach {what}: {} (check {check})", root_cause(err)),
    }
}

/// A URL as messages show it: with any userinfo masked (`https://<redacted>@host/…`).
pub fn shown_url(url: &str) -> String {
    repocache::debug::mask_url_userinfo(url).unwrap_or_else(|| url.to_owned())
}

/// Caches started by the command for some kinds; stopped when dropped.
#[derive(Debug)]
pub struct Caches {
    /// One view per kind, in the order asked for.
    pub views: Vec<(Kind, CacheView)>,
    /// The kinds answered from a warm-start file not yet verified, and the file's age.
    pub warm: Vec<(Kind, Duration)>,
    handles: Vec<ReflectorHandle>,
}

/// Starts a cache of `kind` on `client` (not yet synced), of the namespace and selectors of
/// `selection` (its names are filtered later, on the client side).
pub fn start_cache(
    client: Client,
    kind: Kind,
    selection: &Selection,
    persist: Option<repocache::persist::Persist>,
) -> (CacheView, ReflectorHandle) {
    let mut config = kube::runtime::watcher::Config::default();
    if let Some(labels) = &selection.labels {
        config = config.labels(labels);
    }
    if let Some(fields) = &selection.fields {
        config = config.fields(fields);
    }
    kind.start_cache(client, selection.namespace_for(kind), config, persist)
}

/// Waits until `view` (a cache of `plural`) has synced; fails at once when its reflector reports
/// a failure (an unreachable server, a forbidden list), and after `timeout` otherwise.
pub async fn wait_synced(
    view: &CacheView,
    plural: &str,
    server: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if view.is_ready() {
            return Ok(());
        }
        if let CacheState::Failed { last_error, .. } = view.state() {
            bail!("cannot list {plural} from {server}: {last_error}");
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the {plural} cache did not sync from {server} within {}",
                crate::human_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Caches {
    /// Starts caches of `kinds` on the cluster and waits (at most `timeout`) until all synced.
    pub async fn from_cluster(
        args: &ClusterArgs,
        kinds: &[Kind],
        selection: &Selection,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let cluster = connect(args).await?;
        Self::start(&cluster, kinds, selection, timeout, &WarmStart::default()).await
    }

    /// Starts caches of `kinds` on `cluster` and waits (at most `timeout`) until all synced,
    /// except those `warm` lets answer from a warm-start file unverified (listed in
    /// [`Caches::warm`]).
    pub async fn start(
        cluster: &Cluster,
        kinds: &[Kind],
        selection: &Selection,
        timeout: Duration,
        warm: &WarmStart,
    ) -> anyhow::Result<Self> {
        let mut caches = Caches {
            views: Vec::new(),
            warm: Vec::new(),
            handles: Vec::new(),
        };
        for &kind in kinds {
            let (view, handle) = start_cache(
                cluster.client.clone(),
                kind,
                selection,
                warm.persist.clone(),
            );
            caches.views.push((kind, view));
            caches.handles.push(handle);
        }
        // Looked at once, right after the start: a file loaded is answered from even if its
        // verification completes a moment later.
        let ages: Vec<Option<Duration>> = caches
            .views
            .iter()
            .map(|(_, view)| warm_age(view))
            .collect();
        for ((kind, view), age) in caches.views.iter().zip(ages) {
            if let (Some(bound), Some(age)) = (warm.max_staleness, age)
                && age <= bound
            {
                caches.warm.push((*kind, age));
                continue;
            }
            if let Some(why) = cluster.unreachable().await {
                bail!("{why}");
            }
            wait_synced(view, kind.plural(), &cluster.server, timeout).await?;
        }
        Ok(caches)
    }

    /// Waits (at most `timeout`) for the caches answered unverified to be verified, so that
    /// their files are rewritten; quietly gives up on failure (the answer was given).
    pub async fn verify_warm(&self, server: &str, timeout: Duration) {
        for (kind, view) in &self.views {
            if self.warm.iter().any(|(k, _)| k == kind) {
                let _ = wait_synced(view, kind.plural(), server, timeout).await;
            }
        }
    }

    /// The caches' reports with their objects, redacted unless `show_secrets`.
    pub fn reports(&self, show_secrets: bool) -> Vec<CacheReport> {
        let redactor: repocache::debug::Redactor = std::sync::Arc::new(crate::redact);
        self.views
            .iter()
            .map(|(_, view)| view.report(true, (!show_secrets).then_some(&redactor)))
            .collect()
    }

    /// The caches' reports with the objects `selection` selects, redacted unless
    /// `show_secrets`: what [`reports`](Self::reports) then [`Selection::filter`] give, but
    /// the objects left out are never serialized nor redacted (`get NAME` of a large cache).
    pub fn selected_reports(&self, show_secrets: bool, selection: &Selection) -> Vec<CacheReport> {
        let redactor: repocache::debug::Redactor = std::sync::Arc::new(crate::redact);
        self.views
            .iter()
            .map(|(kind, view)| {
                view.report_where(
                    &|meta| selection.matches_meta(*kind, meta),
                    (!show_secrets).then_some(&redactor),
                )
            })
            .collect()
    }

    /// Stops the reflectors.
    pub async fn stop(self) {
        for handle in self.handles {
            handle.stop().await;
        }
    }
}

/// A running process's debug endpoint.
#[derive(Clone)]
pub struct Endpoint {
    client: Client,
    url: String,
    token: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).finish()
    }
}

impl Endpoint {
    /// The endpoint at `url` (e.g. `http://127.0.0.1:9464`), with an optional bearer token.
    /// Messages show the URL with any userinfo masked.
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let real = url.trim_end_matches('/');
        let url = shown_url(real);
        let uri: http::Uri = real
            .parse()
            .map_err(|e| anyhow!("invalid endpoint URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") && uri.scheme_str() != Some("https") {
            bail!("invalid endpoint URL {url:?}: expected http://host:port");
        }
        let mut config = Config::new(uri);
        config.default_retry = false;
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(30));
        let client =
            Client::try_from(config).with_context(|| format!("cannot build a client for {url}"))?;
        Ok(Self {
            client,
            url,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The endpoint's URL (userinfo masked).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// GETs `path_and_query` and decodes its JSON body; every failure is one clear message.
    pub async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> anyhow::Result<T> {
        let mut request = http::Request::get(path_and_query);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(kube::client::Body::from(Vec::new()))
            .context("cannot build the request")?;
        let response = self.client.send(request).await.map_err(|e| {
            anyhow!(
                "{}",
                unreachable(
                    &e,
                    &format!("the debug endpoint at {}", self.url),
                    "--endpoint; is the process running?"
                )
            )
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow!("reading the answer of {}: {e}", self.url))?
            .to_bytes();
        let server_message = || {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned())
        };
        match status.as_u16() {
            200..=299 => serde_json::from_slice(&body).with_context(|| {
                format!("{} answered something that is not a debug report", self.url)
            }),
            401 => bail!(
                "the debug endpoint at {} refused the request (401): {} token (--token or REPOCACHE_TOKEN)",
                self.url,
                if self.token.is_some() {
                    "wrong"
                } else {
                    "missing"
                }
            ),
            404 if path_and_query.starts_with("/debug/caches?") && body.starts_with(b"{") => {
                bail!("the debug endpoint at {}: {}", self.url, server_message())
            }
            404 => bail!(
                "{} has no debug endpoint (404 for {path_and_query})",
                self.url
            ),
            code => bail!(
                "the debug endpoint at {} answered {code}: {}",
                self.url,
                server_message()
            ),
        }
    }

    /// The endpoint's reports with objects: of `kind`, or of every cache it serves (`None`).
    /// With `secrets`, asks for unredacted objects (honoured only by an endpoint started with
    /// `allow_secrets`; others answer 403).
    pub async fn reports(
        &self,
        kind: Option<Kind>,
        secrets: bool,
    ) -> anyhow::Result<Vec<CacheReport>> {
        let mut query = String::from("/debug/caches?objects=true");
        if let Some(kind) = kind {
            query.push_str("&kind=");
            query.push_str(kind.name());
        }
        if secrets {
            query.push_str("&secrets=true");
        }
        let report: CachesReport = self.get_json(&query).await?;
        let mut caches = report.caches;
        if !secrets {
            for cache in &mut caches {
                for object in cache.objects.iter_mut().flatten() {
                    crate::redact(object);
                }
            }
        }
        Ok(caches)
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather than
/// "ServiceError: client error (Connect)".
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}
