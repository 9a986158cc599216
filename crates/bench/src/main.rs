//! `repocache-bench`: runs the measurements that criterion is bad at and writes the benchmark
//! report, `docs/BENCHMARKS.md`, with the read-latency figure `docs/bench/read-latency.svg`.
//!
//! It sits at the end of `cargo xtask bench`, after the criterion benches of this crate: it
//! measures per-read latency percentiles idle and under a paced writer, the longest reader wait
//! during a relist, and (through the `repocache-bench-memory` binary) heap use per object; then
//! it runs the end-to-end part against apisim; then it reads criterion's estimates of the same
//! run and renders everything, each figure beside its comparison, with the machine and the git
//! commit.
//!
//! Usage: `repocache-bench [--quick | --full | --smoke] [--criterion DIR] [--out FILE] [--svg FILE] [--e2e-only] [--random-reads-only] [--relay-only] [--e2e-part PART]...`
//! - `--full` (default) / `--quick`: the real run; `--quick` uses shorter phases.
//! - `--smoke`: tiny sizes and phases, writes to a temporary directory (never `docs/`), for CI.
//! - `--e2e-only`: skip sections 1, 3 and 5 (for working on the end-to-end part; give `--out`).
//! - `--random-reads-only`: run only the random-order read part of section 1 (for working on the
//!   read path; give `--out`).
//! - `--relay-only`: run only section 7, the relay (request-count proof with kube-rs, kubectl
//!   and Python clients, fan-out latency, the many-relays simulation; give `--out`).
//! - `--e2e-part PART` (repeatable): run only these parts of section 6 (`sync`, `propagation`,
//!   `load`, `consistent`, `warm`, `replicas`, `install`); the others are reported as not run.
//!   `cargo xtask bench --e2e-part PART` passes it through (with `--e2e-only`, into
//!   `target/repocache-bench/BENCHMARKS-e2e.md`).
//!
//! Section 6, the end-to-end part, runs repocache, kube-runtime's reflector and uncached reads
//! against apisim over HTTP ([`repocache_bench::e2e`]).
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use repocache_bench::estimates::Criterion;
use repocache_bench::machine::RunInfo;
use repocache_bench::measure::{self, PacedWriter};
use repocache_bench::memory::MemoryReport;
use repocache_bench::plot::{self, Series};
use repocache_bench::report::{self, LatencyRun, RelistRun, Results, label};
use repocache_bench::sides::{self, KubeStore, LockedMap, Repocache, RepocachePerEvent, WriteSide};
use repocache_bench::{fixture, ids, random_reads};

const HELP: &str = "\
  --full (default) | --quick   the real run; --quick uses shorter phases
  --smoke                      tiny sizes, into a temporary directory (never docs/), for CI
  --out FILE / --svg FILE      where the report and the figure go (default docs/)
  --e2e-only                   skip the micro part (sections 1, 3, 5); give --out
  --random-reads-only          only the random-order read part of section 1; give --out
  --relay-only                 only the relay part (section 7); give --out
  --e2e-part PART              (repeatable) only these end-to-end parts: sync, propagation,
                               load, consistent, warm, replicas, install
                               e.g. --e2e-only --e2e-part warm --out /tmp/warm.md
                               (cargo xtask bench --e2e-part PART passes it through)";

const USAGE: &str = "usage: repocache-bench [--quick | --full | --smoke] [--criterion DIR] [--out FILE] [--svg FILE] [--command TEXT] [--e2e-only] [--random-reads-only] [--relay-only] [--e2e-part PART]...";

/// How long and how big a run is.
struct Config {
    mode: &'static str,
    sizes: Vec<usize>,
    latency_phase: Duration,
    throughput_phase: Duration,
    writer_rate: f64,
    relist_objects: usize,
    relists: usize,
    memory_objects: usize,
    /// `--e2e-part`: the end-to-end parts to run (empty: all).
    e2e_parts: Vec<&'static str>,
    /// The random-order read part.
    random: random_reads::Config,
}

impl Config {
    fn full() -> Self {
        Self {
            mode: "full",
            sizes: ids::SIZES.to_vec(),
            latency_phase: Duration::from_millis(1500),
            throughput_phase: Duration::from_millis(500),
            writer_rate: 10_000.0,
            relist_objects: 10_000,
            relists: 10,
            memory_objects: 10_000,
            e2e_parts: Vec::new(),
            random: random_reads::Config::full(),
        }
    }

