//! Subscriptions: deletes are delivered, relists are diffed, late joiners get the current
//! state, and a stalled subscriber lags and resyncs while a fast one keeps receiving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use crate::common::{obj, relist, value};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use proptest::prelude::*;
use repocache::{CacheConfig, Change, Event, Subscription, Writer};

/// A change in a comparable form: (kind, name, value, generation).
fn show(change: &Change<ConfigMap>) -> (String, String, String, u64) {
    let name = |o: &ConfigMap| o.metadata.name.clone().unwrap_or_default();
    match change {
        Change::Added { object, generation } => (
            "added".into(),
            name(object),
            value(object).into(),
            *generation,
        ),
        Change::Updated {
            old,
            new,
            generation,
        } => (
            "updated".into(),
            name(new),
            format!("{}->{}", value(old), value(new)),
            *generation,
        ),
        Change::Deleted { object, generation } => (
            "deleted".into(),
            name(object),
            value(object).into(),
            *generation,
        ),
        Change::Synced { generation } => {
            ("synced".into(), String::new(), String::new(), *generation)
        }
        Change::Lagged { missed, generation } => (
            "lagged".into(),
            missed.to_string(),
            String::new(),
            *generation,
        ),
    }
}

/// Everything the subscription has ready now, without waiting.
fn drain(sub: &mut Subscription<ConfigMap>) -> Vec<Change<ConfigMap>> {
    let mut out = Vec::new();
    while let Some(Some(change)) = sub.next().now_or_never() {
        out.push(change);
    }
    out
}

fn c(kind: &str, name: &str, value: &str, generation: u64) -> (String, String, String, u64) {
    (kind.into(), name.into(), value.into(), generation)
}

#[tokio::test]
async fn a_new_subscriber_gets_the_current_state_then_changes_including_deletes() {
    let mut writer = Writer::new();
    writer.apply_batch(relist([obj("a", 1, "a1"), obj("b", 2, "b1")]));
    let mut sub = writer.cache().subscribe();
    assert_eq!(
        drain(&mut sub).iter().map(show).collect::<Vec<_>>(),
        [
            c("added", "a", "a1", 1),
            c("added", "b", "b1", 1),
            c("synced", "", "", 1)
        ]
    );
    assert_eq!(
        sub.generation(),
        1,
        "the view's generation after the current state"
    );
    writer.apply(Event::Apply(obj("c", 3, "c1")));
    writer.apply(Event::Apply(obj("a", 4, "a2")));
    writer.apply(Event::Delete(obj("b", 5, "b1")));
    assert_eq!(
        drain(&mut sub).iter().map(show).collect::<Vec<_>>(),
        [
            c("added", "c", "c1", 2),
            c("updated", "a", "a1->a2", 3),
            c("deleted", "b", "b1", 4)
        ]
    );
    assert_eq!(
        sub.generation(),
        4,
        "the view's generation follows the changes"
    );
    // A no-op (unknown delete) publishes nothing.
    writer.apply(Event::Delete(obj("zzz", 6, "")));
    assert!(drain(&mut sub).is_empty());
}

#[tokio::test]
async fn changes_staged_before_a_subscriber_joined_reach_it_at_the_publish() {
    let mut writer = Writer::new();
    writer.apply_batch(relist([obj("a", 1, "a1")]));
    // Staged, not yet published, while nobody subscribed: nothing recorded it as a change.
    writer.stage(Event::Apply(obj("b", 2, "b1")));
    let mut sub = writer.cache().subscribe();
    assert_eq!(
        drain(&mut sub).iter().map(show).collect::<Vec<_>>(),
        [c("added", "a", "a1", 1), c("synced", "", "", 1)]
    );
    assert!(writer.publish());
    assert_eq!(
        drain(&mut sub).iter().map(show).collect::<Vec<_>>(),
        [c("added", "b", "b1", 2)]
    );
}

#[tokio::test]
async fn a_relist_is_diffed_against_the_previous_snapshot() {
    let mut writer = Writer::new();
    writer.apply_batch(relist([
        obj("a", 1, "a"),
        obj("b", 2, "b"),
        obj("c", 3, "c"),
    ]));
    let mut sub = writer.cache().subscribe();
    drain(&mut sub);
    writer.apply_batch(relist([
        obj("a", 1, "a"),
        obj("b", 7, "b2"),
        obj("d", 8, "d"),
    ]));
    assert_eq!(
        drain(&mut sub).iter().map(show).collect::<Vec<_>>(),
        [
            c("updated", "b", "b->b2", 2),
            c("deleted", "c", "c", 2),
            c("added", "d", "d", 2)
        ],
        "unchanged objects produce nothing; vanished ones are deleted"
    );
}

