//! WATCH streams: newline-delimited JSON events, one chunk per event, with initial state,
//! history replay, selector enter/leave emulation, bookmarks, timeouts and the watch faults.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::errors::ApiError;
use crate::resources::ResId;
use crate::server::Shared;
use crate::store::{EventType, Feed, Filter, Subscription, WatchRecord, WatchStart, set_rv};

/// The annotation that marks the end of the initial events of a streaming list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// What a WATCH request asked for.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    pub res: ResId,
    pub filter: Filter,
    pub start: WatchStart,
    /// Send the `initial-events-end` bookmark after the initial state (streaming lists).
    pub initial_events_end: bool,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
}

/// Counts open watch streams.
pub(crate) struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(c: &Arc<AtomicUsize>) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        OpenGuard(c.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Start a watch and return the streaming body fed by a task.
///
/// A resourceVersion older than the history window is answered like upstream: `200 OK` and a
/// single `ERROR` event carrying a 410 `Expired` Status, then the end of the stream. A
/// resourceVersion newer than the server's fails the request itself (504).
pub(crate) fn start(shared: Arc<Shared>, req: WatchRequest) -> Result<Body, ApiError> {
    let sub = match shared.store.subscribe(req.res, req.start) {
        Ok(sub) => sub,
        Err(e) if e.code == 410 => {
            tracing::debug!(error = %e, "watch from a compacted resourceVersion");
            let line = event_line(k8s_wire::EventType::Error.as_str(), &e.to_status());
            return Ok(Body::from_stream(futures::stream::once(async move {
                Ok::<_, Infallible>(line)
            })));
        }
        Err(e) => return Err(e),
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let guard = OpenGuard::new(&shared.open_watches);
    tokio::spawn(async move {
        let _guard = guard;
        let mut w = Watcher { shared, req, tx };
        w.run(sub).await;
    });
    let stream =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>)));
    Ok(Body::from_stream(stream))
}

/// One watch event line (`k8s-wire`'s encoding: the type first, as the API server writes it).
fn event_line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(k8s_wire::encode_line(kind, object))
}

struct Watcher {
    shared: Arc<Shared>,
    req: WatchRequest,
    tx: mpsc::Sender<Bytes>,
}

/// Why the stream ended.
enum Stop {
    Client,
    Ended,
}

impl Watcher {
    async fn send(&self, line: Bytes) -> Result<(), Stop> {
        self.tx.send(line).await.map_err(|_| Stop::Client)
    }

    async fn send_event(&self, kind: EventType, obj: &Value) -> Result<(), Stop> {
        self.send(event_line(kind.as_str(), obj)).await
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let (api_version, kind) = self
            .shared
            .store
            .def(self.req.res)
            .map(|d| (d.api_version(), d.kind.clone()))
            .unwrap_or_default();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        json!({"kind": kind, "apiVersion": api_version, "metadata": meta})
    }

    /// Apply the filter to a committed change, emulating upstream's selector enter/leave events.
    async fn process(&self, rec: &WatchRecord) -> Result<(), Stop> {
        if rec.res != self.req.res {
            return Ok(());
        }
        let f = &self.req.filter;
        match rec.kind {
            EventType::Added | EventType::Deleted => {
                if f.matches(&rec.object) {
                    self.send_event(rec.kind, &rec.object).await?;
                }
            }
            EventType::Modified => {
                let now = f.matches(&rec.object);
                let before = rec.prev.as_ref().is_some_and(|p| f.matches(p));
                match (before, now) {
                    (true, true) => self.send_event(EventType::Modified, &rec.object).await?,
                    (false, true) => self.send_event(EventType::Added, &rec.object).await?,
                    (true, false) => {
                        let mut gone = rec.prev.clone().unwrap_or_else(|| rec.object.clone());
                        set_rv(&mut gone, rec.rv);
                        self.send_event(EventType::Deleted, &gone).await?;
                    }
                    (false, false) => {}
                }
            }
        }
        Ok(())
    }

