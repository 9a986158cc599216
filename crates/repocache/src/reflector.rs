//! The reflector: a tokio task that runs kube-runtime's [`watcher`], feeds a [`Writer`], and
//! supervises the cache's freshness.
//!
//! The watch starts on the typed fast path (the kind itself, one pass per object). The first
//! object that does not decode switches it, with one relist and for the reflector's life, to
//! [`Decoded<K>`], so that such an object is skipped (counted and logged) instead of failing its
//! whole list or being lost from the watch; that decode error is not an API failure and never
//! makes the cache `Failed` (see `decode::stream`). Bursts of events
//! that are ready at once are applied together and published as one snapshot, and a steady
//! stream of events is published at most once per publish interval
//! ([`CacheConfig::publish_interval`], 1 ms by default); a relist is published at once.
//!
//! The same task is the supervisor: events, relists and watch BOOKMARKs (seen on the wire by
//! the `bookmark` module; applied only once the events in front of them are in) confirm the
//! snapshot. When it goes unconfirmed for longer than the TTL (a watch that silently stopped
//! delivering), it restarts the watch, which relists; a caller's
//! [`Cache::refresh`] does the same on demand. Until the relist completes, readers keep the last
//! snapshot, and the cache's [`CacheState`] says it is stale (or failing, with the error).

use std::fmt::Debug;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::cache::{Cache, Watched};
use crate::clock::{later, saturating_add};
use crate::config::CacheConfig;
use crate::decode::feed::DecodeFeed;
use crate::decode::object::Decoded;
use crate::line_guard::{LineGuard, OnReject};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::shared::{Command, Shared};
use crate::state::CacheState;
use crate::stats::{ApiReason, EventType, RelistReason};
use crate::writer::{Applied, Publish, Writer};

/// At most this many events that are ready at once are coalesced into one publish.
const MAX_BATCH: usize = 1024;

/// The longest a forced relist may hang before the supervisor forces another (unless the TTL
/// is longer).
const MAX_REFORCE: Duration = Duration::from_secs(300);

/// However often events or bookmarks confirm a snapshot, a cache with a TTL relists at least
/// once every this many TTLs (80 minutes with the default TTL): a safety net that bounds the
/// damage of an event lost anywhere between the store and the cache (bookmarks prove delivery
/// only as far as the server and the watch path are right).
pub const RESYNC_TTLS: u32 = 16;

/// The TTL a cache gets unless told otherwise: five minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

pub use crate::bookmark::DEFAULT_LIST_TIMEOUT;

/// Starts a reflector with the default options: watches `api` with `config` and keeps a
/// cache of its objects. See [`ReflectorBuilder`] for the TTL and metrics.
///
/// # Panics
///
/// When called outside a Tokio runtime (it spawns the watch task).
pub fn reflector<K>(api: Api<K>, config: watcher::Config) -> (Cache<K>, ReflectorHandle)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    ReflectorBuilder::new(api).watcher_config(config).start()
}

/// Configures and starts a reflector: the watch, the TTL, and where its metrics go.
///
/// ```no_run
/// # use std::time::Duration;
/// # use glasskube_api::PackageRepository;
/// # use kube::{Api, Client};
/// # async fn demo(client: Client) {
/// let metrics = repocache::Metrics::new();
/// let (repos, _handle) = repocache::ReflectorBuilder::new(Api::<PackageRepository>::all(client))
///     .ttl(Duration::from_secs(60))
///     .metrics(&metrics)
///     .start();
/// # }
/// ```
pub struct ReflectorBuilder<K> {
    api: Api<K>,
    config: watcher::Config,
    ttl: Duration,
    metrics: Option<Metrics>,
    cache_config: CacheConfig<K>,
    list_timeout: Duration,
}

