//! The writer around user code that panics or misbehaves: indexers, transforms and
//! `Resource::meta()` implementations. Whatever user code does, every snapshot the writer ever
//! published stays whole and readable (this file also runs under Miri: `cargo xtask miri`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Its own test binary, not a module of `tests/integration/`: it installs a process-wide panic
// hook, which would silence or reshape other tests' panic output in a shared process.

mod common;

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{obj, relist, value};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Resource;
use kube::api::ObjectMeta;
use repocache::writer::Applied;
use repocache::{CacheConfig, Event, Snapshot, Writer};

/// Silences the default panic hook's message for the panics these tests cause on purpose
/// (they are caught; the output would only be noise). Other panics still print.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.starts_with("on purpose"));
            if !expected {
                default(info);
            }
        }));
    });
}

/// A ConfigMap whose value carries its own name and version and ~1 KB of padding, so that
/// reading it back checks every byte of it.
fn big(name: &str, rv: u64) -> ConfigMap {
    obj(name, rv, &payload(name, rv))
}

fn payload(name: &str, rv: u64) -> String {
    format!("{name}@{rv}:{}", "x".repeat(1000))
}

/// Reads a snapshot completely and checks it against itself: its length, its order, every
/// object's every byte, and every lookup and index entry.
fn check_fully(snapshot: &Snapshot<ConfigMap>) {
    let objects: Vec<&Arc<ConfigMap>> = snapshot.iter().collect();
    assert_eq!(snapshot.len(), objects.len(), "len() vs iter().count()");
    assert_eq!(snapshot.len(), snapshot.to_vec().len());
    let mut previous: Option<String> = None;
    for object in &objects {
        let copy: ConfigMap = ConfigMap::clone(object);
        let name = copy.metadata.name.clone().unwrap();
        let rv: u64 = copy
            .metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(value(&copy), payload(&name, rv), "{name}'s contents");
        if let Some(previous) = &previous {
            assert!(previous < &name, "{previous} before {name}");
        }
        let found = snapshot.get(&name).expect("every listed object is found");
        assert!(Arc::ptr_eq(found, object), "{name}: lookup and list agree");
        previous = Some(name);
    }
    for index in snapshot.index_names().collect::<Vec<_>>() {
        for indexed in snapshot.index_values(index).unwrap() {
            for object in snapshot.by_index(index, indexed).unwrap() {
                assert!(objects.iter().any(|o| Arc::ptr_eq(o, object)));
            }
        }
    }
}

fn names(snapshot: &Snapshot<ConfigMap>) -> Vec<String> {
    snapshot
        .iter()
        .map(|o| {
            format!(
                "{}@{}",
                o.metadata.name.as_deref().unwrap(),
                o.metadata.resource_version.as_deref().unwrap()
            )
        })
        .collect()
}

/// Runs `f` and returns whether it panicked.
fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[test]
fn a_panicking_indexer_leaves_the_writer_whole_and_every_snapshot_readable() {
    quiet_expected_panics();
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = armed.clone();
    let config = CacheConfig::new().index_by("first", move |o: &ConfigMap| {
        if trigger.load(Ordering::SeqCst) {
            panic!("on purpose: indexer");
        }
        vec![value(o)[..1].to_owned()]
    });
    let mut writer = Writer::with_config(config);
    let cache = writer.cache();
    let mut published = vec![cache.snapshot()];
    writer.apply_batch(relist([big("a", 1), big("b", 2), big("c", 3)]));
    published.push(cache.snapshot());

    // Each of these runs the indexer (on the new object, on the old one, or on a relist) and
    // panics; the caller catches the panic.
    let failing: Vec<Vec<Event<ConfigMap>>> = vec![
        vec![Event::Apply(big("d", 4))],
        vec![Event::Apply(big("a", 5))],
        vec![Event::Delete(big("b", 6))],
        relist([big("a", 7), big("e", 8)]),
    ];
    for events in failing {
        armed.store(true, Ordering::SeqCst);
        assert!(panics(|| writer.apply_batch(events)));
        armed.store(false, Ordering::SeqCst);
        assert!(!writer.is_poisoned(), "a panic before any update");
        published.push(cache.snapshot());
    }
    // None of them changed the cache; the writer goes on as if they never came.
    assert_eq!(names(&cache.snapshot()), ["a@1", "b@2", "c@3"]);
    for event in [
        Event::Apply(big("e", 9)),
        Event::Apply(big("a", 10)),
        Event::Delete(big("c", 11)),
    ] {
        assert_eq!(writer.apply(event), Applied::Changed);
        published.push(cache.snapshot());
    }
    assert_eq!(names(&cache.snapshot()), ["a@10", "b@2", "e@9"]);
    writer.apply_batch(relist([big("b", 12), big("f", 13)]));
    published.push(cache.snapshot());
    assert_eq!(names(&cache.snapshot()), ["b@12", "f@13"]);
    assert!(cache.is_ready());
    assert_ne!(cache.state().as_str(), "stopped");
    for snapshot in &published {
        check_fully(snapshot);
    }
}

