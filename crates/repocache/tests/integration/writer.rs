//! The writer over hand-built event sequences: applies, deletes, relists and their edge cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crate::common::{cm, contents, obj, relist, value};
use k8s_openapi::api::core::v1::ConfigMap;
use std::time::{Duration, Instant};

use repocache::writer::{Applied, Publish};
use repocache::{CacheConfig, Event, Writer};

fn synced(objects: Vec<ConfigMap>) -> Writer<ConfigMap> {
    let mut writer = Writer::new();
    writer.apply_batch(relist(objects));
    writer
}

#[test]
fn starts_empty_and_not_ready() {
    let writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    assert!(!cache.is_ready());
    let snap = cache.snapshot();
    assert_eq!(snap.len(), 0);
    assert_eq!(snap.generation(), 0);
    assert_eq!(snap.resource_version(), None);
    assert!(cache.get("a").is_none());
}

#[test]
fn first_relist_publishes_everything_at_once() {
    let mut writer = Writer::new();
    let cache = writer.cache();
    assert_eq!(writer.apply(Event::Init), Applied::Buffered);
    assert_eq!(
        writer.apply(Event::InitApply(obj("b", 2, "b1"))),
        Applied::Buffered
    );
    assert_eq!(
        writer.apply(Event::InitApply(obj("a", 3, "a1"))),
        Applied::Buffered
    );
    // Nothing is visible before InitDone.
    assert_eq!(cache.snapshot().len(), 0);
    assert!(!cache.is_ready());
    assert_eq!(writer.apply(Event::InitDone), Applied::Relisted);
    let snap = cache.snapshot();
    assert!(cache.is_ready());
    assert_eq!(snap.generation(), 1);
    assert_eq!(snap.resource_version(), Some("3"));
    assert_eq!(
        contents(&snap),
        [
            ("a".into(), "3".into(), "a1".into()),
            ("b".into(), "2".into(), "b1".into())
        ]
    );
}

#[test]
fn apply_and_delete_publish_one_generation_each() {
    let mut writer = synced(vec![obj("a", 1, "a1")]);
    let cache = writer.cache();
    assert_eq!(
        writer.apply(Event::Apply(obj("c", 5, "c1"))),
        Applied::Changed
    );
    assert_eq!(cache.snapshot().generation(), 2);
    assert_eq!(value(&cache.get("c").unwrap()), "c1");
    assert_eq!(
        writer.apply(Event::Apply(obj("a", 6, "a2"))),
        Applied::Changed
    );
    assert_eq!(value(&cache.get("a").unwrap()), "a2");
    assert_eq!(
        writer.apply(Event::Delete(obj("c", 7, "c1"))),
        Applied::Changed
    );
    let snap = cache.snapshot();
    assert_eq!(snap.generation(), 4);
    assert_eq!(snap.resource_version(), Some("7"));
    assert!(cache.get("c").is_none());
    assert_eq!(contents(&snap), [("a".into(), "6".into(), "a2".into())]);
}

#[test]
fn relist_drops_objects_absent_from_it_in_one_swap() {
    let mut writer = synced(vec![obj("a", 1, "a"), obj("b", 2, "b"), obj("c", 3, "c")]);
    let cache = writer.cache();
    let before = cache.snapshot();
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(obj("b", 9, "b2")));
    // Mid-relist, readers still see the complete old snapshot.
    assert_eq!(cache.snapshot().generation(), before.generation());
    assert_eq!(cache.snapshot().len(), 3);
    writer.apply(Event::InitDone);
    let after = cache.snapshot();
    assert_eq!(after.generation(), before.generation() + 1);
    assert_eq!(contents(&after), [("b".into(), "9".into(), "b2".into())]);
    assert!(cache.get("a").is_none() && cache.get("c").is_none());
    // A snapshot taken earlier is unchanged.
    assert_eq!(before.len(), 3);
    assert_eq!(value(before.get("b").unwrap()), "b");
}