    async fn process_feed(&self, feed: Feed) -> Result<(), Stop> {
        match feed {
            Feed::Event(rec) => self.process(&rec).await,
            Feed::Bytes { res, bytes } => {
                if res == self.req.res {
                    self.send(bytes).await?;
                }
                Ok(())
            }
            // Ends the watch at once (see `Feed::Restart`); the dropped connection follows.
            Feed::Restart => Err(Stop::Ended),
            Feed::Raw { res, line, cut } => {
                if cut && res.is_none_or(|r| r == self.req.res) {
                    self.send(Bytes::from(line)).await?;
                    return Err(Stop::Ended);
                }
                if res.is_none_or(|r| r == self.req.res) {
                    let mut line = line;
                    if !line.ends_with('\n') {
                        line.push('\n');
                    }
                    self.send(Bytes::from(line)).await?;
                }
                Ok(())
            }
        }
    }

    /// Wait while watches are stalled. Returns an error if the stream should end meanwhile.
    async fn stall_gate(
        &self,
        stall: &mut tokio::sync::watch::Receiver<crate::faults::Stall>,
        close: &mut tokio::sync::watch::Receiver<u64>,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        loop {
            let s = *stall.borrow_and_update();
            if !s.stalled_now() {
                return Ok(());
            }
            let until = s.until.map(Instant::from_std);
            tokio::select! {
                _ = self.tx.closed() => return Err(Stop::Client),
                _ = close.changed() => return Err(Stop::Ended),
                _ = sleep_opt(deadline) => return Err(Stop::Ended),
                _ = stall.changed() => {}
                _ = sleep_opt(until) => {}
            }
        }
    }

    async fn run(&mut self, sub: Subscription) {
        match self.run_inner(sub).await {
            Ok(()) | Err(Stop::Ended) => tracing::debug!(resource = self.req.res, "watch ended"),
            Err(Stop::Client) => tracing::debug!(resource = self.req.res, "watch client went away"),
        }
    }

    async fn run_inner(&mut self, sub: Subscription) -> Result<(), Stop> {
        let Subscription {
            mut rx,
            state,
            replay,
            rv,
        } = sub;
        let deadline = self.req.timeout.map(|t| Instant::now() + t);
        let mut stall = self.shared.faults.stall.subscribe();
        let mut close = self.shared.faults.close_watches.subscribe();
        close.borrow_and_update();

        self.stall_gate(&mut stall, &mut close, deadline).await?;
        for obj in &state {
            if self.req.filter.matches(obj) {
                self.send_event(EventType::Added, obj).await?;
            }
        }
        for rec in &replay {
            self.process(rec).await?;
        }
        if self.req.initial_events_end {
            let b = self.bookmark(rv, true);
            self.send(event_line(k8s_wire::EventType::Bookmark.as_str(), &b))
                .await?;
        }

        let period = self
            .shared
            .config
            .bookmark_interval
            .max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.stall_gate(&mut stall, &mut close, deadline).await?;
            tokio::select! {
                biased;
                _ = self.tx.closed() => return Err(Stop::Client),
                _ = close.changed() => return Err(Stop::Ended),
                _ = sleep_opt(deadline) => return Ok(()),
                _ = stall.changed() => {}
                _ = ticker.tick(), if self.req.bookmarks => {
                    let (current, pending, lagged) = self.shared.store.drain_at_current(&mut rx);
                    for f in pending {
                        self.process_feed(f).await?;
                    }
                    if lagged {
                        tracing::warn!("watch fell behind the event feed; closing it");
                        return Err(Stop::Ended);
                    }
                    let b = self.bookmark(current, false);
                    self.send(event_line(k8s_wire::EventType::Bookmark.as_str(), &b)).await?;
                }
                msg = rx.recv() => match msg {
                    Ok(f) => self.process_feed(f).await?,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "watch fell behind the event feed; closing it");
                        return Err(Stop::Ended);
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(Stop::Ended),
                },
            }
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
