//! The reflector: a tokio task that runs kube-runtime's [`watcher`] and feeds a [`Writer`].
//!
//! The watch is opened on [`Decoded<K>`] so that one object that does not decode is skipped
//! (counted and logged) instead of failing its whole list or ending the watch. Bursts of events
//! that are ready at once are applied together and published as one snapshot.

use std::collections::HashSet;
use std::fmt::Debug;
use std::pin::pin;

use futures::{FutureExt, StreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cache::Cache;
use crate::decoded::{Decoded, InvalidObject};
use crate::key::ObjectKey;
use crate::writer::{Applied, Writer};

/// At most this many events that are ready at once are coalesced into one publish.
const MAX_BATCH: usize = 1024;

/// Starts a reflector: watches `api` with `config` and keeps a cache of its objects.
///
/// Returns the cache's read handle, not yet ready (see [`Cache::ready`]), and the handle that
/// stops the watch task. The task uses kube-runtime's [`watcher`] with its default backoff:
/// watch errors are logged and retried, and never end the task. Dropping the handle stops the
/// task too.
///
/// The `api`'s namespace, if any, restricts the cache to that namespace.
///
/// # Panics
///
/// When called outside a Tokio runtime (it spawns the watch task).
pub fn reflector<K>(api: Api<K>, config: watcher::Config) -> (Cache<K>, ReflectorHandle)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let writer = Writer::<K>::new();
    let cache = writer.cache();
    let namespace = api.namespace().map(str::to_owned);
    let mut api = Api::<Decoded<K>>::all_with(api.into_client(), &Default::default());
    if let Some(ns) = namespace.as_deref() {
        api = api.constrain(ns);
    }
    let span = info_span!("reflector", kind = %cache.kind(), namespace = namespace.as_deref().unwrap_or(""));
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(api, config, writer, stop_rx).instrument(span));
    (
        cache,
        ReflectorHandle {
            stop: Some(stop_tx),
            task: Some(task),
        },
    )
}

/// Stops a reflector's watch task: explicitly with [`stop`](Self::stop), or on drop.
///
/// Once stopped, the cache keeps serving its last snapshot; it is never updated again.
#[derive(Debug)]
pub struct ReflectorHandle {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ReflectorHandle {
    /// Stops the watch task and waits until it has ended.
    pub async fn stop(mut self) {
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
            task.abort();
        }
    }
}

async fn run<K>(
    api: Api<Decoded<K>>,
    config: watcher::Config,
    mut writer: Writer<K>,
    mut stop: oneshot::Receiver<()>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let mut feed = Feed::default();
    let mut stream = pin!(watcher(api, config).default_backoff());
    debug!("watch started");
    loop {
        let item = tokio::select! {
            biased;
            _ = &mut stop => break,
            item = stream.next() => item,
        };
        let Some(item) = item else {
            warn!("watch stream ended");
            break;
        };
        feed.handle(&mut writer, item);
        // Coalesce the events that are already there into the same publish.
        for _ in 1..MAX_BATCH {
            match stream.next().now_or_never() {
                Some(Some(item)) => feed.handle(&mut writer, item),
                _ => break,
            }
        }
        writer.publish();
    }
    debug!("watch stopped");
}

/// The reflector's per-stream bookkeeping between the watcher and the writer.
#[derive(Default)]
struct Feed {
    /// Objects currently known not to decode, so each is logged once, not on every event.
    invalid: HashSet<ObjectKey>,
    /// Events seen since the relist in progress started (for the relist's log line).
    listed: usize,
}

impl Feed {
    fn handle<K>(&mut self, writer: &mut Writer<K>, item: watcher::Result<Event<Decoded<K>>>)
    where
        K: Resource + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        let event = match item {
            Ok(event) => event,
            Err(err) => {
                writer.shared().counters.record_watch_error();
                warn!(error = %err, "watch failed; retrying with backoff");
                return;
            }
        };
        let event = match event {
            Event::Init => {
                self.listed = 0;
                Event::Init
            }
            Event::InitDone => Event::InitDone,
            Event::InitApply(Decoded::Valid(obj)) => {
                self.listed += 1;
                self.valid(&obj);
                Event::InitApply(obj)
            }
            Event::Apply(Decoded::Valid(obj)) => {
                self.valid(&obj);
                Event::Apply(obj)
            }
            Event::Delete(Decoded::Valid(obj)) => Event::Delete(obj),
            Event::InitApply(Decoded::Invalid(bad)) | Event::Apply(Decoded::Invalid(bad)) => {
                self.invalid(writer, &bad);
                return;
            }
            Event::Delete(Decoded::Invalid(bad)) => {
                // The object is gone from the server whatever its shape: drop what we hold.
                if let Some(key) = key_of_meta(&bad) {
                    self.invalid.remove(&key);
                    writer.remove(&key, bad.metadata.resource_version.as_deref());
                }
                return;
            }
        };
        let rv = match &event {
            Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => {
                o.meta().resource_version.clone()
            }
            _ => None,
        };
        let applied = writer.stage(event);
        writer.shared().counters.record_event();
        match applied {
            Applied::Relisted => {
                let snapshot = writer.cache().snapshot();
                info!(
                    objects = snapshot.len(),
                    listed = self.listed,
                    resource_version = snapshot.resource_version().unwrap_or(""),
                    "relist complete"
                );
            }
            Applied::Changed => debug!(
                resource_version = rv.as_deref().unwrap_or(""),
                "event applied"
            ),
            _ => {}
        }
    }

    fn valid<K: Resource>(&mut self, obj: &K) {
        if !self.invalid.is_empty()
            && let Some(key) = ObjectKey::of(obj)
            && self.invalid.remove(&key)
        {
            info!(object = %key, "object decodes again");
        }
    }

    fn invalid<K>(&mut self, writer: &Writer<K>, bad: &InvalidObject)
    where
        K: Resource + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        writer.shared().counters.record_decode_failure();
        let key = key_of_meta(bad);
        let first = match &key {
            Some(key) => self.invalid.insert(key.clone()),
            None => true,
        };
        if first {
            warn!(
                object = %key.map(|k| k.to_string()).unwrap_or_else(|| "<unnamed>".into()),
                resource_version = bad.metadata.resource_version.as_deref().unwrap_or(""),
                error = %bad.error,
                "object does not decode; skipped"
            );
        }
    }
}

fn key_of_meta(bad: &InvalidObject) -> Option<ObjectKey> {
    let name = bad.metadata.name.as_deref().filter(|n| !n.is_empty())?;
    Some(
        match bad.metadata.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => ObjectKey::namespaced(ns, name),
            None => ObjectKey::cluster(name),
        },
    )
}
