//! Apply throughput at 10,000 objects as the reflector drives the writer (stage each `Apply` at a
//! new resourceVersion, publish when the 1 ms interval allows), in CPU time: a quick check of
//! the ≥ 300k events/s target while working on the index (criterion's `apply` bench is the
//! reference). `cargo run --release -p repocache-bench --example apply_rate [OBJECTS]`
#![allow(clippy::print_stdout, missing_docs)]

use repocache::Event;
use repocache_bench::fixture;
use repocache_bench::random_reads::thread_cpu_ns;
use repocache_bench::sides::{self, Repocache, WriteSide};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let objects = fixture::repositories(n, 1);
    let mut side: Repocache = sides::filled(&objects);
    let _reader = side.reader();
    let events = 200_000usize;
    let mut rates = Vec::new();
    for round in 0..5u64 {
        let batch: Vec<_> = (0..events)
            .map(|i| {
                let mut o = objects[i % n].clone();
                o.metadata.resource_version =
                    Some((10_000_000 * (round + 1) + i as u64).to_string());
                o
            })
            .collect();
        let t = std::time::Instant::now();
        let cpu = thread_cpu_ns();
        for o in batch {
            side.stage_and_publish_due(Event::Apply(o));
        }
        let ns = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64,
            _ => t.elapsed().as_nanos() as f64,
        };
        rates.push(events as f64 / ns * 1e9);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{n} objects: {:.0} events/s (median of 5 rounds of {events})",
        rates[2]
    );
}
