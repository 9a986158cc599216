//! The read path's cost per step, measured: random-order reads on one thread over 10 to 100,000
//! objects (CPU time per read), from the bare lookup in a held snapshot up to `Cache::get`, beside kube-runtime's
//! `Store::get` and an unsynchronized `HashMap`. Prints a Markdown table (median of 7 runs).
//!
//! `cargo run --release -p repocache-bench --example read_breakdown [SIZES...]`
#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use kube::runtime::reflector::Store;
use repocache_bench::fixture;
use repocache_bench::random_reads::{index_sequence, thread_cpu_ns};
use repocache_bench::sides::{self, KubeStore, Obj, PlainMap, Reader as _, Repocache, WriteSide};

const READS: usize = 1 << 21;

fn time(mut f: impl FnMut(usize) -> bool, seq: &[u32]) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let cpu = thread_cpu_ns();
            let mut hits = 0usize;
            for i in 0..READS {
                hits += usize::from(f(seq[i % seq.len()] as usize));
            }
            black_box(hits);
            match (cpu, thread_cpu_ns()) {
                (Some(a), Some(b)) if b > a => (b - a) as f64 / READS as f64,
                _ => t.elapsed().as_nanos() as f64 / READS as f64,
            }
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 1_000, 10_000, 100_000]
    } else {
        sizes
    };
    println!(
        "| objects | `HashMap` + clone | snapshot lookup (`&Arc`) | + `Arc` clone | `Reader::get` | `Cache::get` | kube `Store::get` |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in sizes {
        let objects = fixture::repositories(n, 1);
        let map: PlainMap = sides::plain_map(&objects);
        let repocache: Repocache = sides::filled(&objects);
        let kube: KubeStore = sides::filled(&objects);
        drop(objects);
        let keys = sides::keys::<PlainMap>(n);
        let kube_keys = sides::keys::<Store<Obj>>(n);
        let seq = index_sequence(n, n.max(1 << 16), 7);
        let cache = repocache.reader();
        let snapshot = cache.snapshot();
        let mut reader = cache.reader();
        let store = kube.reader();
        let m = time(|i| map.get(black_box(&keys[i])).is_some(), &seq);
        let s = time(
            |i| black_box(snapshot.get(black_box(&keys[i]))).is_some(),
            &seq,
        );
        let c: f64 = time(
            |i| black_box(snapshot.get(black_box(&keys[i])).cloned()).is_some(),
            &seq,
        );
        let r = time(|i| reader.get(black_box(&keys[i])).is_some(), &seq);
        let g = time(|i| cache.get(black_box(&keys[i])).is_some(), &seq);
        let k = time(|i| store.get(black_box(&kube_keys[i])).is_some(), &seq);
        let f = |x: f64| format!("{x:.1} ns");
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} |",
            f(m),
            f(s),
            f(c),
            f(r),
            f(g),
            f(k)
        );
        let _: Arc<Obj> = cache.get(&keys[0]).unwrap_or_else(|| unreachable!());
    }
}
