//! A warm start as a real process (issue #18): the time from `exec` to the first byte on stdout
//! of `repocache get packagerepositories NAME` against apisim holding OBJECTS PackageRepositories
//! of the benchmark's shape, cold (`--no-cache-dir`: lists everything first) against warm
//! (`--cache-dir D --max-staleness 1h`: answers from the file the previous run left, then
//! verifies), alternating, REPS of each; medians. Also a full listing (`-o name`) each way.
//!
//! ```text
//! cargo build --release -p repocache-cli
//! cargo run --release -p repocache-bench --example warm_process [OBJECTS [REPS]]
//! ```
//!
//! The binary is `target/release/repocache` (or `$REPOCACHE_BIN`). apisim runs in this process on
//! two threads of its own.
// A measurement tool: any failure aborts it (nothing here is user input).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use repocache_bench::e2e::sim::Sim;

/// Runs the binary with `args`; returns the time from spawn to the first stdout byte, and
/// checks that it exited 0.
fn first_byte(bin: &Path, args: &[String], xdg: &Path) -> Duration {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("REPOCACHE_TOKEN")
        .env_remove("KUBECONFIG")
        .env("XDG_CACHE_HOME", xdg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "cannot run the repocache binary (build it: cargo build --release -p repocache-cli)",
        );
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    let n = stdout.read(&mut byte).unwrap();
    let first = t0.elapsed();
    assert_eq!(n, 1, "no output from {args:?}");
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{args:?}: {status}");
    first
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let bin = std::env::var_os("REPOCACHE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/repocache"),
        PathBuf::from,
    );
    let sim = Sim::with_repositories(n, Duration::from_secs(60)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let kc = kubeconfig.to_str().unwrap();
    let dir = scratch.path().join("cache");
    let dir = dir.to_str().unwrap();
    let xdg = scratch.path().join("xdg");
    let name = repocache_bench::fixture::name(n / 2);
    let args = |words: &[&str]| -> Vec<String> { words.iter().map(|w| (*w).to_owned()).collect() };
    let one = args(&["get", "packagerepositories", &name, "--kubeconfig", kc]);
    let all = args(&[
        "get",
        "packagerepositories",
        "-o",
        "name",
        "--kubeconfig",
        kc,
    ]);
    let with = |base: &[String], more: &[&str]| [base.to_vec(), args(more)].concat();
    let cold = |base: &[String]| with(base, &["--no-cache-dir"]);
    let warm = |base: &[String]| with(base, &["--cache-dir", dir, "--max-staleness", "1h"]);
    // The first run leaves the file.
    first_byte(&bin, &with(&one, &["--cache-dir", dir]), &xdg);
    let mut rows = Vec::new();
    for (what, base) in [("get NAME", &one), ("get -o name (all)", &all)] {
        let (mut c, mut w) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            c.push(first_byte(&bin, &cold(base), &xdg));
            w.push(first_byte(&bin, &warm(base), &xdg));
        }
        rows.push((what, median(c), median(w)));
    }
    println!("{n} objects, {reps} runs each, medians of exec -> first stdout byte:");
    for (what, c, w) in rows {
        println!(
            "{what:18} cold {:7.1} ms  warm {:7.1} ms  warm/cold {:5.1}%",
            c.as_secs_f64() * 1e3,
            w.as_secs_f64() * 1e3,
            100.0 * w.as_secs_f64() / c.as_secs_f64()
        );
    }
}
