//! The end-to-end tests (repocache against apisim over real HTTP) in one binary (ripgrep's
//! layout: one module per suite, one link instead of one per file). One suite:
//! `cargo test -p repocache-tests --test integration layer::`. Every test starts its own apisim
//! on 127.0.0.1 port 0; `init_tracing` installs the same quiet subscriber once for all.
//!
//! Two suites own their process and stay separate binaries: `tests/hostile.rs` reads the
//! process's resident memory (other tests' allocations would blur it), and `tests/chaos.rs` runs
//! timed fault schedules whose convergence windows must not compete for the two cores with
//! sibling tests (cargo runs test binaries one after another).

mod bookmarks;
mod cache_semantics;
mod cache_set;
mod consistency;
mod decoding;
mod layer;
mod outage;
mod read_your_writes;
mod reflector;
mod serve_stale;
mod warm;
