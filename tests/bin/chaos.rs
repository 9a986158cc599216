//! `chaos`: runs the chaos harness over a range of seeds and prints a summary (what
//! `cargo xtask chaos` runs).
//!
//! ```text
//! chaos [--seeds N] [--seed S] [--duration D] [--budget B]
//! ```
//!
//! Runs seeds S, S+1, …, S+N-1 (defaults: 20 seeds from 1), each for D of chaos (`2.5s`,
//! `800ms` or plain seconds; default 2.5 s). With `--budget B`, no seed starts once B has passed
//! (the summary says how many ran). Exits 1 when any run breaks an invariant.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use repocache_tests::chaos::{self, Options, READ_BOUND, Report};

/// Runs the chaos harness over a range of seeds and prints a summary.
#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    about = "Runs the chaos harness (seeded faults against repocache) over a range of seeds"
)]
struct Args {
    /// How many seeds to run.
    #[arg(long, value_name = "N", default_value_t = 20)]
    seeds: u64,
    /// The first seed.
    #[arg(long = "seed", value_name = "S", default_value_t = 1)]
    first: u64,
    /// Chaos per seed: `2.5s`, `800ms` or plain seconds (default 2.5 s).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Start no seed once this much time has passed (same forms as `--duration`).
    #[arg(long, value_name = "B", value_parser = parse_duration)]
    budget: Option<Duration>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let parsed = if let Some(ms) = s.strip_suffix("ms") {
        ms.parse::<u64>().ok().map(Duration::from_millis)
    } else {
        let secs = s.strip_suffix('s').unwrap_or(s);
        secs.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 3600.0)
            .map(Duration::from_secs_f64)
    };
    parsed.ok_or_else(|| format!("not a duration: {s} (e.g. 2.5s, 800ms, 3)"))
}

