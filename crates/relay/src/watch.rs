//! A downstream WATCH of a cached kind, served from its hub: the initial state or a replay from
//! the history, then the live events, with bookmarks, `timeoutSeconds` and selectors.
//!
//! A watch has no task of its own: its response body ([`WatchBody`]) reads the hub's ring each
//! time the connection polls it, and gathers every event already there into one write. A watch
//! that stays more than its buffer behind the newest event for the grace period is closed by the
//! hub's sweep (its connection is dropped); the client resumes from the last resourceVersion it
//! saw, or relists.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use k8s_selectors::{FieldSelector, LabelSelector};
use k8s_wire::{EventType, ListOptions, Reason, Status, WatchStart};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::{Instant, Interval, Sleep};
use tracing::debug;

use crate::hub::{Cursor, Filter, Hub, Slow, Start, Took, WireEvent};
use crate::stats::Counters;
use crate::{BoxError, RelayBody};

/// The annotation that marks the end of the initial events of a streaming list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// What the watch settings of the relay are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchConfig {
    /// Events a live watch may be behind the newest; further behind for longer than `grace`
    /// closes it.
    pub buffer: usize,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How long a watch may stay more than `buffer` events behind before it is closed.
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
    let slow = Slow {
        buffer: config.buffer.max(1) as u64,
        grace: config.grace,
        kill,
        closed_slow: {
            let counters = counters.clone();
            Arc::new(move || {
                counters.watches_closed_slow.fetch_add(1, Ordering::Relaxed);
            })
        },
    };
    let subscribed = match hub.subscribe(start, slow) {
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
            return Ok(stream_response(crate::respond::full(Bytes::from(line))));
        }
        Start::Stopped => return Err(PassThrough("the kind's cache stopped")),
        Start::Go(subscribed) => subscribed,
    };
    if let (Some(min), Some(initial)) = (not_older_than, subscribed.initial.as_ref())
        && initial.rv() < min
    {
        return Err(PassThrough("a streaming list newer than the cache"));
    }
    let mut pending = VecDeque::new();
    if let Some(held) = subscribed.initial {
        let initial = held.initial(&filter);
        drop(held);
        pending.extend(initial.lines);
        if initial_events_end {
            pending.push_back(bookmark(&hub, initial.rv, true));
        }
    }
    pending.extend(
        subscribed
            .replay
            .iter()
            .filter_map(|event| filter.line_for(event)),
    );
    counters.watches_served.fetch_add(1, Ordering::Relaxed);
    let period = config.bookmark_interval.max(Duration::from_millis(10));
    let body = WatchBody {
        open: Some(OpenWatch::new(counters.clone())),
        counters,
        hub,
        filter,
        skip: Skip {
            generation: subscribed.skip_through,
            rv: subscribed.after_rv,
        },
        pending,
        cursor: subscribed.cursor,
        bookmarks: bookmarks.then(|| {
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        }),
        bookmark_due: false,
        deadline: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
        taken: Vec::new(),
        ended: false,
    };
    Ok(stream_response(body.boxed_unsync()))
}

/// At most this many bytes are gathered into one write of a watch.
const MAX_WRITE: usize = 256 * 1024;

/// At most this many events are taken from the ring under one hold of the hub's lock.
const TAKE: usize = 256;

fn stream_response(body: RelayBody) -> Response<RelayBody> {
    let mut response = Response::new(body);
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

/// A `BOOKMARK` line of `hub`'s kind at `rv` (with the initial-events-end annotation).
fn bookmark(hub: &Hub, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({INITIAL_EVENTS_END: "true"});
    }
    let object = json!({
        "kind": hub.names.kind,
        "apiVersion": hub.names.api_version,
        "metadata": meta,
    });
    Bytes::from(k8s_wire::encode_line(EventType::Bookmark.as_str(), &object))
}

/// Counts an open watch for as long as its body lives.
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

/// The live events a watch already has (from its initial state) or asked not to get.
#[derive(Clone, Copy)]
struct Skip {
    /// Events of this generation or older.
    generation: u64,
    /// Events at or below this resourceVersion.
    rv: u64,
}

