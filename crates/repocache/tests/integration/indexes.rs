//! Secondary indexes and the transform hook: indexes follow every event and relist, are always
//! consistent with the objects of the same snapshot, and unknown indexes are a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::common::{cm, obj, relist, value};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use repocache::{CacheConfig, Error, Event, Writer};

fn by_value() -> CacheConfig<ConfigMap> {
    CacheConfig::new().index_by("value", |o: &ConfigMap| vec![value(o).to_owned()])
}

fn names(objects: &[Arc<ConfigMap>]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect()
}

#[test]
fn an_index_follows_applies_deletes_and_relists() {
    let mut writer = Writer::with_config(by_value());
    let cache = writer.cache();
    writer.apply_batch(relist([
        obj("a", 1, "red"),
        obj("b", 2, "blue"),
        obj("c", 3, "red"),
    ]));
    assert_eq!(names(&cache.by_index("value", "red").unwrap()), ["a", "c"]);
    assert_eq!(names(&cache.by_index("value", "blue").unwrap()), ["b"]);
    assert!(cache.by_index("value", "green").unwrap().is_empty());

    writer.apply(Event::Apply(obj("a", 4, "blue")));
    assert_eq!(names(&cache.by_index("value", "red").unwrap()), ["c"]);
    assert_eq!(names(&cache.by_index("value", "blue").unwrap()), ["a", "b"]);
    writer.apply(Event::Delete(obj("c", 5, "red")));
    assert!(cache.by_index("value", "red").unwrap().is_empty());
    let mut values: Vec<String> = cache
        .snapshot()
        .index_values("value")
        .unwrap()
        .map(str::to_owned)
        .collect();
    values.sort();
    assert_eq!(values, ["blue"], "emptied values are dropped");

    writer.apply_batch(relist([obj("x", 6, "red"), obj("b", 2, "blue")]));
    assert_eq!(names(&cache.by_index("value", "red").unwrap()), ["x"]);
    assert_eq!(names(&cache.by_index("value", "blue").unwrap()), ["b"]);
}

#[test]
fn several_values_per_object_and_namespaced_keys() {
    let config = CacheConfig::new().index_by("letters", |o: &ConfigMap| {
        value(o).chars().map(|c| c.to_string()).collect()
    });
    let mut writer = Writer::with_config(config);
    writer.apply_batch(relist([
        cm(Some("ns1"), "a", 1, "xy"),
        cm(Some("ns0"), "b", 2, "y"),
    ]));
    let cache = writer.cache();
    assert_eq!(
        names(&cache.by_index("letters", "y").unwrap()),
        ["b", "a"],
        "ordered by namespace"
    );
    assert_eq!(names(&cache.by_index("letters", "x").unwrap()), ["a"]);
}

#[test]
fn an_unknown_index_is_a_typed_error() {
    let writer = Writer::<ConfigMap>::new();
    let err = writer.cache().by_index("nope", "x").unwrap_err();
    assert!(
        matches!(err, Error::NoSuchIndex { ref index, .. } if index == "nope"),
        "{err}"
    );
    assert!(writer.cache().snapshot().by_index("nope", "x").is_none());
}

#[test]
fn index_and_objects_are_from_the_same_moment_under_concurrent_updates() {
    let mut writer = Writer::with_config(by_value());
    let cache = writer.cache();
    writer.apply_batch(relist((0..50).map(|i| obj(&format!("o{i:02}"), 1, "even"))));
    let done = Arc::new(AtomicBool::new(false));
    // Miri (`cargo xtask miri`) runs about a thousand times slower: less work there.
    let (rounds, min_checks) = if cfg!(miri) {
        (20, 2)
    } else {
        (2_000u64, 100u64)
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let cache = cache.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut checks = 0u64;
                while !done.load(Ordering::Relaxed) || checks < min_checks {
                    let snap = cache.snapshot();
                    for v in ["even", "odd"] {
                        let indexed: Vec<&Arc<ConfigMap>> =
                            snap.by_index("value", v).unwrap().collect();
                        assert!(indexed.iter().all(|o| value(o) == v), "index out of step");
                        let counted = snap.iter().filter(|o| value(o) == v).count();
                        assert_eq!(indexed.len(), counted, "index misses objects");
                    }
                    checks += 1;
                }
            })
        })
        .collect();
    for round in 0..rounds {
        let i = round % 50;
        let v = if round % 2 == 0 { "odd" } else { "even" };
        writer.apply(Event::Apply(obj(&format!("o{i:02}"), 2 + round, v)));
    }
    done.store(true, Ordering::Relaxed);
    readers.into_iter().for_each(|r| r.join().unwrap());
}

fn with_managed_fields(name: &str) -> ConfigMap {
    let mut o = obj(name, 1, "v");
    o.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("kubectl".into()),
        ..ManagedFieldsEntry::default()
    }]);
    o
}

#[test]
fn managed_fields_are_dropped_by_default_and_transforms_apply_before_storing() {
    let mut writer = Writer::new();
    writer.apply_batch(relist([with_managed_fields("a")]));
    writer.apply(Event::Apply({
        let mut o = with_managed_fields("b");
        o.metadata.resource_version = Some("2".into());
        o
    }));
    let cache = writer.cache();
    assert!(cache.get("a").unwrap().metadata.managed_fields.is_none());
    assert!(cache.get("b").unwrap().metadata.managed_fields.is_none());

    let mut writer = Writer::with_config(CacheConfig::new().no_transform());
    writer.apply_batch(relist([with_managed_fields("a")]));
    assert!(
        writer
            .cache()
            .get("a")
            .unwrap()
            .metadata
            .managed_fields
            .is_some()
    );

    let upper = CacheConfig::new()
        .transform(|o: &mut ConfigMap| {
            repocache::config::drop_managed_fields(o);
            if let Some(d) = o.data.as_mut() {
                d.values_mut().for_each(|v| *v = v.to_uppercase());
            }
        })
        .index_by("value", |o: &ConfigMap| vec![value(o).to_owned()]);
    let mut writer = Writer::with_config(upper);
    writer.apply_batch(relist([with_managed_fields("a")]));
    let cache = writer.cache();
    assert_eq!(value(&cache.get("a").unwrap()), "V");
    assert_eq!(
        names(&cache.by_index("value", "V").unwrap()),
        ["a"],
        "indexes see the transformed object"
    );
    assert!(cache.get("a").unwrap().metadata.managed_fields.is_none());
}
