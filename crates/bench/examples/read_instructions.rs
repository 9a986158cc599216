//! Instructions per random-order read, for callgrind: a count that does not move with the
//! machine's noise, which on a shared 2-core VM swamps differences of a few nanoseconds.
//!
//! `read_instructions STORE OBJECTS READS` reads `READS` times in random key order over
//! `OBJECTS` objects through `STORE` (`cache`: `Cache::get`; `reader`: `Reader::get`; `kube`:
//! kube-runtime's `Store::get`). Run it under callgrind twice with different `READS` and divide
//! the difference of the totals by the difference of the reads, which cancels the set-up:
//!
//! ```text
//! cargo build --release -p repocache-bench --example read_instructions
//! for r in 100000 200000; do valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$r \
//!     target/release/examples/read_instructions cache 10 $r; done
//! ```
//!
//! Without callgrind it prints wall-clock nanoseconds per read (noisy: compare runs
//! alternately).
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::hint::black_box;
use std::process::ExitCode;

use kube::runtime::reflector::Store;
use repocache_bench::fixture;
use repocache_bench::random_reads::index_sequence;
use repocache_bench::sides::{self, KubeStore, Obj, PlainMap, Repocache, WriteSide};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(store), Some(Ok(n)), Some(Ok(reads))) = (
        args.first(),
        args.get(1).map(|a| a.parse::<usize>()),
        args.get(2).map(|a| a.parse::<usize>()),
    ) else {
        eprintln!("usage: read_instructions cache|reader|kube OBJECTS READS");
        return ExitCode::FAILURE;
    };
    let objects = fixture::repositories(n, 1);
    let repocache: Repocache = sides::filled(&objects);
    let kube: KubeStore = sides::filled(&objects);
    drop(objects);
    let keys = sides::keys::<PlainMap>(n);
    let kube_keys = sides::keys::<Store<Obj>>(n);
    let seq = index_sequence(n, n.max(1 << 16), 7);
    let cache = repocache.reader();
    let mut reader = cache.reader();
    let kube = kube.reader();
    let mut hits = 0usize;
    let started = std::time::Instant::now();
    let key = |i: usize| seq[i % seq.len()] as usize;
    match store.as_str() {
        "cache" => (0..reads).for_each(|i| {
            hits += usize::from(cache.get(black_box(&keys[key(i)])).is_some());
        }),
        "reader" => (0..reads).for_each(|i| {
            hits += usize::from(reader.get(black_box(&keys[key(i)])).is_some());
        }),
        "kube" => (0..reads).for_each(|i| {
            hits += usize::from(kube.get(black_box(&kube_keys[key(i)])).is_some());
        }),
        other => {
            eprintln!("read_instructions: unknown store {other:?} (cache, reader or kube)");
            return ExitCode::FAILURE;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{store} {n} objects: {hits} hits, {:.1} ns per read",
        elapsed.as_nanos() as f64 / reads.max(1) as f64
    );
    ExitCode::SUCCESS
}
