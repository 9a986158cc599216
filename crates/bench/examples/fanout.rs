//! A quick probe of the relay's fan-out (the measurement of BENCHMARKS section 7, without the
//! rest of `repocache-bench --relay-only`): memory per idle downstream watch, then server write →
//! downstream delivery latency to many watchers at a steady write rate, through the relay and
//! (with `--direct`) from apisim itself, the control.
//!
//! `cargo run --release -p repocache-bench --example fanout -- [IDLE_WATCHES] [WATCHERS] [EVENTS_PER_S] [SECONDS] [--direct]`
//! (defaults 1000, 100, 1000, 5). Both call `repocache_bench::relay::{idle_memory, fanout}`.
#![allow(clippy::print_stdout, missing_docs)]

use repocache_bench::relay::{fanout, idle_memory};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let direct = args.iter().any(|a| a == "--direct");
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let idle = numbers.first().copied().unwrap_or(1000) as usize;
    let watchers = numbers.get(1).copied().unwrap_or(100) as usize;
    let rate = numbers.get(2).copied().unwrap_or(1000);
    let seconds = numbers.get(3).copied().unwrap_or(5);
    if idle > 0 {
        let row = idle_memory(idle)?;
        println!(
            "idle: {} watches, {:.1} KiB per idle watch (load {:.2})",
            row.watches,
            row.bytes_per_watch / 1024.0,
            row.load
        );
    }
    let row = fanout(watchers, rate, seconds, direct)?;
    println!(
        "fan-out{}: {} watchers, {} events at {}/s: {}/{} delivered; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; CPU s per 1,000 events: relay {:.3}, apisim {:.3}, readers {:.3}; closed slow {} (load {:.2})",
        if row.direct { " (apisim direct)" } else { "" },
        row.watchers,
        row.events,
        row.rate,
        row.delivered,
        row.expected,
        row.p50_ms,
        row.p99_ms,
        row.max_ms,
        row.relay_cpu,
        row.apisim_cpu,
        row.reader_cpu,
        row.closed_slow,
        row.load
    );
    Ok(())
}
