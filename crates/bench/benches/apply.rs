//! Event apply throughput: repocache as its reflector drives the writer (`stage` +
//! `publish_due`: at most one publish per 1 ms, the default publish interval), `Writer::apply`
//! (one publish per event) and `Writer::apply_batch` (a burst of events, one publish) against
//! kube-runtime's `store::Writer::apply_watcher_event`.
//!
//! Each event is an `Apply` of one of the cached objects at a fresh resourceVersion, built in
//! criterion's untimed setup (`iter_batched`). The timed part is the call each API requires:
//! repocache takes the event by value; kube-runtime borrows it and clones the object into its
//! map, as its reflector does for every event.
#![allow(missing_docs)]

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use repocache::Event;
use repocache_bench::sides::{self, KubeStore, Obj, Repocache, RepocachePerEvent};
use repocache_bench::{fixture, ids};

/// Yields `Apply` objects round-robin over the cached names, each at a new resourceVersion.
struct Events {
    templates: Vec<Obj>,
    next: usize,
    rv: u64,
}

impl Events {
    fn new(n: usize) -> Self {
        Self {
            templates: fixture::repositories(n, 1),
            next: 0,
            rv: 1_000_000_000,
        }
    }

    fn next_obj(&mut self) -> Obj {
        let mut obj = self.templates[self.next].clone();
        self.next = (self.next + 1) % self.templates.len();
        self.rv += 1;
        obj.metadata.resource_version = Some(self.rv.to_string());
        obj
    }
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group(ids::APPLY);
    for &n in ids::SIZES {
        let objects = fixture::repositories(n, 1);

        group.throughput(Throughput::Elements(1));
        let mut repocache: Repocache = sides::filled(&objects);
        let mut events = Events::new(n);
        group.bench_function(BenchmarkId::new(ids::APPLY_REPOCACHE, n), |b| {
            b.iter_batched(
                || Event::Apply(events.next_obj()),
                |event| repocache.stage_and_publish_due(event),
                BatchSize::SmallInput,
            )
        });

        let mut repocache: RepocachePerEvent = sides::filled(&objects);
        let mut events = Events::new(n);
        group.bench_function(BenchmarkId::new(ids::APPLY_REPOCACHE_PER_EVENT, n), |b| {
            b.iter_batched(
                || Event::Apply(events.next_obj()),
                |event| repocache.writer_mut().apply(event),
                BatchSize::SmallInput,
            )
        });

        let mut kube: KubeStore = sides::filled(&objects);
        let mut events = Events::new(n);
        group.bench_function(BenchmarkId::new(ids::APPLY_KUBE, n), |b| {
            b.iter_batched(
                || Event::Apply(events.next_obj()),
                |event| kube.writer_mut().apply_watcher_event(&event),
                BatchSize::SmallInput,
            )
        });

        group.throughput(Throughput::Elements(ids::APPLY_BATCH as u64));
        let mut repocache: Repocache = sides::filled(&objects);
        let mut events = Events::new(n);
        group.bench_function(BenchmarkId::new(ids::APPLY_REPOCACHE_BATCH, n), |b| {
            b.iter_batched(
                || {
                    (0..ids::APPLY_BATCH)
                        .map(|_| Event::Apply(events.next_obj()))
                        .collect::<Vec<_>>()
                },
                |batch| repocache.writer_mut().apply_batch(batch),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
