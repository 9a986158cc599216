//! `get` by name, no writer: repocache `Cache::get` against kube-runtime's `Store::get`, a
//! `parking_lot::RwLock<HashMap>`, and an unsynchronized `HashMap::get` + `Arc` clone (the
//! physical limit). One iteration is one read; reads cycle through every cached name.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use repocache_bench::sides::{self, KubeStore, LockedMap, PlainMap, Reader, Repocache, WriteSide};
use repocache_bench::{fixture, ids};

fn bench_reader<R: Reader>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    n: usize,
    reader: &R,
) {
    let keys = sides::keys::<R>(n);
    let mut i = 0;
    c.bench_with_input(BenchmarkId::new(id, n), &n, |b, _| {
        b.iter(|| {
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
            reader.get(black_box(&keys[i]))
        })
    });
}

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group(ids::GET);
    group.throughput(Throughput::Elements(1));
    for &n in ids::SIZES {
        let objects = fixture::repositories(n, 1);
        let repocache: Repocache = sides::filled(&objects);
        bench_reader(&mut group, ids::GET_REPOCACHE, n, &repocache.reader());
        {
            // The per-thread handle: `&mut self`, so it is benched directly.
            let keys = sides::keys::<repocache::Cache<sides::Obj>>(n);
            let mut reader = repocache.reader().reader();
            let mut i = 0;
            group.bench_with_input(
                BenchmarkId::new(ids::GET_REPOCACHE_READER, n),
                &n,
                |b, _| {
                    b.iter(|| {
                        i = if i + 1 == keys.len() { 0 } else { i + 1 };
                        reader.get(black_box(&keys[i]))
                    })
                },
            );
        }
        let kube: KubeStore = sides::filled(&objects);
        bench_reader(&mut group, ids::GET_KUBE, n, &kube.reader());
        let locked: LockedMap = sides::filled(&objects);
        bench_reader(&mut group, ids::GET_RWLOCK, n, &locked.reader());
        let plain: PlainMap = sides::plain_map(&objects);
        bench_reader(&mut group, ids::GET_LIMIT, n, &plain);
    }
    group.finish();
}

criterion_group!(benches, get);
criterion_main!(benches);
