//! `list` / full snapshot, no writer: repocache `Cache::snapshot()` (one atomic load),
//! `snapshot().iter().count()` (a full ordered walk), `Cache::list()` (a `Vec` of `Arc`s) against
//! kube-runtime's `Store::state()` (a `Vec` of `Arc`s cloned under its read lock).
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use repocache_bench::sides::{self, KubeStore, Repocache, WriteSide};
use repocache_bench::{fixture, ids};

fn list(c: &mut Criterion) {
    let mut group = c.benchmark_group(ids::LIST);
    for &n in ids::SIZES {
        let objects = fixture::repositories(n, 1);
        let repocache: Repocache = sides::filled(&objects);
        let cache = repocache.reader();
        group.bench_function(BenchmarkId::new(ids::LIST_SNAPSHOT, n), |b| {
            b.iter(|| black_box(&cache).snapshot())
        });
        group.bench_function(BenchmarkId::new(ids::LIST_SNAPSHOT_ITER, n), |b| {
            b.iter(|| black_box(&cache).snapshot().iter().count())
        });
        group.bench_function(BenchmarkId::new(ids::LIST_REPOCACHE_LIST, n), |b| {
            b.iter(|| black_box(&cache).list())
        });
        let kube: KubeStore = sides::filled(&objects);
        let store = kube.reader();
        group.bench_function(BenchmarkId::new(ids::LIST_KUBE_STATE, n), |b| {
            b.iter(|| black_box(&store).state())
        });
    }
    group.finish();
}

criterion_group!(benches, list);
criterion_main!(benches);