#[test]
fn relist_during_updates_ends_in_the_relisted_state_plus_later_updates() {
    let mut writer = synced(vec![obj("a", 1, "a"), obj("b", 2, "b")]);
    let cache = writer.cache();
    writer.apply(Event::Apply(obj("c", 3, "c")));
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(obj("a", 4, "a2")));
    writer.apply(Event::InitApply(obj("d", 5, "d")));
    // An update arriving inside a relist lands in the relist (newest wins).
    writer.apply(Event::Apply(obj("d", 6, "d2")));
    writer.apply(Event::InitDone);
    writer.apply(Event::Apply(obj("e", 7, "e")));
    writer.apply(Event::Delete(obj("a", 8, "a2")));
    assert_eq!(
        contents(&cache.snapshot()),
        [
            ("d".into(), "6".into(), "d2".into()),
            ("e".into(), "7".into(), "e".into())
        ]
    );
    assert_eq!(cache.snapshot().resource_version(), Some("8"));
}

#[test]
fn delete_inside_a_relist_removes_from_the_buffer() {
    let mut writer = synced(vec![obj("a", 1, "a")]);
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(obj("x", 2, "x")));
    writer.apply(Event::Delete(obj("x", 3, "x")));
    writer.apply(Event::InitDone);
    assert_eq!(writer.cache().snapshot().len(), 0);
}

#[test]
fn delete_of_an_unknown_object_changes_nothing() {
    let mut writer = synced(vec![obj("a", 1, "a")]);
    let cache = writer.cache();
    let before = cache.snapshot();
    assert_eq!(
        writer.apply(Event::Delete(obj("nope", 5, ""))),
        Applied::Unchanged
    );
    let after = cache.snapshot();
    assert!(Arc::ptr_eq(&before, &after), "no new snapshot for a no-op");
    assert!(after.confirmed_at() >= before.built_at());
}

#[test]
fn repeated_init_done_keeps_the_cache_and_its_readiness() {
    let mut writer = synced(vec![obj("a", 1, "a")]);
    let cache = writer.cache();
    let generation = cache.snapshot().generation();
    assert_eq!(writer.apply(Event::InitDone), Applied::Unchanged);
    assert_eq!(writer.apply(Event::InitDone), Applied::Unchanged);
    assert_eq!(cache.snapshot().generation(), generation);
    assert_eq!(cache.snapshot().len(), 1);
    assert!(cache.is_ready());
}

#[test]
fn an_older_or_repeated_version_does_not_replace_a_newer_one() {
    let mut writer = synced(vec![obj("a", 10, "new")]);
    let cache = writer.cache();
    assert_eq!(
        writer.apply(Event::Apply(obj("a", 9, "old"))),
        Applied::Unchanged
    );
    assert_eq!(
        writer.apply(Event::Apply(obj("a", 10, "same"))),
        Applied::Unchanged
    );
    assert_eq!(value(&cache.get("a").unwrap()), "new");
    assert_eq!(cache.snapshot().generation(), 1);
}

#[test]
fn objects_without_a_name_are_skipped() {
    let mut writer = synced(vec![obj("a", 1, "a")]);
    let mut nameless = obj("x", 2, "x");
    nameless.metadata.name = None;
    assert_eq!(
        writer.apply(Event::Apply(nameless.clone())),
        Applied::Skipped
    );
    assert_eq!(writer.apply(Event::Delete(nameless)), Applied::Skipped);
    assert_eq!(writer.cache().snapshot().len(), 1);
}

#[test]
fn namespaced_lookups_and_deterministic_order() {
    let writer = synced(vec![
        cm(Some("b"), "x", 1, "bx"),
        cm(Some("a"), "y", 2, "ay"),
        cm(Some("a"), "x", 3, "ax"),
        cm(None, "z", 4, "z"),
    ]);
    let cache = writer.cache();
    assert_eq!(value(&cache.get_namespaced("a", "x").unwrap()), "ax");
    assert_eq!(value(&cache.get_namespaced("b", "x").unwrap()), "bx");
    assert!(cache.get_namespaced("c", "x").is_none());
    assert!(
        cache.get("x").is_none(),
        "a namespaced object needs its namespace"
    );
    assert_eq!(value(&cache.get("z").unwrap()), "z");
    let keys: Vec<String> = contents(&cache.snapshot())
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(keys, ["z", "a/x", "a/y", "b/x"]);
    let listed: Vec<String> = cache.list().iter().map(|o| value(o).to_owned()).collect();
    assert_eq!(listed, ["z", "ax", "ay", "bx"]);
    // Inserting in the middle keeps the order.
    let mut writer = writer;
    writer.apply(Event::Apply(cm(Some("a"), "xx", 5, "axx")));
    let keys: Vec<String> = contents(&cache.snapshot())
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(keys, ["z", "a/x", "a/xx", "a/y", "b/x"]);
    assert_eq!(
        cache
            .snapshot()
            .iter()
            .next_back()
            .map(|o| value(o).to_owned()),
        Some("bx".into())
    );
}