impl<K> ReflectorBuilder<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    /// A reflector over `api` (its namespace, if any, restricts the cache to that namespace),
    /// with the default watcher config and [`DEFAULT_TTL`].
    pub fn new(api: Api<K>) -> Self {
        Self {
            api,
            config: watcher::Config::default(),
            ttl: DEFAULT_TTL,
            metrics: None,
            cache_config: CacheConfig::default(),
            list_timeout: DEFAULT_LIST_TIMEOUT,
        }
    }

    /// The cache's own options, replaced whole (see [`configure_cache`](Self::configure_cache)
    /// to edit them instead).
    pub fn cache_config(mut self, config: CacheConfig<K>) -> Self {
        self.cache_config = config;
        self
    }

    /// Edits the cache's own options in place (see [`CacheConfig`]: transform, indexes,
    /// subscriber buffer, publish interval, longest watch line): the one way every builder
    /// (`ReflectorBuilder`, `KindOptions`) reaches them, e.g.
    /// `.configure_cache(|c| c.index_by("url", by_url).publish_interval(Duration::ZERO))`.
    pub fn configure_cache(mut self, edit: impl FnOnce(CacheConfig<K>) -> CacheConfig<K>) -> Self {
        self.cache_config = edit(self.cache_config);
        self
    }

    /// The watcher config: label and field selectors, initial list strategy, page size,
    /// bookmarks. Live reads use the same selectors.
    pub fn watcher_config(mut self, config: watcher::Config) -> Self {
        self.config = config;
        self
    }

    /// How long a snapshot may go unconfirmed (no watch event, no BOOKMARK, no relist) before
    /// it is stale and the reflector relists. Zero disables the TTL. Whatever confirms it, a
    /// cache with a TTL also relists once every [`RESYNC_TTLS`] TTLs (a safety net).
    ///
    /// Range: any duration. A TTL too long for the clock to add (e.g. `Duration::MAX`) never
    /// expires, like zero; [`Cache::ttl`] reports it saturated at `u64::MAX` nanoseconds
    /// (about 584 years).
    ///
    /// On a quiet kind only bookmarks confirm the snapshot (the API server sends one about
    /// once a minute when the watch asks for them, as kube-runtime's watcher does by default):
    /// pick a TTL longer than that, or with bookmarks disabled, one that a relist every TTL
    /// does not make expensive (a relist is one paginated LIST).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long one LIST request (one page) of the reflector may take, kube's own retries of
    /// 429/503/504 underneath included, before it fails (default [`DEFAULT_LIST_TIMEOUT`],
    /// 10 s; zero: no deadline). The watcher then backs off and retries, and the cache reports
    /// `Failed`; see the retry policy in [`ReflectorBuilder::start`].
    ///
    /// Range: any duration; a value too long for the clock is no deadline.
    pub fn list_timeout(mut self, timeout: Duration) -> Self {
        self.list_timeout = timeout;
        self
    }

    /// Persists the cache for a warm start (the same as
    /// [`CacheConfig::persist`] through [`configure_cache`](Self::configure_cache); see
    /// [`crate::persist`]).
    pub fn persist(mut self, persist: crate::persist::Persist) -> Self
    where
        K: serde::Serialize,
    {
        self.cache_config = self.cache_config.persist(persist);
        self
    }

    /// Reports this cache's figures through `metrics`.
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Starts the watch task.
    ///
    /// Returns the cache's read handle, not yet ready (see [`Cache::ready`]), and the handle
    /// that stops the task. Watch errors are logged and retried, and never end the task.
    /// Dropping the handle stops the task too.
    ///
    /// # Retry policy
    ///
    /// Three layers, from the bottom:
    ///
    /// 1. The `kube::Client` you gave (if built with kube's default stack) retries 429, 503 and
    ///    504 up to 15 times, backing off from 5 ms and doubling with jitter, honouring
    ///    `Retry-After`; the reflector cannot see these retries.
    /// 2. The reflector bounds each LIST (page), those retries included, by the
    ///    [list timeout](Self::list_timeout) (10 s): past it the request fails with a timeout.
    /// 3. kube-runtime's watcher retries a failed LIST or WATCH with its default backoff:
    ///    0.8 s doubling to 30 s, with up to 100 % jitter (so at most 60 s), reset after 120 s of
    ///    success. Every error it sees is logged; a failing relist makes the cache `Failed {
    ///    last_error }` (a failing watch of a fresh, ready cache does not: the snapshot is
    ///    still current; the TTL bounds that).
    ///
    /// So with a persistent 5xx, the cache reports `Failed` within the list timeout of the
    /// relist's start (at once for a status kube does not retry, e.g. 500); and once the
    /// server answers again, the next attempt succeeds within the list timeout plus one
    /// watcher backoff (≤ 10 s + 60 s; after a short outage, a few seconds).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn start(self) -> (Cache<K>, ReflectorHandle) {
        let (cache, pending) = self.prepare();
        (cache, pending.spawn())
    }

    /// Builds the cache and its task without starting the task (a cache set hands out the
    /// caches at registration and starts every task together).
    pub(crate) fn prepare(mut self) -> (Cache<K>, PendingReflector) {
        let max_line = self.cache_config.max_line;
        let plan = self.cache_config.persist.take();
        let mut writer = Writer::<K>::with_config(self.cache_config);
        let shared = writer.shared();
        shared.set_ttl(self.ttl);
        let namespace = self.api.namespace().map(str::to_owned);
        let persister = plan.map(|plan| {
            let store = Arc::new(crate::persist::Store::new(
                plan,
                namespace.as_deref(),
                self.config.label_selector.as_deref(),
                self.config.field_selector.as_deref(),
            ));
            warm_start(&mut writer, &shared, &store);
            crate::persist::Persister::new(store, shared.clone())
        });
        let client = self.api.into_client();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let live = Live::new(
            client.clone(),
            namespace.clone(),
            self.config.label_selector.clone(),
            self.config.field_selector.clone(),
        );
        // The handles carry the reflector's link from the start: a `Cache<K>` can always read
        // live and refresh (no run-time "no reflector").
        let cache = Cache::from_shared(shared.clone(), Watched::new(live, control_tx));
        if let Some(metrics) = &self.metrics {
            metrics.track(&cache);
        }

        let bookmarks: crate::bookmark::Sink = {
            let shared = shared.clone();
            Arc::new(move |rv| shared.saw_bookmark(rv))
        };
        // The bookmark observer sits above the line guard: it sees only the lines the guard
        // let through (never a rejected line, nor what follows it on a cut stream).
        let client = counted(client, shared.clone(), max_line);
        let client = crate::bookmark::observed(client, bookmarks, self.list_timeout);
        let mut api = Api::<Decoded<K>>::all_with(client, &Default::default());
        if let Some(ns) = namespace.as_deref() {
            api = api.constrain(ns);
        }
        let span = info_span!("reflector", kind = %cache.kind(), namespace = namespace.as_deref().unwrap_or(""));
        let cause = Arc::new(StopCause::default());
        let supervisor = shared.clone();
        let task = Task {
            _stopped: StopGuard {
                shared: shared.clone(),
                cause: cause.clone(),
            },
            api,
            config: self.config,
            ttl: self.ttl,
            shared,
            writer,
            feed: DecodeFeed::default(),
            forced: None,
            last_error: None,
            forced_at: None,
            forced_attempts: 0,
            synced_once: false,
            waiters: Vec::new(),
            arrivals: Vec::new(),
            drained: false,
            publish_armed: false,
            persister,
            started: Instant::now(),
        };
        let run: RunFn = Box::new(move |stop_rx| {
            Box::pin(async move {
                let run = task.run(stop_rx, control_rx).instrument(span.clone());
                // A panic in user code (an indexer, a transform) ends the task: the cache must
                // say so, with the message, rather than look alive.
                if let Err(panic) = AssertUnwindSafe(run).catch_unwind().await {
                    let message = panic_message(panic.as_ref());
                    span.in_scope(|| {
                        error!(panic = %message, "reflector task panicked; the cache is stopped");
                    });
                    supervisor
                        .mark_stopped_because(format!("the reflector task panicked: {message}"));
                }
            })
        });
        (cache, PendingReflector { run, cause })
    }
}

