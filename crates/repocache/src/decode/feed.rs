//! [`DecodeFeed`]: the step between the watcher and the writer that unwraps per-object decoding.
//!
//! Valid objects go to the writer; an object that did not decode is counted, logged once (until
//! it decodes again) and skipped, except that its delete still removes what the cache holds
//! under its name — unless it names another kind (`apiVersion`/`kind`), when it is not one of
//! the cache's objects and its delete is counted and skipped too.

use std::collections::HashSet;

use kube::Resource;
use kube::runtime::watcher::Event;
use tracing::{info, warn};

use super::object::{Decoded, InvalidObject};
use crate::key::ObjectKey;
use crate::writer::{Applied, Writer};

/// The reflector's per-cache bookkeeping of objects that do not decode.
#[derive(Debug, Default)]
pub(crate) struct DecodeFeed {
    /// Objects currently known not to decode, so each is logged once, not on every event.
    invalid: HashSet<ObjectKey>,
}

impl DecodeFeed {
    /// Applies one watched event to the writer's working state (without publishing).
    pub(crate) fn handle<K>(&mut self, writer: &mut Writer<K>, event: Event<Decoded<K>>) -> Applied
    where
        K: Resource + Send + Sync + 'static,
    {
        let event = match event {
            Event::Init => Event::Init,
            Event::InitDone => Event::InitDone,
            Event::InitApply(Decoded::Valid(obj)) => {
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
                return Applied::Skipped;
            }
            Event::Delete(Decoded::Invalid(bad)) if bad.foreign => {
                // Another kind's object: what the cache holds under that name is not it.
                self.invalid(writer, &bad);
                return Applied::Skipped;
            }
            Event::Delete(Decoded::Invalid(bad)) => {
                // The object is gone from the server whatever its shape: drop what we hold.
                let Some(key) = key_of(&bad) else {
                    return Applied::Skipped;
                };
                self.invalid.remove(&key);
                return writer.remove(&key, bad.metadata.resource_version.as_deref());
            }
        };
        writer.stage(event)
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
    {
        writer.shared().counters.record_decode_failure();
        let key = key_of(bad);
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

fn key_of(bad: &InvalidObject) -> Option<ObjectKey> {
    let name = bad.metadata.name.as_deref().filter(|n| !n.is_empty())?;
    Some(
        match bad.metadata.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => ObjectKey::namespaced(ns, name),
            None => ObjectKey::cluster(name),
        },
    )
}
