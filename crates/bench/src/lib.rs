//! Benchmarks of repocache, the lock-free in-process cache of Kubernetes objects, against
//! kube-runtime's reflector `Store` and two plain baselines.
//!
//! This crate sits beside the library and is never published or shipped. It holds the realistic
//! `PackageRepository` fixtures ([`fixture`]), one small interface over every store under
//! comparison ([`sides`]), the measurements criterion is bad at ([`measure`]: latency
//! percentiles under a concurrent writer, reader waits during a relist), and the pieces of the
//! generated report `docs/BENCHMARKS.md` ([`report`], [`plot`], [`machine`], [`estimates`]).
//! The criterion benches (`benches/`) give the steady-state figures; the `repocache-bench`
//! binary runs everything else, reads criterion's estimates and writes the report; the
//! `repocache-bench-memory` binary measures heap use with a counting global allocator, in its
//! own process so that its bookkeeping never slows the timed runs; the `repocache-bench-start`
//! binaries ([`start`]) are one short-lived process that starts a cache and answers one read
//! (the warm start from process start), on mimalloc as the CLI ships and on the system
//! allocator. `cargo xtask bench` drives them all. The end-to-end part ([`e2e`]) runs repocache, kube-runtime's reflector and
//! uncached reads against `apisim` over HTTP; the relay part ([`relay`]) puts
//! `repocache-relay` in front of it.

pub mod e2e;
pub mod estimates;
pub mod fixture;
pub mod ids;
pub mod machine;
pub mod measure;
pub mod memory;
pub mod plot;
pub mod random_reads;
pub mod relay;
pub mod report;
pub mod sides;
pub mod start;

/// Logs the library's events on stderr when `RUST_LOG` is set (e.g. `RUST_LOG=repocache=debug`
/// shows the stages of every warm start); without it nothing is logged.
pub fn log_from_env() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
}