#[test]
fn apply_batch_publishes_once() {
    let mut writer = synced(vec![]);
    let cache = writer.cache();
    writer.apply_batch((0..100).map(|i| Event::Apply(obj(&format!("o{i:03}"), 10 + i, "v"))));
    let snap = cache.snapshot();
    assert_eq!(snap.generation(), 2);
    assert_eq!(snap.len(), 100);
    assert_eq!(snap.resource_version(), Some("109"));
}

#[test]
fn relist_reuses_unchanged_objects() {
    let mut writer = synced(vec![obj("a", 1, "a"), obj("b", 2, "b")]);
    let cache = writer.cache();
    let a_before = cache.get("a").unwrap();
    let b_before = cache.get("b").unwrap();
    writer.apply_batch(relist(vec![obj("a", 1, "a"), obj("b", 3, "b2")]));
    assert!(
        Arc::ptr_eq(&a_before, &cache.get("a").unwrap()),
        "same version, same Arc"
    );
    assert!(!Arc::ptr_eq(&b_before, &cache.get("b").unwrap()));
}

#[test]
fn duplicates_in_a_relist_keep_the_last_listed() {
    let writer = synced(vec![
        obj("a", 1, "first"),
        obj("b", 2, "b"),
        obj("a", 3, "last"),
    ]);
    let snap = writer.cache().snapshot();
    assert_eq!(
        contents(&snap),
        [
            ("a".into(), "3".into(), "last".into()),
            ("b".into(), "2".into(), "b".into())
        ]
    );
}

#[test]
fn an_interrupted_relist_is_discarded_by_the_next_init() {
    let mut writer = synced(vec![obj("a", 1, "a")]);
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(obj("partial", 2, "p")));
    writer.apply_batch(relist(vec![obj("b", 3, "b")]));
    let keys: Vec<String> = contents(&writer.cache().snapshot())
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(keys, ["b"]);
}

#[test]
fn a_reader_never_frees_a_replaced_snapshot_the_writer_does() {
    let mut writer = synced(vec![obj("a", 1, "a"), obj("b", 2, "b")]);
    let cache = writer.cache();
    let held = cache.snapshot();
    let weak = Arc::downgrade(&held);
    writer.apply_batch(relist(vec![obj("c", 3, "c")]));
    drop(held);
    assert!(
        weak.upgrade().is_some(),
        "the reader's drop was not the last reference"
    );
    assert_eq!(
        writer.release_retired(),
        0,
        "nobody holds it now: freed by the writer"
    );
    assert!(weak.upgrade().is_none());
    // Unheld snapshots are freed at the publish that replaces them.
    let weak = Arc::downgrade(&cache.snapshot());
    writer.apply(Event::Apply(obj("d", 4, "d")));
    assert!(weak.upgrade().is_none());
}

#[test]
fn a_reader_sees_each_publish_at_its_next_read() {
    let mut writer = synced(vec![obj("a", 1, "a1")]);
    let cache = writer.cache();
    let mut reader = cache.reader();
    assert_eq!(value(&reader.get("a").unwrap()), "a1");
    assert!(reader.get("b").is_none());
    writer.apply(Event::Apply(obj("a", 2, "a2")));
    writer.apply(Event::Apply(obj("b", 3, "b1")));
    assert_eq!(value(&reader.get("a").unwrap()), "a2");
    assert_eq!(value(&reader.get("b").unwrap()), "b1");
    assert_eq!(
        reader.snapshot().generation(),
        cache.snapshot().generation()
    );
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (3, 1),
        "reader reads count like get"
    );
}

fn synced_with_interval(interval: Duration) -> Writer<ConfigMap> {
    let mut writer = Writer::with_config(CacheConfig::new().publish_interval(interval));
    writer.apply_batch(relist(vec![obj("a", 1, "a")]));
    writer
}

