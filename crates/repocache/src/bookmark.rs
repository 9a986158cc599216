//! The reflector's own client layer: a deadline on every non-watch request, and watch
//! BOOKMARKs seen on the wire.
//!
//! **Deadline.** kube's client retries 429/503/504 underneath (up to 15 times, backing off
//! from 5 ms and doubling, honouring `Retry-After`), invisibly to the watcher above it; a LIST
//! against a server that keeps answering 503 could take minutes to fail. Each LIST (each page)
//! the reflector sends, retries included, must answer within the list timeout
//! ([`DEFAULT_LIST_TIMEOUT`]), or it fails with a timeout error that the watcher sees, backs
//! off from, and the cache reports as `Failed`. Watches are long-lived and have no deadline.
//!
//! **Bookmarks.**  kube-runtime's watcher consumes them internally (it only
//! moves its resourceVersion on), so the reflector's client wraps the body of every watch
//! response and reports each bookmark's resourceVersion as its line goes by.
//!
//! A bookmark proves the watch has delivered every change up to its resourceVersion. The line is
//! seen when the watcher's decoder pulls the chunk that holds it, before the events in front of
//! it have reached the reflector; so the reflector applies a reported bookmark only once its
//! event stream has run dry (every complete line pulled so far has then been decoded and
//! handed over) and what it applied is published (see `reflector::Task::apply_bookmark`).
//!
//! Only complete lines that start with `{"type":"BOOKMARK"` are parsed (the API server writes
//! the type first; so does apisim); other lines are skipped without being copied. A bookmark
//! line longer than [`MAX_BOOKMARK_LINE`] is ignored.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use k8s_wire::{EventType, WatchEvent};
use kube::Client;
use kube::client::Body;
use serde::Deserialize;
use tracing::trace;

/// The longest bookmark line parsed (a bookmark is an object with only a resourceVersion and,
/// for the end of a streaming list, one annotation).
const MAX_BOOKMARK_LINE: usize = 64 * 1024;

const PREFIX: &[u8] = b"{\"type\":\"BOOKMARK\"";

/// Where a seen bookmark's resourceVersion goes.
pub(crate) type Sink = Arc<dyn Fn(u64) + Send + Sync>;

/// How long one LIST request of a reflector (kube's retries underneath included) may take before
/// it fails with a timeout, unless told otherwise (see `ReflectorBuilder::list_timeout`).
pub const DEFAULT_LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// A reflector's request that did not answer within its deadline.
#[derive(Debug, thiserror::Error)]
#[error(
    "no answer within {0:?} (the client may be retrying 429/503/504 underneath); the watcher backs off and retries"
)]
pub(crate) struct DeadlineExceeded(Duration);

/// Wraps `client` so that its non-watch requests fail after `list_timeout` (zero: no deadline)
/// and the bodies of its watch responses report their bookmarks to `sink`.
pub(crate) fn observed(client: Client, sink: Sink, list_timeout: Duration) -> Client {
    let namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |request: Request<Body>| {
        let watch = k8s_wire::ListOptions::parse(request.uri().query().unwrap_or_default())
            .is_ok_and(|q| q.watch() == Ok(true));
        let client = client.clone();
        let sink = sink.clone();
        async move {
            let response = if watch || list_timeout.is_zero() {
                client.send(request).await?
            } else {
                match tokio::time::timeout(list_timeout, client.send(request)).await {
                    Ok(response) => response?,
                    Err(_) => {
                        return Err(kube::Error::Service(Box::new(DeadlineExceeded(
                            list_timeout,
                        ))));
                    }
                }
            };
            Ok::<_, kube::Error>(response.map(|body| Observed {
                body,
                scan: watch.then(|| Scan::new(sink)),
            }))
        }
    });
    Client::new(service, namespace)
}

/// A response body that reports the bookmarks of a watch as their lines go by.
struct Observed {
    body: Body,
    scan: Option<Scan>,
}