/// Loads the cache's warm-start file, if it has a good one, and publishes its objects as the
/// unverified snapshot: state `Stale { reason: WARM_START }` since the file was written.
fn warm_start<K>(writer: &mut Writer<K>, shared: &Shared<K>, store: &crate::persist::Store<K>)
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let started = Instant::now();
    let Some(loaded) = store.load() else {
        return;
    };
    let objects = loaded.objects.len();
    let load = started.elapsed();
    writer.warm(loaded.objects, loaded.age);
    let built = started.elapsed() - load;
    debug!(kind = %shared.kind, ?load, ?built, "warm start: file loaded, snapshot built and published");
    let now = Instant::now();
    shared.set_state(CacheState::Stale {
        since: now.checked_sub(loaded.age).unwrap_or(now),
        reason: crate::persist::WARM_START.to_owned(),
    });
    info!(
        kind = %shared.kind,
        objects,
        withheld = loaded.withheld,
        age = ?loaded.age,
        path = %store.path().display(),
        "warm start: serving the persisted snapshot unverified until the first LIST"
    );
}

type RunFn =
    Box<dyn FnOnce(oneshot::Receiver<()>) -> futures::future::BoxFuture<'static, ()> + Send>;

/// A reflector whose task is built but not yet started.
pub(crate) struct PendingReflector {
    run: RunFn,
    cause: Arc<StopCause>,
}