#[tokio::test]
async fn a_subscriber_before_the_first_sync_sees_it_as_additions() {
    let mut writer = Writer::new();
    let mut sub = writer.cache().subscribe();
    assert_eq!(
        drain(&mut sub).iter().map(show).collect::<Vec<_>>(),
        [c("synced", "", "", 0)]
    );
    writer.apply_batch(relist([obj("a", 1, "a")]));
    assert_eq!(
        drain(&mut sub).iter().map(show).collect::<Vec<_>>(),
        [c("added", "a", "a", 1)]
    );
}

#[tokio::test]
async fn a_stalled_subscriber_lags_and_resyncs_while_a_fast_one_keeps_receiving() {
    let mut writer = Writer::with_config(CacheConfig::new().subscriber_buffer(4));
    writer.apply_batch(relist((0..5).map(|i| obj(&format!("o{i}"), 1, "v0"))));
    let cache = writer.cache();
    let mut slow = cache.subscribe();
    let mut fast = cache.subscribe();
    drain(&mut fast);
    let mut fast_seen = 0;
    for round in 1..=20u64 {
        let name = format!("o{}", round % 7);
        if round % 5 == 0 {
            writer.apply(Event::Delete(obj(&name, 100 + round, "")));
        } else {
            writer.apply(Event::Apply(obj(&name, 100 + round, &format!("v{round}"))));
        }
        let got = drain(&mut fast);
        fast_seen += got.len();
        assert!(got.iter().all(|c| !matches!(c, Change::Lagged { .. })));
    }
    assert!(
        fast_seen >= 19,
        "the fast subscriber saw every change ({fast_seen})"
    );
    let changes = drain(&mut slow);
    let lagged = changes
        .iter()
        .position(|c| matches!(c, Change::Lagged { .. }))
        .expect("the stalled subscriber is told it lagged");
    assert!(
        matches!(changes.last(), Some(Change::Synced { generation }) if *generation == cache.snapshot().generation())
    );
    // Replaying everything it received gives exactly the current snapshot.
    let mut view: BTreeMap<String, String> = BTreeMap::new();
    for change in &changes {
        match change {
            Change::Added { object, .. } | Change::Updated { new: object, .. } => {
                view.insert(object.metadata.name.clone().unwrap(), value(object).into());
            }
            Change::Deleted { object, .. } => {
                view.remove(object.metadata.name.as_deref().unwrap());
            }
            _ => {}
        }
    }
    let current: BTreeMap<String, String> = cache
        .snapshot()
        .iter()
        .map(|o| (o.metadata.name.clone().unwrap(), value(o).into()))
        .collect();
    assert_eq!(view, current);
    assert!(lagged > 0);
}

#[tokio::test]
async fn controller_streams_skip_the_initial_state_and_keep_both_versions() {
    let mut writer = Writer::new();
    writer.apply_batch(relist([obj("a", 1, "a1")]));
    let cache = writer.cache();
    let mut changes = Box::pin(repocache::controller::changes(&cache));
    let mut objects = Box::pin(repocache::controller::changed_objects(&cache));
    writer.apply(Event::Apply(obj("a", 2, "a2")));
    writer.apply(Event::Delete(obj("a", 3, "a2")));
    let got: Vec<_> = std::iter::from_fn(|| changes.next().now_or_never().flatten())
        .map(|c| show(&c))
        .collect();
    assert_eq!(
        got,
        [c("updated", "a", "a1->a2", 2), c("deleted", "a", "a2", 3)]
    );
    let got: Vec<String> = std::iter::from_fn(|| objects.next().now_or_never().flatten())
        .map(|o| value(&o.unwrap()).to_owned())
        .collect();
    assert_eq!(
        got,
        ["a2", "a2"],
        "the new version of the update, the last of the delete"
    );
}

#[tokio::test]
async fn the_stream_ends_when_the_writer_goes() {
    let mut writer = Writer::new();
    writer.apply_batch(relist([obj("a", 1, "a")]));
    let mut sub = writer.cache().subscribe();
    drop(writer);
    let rest: Vec<_> = sub.by_ref().collect().await;
    assert_eq!(rest.len(), 2, "the current state and Synced, then the end");
}