impl HttpBody for Observed {
    type Data = Bytes;
    type Error = kube::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        if let (Some(Ok(frame)), Some(scan)) = (&frame, this.scan.as_mut())
            && let Some(data) = frame.data_ref()
        {
            scan.feed(data.chunk());
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Line scanner: knows whether the current line may be a bookmark, and keeps it if so.
struct Scan {
    sink: Sink,
    /// The start of the current line, while it is shorter than the prefix.
    head: Vec<u8>,
    /// The current line is a bookmark candidate, kept whole (`None`: not a candidate).
    line: Option<Vec<u8>>,
    /// The current line is not a bookmark (or too long): skip to its end.
    skipping: bool,
}

impl Scan {
    fn new(sink: Sink) -> Self {
        Self {
            sink,
            head: Vec::with_capacity(PREFIX.len()),
            line: None,
            skipping: false,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n');
            let (part, rest, complete) = match end {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            self.part(part);
            if complete {
                self.end_line();
            }
            data = rest;
        }
    }

    /// A piece of the current line (without its newline).
    fn part(&mut self, part: &[u8]) {
        if self.skipping {
            return;
        }
        if let Some(line) = &mut self.line {
            if line.len() + part.len() > MAX_BOOKMARK_LINE {
                self.line = None;
                self.skipping = true;
            } else {
                line.extend_from_slice(part);
            }
            return;
        }
        let take = part.len().min(PREFIX.len() - self.head.len());
        self.head.extend_from_slice(&part[..take]);
        if !PREFIX.starts_with(&self.head) {
            self.head.clear();
            self.skipping = true;
        } else if self.head.len() == PREFIX.len() {
            self.line = Some(std::mem::take(&mut self.head));
            self.part(&part[take..]);
        }
    }

    fn end_line(&mut self) {
        if let Some(line) = self.line.take()
            && let Some(rv) = bookmark_version(&line)
        {
            trace!(resource_version = rv, "bookmark");
            (self.sink)(rv);
        }
        self.head.clear();
        self.skipping = false;
    }
}

/// The resourceVersion of a BOOKMARK line, if it is one and its version is an integer (the
/// line decoded as `k8s-wire`'s `WatchEvent`, reading only the object's version).
fn bookmark_version(line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        resource_version: Option<String>,
    }
    #[derive(Deserialize)]
    struct Object {
        metadata: Option<Meta>,
    }
    let event = WatchEvent::<Option<Object>>::decode(line).ok()?;
    if event.event_type != EventType::Bookmark {
        return None;
    }
    event.object?.metadata?.resource_version?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    fn scan_all(chunks: &[&[u8]]) -> Vec<u64> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink: Sink = {
            let seen = seen.clone();
            Arc::new(move |rv| seen.lock().unwrap().push(rv))
        };
        let mut scan = Scan::new(sink);
        for chunk in chunks {
            scan.feed(chunk);
        }
        seen.lock().unwrap().clone()
    }

    const BM: &[u8] = b"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"X\",\"metadata\":{\"resourceVersion\":\"42\"}}}\n";
    const EV: &[u8] = b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"BOOKMARK\",\"resourceVersion\":\"7\"}}}\n";

    #[test]
    fn bookmarks_are_seen_whole_lines_only_and_across_chunks() {
        assert_eq!(scan_all(&[BM]), [42]);
        assert_eq!(scan_all(&[EV, BM, EV]), [42]);
        let joined = [EV, BM, EV].concat();
        for cut in 0..joined.len() {
            let (a, b) = joined.split_at(cut);
            assert_eq!(scan_all(&[a, b]), [42], "cut at {cut}");
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = joined.chunks(1).collect();
        assert_eq!(scan_all(&bytes), [42]);
        // An incomplete bookmark line is not reported.
        assert_eq!(scan_all(&[&BM[..BM.len() - 1]]), Vec::<u64>::new());
        // Events that mention BOOKMARK elsewhere are not bookmarks.
        assert_eq!(scan_all(&[EV]), Vec::<u64>::new());
    }

    #[test]
    fn non_numeric_or_oversized_bookmarks_are_ignored() {
        let opaque =
            b"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"x1\"}}}\n";
        assert_eq!(scan_all(&[opaque]), Vec::<u64>::new());
        let mut huge = b"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"5\"},\"pad\":\"".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_BOOKMARK_LINE));
        huge.extend_from_slice(b"\"}}\n");
        assert_eq!(scan_all(&[&huge, BM]), [42]);
    }
}