impl PendingReflector {
    /// Spawns the task on the current Tokio runtime.
    pub(crate) fn spawn(self) -> ReflectorHandle {
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn((self.run)(stop_rx));
        ReflectorHandle {
            stop: Some(stop_tx),
            task: Some(task),
            cause: self.cause,
        }
    }
}

/// What the handle did to end the task (read when the task ends, to say why it stopped).
#[derive(Debug, Default)]
struct StopCause(AtomicU8);

impl StopCause {
    const NONE: u8 = 0;
    const STOPPED: u8 = 1;
    const DROPPED: u8 = 2;

    fn set(&self, cause: u8) {
        let _ = self
            .0
            .compare_exchange(Self::NONE, cause, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Marks the cache stopped, with the reason, when the task ends for whatever reason: a normal
/// stop, the handle dropped, the runtime shut down (the task is dropped), or a panic (the
/// message is added once the panic is caught). The first field of [`Task`], so that it runs
/// before the writer's own drop.
struct StopGuard<K> {
    shared: Arc<Shared<K>>,
    cause: Arc<StopCause>,
}

impl<K> Drop for StopGuard<K> {
    fn drop(&mut self) {
        let reason = if std::thread::panicking() {
            "the reflector task panicked"
        } else {
            match self.cause.0.load(Ordering::Acquire) {
                StopCause::STOPPED => "stopped by ReflectorHandle::stop",
                StopCause::DROPPED => "its ReflectorHandle was dropped",
                _ => "the reflector task was cancelled (its Tokio runtime shut down)",
            }
        };
        info!(kind = %self.shared.kind, reason, "reflector stopped");
        self.shared.mark_stopped_because(reason);
    }
}

/// The message of a caught panic (a `&str` or `String` payload), or a placeholder.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "<a panic payload that is not a string>".to_owned()
    }
}

/// Stops a reflector's watch task: explicitly with [`stop`](Self::stop), or on drop.
///
/// Once stopped, the cache keeps serving its last snapshot; it is never updated again, its
/// state is [`CacheState::Stopped`] (with the reason), and it is no longer ready. The same
/// holds when the task ends otherwise: its runtime shut down, or a panic in user code (the
/// panic's message is logged and kept in the state).
#[derive(Debug)]
pub struct ReflectorHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    cause: Arc<StopCause>,
}

impl ReflectorHandle {
    /// Stops the watch task and waits until it has ended.
    pub async fn stop(mut self) {
        self.cause.set(StopCause::STOPPED);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(err) = task.await
            && err.is_panic()
        {
            warn!("reflector task panicked: {err}");
        }
    }

    /// Whether the watch task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for ReflectorHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.cause.set(StopCause::DROPPED);
            task.abort();
        }
    }
}

/// Wraps `client` so that every request the watcher makes is counted as a relist or a watch,
/// and every watch body's lines pass the [`LineGuard`] (at most `max_line` bytes a line).
fn counted<K>(client: Client, shared: Arc<Shared<K>>, max_line: usize) -> Client
where
    K: Send + Sync + 'static,
{
    let namespace = client.default_namespace().to_owned();
    let on_reject: OnReject = {
        let shared = shared.clone();
        Arc::new(move |why, len| {
            shared.counters.record_rejected_line(why);
            warn!(
                reason = why.as_str(),
                bytes = len,
                max_line,
                "watch line rejected; relisting"
            );
        })
    };
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        // kube's own query, read as the API server reads it (`k8s-wire`).
        let query = k8s_wire::ListOptions::parse(request.uri().query().unwrap_or_default())
            .unwrap_or_default();
        let watch = query.watch() == Ok(true);
        let streaming_list = query.send_initial_events() == Ok(Some(true));
        let reason = if watch && !streaming_list {
            ApiReason::Watch
        } else {
            ApiReason::Relist
        };
        shared.counters.record_api(reason);
        let client = client.clone();
        let on_reject = watch.then(|| on_reject.clone());
        async move {
            let response = client.send(request).await?;
            Ok::<_, kube::Error>(response.map(|body| match on_reject {
                Some(on_reject) => LineGuard::watch(body, max_line, on_reject),
                None => LineGuard::pass(body),
            }))
        }
    });
    Client::new(service, namespace)
}

