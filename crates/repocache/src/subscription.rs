//! [`Subscription`]: a stream of the changes a cache publishes.
//!
//! A new subscriber first receives the current state as [`Change::Added`], then
//! [`Change::Synced`], then every change as the writer publishes it. The writer never waits for
//! a subscriber: each one reads from a bounded broadcast buffer, and one that falls behind gets
//! [`Change::Lagged`] followed by the changes (computed by diffing snapshots) that bring its view
//! to the current snapshot, then `Synced` again. Deletes are always delivered, including objects
//! that vanished in a relist.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use kube::Resource;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::cache::Shared;
use crate::change::{Batch, Change, diff};
use crate::snapshot::Snapshot;

/// A stream of a cache's changes; see [`Cache::subscribe`](crate::Cache::subscribe).
///
/// The stream ends when the cache's writer (its reflector) stops, after the changes it had
/// published.
pub struct Subscription<K> {
    batches: Option<BroadcastStream<Arc<Batch<K>>>>,
    /// The snapshot the subscriber's view equals once `queue` is delivered.
    view: Arc<Snapshot<K>>,
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
        let view = shared.current.load_full();
        let generation = view.generation();
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
            queue,
            shared,
        }
    }

    /// The generation of the snapshot the subscriber's view will equal once the changes
    /// already queued for it are delivered.
    pub fn generation(&self) -> u64 {
        self.view.generation()
    }

    fn apply(&mut self, batch: &Batch<K>) {
        let generation = batch.snapshot.generation();
        if generation <= self.view.generation() {
            return;
        }
        match &batch.changes {
            Some(changes) => self.queue.extend(changes.iter().cloned()),
            None => self
                .queue
                .extend(diff(&self.view, &batch.snapshot, generation)),
        }
        self.view = batch.snapshot.clone();
    }

    fn resync(&mut self, missed: u64) {
        let current = self.shared.current.load_full();
        let generation = current.generation();
        self.queue.push_back(Change::Lagged { missed, generation });
        self.queue.extend(diff(&self.view, &current, generation));
        self.queue.push_back(Change::Synced { generation });
        self.view = current;
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
                    this.resync(missed)
                }
            }
        }
    }
}

impl<K> Unpin for Subscription<K> {}