#[test]
fn publish_due_defers_changes_within_the_publish_interval() {
    let interval = Duration::from_secs(3600);
    let mut writer = synced_with_interval(interval);
    let cache = writer.cache();
    assert_eq!(writer.publish_interval(), interval);
    assert_eq!(
        cache.snapshot().generation(),
        1,
        "the relist published at once"
    );
    assert_eq!(writer.publish_due(), Publish::Clean);

    let before = Instant::now();
    assert_eq!(
        writer.stage(Event::Apply(obj("b", 2, "b"))),
        Applied::Changed
    );
    assert_eq!(
        writer.stage(Event::Apply(obj("a", 3, "a2"))),
        Applied::Changed
    );
    let Publish::Deferred(at) = writer.publish_due() else {
        panic!("a change one relist ago must wait for the interval");
    };
    assert!(at > before + interval - Duration::from_secs(60));
    assert!(at <= Instant::now() + interval);
    assert_eq!(cache.snapshot().generation(), 1, "nothing visible yet");
    assert!(cache.get("b").is_none());

    assert!(writer.publish(), "publish does not wait for the interval");
    let snap = cache.snapshot();
    assert_eq!(snap.generation(), 2, "both changes in one snapshot");
    assert_eq!(value(snap.get("a").unwrap()), "a2");
    assert!(snap.get("b").is_some());
    assert!(!writer.publish(), "nothing left to publish");
}

#[test]
fn a_relist_publishes_at_once_within_the_publish_interval() {
    let mut writer = synced_with_interval(Duration::from_secs(3600));
    let cache = writer.cache();
    writer.stage(Event::Apply(obj("b", 2, "b")));
    assert!(matches!(writer.publish_due(), Publish::Deferred(_)));
    for event in relist(vec![obj("c", 4, "c")]) {
        writer.stage(event);
    }
    let snap = cache.snapshot();
    assert_eq!(snap.generation(), 2);
    assert_eq!(contents(&snap), [("c".into(), "4".into(), "c".into())]);
    assert_eq!(writer.publish_due(), Publish::Clean);
}

#[test]
fn a_zero_publish_interval_publishes_every_batch() {
    let mut writer = synced_with_interval(Duration::ZERO);
    let cache = writer.cache();
    for (i, rv) in (2..5).enumerate() {
        writer.stage(Event::Apply(obj("a", rv, "a")));
        assert_eq!(writer.publish_due(), Publish::Published);
        assert_eq!(cache.snapshot().generation(), 2 + i as u64);
    }
}

#[test]
fn publish_due_publishes_once_the_interval_has_passed() {
    let interval = Duration::from_millis(20);
    let mut writer = synced_with_interval(interval);
    let cache = writer.cache();
    writer.stage(Event::Apply(obj("b", 2, "b")));
    // Wait on the writer's own answer, not a fixed sleep: it defers until the instant it names.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match writer.publish_due() {
            Publish::Published => break,
            Publish::Deferred(at) => {
                assert!(Instant::now() < deadline, "never published");
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            Publish::Clean => panic!("the change was lost"),
        }
    }
    assert!(cache.get("b").is_some());
}

#[test]
fn relist_in_progress_is_true_between_init_and_init_done() {
    let mut writer = Writer::<ConfigMap>::new();
    assert!(!writer.relist_in_progress());
    writer.apply(Event::Init);
    assert!(writer.relist_in_progress());
    writer.apply(Event::InitApply(obj("a", 1, "a1")));
    assert!(writer.relist_in_progress());
    writer.apply(Event::InitDone);
    assert!(!writer.relist_in_progress());
}

#[test]
fn events_that_change_nothing_still_confirm_the_snapshot() {
    let mut writer = Writer::<ConfigMap>::new();
    writer.apply_batch(relist([obj("a", 5, "a1")]));
    let cache = writer.cache();
    let generation = cache.snapshot().generation();
    // A repeated version, a delete of an unknown object and a repeated InitDone each show the
    // watch is alive: the snapshot stays, its confirmation time moves on.
    let events = [
        Event::Apply(obj("a", 5, "a1")),
        Event::Delete(obj("zzz", 6, "")),
        Event::InitDone,
    ];
    for event in events {
        let before = cache.snapshot().confirmed_at();
        // Let the monotonic clock move past `before` (no sleep: spin until it has).
        while Instant::now() <= before {
            std::hint::spin_loop();
        }
        assert_eq!(writer.apply(event), Applied::Unchanged);
        let snapshot = cache.snapshot();
        assert_eq!(snapshot.generation(), generation, "nothing was published");
        assert!(
            snapshot.confirmed_at() > before,
            "the snapshot was not confirmed"
        );
    }
}