/// Lines gathered for one write: a single line is sent as is (shared, no copy); more are
/// copied into one buffer.
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    more: Option<BytesMut>,
    len: usize,
}

impl Batch {
    fn push(&mut self, line: Bytes) {
        self.len += line.len();
        match (&self.first, &mut self.more) {
            (None, _) => self.first = Some(line),
            (Some(first), None) => {
                let mut more = BytesMut::with_capacity(self.len * 2);
                more.extend_from_slice(first);
                more.extend_from_slice(&line);
                self.more = Some(more);
            }
            (Some(_), Some(more)) => more.extend_from_slice(&line),
        }
    }

    fn is_full(&self) -> bool {
        self.len >= MAX_WRITE
    }

    fn into_frame(self) -> Option<Frame<Bytes>> {
        match (self.first, self.more) {
            (_, Some(more)) => Some(Frame::data(more.freeze())),
            (Some(first), None) => Some(Frame::data(first)),
            (None, None) => None,
        }
    }
}

/// The body of a watch served from a hub: the initial state or replay, then the ring's events
/// from the watch's cursor, bookmarks, until the client goes away, `timeoutSeconds` pass, the
/// kind's cache stops (a clean end) or the watch falls behind (the connection is dropped).
struct WatchBody {
    hub: Arc<Hub>,
    filter: Filter,
    skip: Skip,
    /// Lines to send before the live events (initial state, its end bookmark, a replay).
    pending: VecDeque<Bytes>,
    cursor: Arc<Cursor>,
    bookmarks: Option<Interval>,
    /// A bookmark is to be sent once the watch has every event before it.
    bookmark_due: bool,
    deadline: Option<Pin<Box<Sleep>>>,
    /// The events of one take (kept for its capacity).
    taken: Vec<Arc<WireEvent>>,
    ended: bool,
    /// Counted open until the watch ends.
    open: Option<OpenWatch>,
    counters: Arc<Counters>,
}

impl WatchBody {
    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.ended = true;
        self.open = None;
        Poll::Ready(None)
    }

    fn fell_behind(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.ended = true;
        self.open = None;
        self.cursor.close_slow(why);
        Poll::Ready(Some(Err(why.into())))
    }
}

/// The line a live event becomes for a watch, if it gets one.
fn wanted(filter: &Filter, skip: Skip, event: &WireEvent) -> Option<Bytes> {
    if event.generation <= skip.generation || event.rv <= skip.rv {
        return None;
    }
    filter.line_for(event)
}

