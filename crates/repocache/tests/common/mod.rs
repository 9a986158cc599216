//! Helpers shared by the writer-level tests: hand-built objects and event sequences.
#![allow(dead_code)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use repocache::{Event, Snapshot};

/// A ConfigMap with this namespace, name, resourceVersion and one data value.
pub fn cm(ns: Option<&str>, name: &str, rv: u64, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: ns.map(str::to_owned),
            resource_version: Some(rv.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("v".to_owned(), value.to_owned())])),
        ..ConfigMap::default()
    }
}

/// A cluster-scoped ConfigMap-shaped object (no namespace).
pub fn obj(name: &str, rv: u64, value: &str) -> ConfigMap {
    cm(None, name, rv, value)
}

/// The data value of an object.
pub fn value(cm: &ConfigMap) -> &str {
    cm.data
        .as_ref()
        .and_then(|d| d.get("v"))
        .map(String::as_str)
        .unwrap_or_default()
}

/// The events of a complete relist of `objects`.
pub fn relist(objects: impl IntoIterator<Item = ConfigMap>) -> Vec<Event<ConfigMap>> {
    let mut events = vec![Event::Init];
    events.extend(objects.into_iter().map(Event::InitApply));
    events.push(Event::InitDone);
    events
}

/// The snapshot's objects as (key, resourceVersion, value) in iteration order.
pub fn contents(snapshot: &Snapshot<ConfigMap>) -> Vec<(String, String, String)> {
    snapshot
        .iter()
        .map(|o| {
            let key = match o.metadata.namespace.as_deref() {
                Some(ns) => format!("{ns}/{}", o.metadata.name.as_deref().unwrap_or_default()),
                None => o.metadata.name.clone().unwrap_or_default(),
            };
            (
                key,
                o.metadata.resource_version.clone().unwrap_or_default(),
                value(o).to_owned(),
            )
        })
        .collect()
}

/// The proptest config of these tests: `cases` cases unless `PROPTEST_CASES` says otherwise
/// (`cargo xtask miri` sets it low), and no failure file under Miri (whose isolation forbids
/// the file system).
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// The longest generated schedule: `n`, or a fraction of it under Miri (about a thousand times
/// slower than a debug build).
pub const fn schedule_len(n: usize) -> usize {
    if cfg!(miri) { n / 4 } else { n }
}