    fn quick() -> Self {
        Self {
            mode: "quick",
            latency_phase: Duration::from_millis(400),
            throughput_phase: Duration::from_millis(200),
            relists: 4,
            random: random_reads::Config::quick(),
            ..Self::full()
        }
    }

    fn smoke() -> Self {
        Self {
            mode: "smoke",
            sizes: vec![10, 100],
            latency_phase: Duration::from_millis(20),
            throughput_phase: Duration::from_millis(20),
            writer_rate: 10_000.0,
            relist_objects: 200,
            relists: 1,
            memory_objects: 200,
            e2e_parts: Vec::new(),
            random: random_reads::Config::smoke(),
        }
    }
}

struct Args {
    config: Config,
    criterion: Option<PathBuf>,
    out: PathBuf,
    svg: PathBuf,
    command: String,
    e2e_only: bool,
    random_only: bool,
    relay_only: bool,
}

fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .map_or(manifest_dir.clone(), Path::to_path_buf)
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut config = None;
    let mut criterion = None;
    let mut out = None;
    let mut svg = None;
    let mut command = None;
    let mut e2e_only = false;
    let mut random_only = false;
    let mut relay_only = false;
    let mut parts = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quick" | "--full" | "--smoke" if config.is_some() => {
                return Err("give at most one of --quick, --full, --smoke".into());
            }
            "--quick" => config = Some(Config::quick()),
            "--full" => config = Some(Config::full()),
            "--smoke" => config = Some(Config::smoke()),
            "--criterion" => criterion = Some(PathBuf::from(value("--criterion")?)),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--svg" => svg = Some(PathBuf::from(value("--svg")?)),
            "--command" => command = Some(value("--command")?),
            "--e2e-only" => e2e_only = true,
            "--random-reads-only" => random_only = true,
            "--relay-only" => relay_only = true,
            "--e2e-part" => {
                let part = value("--e2e-part")?;
                let known = repocache_bench::e2e::PARTS;
                match known.iter().find(|p| **p == part) {
                    Some(p) => parts.push(*p),
                    None => {
                        return Err(format!(
                            "unknown --e2e-part `{part}` (one of: {})",
                            known.join(", ")
                        ));
                    }
                }
            }
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let mut config = config.unwrap_or_else(Config::full);
    config.e2e_parts = parts;
    let (out, svg) = if config.mode == "smoke" {
        if out.is_some() || svg.is_some() {
            return Err("--smoke always writes to a temporary directory".into());
        }
        let dir = std::env::temp_dir().join("repocache-bench-smoke");
        (
            dir.join("BENCHMARKS.md"),
            dir.join("bench/read-latency.svg"),
        )
    } else {
        let docs = workspace_root().join("docs");
        (
            out.unwrap_or_else(|| docs.join("BENCHMARKS.md")),
            svg.unwrap_or_else(|| docs.join("bench/read-latency.svg")),
        )
    };
    Ok(Args {
        command: command.unwrap_or_else(|| format!("cargo xtask bench --{}", config.mode)),
        config,
        criterion,
        out,
        svg,
        e2e_only,
        random_only,
        relay_only,
    })
}