/// What kind of error came last, to name the relist that follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LastError {
    /// 410 Gone: the resourceVersion expired.
    Expired,
    /// Anything else.
    Other,
}

struct Task<K> {
    /// Marks the cache stopped when the task ends (first field: dropped first).
    _stopped: StopGuard<K>,
    api: Api<Decoded<K>>,
    config: watcher::Config,
    ttl: Duration,
    shared: Arc<Shared<K>>,
    writer: Writer<K>,
    feed: DecodeFeed,
    /// Why we restarted the watch, until the relist it causes completes.
    forced: Option<RelistReason>,
    /// The last error since the last completed relist.
    last_error: Option<LastError>,
    /// When we last restarted the watch, until the relist it causes completes.
    forced_at: Option<Instant>,
    /// Restarts forced since the last completed relist (backs off repeated restarts).
    forced_attempts: u32,
    synced_once: bool,
    /// Callers of `refresh()` waiting for the next completed relist.
    waiters: Vec<oneshot::Sender<u64>>,
    /// Arrival times of the events applied since the last publish.
    arrivals: Vec<Instant>,
    /// The last poll of the event stream found nothing ready: every watch line seen on the
    /// wire so far has been decoded and handled (so a bookmark seen may be applied).
    drained: bool,
    /// A publish is deferred (see `CacheConfig::publish_interval`).
    publish_armed: bool,
    /// Keeps the warm-start file up to date (when the cache persists).
    persister: Option<crate::persist::Persister<K>>,
    /// When the task was built: before the first sync, the TTL counts from here (a
    /// warm-start snapshot was confirmed long before).
    started: Instant,
}

type EventStream<K> = crate::decode::stream::Events<K>;

/// What the task does with its one TTL timer when the deadline is `deadline` and the timer is
/// set for `armed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rearm {
    /// Set the timer for this instant.
    At(Instant),
    /// Leave the timer as it is.
    Keep,
    /// No deadline (TTL off): the timer must not fire.
    Disarm,
}

/// The TTL timer is reset only when it is off or the deadline moved *earlier* than where the
/// timer is set: confirmations only push the deadline later (the timer then fires early, and
/// `on_ttl` re-checks and re-arms), so the loop does not touch the timer wheel once per event.
/// The deadline does move earlier: when the k-th forced relist in a row succeeds, the deadline
/// goes from `forced_at` plus the back-off (2ᵏ⁻¹ TTLs) to the new confirmation plus one TTL,
/// and a timer left at the backed-off instant would let an unconfirmed snapshot go unnoticed
/// for up to 2ᵏ⁻¹ − 1 TTLs longer.
fn rearm(armed: Option<Instant>, deadline: Option<Instant>) -> Rearm {
    match deadline {
        Some(at) if armed.is_none_or(|armed| at < armed) => Rearm::At(at),
        Some(_) => Rearm::Keep,
        None => Rearm::Disarm,
    }
}

