//! A downstream WATCH of a cached kind, served from its hub: the initial state or a replay from
//! the history, then the live events, with bookmarks, `timeoutSeconds` and selectors. A watch
//! that falls more than its buffer behind is closed (its connection is dropped): the client
//! resumes from the last resourceVersion it saw, or relists.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use k8s_selectors::{FieldSelector, LabelSelector};
use k8s_wire::{EventType, ListOptions, Reason, Status, WatchStart};
use serde_json::json;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;
use tracing::debug;

use crate::RelayBody;
use crate::hub::{Filter, Hub, Start, Subscribed};
use crate::stats::Counters;

/// The annotation that marks the end of the initial events of a streaming list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// What the watch settings of the relay are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchConfig {
    /// Lines a watch may have queued for its client; one more closes it.
    pub buffer: usize,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How long a live line waits for room in a full buffer before the watch is closed.
    pub grace: Duration,
}

/// Why a watch is not served here (it goes upstream instead).
#[derive(Debug)]
pub(crate) struct PassThrough(pub &'static str);

/// Serves a watch of `hub`'s kind, or says why it must go upstream.
pub(crate) fn serve(
    hub: Arc<Hub>,
    namespace: Option<&str>,
    options: &ListOptions,
    config: WatchConfig,
    kill: Arc<Notify>,
    counters: Arc<Counters>,
) -> Result<Response<RelayBody>, PassThrough> {
    if !hub.is_started() {
        return Err(PassThrough("the kind's hub has no state yet"));
    }
    if !options.other.is_empty() {
        // An option the hub does not implement (e.g. KEP-5866's `shardSelector`) could narrow
        // the answer: only the server can honour it.
        return Err(PassThrough("a watch option the relay does not implement"));
    }
    let start = options
        .watch_start()
        .map_err(|_| PassThrough("watch options the server must judge"))?;
    let filter = Filter {
        namespace: namespace.map(str::to_owned),
        labels: LabelSelector::parse(options.label_selector.as_deref().unwrap_or(""))
            .map_err(|_| PassThrough("a label selector the server must judge"))?,
        fields: FieldSelector::parse(options.field_selector.as_deref().unwrap_or(""))
            .map_err(|_| PassThrough("a field selector the server must judge"))?,
    };
    let bookmarks = options.allow_watch_bookmarks().unwrap_or(false);
    let timeout = options
        .timeout_seconds()
        .map_err(|_| PassThrough("a timeout the server must judge"))?
        .map(Duration::from_secs);
    let initial_events_end = matches!(start, WatchStart::InitialEvents { .. });
    let not_older_than = match start {
        WatchStart::InitialEvents {
            not_older_than: Some(n),
        } => Some(n),
        _ => None,
    };
    let subscribed = match hub.subscribe(start) {
        Start::Expired { requested, oldest } => {
            counters.watch_expired.fetch_add(1, Ordering::Relaxed);
            let status = Status::failure(
                Reason::Expired,
                format!("too old resource version: {requested} ({oldest})"),
            );
            let line = k8s_wire::encode_line(
                EventType::Error.as_str(),
                &serde_json::to_value(&status).unwrap_or_default(),
            );
            return Ok(stream_response(Box::pin(futures::stream::once(
                async move { Bytes::from(line) },
            ))));
        }
        Start::Go(subscribed) => subscribed,
    };
    if let (Some(min), Some(initial)) = (not_older_than, subscribed.initial.as_ref())
        && initial.rv() < min
    {
        return Err(PassThrough("a streaming list newer than the cache"));
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(config.buffer.max(1));
    counters.watches_served.fetch_add(1, Ordering::Relaxed);
    let open = OpenWatch::new(counters.clone());
    let watcher = Watcher {
        hub,
        filter,
        tx,
        bookmarks,
        initial_events_end,
        deadline: timeout.map(|t| Instant::now() + t),
        config,
        kill,
        counters,
    };
    tokio::spawn(async move {
        let _open = open;
        watcher.run(*subscribed).await;
    });
    // One write per wake-up of the connection: every line already queued goes out as one
    // chunk (a shared line alone is sent as is, without a copy).
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|first| first.map(|first| coalesce(first, &mut rx)))
    });
    Ok(stream_response(Box::pin(stream)))
}