#[tokio::test]
async fn a_subscriber_that_never_reads_keeps_at_most_the_buffered_changes_alive() {
    let mut writer = Writer::with_config(
        CacheConfig::new()
            .subscriber_buffer(128)
            .subscriber_buffer_changes(8),
    );
    writer.apply_batch(relist([]));
    let cache = writer.cache();
    // Subscribed to an empty cache: its view holds nothing.
    let mut dead = cache.subscribe();
    let mut replaced = Vec::new();
    for round in 0..if cfg!(miri) { 10 } else { 40u64 } {
        for i in 0..5 {
            let name = format!("o{i}");
            if let Some(old) = cache.get(&name) {
                replaced.push(std::sync::Arc::downgrade(&old));
            }
            writer.apply(Event::Apply(obj(&name, 1 + round * 5 + i, "v")));
        }
    }
    // A replaced version is kept alive only by the dead subscriber's buffered changes: at most
    // 8 changes, each holding at most two versions (an update's old and new).
    let alive = replaced.iter().filter(|w| w.strong_count() > 0).count();
    assert!(
        alive <= 2 * 8,
        "{alive} of {} replaced versions alive; the buffer may hold 8 changes",
        replaced.len()
    );
    // Reading it later still brings its view to the cache (by diffing).
    let mut view: BTreeMap<String, u64> = BTreeMap::new();
    for change in drain(&mut dead) {
        if let Change::Added { object, .. } | Change::Updated { new: object, .. } = change {
            let rv = object.metadata.resource_version.as_deref().unwrap();
            view.insert(object.metadata.name.clone().unwrap(), rv.parse().unwrap());
        }
    }
    let current: BTreeMap<String, u64> = cache
        .snapshot()
        .iter()
        .map(|o| {
            let rv = o.metadata.resource_version.as_deref().unwrap();
            (o.metadata.name.clone().unwrap(), rv.parse().unwrap())
        })
        .collect();
    assert_eq!(view, current);
}

#[derive(Clone, Debug)]
enum Op {
    Apply(u8, u8),
    Delete(u8),
    Relist(Vec<(u8, u8)>),
    Subscribe,
    Drain(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..10, any::<u8>()).prop_map(|(n, v)| Op::Apply(n, v)),
        3 => (0u8..10).prop_map(Op::Delete),
        1 => prop::collection::vec((0u8..10, any::<u8>()), 0..8).prop_map(Op::Relist),
        1 => Just(Op::Subscribe),
        3 => (0usize..4).prop_map(Op::Drain),
    ]
}

proptest! {
    #![proptest_config(crate::common::proptest_config(128))]

    /// Whatever the interleaving of writes, joins and (slow) reads, every subscriber's replayed
    /// view equals the cache once it has drained, and generations never go backwards.
    #[test]
    fn every_subscribers_replayed_view_equals_the_cache(
        ops in prop::collection::vec(op(), 1..crate::common::schedule_len(80)),
        buffered_changes in prop::sample::select(vec![0usize, 2, 5, 4096]),
    ) {
        let mut writer = Writer::with_config(
            CacheConfig::new()
                .subscriber_buffer(3)
                .subscriber_buffer_changes(buffered_changes),
        );
        let cache = writer.cache();
        let mut subs: Vec<(Subscription<ConfigMap>, BTreeMap<String, String>, u64)> = vec![];
        let mut rv = 0u64;
        let replay = |sub: &mut Subscription<ConfigMap>, view: &mut BTreeMap<String, String>, last: &mut u64| {
            for change in drain(sub) {
                assert!(change.generation() >= *last, "generation went backwards");
                *last = change.generation();
                // Every change fits the view it is applied to: an added object is new to it,
                // an updated or deleted one is in it.
                match change {
                    Change::Added { object, .. } => {
                        let name = object.metadata.name.clone().unwrap();
                        assert!(!view.contains_key(&name), "added {name} twice");
                        view.insert(name, value(&object).into());
                    }
                    Change::Updated { new: object, .. } => {
                        let name = object.metadata.name.clone().unwrap();
                        assert!(view.contains_key(&name), "updated {name}, not in the view");
                        view.insert(name, value(&object).into());
                    }
                    Change::Deleted { object, .. } => {
                        let name = object.metadata.name.as_deref().unwrap();
                        assert!(view.remove(name).is_some(), "deleted {name}, not in the view");
                    }
                    _ => {}
                }
            }
        };
        for op in ops {
            match op {
                Op::Apply(n, v) => { rv += 1; writer.apply(Event::Apply(obj(&format!("o{n}"), rv, &v.to_string()))); }
                Op::Delete(n) => { rv += 1; writer.apply(Event::Delete(obj(&format!("o{n}"), rv, ""))); }
                Op::Relist(items) => {
                    let objs: Vec<ConfigMap> = items.into_iter().map(|(n, v)| { rv += 1; obj(&format!("o{n}"), rv, &v.to_string()) }).collect();
                    writer.apply_batch(relist(objs));
                }
                Op::Subscribe => subs.push((cache.subscribe(), BTreeMap::new(), 0)),
                Op::Drain(i) => {
                    if let Some((sub, view, last)) = subs.get_mut(i) {
                        replay(sub, view, last);
                    }
                }
            }
        }
        let current: BTreeMap<String, String> = cache
            .snapshot()
            .iter()
            .map(|o| (o.metadata.name.clone().unwrap(), value(o).into()))
            .collect();
        for (sub, view, last) in &mut subs {
            replay(sub, view, last);
            prop_assert_eq!(&*view, &current);
        }
    }
}
