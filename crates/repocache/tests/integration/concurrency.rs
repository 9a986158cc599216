//! Readers on several threads hammer `get`/`list`/`snapshot` while the writer relists
//! generation-tagged object sets: no reader may ever see a torn relist or a generation that
//! goes backwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use crate::common::{obj, relist, value};
use k8s_openapi::api::core::v1::ConfigMap;
use repocache::{Event, Writer};

const RELISTS: u64 = 300;
const READERS: usize = 3;

/// Relist `tag` lists this many objects, so that a torn view also shows in the count.
fn size_of(tag: u64) -> usize {
    50 + (tag as usize * 37) % 200
}

fn tag_of(o: &ConfigMap) -> u64 {
    value(o).parse().expect("tags are numbers")
}

#[test]
fn readers_never_see_a_torn_relist_or_a_generation_going_back() {
    let mut writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    writer.apply_batch(relist(
        (0..size_of(0)).map(|i| obj(&format!("o{i:04}"), 1, "0")),
    ));
    let done = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let cache = cache.clone();
            let done = done.clone();
            let checked = checked.clone();
            thread::spawn(move || {
                let mut last_generation = 0;
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) || reads < 100 {
                    reads += 1;
                    let snap = cache.snapshot();
                    assert!(
                        snap.generation() >= last_generation,
                        "generation went backwards"
                    );
                    last_generation = snap.generation();
                    let first = snap.iter().next().map(|o| tag_of(o)).expect("never empty");
                    assert!(
                        snap.iter().all(|o| tag_of(o) == first),
                        "torn relist in a snapshot"
                    );
                    assert_eq!(snap.len(), size_of(first), "count of a different relist");
                    // The handle's own reads each see one whole relist too.
                    let listed = cache.list();
                    let tag = tag_of(&listed[0]);
                    assert!(
                        listed.iter().all(|o| tag_of(o) == tag),
                        "torn relist in list()"
                    );
                    assert_eq!(listed.len(), size_of(tag));
                    let name = format!("o{:04}", (reads as usize + r) % 50);
                    let got = cache
                        .get(&name)
                        .expect("the first 50 names are in every relist");
                    assert!(tag_of(&got) >= first.min(tag));
                }
                checked.fetch_add(reads, Ordering::Relaxed);
            })
        })
        .collect();

    for tag in 1..=RELISTS {
        let rv = tag + 1;
        let mut events = vec![Event::Init];
        events.extend(
            (0..size_of(tag))
                .map(|i| Event::InitApply(obj(&format!("o{i:04}"), rv, &tag.to_string()))),
        );
        events.push(Event::InitDone);
        // One event at a time, as the reflector would, so readers can land between them.
        for event in events {
            writer.apply(event);
        }
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("reader panicked");
    }
    let snap = cache.snapshot();
    assert_eq!(snap.generation(), RELISTS + 1);
    assert!(snap.iter().all(|o| tag_of(o) == RELISTS));
    assert!(checked.load(Ordering::Relaxed) >= 100 * READERS as u64);
}
