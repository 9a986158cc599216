//! What a subscriber that never reads costs: its memory stays within a small bound however much
//! the cache changes (its own file: it measures the process's resident memory, which other
//! tests running beside it would disturb).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cm;
use k8s_openapi::api::core::v1::ConfigMap;
use repocache::{Event, Writer};

const OBJECTS: usize = 10_000;
const RELISTS: u64 = 100;

/// The process's resident memory in bytes (Linux: VmRSS of /proc/self/status).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// A relist of every object at resourceVersion `rv`, each one a new version of ~1 KB, built as
/// the writer takes it (as a watch delivers it: no list of events in memory beside the cache).
fn relist(rv: u64) -> impl Iterator<Item = Event<ConfigMap>> {
    let padding = "x".repeat(1000);
    let objects = (0..OBJECTS).map(move |i| {
        Event::InitApply(cm(
            Some("ns"),
            &format!("object-{i:05}"),
            rv,
            &format!("{rv}{padding}"),
        ))
    });
    std::iter::once(Event::Init)
        .chain(objects)
        .chain(std::iter::once(Event::InitDone))
}

#[cfg(target_os = "linux")]
#[test]
fn a_subscriber_that_never_reads_costs_a_bounded_amount_of_memory() {
    let mut writer: Writer<ConfigMap> = Writer::new();
    let cache = writer.cache();
    let empty = rss();
    writer.apply_batch(relist(1));
    let cache_size = rss().saturating_sub(empty);
    assert_eq!(cache.snapshot().len(), OBJECTS);
    // What relisting costs without a subscriber (the old and the new objects side by side, the
    // allocator's slack) is in the process before the subscriber comes.
    for rv in 2..6 {
        writer.apply_batch(relist(rv));
    }

    let dead = cache.subscribe();
    let before = rss();
    for rv in 6..6 + RELISTS {
        writer.apply_batch(relist(rv));
    }
    let growth = rss().saturating_sub(before);
    assert_eq!(cache.snapshot().len(), OBJECTS);
    assert_eq!(cache.snapshot().generation(), 5 + RELISTS);
    eprintln!(
        "cache {:.1} MB; RSS growth over {RELISTS} relists with a subscriber that never reads: {:.1} MB",
        mb(cache_size),
        mb(growth)
    );
    assert!(
        growth <= 2 * cache_size,
        "RSS grew {:.1} MB, more than twice the cache's {:.1} MB",
        mb(growth),
        mb(cache_size)
    );
    drop(dead);
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}