fn main() -> ExitCode {
    // `RUST_LOG=repocache=debug` shows e.g. the stages of every warm start (part warm) on
    // stderr.
    repocache_bench::log_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, n] = args.as_slice()
        && flag == repocache_bench::relay::IDLE_MEMORY_CHILD
    {
        let measured = n
            .parse()
            .map_err(anyhow::Error::from)
            .and_then(repocache_bench::relay::idle_memory_child);
        return match measured {
            Ok(line) => {
                // The parent reads this one line (`relay::idle_memory_in_child`).
                #[allow(clippy::print_stdout)]
                {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("repocache-bench: idle memory: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if matches!(args.first().map(String::as_str), Some("-h" | "--help")) {
        eprintln!("{USAGE}\n\n{HELP}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("repocache-bench: {e} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repocache-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let cfg = &args.config;
    let info = RunInfo::collect(&workspace_root());
    let floor = measure::timer_floor();
    eprintln!(
        "repocache-bench: {} mode, commit {}, {} cores, timer floor {floor} ns",
        cfg.mode, info.commit, info.cores
    );

    let only_relay = args.relay_only;
    let random = if args.e2e_only || only_relay {
        Vec::new()
    } else {
        random_reads::run(&cfg.random, |n| {
            eprintln!("  random-order reads at {n} objects: done");
        })
    };
    let (latency, relist, memory) = if args.e2e_only || args.random_only || only_relay {
        eprintln!("  micro part skipped (--e2e-only / --random-reads-only / --relay-only)");
        (
            Vec::new(),
            Vec::new(),
            Err("skipped (--e2e-only)".to_owned()),
        )
    } else {
        micro(cfg, floor)
    };

    let e2e = if args.random_only || only_relay {
        report::EndToEnd::default()
    } else {
        end_to_end::run(cfg)?
    };
    let relay = if args.random_only || (args.e2e_only && !only_relay) {
        report::EndToEnd::default()
    } else {
        relay_part(cfg, &args.command)?
    };

    // No figure without latency runs (an empty plot never finishes drawing).
    let svg_rel = if latency.is_empty() {
        None
    } else {
        Some(write_svg(args, &latency)?)
    };
    let random_svg = if random.is_empty() {
        None
    } else {
        Some(write_random_svg(args, &random)?)
    };
    let results = Results {
        info,
        mode: cfg.mode.to_owned(),
        command: args.command.clone(),
        timer_floor: floor,
        object_json_bytes: fixture::json_size(),
        sizes: cfg.sizes.clone(),
        writer_rate: cfg.writer_rate,
        phase_secs: (
            cfg.latency_phase.as_secs_f64(),
            cfg.throughput_phase.as_secs_f64(),
        ),
        latency,
        random,
        random_svg,
        random_phase_ms: cfg.random.phase.as_secs_f64() * 1e3,
        relist,
        memory,
        criterion: Criterion::new(args.criterion.as_deref()),
        svg: svg_rel,
        e2e,
        relay,
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    let text = report::render(&results);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "repocache-bench: wrote {} and {}",
        args.out.display(),
        args.svg.display()
    );
    Ok(())
}

/// Sections 1, 3 and 5: per-read latency, relist reader wait, memory.
fn micro(
    cfg: &Config,
    floor: u64,
) -> (
    Vec<LatencyRun>,
    Vec<RelistRun>,
    Result<MemoryReport, String>,
) {
    let mut latency = Vec::new();
    for &n in &cfg.sizes {
        let objects = fixture::repositories(n, 1);
        latency.extend(latency_runs::<Repocache>(
            label::REPOCACHE,
            &objects,
            cfg,
            floor,
        ));
        latency.push(busy_run(
            label::REPOCACHE_PER_EVENT,
            sides::filled::<RepocachePerEvent>(&objects),
            n,
            cfg,
            floor,
        ));
        latency.extend(latency_runs::<KubeStore>(label::KUBE, &objects, cfg, floor));
        latency.extend(latency_runs::<LockedMap>(
            label::RWLOCK,
            &objects,
            cfg,
            floor,
        ));
        let plain = sides::plain_map(&objects);
        let keys = sides::keys::<sides::PlainMap>(n);
        latency.push(LatencyRun {
            store: label::LIMIT,
            objects: n,
            writer: None,
            reads_per_sec: measure::read_throughput(&plain, &keys, cfg.throughput_phase),
            hist: measure::read_latency(&plain, &keys, cfg.latency_phase, floor),
        });
        eprintln!("  get latency at {n} objects: done");
    }

    let relist = vec![
        relist_run::<Repocache>(label::REPOCACHE, cfg, floor),
        relist_run::<KubeStore>(label::KUBE, cfg, floor),
        relist_run::<LockedMap>(label::RWLOCK, cfg, floor),
        RelistRun {
            store: label::CONTROL,
            objects: cfg.relist_objects,
            wait: measure::relist_wait_control(cfg.relist_objects, cfg.relists, floor),
        },
    ];
    eprintln!("  relist reader wait: done");

    let memory = memory(cfg.memory_objects).map_err(|e| format!("{e:#}"));
    eprintln!(
        "  memory: {}",
        if memory.is_ok() { "done" } else { "failed" }
    );
    (latency, relist, memory)
}

/// Idle and busy phases of test 1 alternate this many times per store and size, their samples
/// merged: drift of the machine over the run (other processes, frequency, the host) then falls on
/// both alike instead of on whichever phase it happened to meet.
const LATENCY_ROUNDS: u32 = 3;

/// Test 1 for one store at one size: idle, and with the paced writer, in alternating rounds.
fn latency_runs<W: WriteSide>(
    store: &'static str,
    objects: &[sides::Obj],
    cfg: &Config,
    floor: u64,
) -> [LatencyRun; 2] {
    let n = objects.len();
    let mut side: W = sides::filled(objects);
    let reader = side.reader();
    let keys = sides::keys::<W::Reader>(n);
    let latency = cfg.latency_phase / LATENCY_ROUNDS;
    let throughput = cfg.throughput_phase / LATENCY_ROUNDS;
    let (mut idle, mut busy) = (measure::histogram(), measure::histogram());
    let (mut idle_rate, mut busy_rate) = (0.0, 0.0);
    let (mut events, mut writing) = (0, Duration::ZERO);
    for _ in 0..LATENCY_ROUNDS {
        idle_rate += measure::read_throughput(&reader, &keys, throughput);
        let _ = idle.add(measure::read_latency(&reader, &keys, latency, floor));
        let started = Instant::now();
        let writer = PacedWriter::start(side, n, cfg.writer_rate);
        std::thread::sleep(Duration::from_millis(20));
        busy_rate += measure::read_throughput(&reader, &keys, throughput);
        let _ = busy.add(measure::read_latency(&reader, &keys, latency, floor));
        let (back, stats) = writer.stop();
        side = back;
        events += stats.events;
        writing += started.elapsed();
    }
    let rounds = f64::from(LATENCY_ROUNDS);
    [
        LatencyRun {
            store,
            objects: n,
            writer: None,
            reads_per_sec: idle_rate / rounds,
            hist: idle,
        },
        LatencyRun {
            store,
            objects: n,
            writer: Some(measure::WriterStats {
                events,
                rate: events as f64 / writing.as_secs_f64().max(1e-9),
            }),
            reads_per_sec: busy_rate / rounds,
            hist: busy,
        },
    ]
}

/// Test 1 for one store at one size, with the paced writer only.
fn busy_run<W: WriteSide>(
    store: &'static str,
    side: W,
    n: usize,
    cfg: &Config,
    floor: u64,
) -> LatencyRun {
    let reader = side.reader();
    let keys = sides::keys::<W::Reader>(n);
    let writer = PacedWriter::start(side, n, cfg.writer_rate);
    std::thread::sleep(Duration::from_millis(20));
    let reads_per_sec = measure::read_throughput(&reader, &keys, cfg.throughput_phase);
    let hist = measure::read_latency(&reader, &keys, cfg.latency_phase, floor);
    let (_side, stats) = writer.stop();
    LatencyRun {
        store,
        objects: n,
        writer: Some(stats),
        reads_per_sec,
        hist,
    }
}

/// Test 3 for one store.
fn relist_run<W: WriteSide>(store: &'static str, cfg: &Config, floor: u64) -> RelistRun {
    RelistRun {
        store,
        objects: cfg.relist_objects,
        wait: measure::relist_wait::<W>(cfg.relist_objects, cfg.relists, floor),
    }
}

/// Test 5: runs the memory binary (built beside this one) and reads its JSON.
fn memory(objects: usize) -> anyhow::Result<MemoryReport> {
    let exe = std::env::current_exe()?.with_file_name(format!(
        "repocache-bench-memory{}",
        std::env::consts::EXE_SUFFIX
    ));
    let out = Command::new(&exe)
        .arg(objects.to_string())
        .output()
        .with_context(|| {
            format!(
                "running {} (build it with `cargo build -p repocache-bench --bins`)",
                exe.display()
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Draws the latency figure for the largest size; returns its path relative to the report.
fn write_svg(args: &Args, latency: &[LatencyRun]) -> anyhow::Result<String> {
    let n = args.config.sizes.iter().copied().max().unwrap_or(0);
    let color = |store: &str| match store {
        label::REPOCACHE => 0,
        label::KUBE => 1,
        label::RWLOCK => 2,
        label::REPOCACHE_PER_EVENT => 4,
        _ => 3,
    };
    let series: Vec<Series<'_>> = latency
        .iter()
        .filter(|r| r.objects == n)
        .map(|r| Series {
            label: match r.writer {
                Some(_) => format!("{} + writer", r.store),
                None => format!("{}, idle", r.store),
            },
            hist: &r.hist,
            color: color(r.store),
            dashed: r.writer.is_some(),
        })
        .collect();
    if let Some(dir) = args.svg.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let title = format!(
        "get by name at {n} objects: idle and with a {:.0}/s writer",
        args.config.writer_rate
    );
    plot::read_latency(&args.svg, &title, &series)?;
    let base = args.out.parent().unwrap_or(Path::new(""));
    Ok(args
        .svg
        .strip_prefix(base)
        .unwrap_or(&args.svg)
        .display()
        .to_string())
}

/// Draws the random-read figure beside the latency figure; returns its path relative to the
/// report.
fn write_random_svg(args: &Args, rows: &[random_reads::Row]) -> anyhow::Result<String> {
    let path = args.svg.with_file_name("random-reads.svg");
    let mut series = Vec::new();
    for (color, store) in random_reads::STORES.iter().enumerate() {
        for readers in [1, 2] {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.store == *store && r.readers == readers && !r.writer)
                .map(|r| (r.objects as f64, r.ns_per_read))
                .collect();
            if points.is_empty() {
                continue;
            }
            series.push(plot::CostSeries {
                label: format!(
                    "{}, {readers} reader{}",
                    store.replace('`', ""),
                    if readers == 1 { "" } else { "s" }
                ),
                points,
                color,
                dashed: readers > 1,
            });
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    plot::cost_vs_objects(
        &path,
        "get by name in random order: time per read per thread, no writer",
        &series,
    )?;
    let base = args.out.parent().unwrap_or(Path::new(""));
    Ok(path
        .strip_prefix(base)
        .unwrap_or(&path)
        .display()
        .to_string())
}

/// Section 7, the relay ([`repocache_bench::relay`]); in smoke mode (CI) a part that fails
/// fails the run.
fn relay_part(cfg: &Config, command: &str) -> anyhow::Result<report::EndToEnd> {
    use repocache_bench::relay::{self, RelayConfig};
    let config = match cfg.mode {
        "smoke" => RelayConfig::smoke(),
        "quick" => RelayConfig::quick(),
        _ => RelayConfig::full(),
    };
    eprintln!("  relay: {}", relay::tools());
    let results = relay::run(&config, |what| eprintln!("  relay {what}: done"));
    let errors = results.errors();
    for e in &errors {
        eprintln!("  {e}");
    }
    anyhow::ensure!(
        cfg.mode != "smoke" || errors.is_empty(),
        "the relay smoke failed: {}",
        errors.join("; ")
    );
    let (section, targets) = relay::render(&results, command);
    Ok(report::EndToEnd {
        section: Some(section),
        targets,
    })
}

/// The end-to-end part of the suite (section 6): repocache against kube-runtime's reflector and
/// uncached reads, over HTTP against `apisim` (see [`repocache_bench::e2e`]).
mod end_to_end {
    use super::Config;
    use repocache_bench::e2e::{self, E2eConfig};
    use repocache_bench::report::EndToEnd;

    /// Runs the end-to-end measurements at the run's size; in smoke mode (CI) a part that
    /// fails fails the run.
    pub(super) fn run(cfg: &Config) -> anyhow::Result<EndToEnd> {
        let mut config = match cfg.mode {
            "smoke" => E2eConfig::smoke(),
            "quick" => E2eConfig::quick(),
            _ => E2eConfig::full(),
        };
        config.parts.clone_from(&cfg.e2e_parts);
        let results = e2e::run(&config);
        let errors = results.errors();
        for e in &errors {
            eprintln!("  e2e: {e}");
        }
        anyhow::ensure!(
            cfg.mode != "smoke" || errors.is_empty(),
            "the end-to-end smoke failed: {}",
            errors.join("; ")
        );
        let (section, targets) = e2e::render::render(&results);
        Ok(EndToEnd {
            section: Some(section),
            targets,
        })
    }
}