/// Parses the command line: `Err` carries the exit code after help (0) or a one-line error
/// on stderr (2).
fn parse_args() -> Result<Args, ExitCode> {
    Args::try_parse().map_err(|err| {
        use clap::error::ErrorKind;
        if matches!(
            err.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
        ) {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        // One line: clap's first line, without its usage block.
        let rendered = err.render().to_string();
        let first = rendered
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("error: invalid arguments");
        eprintln!("{first} (see chaos --help)");
        ExitCode::from(2)
    })
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let duration = args.duration.unwrap_or(Options::new(0).duration);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos: no runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    let mut reports: Vec<Report> = Vec::new();
    for seed in args.first..args.first.saturating_add(args.seeds) {
        if args.budget.is_some_and(|b| started.elapsed() >= b) {
            println!(
                "budget of {:?} spent: stopping before seed {seed}",
                args.budget.unwrap_or_default()
            );
            break;
        }
        let options = Options::new(seed).duration(duration);
        let report = runtime.block_on(chaos::run(&options));
        println!("{}", report.summary());
        if !report.passed() {
            for v in report.violations.iter().skip(1) {
                println!("            {v}");
            }
        }
        reports.push(report);
    }

    let failed: Vec<&Report> = reports.iter().filter(|r| !r.passed()).collect();
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &reports {
        for (k, n) in &r.faults {
            *faults.entry(k).or_default() += n;
        }
    }
    let mut convergence: Vec<Duration> = reports.iter().filter_map(|r| r.convergence).collect();
    convergence.sort();
    let max_read = reports.iter().map(|r| r.max_read).max().unwrap_or_default();
    let p99_read = reports.iter().map(|r| r.p99_read).max().unwrap_or_default();
    let reads: u64 = reports.iter().map(|r| r.reads).sum();
    let slow_reads: u64 = reports.iter().map(|r| r.slow_reads).sum();
    let max_control = reports
        .iter()
        .map(|r| r.max_control)
        .max()
        .unwrap_or_default();
    let snapshots: usize = reports.iter().map(|r| r.snapshots_checked).sum();
    let lost: usize = reports.iter().map(|r| r.lost).sum();
    let extra: usize = reports.iter().map(|r| r.extra).sum();
    let stale: usize = reports.iter().map(|r| r.stale).sum();
    let relists: u64 = reports
        .iter()
        .flat_map(|r| &r.caches)
        .map(|c| c.relists)
        .sum();
    let errors: u64 = reports
        .iter()
        .flat_map(|r| &r.caches)
        .map(|c| c.errors)
        .sum();
    let lagged: u64 = reports
        .iter()
        .flat_map(|r| &r.caches)
        .map(|c| c.lagged)
        .sum();

    println!();
    println!("chaos summary");
    println!(
        "  runs:               {} ({} passed, {} failed) in {:.0?}, {:?} of chaos each",
        reports.len(),
        reports.len() - failed.len(),
        failed.len(),
        started.elapsed(),
        duration
    );
    println!(
        "  faults injected:    {} total",
        faults.values().sum::<u64>()
    );
    for (k, n) in &faults {
        println!("    {k:<18}{n}");
    }
    println!(
        "  writes:             {}",
        reports.iter().map(|r| r.writes).sum::<u64>()
    );
    println!(
        "  convergence:        max {:.1?}, p99 {:.1?}, median {:.1?} (from the last fault)",
        convergence.last().copied().unwrap_or_default(),
        quantile(&convergence, 0.99),
        quantile(&convergence, 0.5)
    );
    println!(
        "  read latency:       max {max_read:.1?}, p99 {p99_read:.1?} over {reads} reads; {slow_reads} over {READ_BOUND:?}"
    );
    println!(
        "  noise control:      max {max_control:.1?} (a plain map lookup timed between reads: what the machine alone cost)"
    );
    if max_read > READ_BOUND && max_read > max_control * 10 {
        println!(
            "  WARNING:            the longest read exceeds {READ_BOUND:?} and 10x the noise control: a read may wait on something"
        );
    }
    println!(
        "  snapshots checked:  {snapshots} published snapshots, each a whole relist or event prefix"
    );
    println!("  relists: {relists}, reflector errors retried: {errors}, subscriber lags: {lagged}");
    let (used, budget) = reports
        .iter()
        .flat_map(|r| {
            r.caches
                .iter()
                .map(move |c| (c.fault_relists, r.relist_budget))
        })
        .max_by(|a, b| (a.0 * b.1.max(1)).cmp(&(b.0 * a.1.max(1))))
        .unwrap_or_default();
    println!(
        "  fault relists:      at most {used} of the {budget} the injected faults explain (one cache, one seed)"
    );
    let ops: u64 = reports.iter().map(|r| r.history.findings.operations).sum();
    let ryw: u64 = reports
        .iter()
        .map(|r| r.history.findings.read_your_writes)
        .sum();
    let monotonic: u64 = reports.iter().map(|r| r.history.findings.monotonic).sum();
    let after_live: u64 = reports
        .iter()
        .map(|r| r.history.findings.monotonic_after_live)
        .sum();
    let consistent: u64 = reports.iter().map(|r| r.history.findings.consistent).sum();
    let absent: u64 = reports.iter().map(|r| r.history.findings.absent).sum();
    let failed_ops: u64 = reports.iter().map(|r| r.history.failed_ops).sum();
    let mut layer_writes: Vec<Duration> = reports
        .iter()
        .flat_map(|r| r.history.layer_writes.iter().copied())
        .collect();
    layer_writes.sort();
    let mut plain_writes: Vec<Duration> = reports
        .iter()
        .flat_map(|r| r.history.plain_writes.iter().copied())
        .collect();
    plain_writes.sort();
    let ran_out = layer_writes
        .iter()
        .filter(|d| **d >= repocache::layer::DEFAULT_OWN_WRITES_WAIT)
        .count();
    let behind: u64 = reports.iter().map(|r| r.history.behind).sum();
    let passed_through: u64 = reports.iter().map(|r| r.history.passed_through).sum();
    let local: u64 = reports.iter().map(|r| r.history.local).sum();
    let policy: u64 = reports.iter().map(|r| r.history.policy_requests).sum();
    println!(
        "  history checked:    {ops} operations ({failed_ops} more failed under faults, not recorded); {absent} answers without the object (not checkable)"
    );
    println!(
        "  history violations: read-your-writes {ryw}, monotonic {monotonic}, consistent {consistent}; older than an earlier live answer (reported, not guaranteed): {after_live}"
    );
    println!(
        "  write latency:      through the layer p50 {:.1?} p99 {:.1?} ({} writes); plain p50 {:.1?} p99 {:.1?} ({}); added p50 {:.1?} p99 {:.1?}",
        quantile(&layer_writes, 0.5),
        quantile(&layer_writes, 0.99),
        layer_writes.len(),
        quantile(&plain_writes, 0.5),
        quantile(&plain_writes, 0.99),
        plain_writes.len(),
        quantile(&layer_writes, 0.5).saturating_sub(quantile(&plain_writes, 0.5)),
        quantile(&layer_writes, 0.99).saturating_sub(quantile(&plain_writes, 0.99)),
    );
    println!(
        "                      {ran_out} layer writes took the whole read-your-writes bound ({:?}: a stalled watch); layer p90 {:.1?}, plain p90 {:.1?}",
        repocache::layer::DEFAULT_OWN_WRITES_WAIT,
        quantile(&layer_writes, 0.9),
        quantile(&plain_writes, 0.9),
    );
    println!(
        "  extra requests:     {} (layer reads passed through as Behind {behind}, policy version LISTs and fallbacks {policy}); layer requests answered locally {local}, passed through {passed_through} (writes included)",
        behind + policy
    );
    println!("  lost objects:       {lost}");
    println!("  extra objects:      {extra}");
    println!("  stale objects:      {stale}");
    match failed.first() {
        None => {
            println!("  first failing seed: none");
            ExitCode::SUCCESS
        }
        Some(r) => {
            println!(
                "  first failing seed: {}: {}",
                r.seed,
                r.violations
                    .first()
                    .map_or("did not converge", String::as_str)
            );
            println!(
                "  reproduce:          cargo xtask chaos --seed {} --seeds 1 --duration {}ms",
                r.seed,
                duration.as_millis()
            );
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn flags_parse_as_before() {
        let args = Args::try_parse_from([
            "chaos",
            "--seeds",
            "5",
            "--seed",
            "7",
            "--duration",
            "800ms",
            "--budget",
            "2.5s",
        ])
        .unwrap();
        assert_eq!((args.seeds, args.first), (5, 7));
        assert_eq!(args.duration, Some(Duration::from_millis(800)));
        assert_eq!(args.budget, Some(Duration::from_millis(2500)));
        let defaults = Args::try_parse_from(["chaos"]).unwrap();
        assert_eq!((defaults.seeds, defaults.first), (20, 1));
        assert_eq!((defaults.duration, defaults.budget), (None, None));
        for bad in [
            &["chaos", "--bogus"][..],
            &["chaos", "--seeds", "many"],
            &["chaos", "--duration", "0"],
            &["chaos", "--seed"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
