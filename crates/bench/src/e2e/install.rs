//! Item 9: the seed's scenario at a larger N. This is the `repocache demo` workload, run through
//! the demo's own library function ([`repocache_cli::demo::run`]): a dependency-resolving
//! install read the way Glasskube reads repositories, once uncached through client-go's
//! client-side token bucket and once through repocache (its caches' start and sync included),
//! against an embedded apisim.

use std::time::Duration;

use repocache_cli::demo::catalogue::Catalogue;
use repocache_cli::demo::scenario::Expected;
use repocache_cli::demo::{self, DemoConfig, DemoReport, NoProgress};

/// Dependency levels each install resolves (the demo's default).
pub const DEPTH: usize = 2;
/// The demo's catalogue size; a larger N gets a catalogue of N.
pub const CATALOGUE: usize = 40;
/// The most packages the budget may pick.
const MAX_PACKAGES: usize = 200;

/// How the scenario is sized.
#[derive(Clone, Copy, Debug)]
pub struct InstallPlan {
    /// Packages installed.
    pub packages: usize,
    /// The uncached side's rate limit, requests/s.
    pub qps: f64,
    /// The uncached side's burst.
    pub burst: u32,
    /// Whether the rate is scaled up from client-go's default (5/s, burst 10) to fit the time.
    pub scaled: bool,
    /// Reads the uncached side makes (one API request each).
    pub reads: u64,
    /// The uncached side's predicted limiter time, `(reads - burst) / qps`.
    pub predicted: Duration,
}

fn predicted(reads: u64, qps: f64, burst: u32) -> Duration {
    let queued = reads.saturating_sub(u64::from(burst)) as f64;
    Duration::from_secs_f64(queued / qps)
}

fn expected(packages: usize) -> Expected {
    Expected::of(
        &Catalogue::generate(CATALOGUE.max(packages)),
        packages,
        DEPTH,
    )
}

impl InstallPlan {
    /// The largest N (at least `min_packages`) whose uncached run at `qps`/`burst` is predicted
    /// to take at most `budget`.
    pub fn fit(budget: Duration, min_packages: usize, qps: f64, burst: u32) -> Self {
        let min = min_packages.max(1);
        let packages = (min..=MAX_PACKAGES)
            .take_while(|&n| predicted(expected(n).total(), qps, burst) <= budget)
            .last()
            .unwrap_or(min);
        let reads = expected(packages).total();
        Self {
            packages,
            qps,
            burst,
            scaled: qps != repocache_cli::ratelimit::DEFAULT_QPS
                || burst != repocache_cli::ratelimit::DEFAULT_BURST,
            reads,
            predicted: predicted(reads, qps, burst),
        }
    }
}

/// Runs the demo's scenario as planned; returns its report.
pub async fn run(plan: InstallPlan) -> anyhow::Result<DemoReport> {
    let config = DemoConfig {
        packages: plan.packages,
        depth: DEPTH,
        catalogue: CATALOGUE,
        qps: plan.qps,
        burst: plan.burst,
        sync_timeout: Duration::from_secs(60),
        // The demo's fourth column (short-lived processes) is not part of this measurement.
        short_lived: false,
    };
    let (report, session) = demo::run(config, &NoProgress).await?;
    session.stop().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_fits_the_budget() {
        let plan = InstallPlan::fit(Duration::from_secs(55), 6, 5.0, 10);
        assert!(plan.packages >= 6);
        assert!(plan.predicted <= Duration::from_secs(55));
        assert!(!plan.scaled);
        let next = expected(plan.packages + 1).total();
        assert!(predicted(next, 5.0, 10) > Duration::from_secs(55));
    }
}
