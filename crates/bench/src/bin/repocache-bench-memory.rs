//! Measures heap bytes per cached object, and the peak during a relist, for repocache and
//! kube-runtime's reflector store, with a counting global allocator. Prints one JSON
//! [`MemoryReport`](repocache_bench::memory::MemoryReport) on stdout.
//!
//! It runs as a process of its own (started by the `repocache-bench` report binary) so that
//! the allocator's bookkeeping never slows the timed measurements.
//!
//! Usage: `repocache-bench-memory [OBJECTS]` (default 10000).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use peak_alloc::PeakAlloc;
use repocache_bench::memory::{self, Meter};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

struct Counting;

impl Meter for Counting {
    fn current(&self) -> usize {
        ALLOC.current_usage()
    }
    fn peak(&self) -> usize {
        ALLOC.peak_usage()
    }
    fn reset_peak(&self) {
        ALLOC.reset_peak_usage();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = match args.as_slice() {
        [] => 10_000,
        [n] => match n.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("repocache-bench-memory: OBJECTS must be a number, not `{n}`");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("repocache-bench-memory: usage: repocache-bench-memory [OBJECTS]");
            return ExitCode::from(2);
        }
    };
    let report = memory::run(&Counting, n);
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("repocache-bench-memory: {e}");
            ExitCode::FAILURE
        }
    }
}