impl<K> Task<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut stream = self.new_stream();
        debug!(ttl = ?self.ttl, "watch started");
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One timer for the TTL, re-armed only when it fired or must fire earlier (see `rearm`).
        let ttl_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(ttl_timer);
        let mut armed: Option<Instant> = None;
        // The publish the writer deferred (see `CacheConfig::publish_interval`), if any.
        let publish_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(publish_timer);
        let shared = self.shared.clone();
        loop {
            match rearm(armed, self.ttl_deadline()) {
                Rearm::At(at) => {
                    ttl_timer.as_mut().reset(at.into());
                    armed = Some(at);
                }
                Rearm::Keep => {}
                Rearm::Disarm => armed = None,
            }
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(command) = commands.recv() => match command {
                    Command::Refresh(tx) => {
                        self.waiters.push(tx);
                        self.restart(&mut stream, RelistReason::Manual);
                    }
                },
                _ = &mut ttl_timer, if armed.is_some() => {
                    armed = None;
                    self.on_ttl(&mut stream);
                }
                _ = &mut publish_timer, if self.publish_armed => {
                    self.publish_armed = false;
                    self.writer.publish();
                    self.published();
                    self.apply_bookmark();
                }
                _ = housekeeping.tick() => {
                    // Snapshots that readers held past their replacement are freed here.
                    self.writer.release_retired();
                    if let Some(persister) = &mut self.persister {
                        persister.tick();
                    }
                }
                _ = shared.bookmark_seen.notified() => self.apply_bookmark(),
                item = stream.next() => {
                    let Some(item) = item else {
                        warn!("watch stream ended; restarting it");
                        stream = self.new_stream();
                        self.drained = false;
                        self.shared.take_bookmark();
                        continue;
                    };
                    self.handle(item);
                    // Coalesce the events that are already there into the same publish.
                    self.drained = false;
                    for _ in 1..MAX_BATCH {
                        match stream.next().now_or_never() {
                            Some(Some(item)) => self.handle(item),
                            Some(None) => break,
                            None => {
                                self.drained = true;
                                break;
                            }
                        }
                    }
                    if let Some(at) = self.publish_due()
                        && !self.publish_armed
                    {
                        publish_timer.as_mut().reset(timer_deadline(at).into());
                        self.publish_armed = true;
                    }
                    self.apply_bookmark();
                }
            }
        }
        // What was applied but not yet published is not lost on a stop.
        if self.writer.publish() {
            self.published();
        }
        // The task's guard marks the cache stopped, with the reason, as the task ends.
        debug!("watch stopped");
    }

    /// A new watcher, which starts with a relist: on the typed fast path, or over [`Decoded<K>`]
    /// once an object did not decode (see [`crate::decode::stream`]).
    fn new_stream(&self) -> EventStream<K> {
        crate::decode::stream::watch(&self.api, &self.config, &self.shared)
    }

    /// Restarts the watch from scratch: the new stream relists.
    fn restart(&mut self, stream: &mut EventStream<K>, reason: RelistReason) {
        if self.forced != Some(RelistReason::Manual) {
            self.forced = Some(reason);
        }
        self.forced_at = Some(Instant::now());
        self.forced_attempts = self.forced_attempts.saturating_add(1);
        *stream = self.new_stream();
        // Bookmarks seen on the old watch may be ahead of the events it never handed over.
        self.drained = false;
        self.shared.take_bookmark();
        info!(reason = reason.as_str(), "relisting");
    }

    /// When the TTL next needs a look, if it is enabled (and representable).
    fn ttl_deadline(&self) -> Option<Instant> {
        if self.ttl.is_zero() {
            return None;
        }
        // A deadline beyond what an `Instant` can hold is no deadline (saturating: never).
        match self.forced_at {
            Some(at) => later(at, self.reforce_after()),
            None => {
                let ttl = later(self.ttl_base(), self.ttl);
                match (ttl, self.resync_due()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// When the snapshot was last confirmed, for the TTL: before the first sync, not before
    /// the task started (a warm-start snapshot was confirmed when its file was written).
    fn ttl_base(&self) -> Instant {
        let confirmed = self.shared.current.load().confirmed_at();
        if self.synced_once {
            confirmed
        } else {
            confirmed.max(self.started)
        }
    }

    /// When the safety-net relist is due: [`RESYNC_TTLS`] TTLs after the last relist.
    fn resync_due(&self) -> Option<Instant> {
        let last = self.shared.last_relist.load();
        let (_, at) = last.as_deref()?;
        later(*at, self.ttl.saturating_mul(RESYNC_TTLS))
    }

    /// How long a relist we forced may take before we force another: one TTL, doubling with
    /// every further attempt, up to the larger of the TTL and [`MAX_REFORCE`]. The watcher
    /// (and the client) retry failing requests with their own backoff meanwhile; forcing again
    /// only helps a request that hangs, and must not turn an outage into a request storm.
    fn reforce_after(&self) -> Duration {
        let doublings = self.forced_attempts.saturating_sub(1).min(16);
        self.ttl
            .saturating_mul(1 << doublings)
            .min(self.ttl.max(MAX_REFORCE))
    }

    fn on_ttl(&mut self, stream: &mut EventStream<K>) {
        let now = Instant::now();
        if let Some(at) = self.forced_at
            && later(at, self.reforce_after()).is_none_or(|due| now < due)
        {
            return;
        }
        let snapshot = self.shared.current.load_full();
        if snapshot.is_within_ttl(self.ttl) {
            if self.resync_due().is_some_and(|due| now >= due) {
                // Confirmed (by bookmarks), but not relisted for RESYNC_TTLS TTLs: the state
                // stays Ready while the safety-net relist runs.
                info!(
                    ttls = RESYNC_TTLS,
                    "no relist for {RESYNC_TTLS} TTLs; relisting as a safety net"
                );
                self.restart(stream, RelistReason::Resync);
            }
            return;
        }
        let unconfirmed = snapshot.since_confirmed();
        let reason = format!(
            "not confirmed for {unconfirmed:.1?} (TTL {:?}); relisting",
            self.ttl
        );
        warn!("{reason}");
        if matches!(
            **self.shared.state.load(),
            CacheState::Ready | CacheState::Starting
        ) {
            self.shared.set_state(CacheState::Stale {
                since: saturating_add(snapshot.confirmed_at(), self.ttl),
                reason,
            });
        }
        self.restart(stream, RelistReason::Ttl);
    }

    /// Applies the newest BOOKMARK seen on the wire, once that is sound: the event stream has
    /// run dry (so every event in front of the bookmark has been handled), what was handled is
    /// published, and no relist is under way. A bookmark proves the watch delivered every
    /// change up to its resourceVersion: it confirms the current snapshot (as an event would)
    /// and proves it reflects that version ([`Cache::version`]). A stalled watch sends none,
    /// so the TTL still catches it.
    fn apply_bookmark(&mut self) {
        if !self.drained
            || self.publish_armed
            || !self.synced_once
            || self.forced.is_some()
            || self.writer.relist_in_progress()
        {
            return;
        }
        let rv = self.shared.take_bookmark();
        if rv == 0 {
            return;
        }
        self.shared.counters.record_event(EventType::Bookmark);
        self.shared.current.load().confirm(self.shared.clock.now());
        self.shared.note_progress(rv);
        self.recover();
    }

    fn handle(&mut self, item: watcher::Result<Event<Decoded<K>>>) {
        let counters = &self.shared.counters;
        let event = match item {
            Ok(event) => event,
            Err(err) => {
                counters.record_event(EventType::Error);
                self.on_error(&err);
                return;
            }
        };
        counters.record_event(match &event {
            Event::Apply(_) => EventType::Apply,
            Event::Delete(_) => EventType::Delete,
            Event::Init => EventType::Init,
            Event::InitApply(_) => EventType::InitApply,
            Event::InitDone => EventType::InitDone,
        });
        let arrived = Instant::now();
        match self.feed.handle(&mut self.writer, event) {
            Applied::Changed => self.arrivals.push(arrived),
            Applied::Relisted => {
                self.arrivals.push(arrived);
                self.on_relisted();
            }
            _ => {}
        }
    }

    fn on_relisted(&mut self) {
        let reason = match (self.forced.take(), self.synced_once, self.last_error) {
            (Some(reason), _, _) => reason,
            (None, false, _) => RelistReason::Initial,
            (None, true, Some(LastError::Expired)) => RelistReason::Expired,
            (None, true, _) => RelistReason::Error,
        };
        self.forced_at = None;
        self.forced_attempts = 0;
        self.last_error = None;
        self.synced_once = true;
        self.shared.counters.record_relist(reason);
        self.shared
            .last_relist
            .store(Some(Arc::new((reason, Instant::now()))));
        self.shared.set_state(CacheState::Ready);
        let snapshot = self.shared.current.load();
        info!(
            reason = reason.as_str(),
            objects = snapshot.len(),
            generation = snapshot.generation(),
            resource_version = snapshot.resource_version().unwrap_or(""),
            "relist complete"
        );
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(snapshot.generation());
        }
        if let Some(persister) = &mut self.persister {
            persister.verified();
            persister.tick();
        }
    }

    fn on_error(&mut self, err: &watcher::Error) {
        if let Some(message) = crate::line_guard::rejected(err) {
            // The line guard rejected a watch line (counted there) and ended the watch with a
            // 410: the watcher relists. Until then the cache may miss what the line carried.
            if !self.synced_once {
                return;
            }
            self.forced.get_or_insert(RelistReason::Error);
            if matches!(**self.shared.state.load(), CacheState::Ready) {
                self.shared.state.store(Arc::new(CacheState::Stale {
                    since: Instant::now(),
                    reason: message.to_owned(),
                }));
            }
            return;
        }
        let expired = is_expired(err);
        self.last_error = Some(if expired {
            LastError::Expired
        } else {
            LastError::Other
        });
        if expired {
            info!(error = %err, "watch expired; relisting");
            return;
        }
        warn!(error = %err, "watch failed; retrying with backoff");
        let current = self.shared.state.load_full();
        let degraded =
            !self.synced_once || !matches!(*current, CacheState::Ready) || !self.is_fresh();
        if degraded {
            let since = match &*current {
                CacheState::Failed { since, .. } => *since,
                CacheState::Stale { since, .. } => *since,
                _ => Instant::now(),
            };
            self.shared.set_state(CacheState::Failed {
                last_error: err.to_string(),
                since,
            });
        }
    }

    /// After a batch of events: publishes what it changed unless the last publish was less than
    /// the publish interval ago; then returns when the deferred publish is due.
    fn publish_due(&mut self) -> Option<Instant> {
        match self.writer.publish_due() {
            Publish::Deferred(at) => {
                self.recover();
                Some(at)
            }
            Publish::Published | Publish::Clean => {
                self.published();
                None
            }
        }
    }

    /// Records how long the published events took to become visible, and whether the cache
    /// is ready again.
    fn published(&mut self) {
        let visible = Instant::now();
        for arrived in self.arrivals.drain(..) {
            self.shared
                .counters
                .delays
                .observe(visible.saturating_duration_since(arrived));
        }
        self.recover();
    }

    /// Marks a degraded cache ready when its watch delivers again.
    fn recover(&mut self) {
        // Events confirm the snapshot: a degraded cache whose watch delivers again is ready.
        if self.synced_once
            && self.forced.is_none()
            && matches!(
                **self.shared.state.load(),
                CacheState::Failed { .. } | CacheState::Stale { .. }
            )
            && self.is_fresh()
        {
            self.shared.set_state(CacheState::Ready);
        }
    }

    fn is_fresh(&self) -> bool {
        self.shared.current.load().is_within_ttl(self.ttl)
    }
}

/// Tokio's timer ticks once a millisecond and rounds a deadline up to the next tick, so a timer
/// set for `at` fires up to a tick late. A deferred publish aims one tick early instead and so
/// lands on the tick in the millisecond before `at`: under a busy watch that is at most one
/// publish per tick, and an event waits less than the interval, not up to a tick longer.
const TIMER_TICK: Duration = Duration::from_millis(1);

fn timer_deadline(at: Instant) -> Instant {
    at.checked_sub(TIMER_TICK).unwrap_or(at)
}

/// Whether a watcher error says the resourceVersion expired (410 Gone).
fn is_expired(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ttl_timer_moves_only_to_an_earlier_deadline() {
        let now = Instant::now();
        let soon = now + Duration::from_millis(100);
        let late = now + Duration::from_secs(10);
        // Not armed yet: arm for the deadline.
        assert_eq!(rearm(None, Some(late)), Rearm::At(late));
        // A backed-off forced relist succeeded: the deadline moved earlier, the timer follows.
        assert_eq!(rearm(Some(late), Some(soon)), Rearm::At(soon));
        // A confirmation pushed the deadline later, or it did not move: the timer stays (it
        // fires early and the task re-checks), so events do not reset it one by one.
        assert_eq!(rearm(Some(soon), Some(late)), Rearm::Keep);
        assert_eq!(rearm(Some(soon), Some(soon)), Rearm::Keep);
        // The TTL is off.
        assert_eq!(rearm(Some(soon), None), Rearm::Disarm);
        assert_eq!(rearm(None, None), Rearm::Disarm);
    }
}