#[test]
fn a_panicking_transform_leaves_the_writer_whole() {
    quiet_expected_panics();
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = armed.clone();
    let config = CacheConfig::new().transform(move |_: &mut ConfigMap| {
        if trigger.load(Ordering::SeqCst) {
            panic!("on purpose: transform");
        }
    });
    let mut writer = Writer::with_config(config);
    let cache = writer.cache();
    let mut published = vec![cache.snapshot()];
    writer.apply_batch(relist([big("a", 1), big("b", 2)]));
    published.push(cache.snapshot());

    armed.store(true, Ordering::SeqCst);
    assert!(panics(|| {
        writer.apply(Event::Apply(big("c", 3)));
    }));
    assert!(panics(|| {
        writer.apply(Event::Apply(big("a", 4)));
    }));
    armed.store(false, Ordering::SeqCst);
    published.push(cache.snapshot());
    assert!(!writer.is_poisoned());
    assert_eq!(writer.apply(Event::Apply(big("d", 5))), Applied::Changed);
    published.push(cache.snapshot());

    // A transform that panics in the middle of a relist costs that one object.
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(big("a", 6)));
    armed.store(true, Ordering::SeqCst);
    assert!(panics(|| {
        writer.apply(Event::InitApply(big("x", 7)));
    }));
    armed.store(false, Ordering::SeqCst);
    writer.apply(Event::InitApply(big("y", 8)));
    assert_eq!(writer.apply(Event::InitDone), Applied::Relisted);
    published.push(cache.snapshot());
    assert_eq!(names(&cache.snapshot()), ["a@6", "y@8"]);
    for snapshot in &published {
        check_fully(snapshot);
    }
}

/// A resource whose `meta()` may answer differently on successive calls (its name flips), and
/// may panic once after a number of calls: what a buggy `Resource` implementation can do.
struct Fickle {
    metas: [ObjectMeta; 2],
    /// Flip between the two metas on every call.
    flips: bool,
    calls: AtomicUsize,
    /// Panic on the call with this number (once).
    panic_at: Option<usize>,
    payload: String,
}

const FICKLE_PAYLOAD: &str = "fickle";

impl Fickle {
    fn steady(name: &str, rv: u64) -> Self {
        let meta = meta(name, rv);
        Self {
            metas: [meta.clone(), meta],
            flips: false,
            calls: AtomicUsize::new(0),
            panic_at: None,
            payload: FICKLE_PAYLOAD.repeat(200),
        }
    }

    fn flipping(name: &str, other: &str, rv: u64) -> Self {
        Self {
            metas: [meta(name, rv), meta(other, rv)],
            flips: true,
            ..Self::steady(name, rv)
        }
    }

    fn panicking_at(name: &str, rv: u64, call: usize) -> Self {
        Self {
            panic_at: Some(call),
            ..Self::steady(name, rv)
        }
    }

    fn name(&self) -> &str {
        self.metas[0].name.as_deref().unwrap()
    }
}

fn meta(name: &str, rv: u64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some("ns".to_owned()),
        resource_version: Some(rv.to_string()),
        ..ObjectMeta::default()
    }
}

impl Resource for Fickle {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Fickle".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "test.invalid".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "fickles".into()
    }
    fn meta(&self) -> &ObjectMeta {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.panic_at == Some(call) {
            panic!("on purpose: meta()");
        }
        if self.flips {
            &self.metas[call % 2]
        } else {
            &self.metas[0]
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metas[0]
    }
}

/// Reads every object of a snapshot of `Fickle`s completely.
fn check_fickle(snapshot: &Snapshot<Fickle>) {
    let objects: Vec<&Arc<Fickle>> = snapshot.iter().collect();
    assert_eq!(snapshot.len(), objects.len(), "len() vs iter().count()");
    for object in objects {
        assert_eq!(object.payload, FICKLE_PAYLOAD.repeat(200));
        assert!(!object.metas[0].name.as_deref().unwrap().is_empty());
        assert_eq!(object.metas[1].namespace.as_deref(), Some("ns"));
    }
}

fn fickle_names(snapshot: &Snapshot<Fickle>) -> Vec<String> {
    snapshot.iter().map(|o| o.name().to_owned()).collect()
}

