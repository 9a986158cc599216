//! repocache's integration tests in one binary (ripgrep's layout: one module per suite, one link
//! instead of one per file). One suite: `cargo test -p repocache --test integration writer::`.
//!
//! Two suites own their process and stay separate binaries: `tests/user_code.rs` installs a
//! process-wide panic hook (it would silence other tests' panics), and
//! `tests/subscriber_memory.rs` measures the process's resident memory (other tests' allocations
//! would blur it). Under Miri (`cargo xtask miri`) this binary runs the writer-level suites only.

#[path = "../common/mod.rs"]
mod common;

// Not under Miri (as before the grouping): reader threads hammering 300 relists, too slow there;
// Miri checks the same writer through the suites below.
#[cfg(not(miri))]
mod concurrency;
mod indexes;
mod model;
// Not under Miri (as before the grouping): tokio runtimes and timers over the same writer.
#[cfg(not(miri))]
mod readiness;
mod subscriptions;
mod writer;
