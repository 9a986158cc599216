//! [`Subscription`]: a stream of the changes a cache publishes.
//!
//! A new subscriber first receives the current state as [`Change::Added`], then
//! [`Change::Synced`], then every change as the writer publishes it. The writer never waits for
//! a subscriber: each one reads from a bounded broadcast buffer, and one that falls behind gets
//! [`Change::Lagged`] followed by the changes (computed by diffing snapshots) that bring its view
//! to the current snapshot, then `Synced` again. Deletes are always delivered, including objects
//! that vanished in a relist. See [`Subscription`] for what a subscriber holds.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use kube::Resource;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::change::{Batch, Change, apply_to, diff};
use crate::ordered::Ordered;
use crate::shared::Shared;

/// A stream of a cache's changes; see [`Cache::subscribe`](crate::Cache::subscribe).
///
/// The stream ends when the cache's writer (its reflector) stops, after the changes it had
/// published.
///
/// # What a subscriber holds
///
/// The broadcast buffer holds no snapshot, only the changes of the last publishes, and the
/// writer bounds them: at most
/// [`subscriber_buffer_changes`](crate::CacheConfig::subscriber_buffer_changes) changes
/// (default [`DEFAULT_SUBSCRIBER_BUFFER_CHANGES`](crate::config::DEFAULT_SUBSCRIBER_BUFFER_CHANGES),
/// 4,096) in at most [`subscriber_buffer`](crate::CacheConfig::subscriber_buffer) batches
/// (default 128). A publish whose changes do not fit is sent without them; subscribers then
/// diff their view against the current snapshot, which delivers the same net changes.
///
/// So a subscriber that never reads costs at most:
/// - its view: the objects of the snapshot it subscribed to (or last caught up with), which
///   it holds as queued `Added` changes and as the base of its next diff — the cache's own
///   objects while they do not change, at most one cache's worth of replaced versions when
///   they all do;
/// - the buffer: 4,096 changes of 32 bytes, each keeping one or two object versions alive, and
///   128 batches of about 80 bytes (the `Arc`'d batch and its broadcast slot) — with the
///   defaults at most 140 KB plus those object versions.
///
/// Measured (tests/subscriber_memory.rs): with 10,000 objects of 1 KB (a cache of 22 MB in
/// the process) and 100 relists that each replace every object, a subscriber that never reads
/// grew the process by 2.2 GB when each buffered batch held its snapshot; now by 23 MB (its
/// view).
pub struct Subscription<K> {
    batches: Option<BroadcastStream<Arc<Batch<K>>>>,
    /// The objects the subscriber's view holds once `queue` is delivered.
    view: Ordered<K>,
    /// The generation of the snapshot `view` equals.
    generation: u64,
    queue: VecDeque<Change<K>>,
    shared: Arc<Shared<K>>,
}

impl<K: Resource + Send + Sync + 'static> Subscription<K> {
    pub(crate) fn new(shared: Arc<Shared<K>>) -> Self {
        // Subscribe before loading the snapshot: every publish after the load is in the buffer,
        // and publishes up to the load are skipped by generation.
        let batches = shared
            .changes
            .upgrade()
            .map(|sender| BroadcastStream::new(sender.subscribe()));
        let current = shared.current.load_full();
        let generation = current.generation();
        let view = current.ordered.clone();
        let mut queue: VecDeque<Change<K>> = view
            .iter()
            .map(|object| Change::Added {
                object: object.clone(),
                generation,
            })
            .collect();
        queue.push_back(Change::Synced { generation });
        Self {
            batches,
            view,
            generation,
            queue,
            shared,
        }
    }

    /// The generation of the snapshot the subscriber's view will equal once the changes
    /// already queued for it are delivered.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn apply(&mut self, batch: &Batch<K>) {
        if batch.generation <= self.generation {
            return;
        }
        let Some(changes) = &batch.changes else {
            // Not recorded (or too many to buffer): diff against the current snapshot.
            self.catch_up(None);
            return;
        };
        self.queue.extend(changes.iter().cloned());
        self.generation = batch.generation;
        let current = self.shared.current.load();
        if current.generation() == batch.generation {
            // The common case: the view is the current snapshot (whose nodes it then shares).
            self.view = current.ordered.clone();
        } else {
            for change in changes {
                apply_to(&mut self.view, change);
            }
        }
    }

    /// Brings the view to the current snapshot by diffing: after a lag (`Lagged` first and
    /// `Synced` last), or for a batch without its changes.
    fn catch_up(&mut self, lagged: Option<u64>) {
        let current = self.shared.current.load_full();
        let generation = current.generation();
        if generation == self.generation {
            // Nothing was missed that the view does not already have (a lag before the first
            // poll, say).
            return;
        }
        if let Some(missed) = lagged {
            self.queue.push_back(Change::Lagged { missed, generation });
        }
        self.queue
            .extend(diff(&self.view, &current.ordered, generation));
        if lagged.is_some() {
            self.queue.push_back(Change::Synced { generation });
        }
        self.view = current.ordered.clone();
        self.generation = generation;
    }
}

impl<K: Resource + Send + Sync + 'static> Stream for Subscription<K> {
    type Item = Change<K>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(change) = this.queue.pop_front() {
                return Poll::Ready(Some(change));
            }
            let Some(batches) = this.batches.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(batches).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.batches = None;
                }
                Poll::Ready(Some(Ok(batch))) => this.apply(&batch),
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                    this.catch_up(Some(missed))
                }
            }
        }
    }
}

impl<K> Unpin for Subscription<K> {}