#[test]
fn a_resource_whose_meta_answers_inconsistently_never_breaks_a_snapshot() {
    // Only the current snapshot is kept: holding every snapshot would keep every object
    // alive, and hide an object the writer let go of too early.
    let mut writer: Writer<Fickle> = Writer::new();
    let cache = writer.cache();
    let relist_of = |objects: Vec<Fickle>| {
        let mut events = vec![Event::Init];
        events.extend(objects.into_iter().map(Event::InitApply));
        events.push(Event::InitDone);
        events
    };
    writer.apply_batch(relist_of(vec![
        Fickle::steady("b", 1),
        Fickle::flipping("d", "a", 2),
        Fickle::steady("f", 3),
    ]));
    check_fickle(&cache.snapshot());
    let mut rv = 10;
    let mut next = || {
        rv += 1;
        rv
    };
    // Updates, inserts and deletes under names that flip between calls, next to steady ones.
    let events = vec![
        Event::Apply(Fickle::flipping("a", "d", next())),
        Event::Apply(Fickle::flipping("c", "g", next())),
        Event::Apply(Fickle::steady("a", next())),
        Event::Delete(Fickle::steady("d", next())),
        Event::Apply(Fickle::flipping("g", "b", next())),
        Event::Delete(Fickle::flipping("c", "a", next())),
        Event::Apply(Fickle::steady("d", next())),
        Event::Delete(Fickle::flipping("b", "g", next())),
        Event::Apply(Fickle::flipping("e", "a", next())),
        Event::Delete(Fickle::steady("g", next())),
        Event::Delete(Fickle::steady("a", next())),
        Event::Apply(Fickle::steady("c", next())),
        Event::Delete(Fickle::flipping("e", "c", next())),
    ];
    for event in events {
        writer.apply(event);
        check_fickle(&cache.snapshot());
    }
    // The writer goes on; a relist rebuilds the cache from what the server lists.
    writer.apply_batch(relist_of(vec![
        Fickle::steady("a", 100),
        Fickle::steady("z", 101),
    ]));
    check_fickle(&cache.snapshot());
    assert_eq!(fickle_names(&cache.snapshot()), ["a", "z"]);
    assert!(!writer.is_poisoned());
}

#[test]
fn a_panic_inside_an_update_poisons_the_writer_and_stops_the_cache() {
    quiet_expected_panics();
    let (mut whole, mut poisoned) = (0, 0);
    // For each shape of event, a panic at every call of the object's `meta()` in turn, until
    // the event runs without reaching the call that panics.
    for shape in 0..3 {
        for call in 0.. {
            let mut writer: Writer<Fickle> = Writer::new();
            let cache = writer.cache();
            writer.apply_batch([
                Event::Init,
                Event::InitApply(Fickle::steady("a", 1)),
                Event::InitApply(Fickle::steady("b", 2)),
                Event::InitDone,
            ]);
            let mut published = vec![cache.snapshot()];
            let event = match shape {
                0 => Event::Apply(Fickle::panicking_at("c", 3, call)),
                1 => Event::Apply(Fickle::panicking_at("a", 3, call)),
                _ => Event::Delete(Fickle::panicking_at("b", 3, call)),
            };
            if !panics(|| {
                writer.apply(event);
            }) {
                break;
            }
            published.push(cache.snapshot());
            let generation = cache.snapshot().generation();
            if writer.is_poisoned() {
                poisoned += 1;
                // It never publishes again, and the cache says it is stopped.
                assert_eq!(
                    writer.apply(Event::Apply(Fickle::steady("x", 9))),
                    Applied::Poisoned
                );
                assert!(!writer.publish());
                assert_eq!(cache.snapshot().generation(), generation);
                assert_eq!(cache.state().as_str(), "stopped");
            } else {
                whole += 1;
                // The event was not applied; the writer goes on.
                assert_eq!(fickle_names(&cache.snapshot()), ["a", "b"]);
                assert_eq!(
                    writer.apply(Event::Apply(Fickle::steady("x", 9))),
                    Applied::Changed
                );
                assert_eq!(fickle_names(&cache.snapshot()), ["a", "b", "x"]);
                assert!(cache.is_ready());
                assert_ne!(cache.state().as_str(), "stopped");
            }
            published.push(cache.snapshot());
            for snapshot in &published {
                check_fickle(snapshot);
            }
        }
    }
    // Both outcomes were seen: panics before the update (the writer stays whole) and
    // inside it (the writer is poisoned).
    assert!(
        whole > 0 && poisoned > 0,
        "whole {whole}, poisoned {poisoned}"
    );
}
