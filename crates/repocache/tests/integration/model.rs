//! Property test: random event sequences (with relists) through the writer, checked against a
//! plain ordered map after every publish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::{cm, contents};
use k8s_openapi::api::core::v1::ConfigMap;
use proptest::prelude::*;
use repocache::{Event, Writer};

/// One step of the generated schedule.
#[derive(Clone, Debug)]
enum Op {
    Apply {
        ns: Option<u8>,
        name: u8,
        value: u8,
    },
    Delete {
        ns: Option<u8>,
        name: u8,
    },
    /// A complete relist of these keys (duplicates allowed, as a server never sends but a
    /// writer must survive).
    Relist(Vec<(Option<u8>, u8, u8)>),
    /// A relist interrupted by another Init before its InitDone.
    AbortedRelist(Vec<(Option<u8>, u8, u8)>),
}

fn key() -> impl Strategy<Value = (Option<u8>, u8)> {
    (proptest::option::of(0u8..3), 0u8..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), any::<u8>()).prop_map(|((ns, name), value)| Op::Apply { ns, name, value }),
        3 => key().prop_map(|(ns, name)| Op::Delete { ns, name }),
        1 => prop::collection::vec((proptest::option::of(0u8..3), 0u8..12, any::<u8>()), 0..15)
            .prop_map(Op::Relist),
        1 => prop::collection::vec((proptest::option::of(0u8..3), 0u8..12, any::<u8>()), 0..5)
            .prop_map(Op::AbortedRelist),
    ]
}

type ModelKey = (Option<String>, String);

fn model_key(ns: Option<u8>, name: u8) -> ModelKey {
    (ns.map(|n| format!("ns{n}")), format!("o{name:02}"))
}

fn object(key: &ModelKey, rv: u64, value: u8) -> ConfigMap {
    cm(key.0.as_deref(), &key.1, rv, &value.to_string())
}

fn expected(model: &BTreeMap<ModelKey, (u64, u8)>) -> Vec<(String, String, String)> {
    model
        .iter()
        .map(|((ns, name), (rv, value))| {
            let key = match ns {
                Some(ns) => format!("{ns}/{name}"),
                None => name.clone(),
            };
            (key, rv.to_string(), value.to_string())
        })
        .collect()
}

proptest! {
    #![proptest_config(crate::common::proptest_config(256))]

    #[test]
    fn every_published_snapshot_equals_the_model(ops in prop::collection::vec(op(), 1..crate::common::schedule_len(60))) {
        let mut writer = Writer::<ConfigMap>::new();
        let cache = writer.cache();
        let mut model: BTreeMap<ModelKey, (u64, u8)> = BTreeMap::new();
        let mut rv = 0u64;
        let mut generation = 0u64;
        writer.apply_batch(vec![Event::Init, Event::InitDone]);
        // Every snapshot stays alive to the end and must read the same then: its ordered view
        // borrows the objects its map owns, whatever the writer did since.
        let mut kept = Vec::new();
        for op in ops {
            let before = cache.snapshot();
            match op {
                Op::Apply { ns, name, value } => {
                    rv += 1;
                    let key = model_key(ns, name);
                    writer.apply(Event::Apply(object(&key, rv, value)));
                    model.insert(key, (rv, value));
                }
                Op::Delete { ns, name } => {
                    rv += 1;
                    let key = model_key(ns, name);
                    writer.apply(Event::Delete(object(&key, rv, 0)));
                    model.remove(&key);
                }
                Op::Relist(items) => {
                    writer.apply(Event::Init);
                    let mut next = BTreeMap::new();
                    for (ns, name, value) in items {
                        rv += 1;
                        let key = model_key(ns, name);
                        writer.apply(Event::InitApply(object(&key, rv, value)));
                        next.insert(key, (rv, value));
                        // Until InitDone, readers see the snapshot from before the relist.
                        prop_assert_eq!(cache.snapshot().generation(), before.generation());
                    }
                    writer.apply(Event::InitDone);
                    model = next;
                }
                Op::AbortedRelist(items) => {
                    writer.apply(Event::Init);
                    for (ns, name, value) in items {
                        rv += 1;
                        writer.apply(Event::InitApply(object(&model_key(ns, name), rv, value)));
                    }
                    prop_assert_eq!(cache.snapshot().generation(), before.generation());
                    // The next relist lists the model as it is.
                    writer.apply(Event::Init);
                    for (key, (orv, value)) in &model {
                        writer.apply(Event::InitApply(object(key, *orv, *value)));
                    }
                    writer.apply(Event::InitDone);
                }
            }
            let snap = cache.snapshot();
            prop_assert_eq!(contents(&snap), expected(&model));
            for obj in snap.iter() {
                let found = match obj.metadata.namespace.as_deref() {
                    Some(ns) => snap.get_namespaced(ns, obj.metadata.name.as_deref().unwrap()),
                    None => snap.get(obj.metadata.name.as_deref().unwrap()),
                };
                prop_assert!(
                    found.is_some_and(|f| Arc::ptr_eq(f, obj)),
                    "the ordered view and the map hold the same object"
                );
            }
            kept.push((snap.clone(), contents(&snap)));
            prop_assert!(snap.generation() >= generation);
            generation = snap.generation();
            prop_assert_eq!(snap.len(), model.len());
            for ((ns, name), (orv, _)) in &model {
                let found = match ns {
                    Some(ns) => snap.get_namespaced(ns, name),
                    None => snap.get(name),
                };
                prop_assert_eq!(
                    found.and_then(|o| o.metadata.resource_version.clone()),
                    Some(orv.to_string())
                );
            }
        }
        drop(writer);
        for (snap, seen) in &kept {
            prop_assert_eq!(&contents(snap), seen);
        }
    }
}
