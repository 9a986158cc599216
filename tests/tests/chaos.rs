//! Seeded chaos runs against apisim (a bounded set for CI; `cargo xtask chaos` runs more): the
//! caches converge with nothing lost, readers never block or see a torn or backwards snapshot,
//! and the reflectors survive every fault. See `repocache_tests::chaos`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use repocache_tests::chaos::{self, Options};

async fn check(options: Options) {
    let report = chaos::run(&options).await;
    assert!(
        report.passed(),
        "{}\n{}\nreproduce: cargo xtask chaos --seed {} --seeds 1 --duration {}ms",
        report.summary(),
        report.violations.join("\n"),
        report.seed,
        options.duration.as_millis()
    );
    assert!(report.writes > 0);
}

/// Eight seeds of 2.5 s each (about 30 s on two cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_seeds_converge_with_nothing_lost() {
    repocache_tests::init_tracing();
    for seed in 1..=8 {
        check(Options::new(seed)).await;
    }
}