impl Body for WatchBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.cursor.is_closed() {
            return this.fell_behind("its buffer stayed full");
        }
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            debug!(kind = %this.hub.names.kind, "relay watch ended: timeoutSeconds");
            return this.end();
        }
        if let Some(ticker) = this.bookmarks.as_mut() {
            while ticker.poll_tick(cx).is_ready() {
                this.bookmark_due = true;
            }
        }
        let mut batch = Batch::default();
        if !this.pending.is_empty() {
            while !batch.is_full()
                && let Some(line) = this.pending.pop_front()
            {
                batch.push(line);
            }
            if this.pending.is_empty() {
                this.cursor.set_live();
            }
            return Poll::Ready(batch.into_frame().map(Ok));
        }
        this.cursor.set_live();
        loop {
            this.taken.clear();
            let took = this.hub.take(&this.cursor, &mut this.taken, TAKE, cx);
            for event in &this.taken {
                if let Some(line) = wanted(&this.filter, this.skip, event) {
                    batch.push(line);
                }
            }
            let bookmark_at = match took {
                Took::Lagged => return this.fell_behind("it fell behind the kind's events"),
                Took::Stopped => {
                    if let Some(frame) = batch.into_frame() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    this.counters
                        .watches_ended_cache_stopped
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(kind = %this.hub.names.kind, "relay watch ended: the kind's cache stopped");
                    return this.end();
                }
                Took::Events {
                    caught_up: true,
                    current,
                }
                | Took::Pending { current } => Some(current),
                Took::Events {
                    caught_up: false, ..
                } => None,
            };
            if let Some(rv) = bookmark_at
                && this.bookmark_due
            {
                // Every event at or below `rv` is in this batch or was sent before it.
                this.bookmark_due = false;
                batch.push(bookmark(&this.hub, rv, false));
            }
            if batch.is_full() || matches!(took, Took::Pending { .. }) {
                return match batch.into_frame() {
                    Some(frame) => Poll::Ready(Some(Ok(frame))),
                    None => Poll::Pending,
                };
            }
            if bookmark_at.is_some() {
                // Caught up with events to send: out they go (the next poll registers).
                if let Some(frame) = batch.into_frame() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                batch = Batch::default();
            }
        }
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

    /// An apisim, a reflector of its PackageRepositories and the kind's hub, started.
    async fn started_hub(
        ring: usize,
    ) -> (
        apisim::ServerHandle,
        repocache::ReflectorHandle,
        Arc<hub::Hub>,
    ) {
        let server = repocache_test_support::apisim().await;
        let client = repocache_test_support::client_without_retry(&server);
        let (cache, reflector) =
            repocache::ReflectorBuilder::new(kube::Api::<PackageRepository>::all(client)).start();
        let (hub, _task) = hub::start(
            cache,
            names(),
            HubConfig {
                history: ring,
                ring,
            },
        );
        assert!(hub.wait_started(T).await, "the hub never started");
        (server, reflector, hub)
    }

    /// Open watches of a kind end cleanly when its cache stops (the reflector ends), and a
    /// watch asked for afterwards is passed upstream instead of hanging on a hub that will never
    /// send anything again.
    #[tokio::test]
    async fn open_watches_end_when_the_kinds_cache_stops() {
        let (_server, reflector, hub) = started_hub(100).await;
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
        repocache_test_support::eventually("both watches end", || {
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

    /// A watch that has not taken its events while more than the ring holds came (its client
    /// stopped reading) is closed as slow when next polled — an error ends its body and its
    /// connection is dropped — rather than skipping the events it missed.
    #[tokio::test]
    async fn a_watch_that_fell_out_of_the_ring_is_closed_as_slow() {
        let (server, _reflector, hub) = started_hub(4).await;
        let counters = Arc::new(Counters::default());
        let kill = Arc::new(Notify::new());
        let killed = kill.clone();
        let killed = killed.notified();
        tokio::pin!(killed);
        killed.as_mut().enable();
        let mut body = serve(
            hub.clone(),
            None,
            &ListOptions::parse("watch=true&resourceVersion=0&sendInitialEvents=false").unwrap(),
            config(),
            kill,
            counters.clone(),
        )
        .map_err(|p| p.0)
        .unwrap()
        .into_body();
        let control = server.control();
        let mut last = 0;
        for i in 0..10 {
            let created = control
                .create(json!({
                    "apiVersion": "packages.glasskube.dev/v1alpha1",
                    "kind": "PackageRepository",
                    "metadata": {"name": format!("ring-{i}")},
                    "spec": {"url": "https://ring.example"},
                }))
                .unwrap();
            last = created["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
        }
        repocache_test_support::eventually("the hub has every event", || hub.current() >= last)
            .await;
        let frame = tokio::time::timeout(T, body.frame())
            .await
            .expect("the body neither ended nor sent");
        assert!(
            matches!(frame, Some(Err(_))),
            "a watch that missed events went on"
        );
        assert_eq!(counters.watches_closed_slow.load(Ordering::Relaxed), 1);
        assert_eq!(counters.watches_open.load(Ordering::Relaxed), 0);
        tokio::time::timeout(T, killed)
            .await
            .expect("its connection was not dropped");
    }

    /// A watch option the hub does not implement (here KEP-5866's `shardSelector`, which narrows
    /// the answer) sends the watch upstream instead of being ignored; known options are served.
    #[tokio::test]
    async fn a_watch_option_the_hub_does_not_implement_goes_upstream() {
        let (_server, _reflector, hub) = started_hub(100).await;
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