/// At most this many bytes are gathered into one write of a watch.
const MAX_WRITE: usize = 256 * 1024;

/// `first` followed by the lines already queued behind it (up to [`MAX_WRITE`] bytes), as one
/// buffer; `first` itself when nothing else is queued.
fn coalesce(first: Bytes, rx: &mut mpsc::Receiver<Bytes>) -> Bytes {
    if first.len() >= MAX_WRITE {
        return first;
    }
    let Ok(second) = rx.try_recv() else {
        return first;
    };
    let mut batch = BytesMut::with_capacity((first.len() + second.len()) * 2);
    batch.extend_from_slice(&first);
    batch.extend_from_slice(&second);
    while batch.len() < MAX_WRITE {
        match rx.try_recv() {
            Ok(next) => batch.extend_from_slice(&next),
            Err(_) => break,
        }
    }
    batch.freeze()
}

fn stream_response(
    lines: std::pin::Pin<Box<dyn futures::Stream<Item = Bytes> + Send>>,
) -> Response<RelayBody> {
    use futures::StreamExt as _;
    let body = StreamBody::new(lines.map(|b| Ok::<_, crate::BoxError>(Frame::data(b))));
    let mut response = Response::new(body.boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// Counts an open watch for as long as its task runs.
struct OpenWatch(Arc<Counters>);

impl OpenWatch {
    fn new(counters: Arc<Counters>) -> Self {
        counters.watches_open.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.watches_open.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Watcher {
    hub: Arc<Hub>,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    bookmarks: bool,
    initial_events_end: bool,
    deadline: Option<Instant>,
    config: WatchConfig,
    kill: Arc<Notify>,
    counters: Arc<Counters>,
}

/// The live events a watch already has (from its initial state) or asked not to get.
#[derive(Clone, Copy)]
struct Skip {
    /// Events of this generation or older.
    generation: u64,
    /// Events at or below this resourceVersion.
    rv: u64,
}

/// Events a watch takes from the ring in one go before it yields.
const DRAIN: usize = 64;

/// Why a watch ended.
enum End {
    /// The client went away, or the time ran out.
    Done,
    /// The kind's cache stopped.
    CacheStopped,
    /// The client fell behind: its connection is closed.
    Slow(&'static str),
}

impl Watcher {
    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        let object = json!({
            "kind": self.hub.names.kind,
            "apiVersion": self.hub.names.api_version,
            "metadata": meta,
        });
        Bytes::from(k8s_wire::encode_line(EventType::Bookmark.as_str(), &object))
    }

    /// Queues a line, waiting for room (the initial state and replays).
    async fn send(&self, line: Bytes) -> Result<(), End> {
        self.tx.send(line).await.map_err(|_| End::Done)
    }

    /// Queues a live line: a buffer still full after the grace period means the client fell
    /// behind (a burst that the client drains in time is no reason to close it).
    async fn push(&self, line: Bytes) -> Result<(), End> {
        match self.tx.try_send(line) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End::Done),
            Err(mpsc::error::TrySendError::Full(line)) => {
                match tokio::time::timeout(self.config.grace, self.tx.send(line)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(End::Done),
                    Err(_) => Err(End::Slow("its buffer stayed full")),
                }
            }
        }
    }

    async fn run(self, subscribed: Subscribed) {
        match self.run_inner(subscribed).await {
            End::Done => debug!(kind = %self.hub.names.kind, "relay watch ended"),
            End::CacheStopped => {
                self.counters
                    .watches_ended_cache_stopped
                    .fetch_add(1, Ordering::Relaxed);
                debug!(kind = %self.hub.names.kind, "relay watch ended: the kind's cache stopped");
            }
            End::Slow(why) => {
                self.counters
                    .watches_closed_slow
                    .fetch_add(1, Ordering::Relaxed);
                debug!(kind = %self.hub.names.kind, why, "relay watch fell behind; closing its connection");
                self.kill.notify_one();
            }
        }
    }

    async fn run_inner(&self, subscribed: Subscribed) -> End {
        let Subscribed {
            initial,
            replay,
            mut rx,
            skip_through,
            after_rv,
        } = subscribed;
        let skip = Skip {
            generation: skip_through,
            rv: after_rv,
        };
        if let Some(held) = initial {
            let initial = held.initial(&self.filter);
            drop(held);
            for line in initial.lines {
                if let Err(end) = self.send(line).await {
                    return end;
                }
            }
            if self.initial_events_end
                && let Err(end) = self.send(self.bookmark(initial.rv, true)).await
            {
                return end;
            }
        }
        for event in &replay {
            if let Some(line) = self.filter.line_for(event)
                && let Err(end) = self.send(line).await
            {
                return end;
            }
        }
        drop(replay);
        let mut stop = self.hub.stopped();
        let stopped = async move {
            // An error is a hub gone: ended too.
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        tokio::pin!(stopped);
        let period = self.config.bookmark_interval.max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = self.tx.closed() => return End::Done,
                _ = sleep_opt(self.deadline) => return End::Done,
                // The kind's cache stopped: end the stream cleanly (after what was queued), so
                // that the client resumes or re-lists (upstream, as the hub no longer serves).
                _ = &mut stopped => return End::CacheStopped,
                _ = ticker.tick(), if self.bookmarks => {
                    // Read the version first, then take every event already in the ring: the
                    // hub updates both under one lock, so the bookmark never overtakes an event.
                    let rv = self.hub.current();
                    loop {
                        match rx.try_recv() {
                            Ok(event) => {
                                if let Err(end) = self.deliver(&event, skip).await {
                                    return end;
                                }
                            }
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                return End::Slow("it fell behind the kind's events");
                            }
                            Err(broadcast::error::TryRecvError::Closed) => return End::Done,
                        }
                    }
                    if let Err(end) = self.push(self.bookmark(rv, false)).await {
                        return end;
                    }
                }
                event = rx.recv() => match event {
                    Ok(event) => {
                        if let Err(end) = self.deliver(&event, skip).await {
                            return end;
                        }
                        // Take what else is already in the ring before yielding: the
                        // connection then writes it all at once.
                        for _ in 0..DRAIN {
                            match rx.try_recv() {
                                Ok(event) => {
                                    if let Err(end) = self.deliver(&event, skip).await {
                                        return end;
                                    }
                                }
                                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                    return End::Slow("it fell behind the kind's events");
                                }
                                Err(broadcast::error::TryRecvError::Closed) => return End::Done,
                                Err(broadcast::error::TryRecvError::Empty) => break,
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return End::Slow("it fell behind the kind's events");
                    }
                    Err(broadcast::error::RecvError::Closed) => return End::Done,
                },
            }
        }
    }

    async fn deliver(&self, event: &crate::hub::WireEvent, skip: Skip) -> Result<(), End> {
        if event.generation <= skip.generation || event.rv <= skip.rv {
            return Ok(());
        }
        match self.filter.line_for(event) {
            Some(line) => self.push(line).await,
            None => Ok(()),
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::hub::{self, HubConfig, KindNames};
    use glasskube_api::PackageRepository;

    const T: Duration = Duration::from_secs(20);

    fn names() -> KindNames {
        KindNames {
            group: "packages.glasskube.dev".into(),
            version: "v1alpha1".into(),
            plural: "packagerepositories".into(),
            kind: "PackageRepository".into(),
            api_version: "packages.glasskube.dev/v1alpha1".into(),
            namespaced: false,
        }
    }

    fn config() -> WatchConfig {
        WatchConfig {
            buffer: 64,
            bookmark_interval: Duration::from_secs(10),
            grace: Duration::from_millis(500),
        }
    }

    /// Open watches of a kind end cleanly when its cache stops (the reflector ends), and a
    /// watch asked for afterwards is passed upstream instead of hanging on a hub that will never
    /// send anything again.
    #[tokio::test]
    async fn open_watches_end_when_the_kinds_cache_stops() {
        let server = repocache_test_support::apisim().await;
        let client = repocache_test_support::client_without_retry(&server);
        let (cache, reflector) =
            repocache::ReflectorBuilder::new(kube::Api::<PackageRepository>::all(client)).start();
        let (hub, _task) = hub::start(
            cache,
            names(),
            HubConfig {
                history: 100,
                ring: 100,
            },
        );
        assert!(hub.wait_started(T).await, "the hub never started");
        let counters = Arc::new(Counters::default());
        let open = |query: &str| {
            serve(
                hub.clone(),
                None,
                &ListOptions::parse(query).unwrap(),
                config(),
                Arc::new(Notify::new()),
                counters.clone(),
            )
        };
        // One watch with its initial state, one from now on with bookmarks.
        let mut bodies = [
            open("watch=true").map_err(|p| p.0).unwrap().into_body(),
            open("watch=true&resourceVersion=0&sendInitialEvents=false&allowWatchBookmarks=true")
                .map_err(|p| p.0)
                .unwrap()
                .into_body(),
        ];
        // The first one delivers its initial state: it is live.
        let first = tokio::time::timeout(T, bodies[0].frame())
            .await
            .expect("no initial event")
            .unwrap()
            .unwrap();
        assert!(
            first
                .data_ref()
                .is_some_and(|d| d.starts_with(b"{\"type\":\"ADDED\""))
        );
        assert_eq!(counters.watches_open.load(Ordering::Relaxed), 2);

        reflector.stop().await;

        for (i, body) in bodies.iter_mut().enumerate() {
            let ended = tokio::time::timeout(T, async {
                loop {
                    match body.frame().await {
                        None => return true,
                        Some(Ok(_)) => {}
                        Some(Err(_)) => return false,
                    }
                }
            })
            .await;
            assert_eq!(ended, Ok(true), "watch {i} did not end cleanly");
        }
        repocache_test_support::eventually("both watch tasks end", || {
            counters.watches_open.load(Ordering::Relaxed) == 0
        })
        .await;
        assert_eq!(
            counters.watches_ended_cache_stopped.load(Ordering::Relaxed),
            2
        );
        // A new watch goes upstream (the client's retry), not to a hub without a cache.
        assert!(!hub.is_started());
        assert!(open("watch=true").is_err());
    }

    /// A watch option the hub does not implement (here KEP-5866's `shardSelector`, which narrows
    /// the answer) sends the watch upstream instead of being ignored; known options are served.
    #[tokio::test]
    async fn a_watch_option_the_hub_does_not_implement_goes_upstream() {
        let server = repocache_test_support::apisim().await;
        let client = repocache_test_support::client_without_retry(&server);
        let (cache, _reflector) =
            repocache::ReflectorBuilder::new(kube::Api::<PackageRepository>::all(client)).start();
        let (hub, _task) = hub::start(
            cache,
            names(),
            HubConfig {
                history: 100,
                ring: 100,
            },
        );
        assert!(hub.wait_started(T).await, "the hub never started");
        let open = |query: &str| {
            serve(
                hub.clone(),
                None,
                &ListOptions::parse(query).unwrap(),
                config(),
                Arc::new(Notify::new()),
                Arc::new(Counters::default()),
            )
        };
        let sharded = open(
            "watch=true&shardSelector=shardRange(object.metadata.uid,'0x0','0x8000000000000000')",
        );
        assert!(sharded.is_err(), "a sharded watch was served unfiltered");
        assert!(open("watch=true&allowWatchBookmarks=true&timeoutSeconds=5").is_ok());
    }
}
