//! Renders `docs/BENCHMARKS.md` from one run's results: every figure beside its comparison from
//! the same run, as a ratio, and each target as met / not met.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::estimates::Criterion;
use crate::ids;
use crate::machine::RunInfo;
use crate::measure::{RelistWait, WriterStats};
use crate::memory::MemoryReport;
use crate::random_reads;

/// Per-read latency of one store at one size, with or without the writer.
pub struct LatencyRun {
    /// Store label.
    pub store: &'static str,
    /// Cached objects.
    pub objects: usize,
    /// The concurrent writer, if one ran.
    pub writer: Option<WriterStats>,
    /// Reads per second (untimed phase, same configuration).
    pub reads_per_sec: f64,
    /// Per-read latency (timer floor subtracted), nanoseconds.
    pub hist: Histogram<u64>,
}

/// Reader waits of one store during relists.
pub struct RelistRun {
    /// Store label.
    pub store: &'static str,
    /// Objects per relist.
    pub objects: usize,
    /// What the readers saw.
    pub wait: RelistWait,
}

/// The end-to-end part of the suite (against `apisim` over HTTP), rendered by
/// [`crate::e2e::render`]: its section body and its rows of the targets table.
#[derive(Default)]
pub struct EndToEnd {
    /// Rendered section body, when measured.
    pub section: Option<String>,
    /// Its targets, appended to the targets table.
    pub targets: Vec<TargetRow>,
}

/// One row of the targets table.
#[derive(Clone, Debug)]
pub struct TargetRow {
    /// The target.
    pub what: String,
    /// What this run measured.
    pub measured: String,
    /// Met, not met, or not measured.
    pub met: Option<bool>,
}

/// Everything one run measured.
pub struct Results {
    /// Machine and source.
    pub info: RunInfo,
    /// `quick`, `full` or `smoke`.
    pub mode: String,
    /// The command that produced the run.
    pub command: String,
    /// Median cost of an empty timed section (subtracted from every latency sample), ns.
    pub timer_floor: u64,
    /// JSON bytes of one fixture object.
    pub object_json_bytes: usize,
    /// Cache sizes.
    pub sizes: Vec<usize>,
    /// Target rate of the concurrent writer, events/s.
    pub writer_rate: f64,
    /// Seconds per latency phase and per throughput phase.
    pub phase_secs: (f64, f64),
    /// Test 1, latency side.
    pub latency: Vec<LatencyRun>,
    /// Random-order reads, 1 and 2 reader threads (section 1, last part).
    pub random: Vec<random_reads::Row>,
    /// Path of the random-read figure, relative to the report.
    pub random_svg: Option<String>,
    /// Length of one random-read phase, milliseconds.
    pub random_phase_ms: f64,
    /// Test 3.
    pub relist: Vec<RelistRun>,
    /// Test 5 (or why it is missing).
    pub memory: Result<MemoryReport, String>,
    /// Criterion estimates (tests 1, 2, 4).
    pub criterion: Criterion,
    /// Path of the latency figure, relative to the report.
    pub svg: Option<String>,
    /// The end-to-end part.
    pub e2e: EndToEnd,
    /// The relay part (section 7, [`crate::relay`]), rendered like the end-to-end part.
    pub relay: EndToEnd,
    /// Seconds the report binary ran.
    pub elapsed_secs: f64,
}

/// Store labels as the report shows them.
pub mod label {
    /// repocache.
    pub const REPOCACHE: &str = "repocache";
    /// kube-runtime's Store.
    pub const KUBE: &str = "kube-runtime Store";
    /// `parking_lot::RwLock<HashMap>`.
    pub const RWLOCK: &str = "RwLock<HashMap>";
    /// The unsynchronized HashMap.
    pub const LIMIT: &str = "HashMap (limit)";
    /// repocache with the publish interval off: one publish per event.
    pub const REPOCACHE_PER_EVENT: &str = "repocache, publish per event";
    /// The relist noise control: a reader of an unsynchronized map nothing writes.
    pub const CONTROL: &str = "noise control: unsynchronized HashMap nobody writes";
}

/// `12.3 ns`, `4.56 µs`, `7.89 ms`.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "—".to_owned()
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.1} ns")
    }
}

/// `41.2 M/s`, `350 k/s`.
pub fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.1} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.0} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} /s")
    }
}

/// `512 B`, `3.4 KiB`, `12.0 MiB`.
pub fn fmt_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// `0.87x`, `12.3x`, `450x`.
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "—".to_owned()
    } else if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

fn opt_ns(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), fmt_ns)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn opt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), fmt_ratio)
}

/// `**met**`, `**not met**` or `not measured`.
pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64
}

impl Results {
    fn lat(&self, store: &str, n: usize, writer: bool) -> Option<&LatencyRun> {
        self.latency
            .iter()
            .find(|r| r.store == store && r.objects == n && r.writer.is_some() == writer)
    }

    fn p999(&self, store: &str, n: usize, writer: bool) -> Option<f64> {
        self.lat(store, n, writer).map(|r| pct(&r.hist, 0.999))
    }

    fn relist_max(&self, store: &str) -> Option<f64> {
        self.relist
            .iter()
            .find(|r| r.store == store)
            .map(|r| r.wait.hist.max() as f64)
    }

    fn relist_median_longest(&self, store: &str) -> Option<f64> {
        let run = self.relist.iter().find(|r| r.store == store)?;
        let mut v = run.wait.longest_per_relist.clone();
        v.sort_unstable();
        v.get(v.len() / 2).map(|&x| x as f64)
    }

    fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }
}

type Target = TargetRow;

fn targets(r: &Results) -> Vec<Target> {
    let c = &r.criterion;
    let big = r.largest();
    let mut out = Vec::new();

    // 1a. idle get within 1.5x of the physical limit, at every size.
    let worst = r
        .sizes
        .iter()
        .filter_map(|&n| {
            ratio(
                c.ns(ids::GET, ids::GET_REPOCACHE, n),
                c.ns(ids::GET, ids::GET_LIMIT, n),
            )
            .map(|x| (n, x))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let worst_reader = r
        .sizes
        .iter()
        .filter_map(|&n| {
            ratio(
                c.ns(ids::GET, ids::GET_REPOCACHE_READER, n),
                c.ns(ids::GET, ids::GET_LIMIT, n),
            )
            .map(|x| (n, x))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    out.push(Target {
        what: "idle `get` within 1.5x of unsynchronized `HashMap::get` + `Arc` clone (every size)"
            .into(),
        measured: worst.map_or_else(
            || "—".into(),
            |(n, x)| {
                let reader = worst_reader.map_or_else(String::new, |(rn, rx)| {
                    format!(
                        "; the per-thread `Reader::get`: worst {} at {rn} objects",
                        fmt_ratio(rx)
                    )
                });
                format!("`Cache::get` worst {} at {n} objects{reader}", fmt_ratio(x))
            },
        ),
        met: worst.map(|(_, x)| x <= 1.5),
    });

    // 1b. p99.9 with the writer within 2x of idle, at every size.
    let worst = r
        .sizes
        .iter()
        .filter_map(|&n| {
            ratio(
                r.p999(label::REPOCACHE, n, true),
                r.p999(label::REPOCACHE, n, false),
            )
            .map(|x| (n, x))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    out.push(Target {
        what: format!(
            "p99.9 `get` with a {} writer within 2x of idle (every size)",
            fmt_rate(r.writer_rate)
        ),
        measured: worst.map_or_else(
            || "—".into(),
            |(n, x)| format!("worst {} at {n} objects", fmt_ratio(x)),
        ),
        met: worst.map(|(_, x)| x <= 2.0),
    });

    // 1c. p99.9 with the writer at least 3x better than kube-runtime's, at every size.
    let worst = r
        .sizes
        .iter()
        .filter_map(|&n| {
            ratio(
                r.p999(label::KUBE, n, true),
                r.p999(label::REPOCACHE, n, true),
            )
            .map(|x| (n, x))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    out.push(Target {
        what: "p99.9 `get` with the writer at least 3x better than kube-runtime `Store::get` under the same writer (every size)".into(),
        measured: worst.map_or_else(
            || "—".into(),
            |(n, x)| {
                // A third of kube-runtime's p99.9 can lie below what even the unsynchronized
                // map reaches idle: then no store can meet the target at that size.
                let bound = match (r.p999(label::KUBE, n, true), r.p999(label::LIMIT, n, false)) {
                    (Some(kube), Some(limit)) if kube / 3.0 < limit => format!(
                        " (a third of kube-runtime's {} is {}, below the unsynchronized \
                         `HashMap`'s own idle p99.9 of {}: out of any store's reach at that size)",
                        fmt_ns(kube),
                        fmt_ns(kube / 3.0),
                        fmt_ns(limit)
                    ),
                    _ => String::new(),
                };
                format!("worst {} better at {n} objects{bound}", fmt_ratio(x))
            },
        ),
        met: worst.map(|(_, x)| x >= 3.0),
    });

    out.extend(random_targets(r));

    // 2. snapshot at least 1,000x faster than state() at the largest size.
    let x = ratio(
        c.ns(ids::LIST, ids::LIST_KUBE_STATE, big),
        c.ns(ids::LIST, ids::LIST_SNAPSHOT, big),
    );
    out.push(Target {
        what: format!("`snapshot()` at {big} objects at least 1,000x faster than `state()`"),
        measured: x.map_or_else(|| "—".into(), |x| format!("{} faster", fmt_ratio(x))),
        met: x.map(|x| x >= 1000.0),
    });

    // 3. relist reader wait.
    let ours = r.relist_max(label::REPOCACHE);
    let theirs = r.relist_max(label::KUBE);
    let relist_n = r.relist.first().map_or(0, |x| x.objects);
    let control = r.relist_max(label::CONTROL);
    out.push(Target {
        what: format!("longest reader wait during a {relist_n}-object relist at most 10 µs"),
        measured: format!(
            "{} (noise control, no store: {}; median per-relist longest: {})",
            opt_ns(ours),
            opt_ns(control),
            opt_ns(r.relist_median_longest(label::REPOCACHE)),
        ),
        met: ours.map(|x| x <= 10_000.0),
    });
    let x = ratio(theirs, ours);
    out.push(Target {
        what: "… and at least 10x below kube-runtime's".into(),
        measured: x.map_or_else(
            || "—".into(),
            |x| format!("{} below ({})", fmt_ratio(x), opt_ns(theirs)),
        ),
        met: x.map(|x| x >= 10.0),
    });

    // 4. apply throughput.
    let per_sec = c
        .ns(ids::APPLY, ids::APPLY_REPOCACHE, big)
        .map(|ns| 1e9 / ns);
    let per_event = c
        .ns(ids::APPLY, ids::APPLY_REPOCACHE_PER_EVENT, big)
        .map(|ns| 1e9 / ns);
    out.push(Target {
        what: format!(
            "apply at least 200,000 events/s at {big} objects (the reflector's default: at most \
             one publish per 1 ms)"
        ),
        measured: per_sec.map_or_else(
            || "—".into(),
            |x| {
                format!(
                    "{} (publishing every event: {})",
                    fmt_rate(x),
                    per_event.map_or_else(|| "—".into(), fmt_rate)
                )
            },
        ),
        met: per_sec.map(|x| x >= 200_000.0),
    });
    out.push(Target {
        what: format!(
            "… and at least 300,000 events/s at {big} objects (issue #20: keep what the \
             persistent-map index reached)"
        ),
        measured: per_sec.map_or_else(|| "—".into(), fmt_rate),
        met: per_sec.map(|x| x >= 300_000.0),
    });

    // 5. memory.
    let (ours, theirs) = match &r.memory {
        Ok(m) => (
            m.stores
                .iter()
                .find(|s| s.store == label::REPOCACHE)
                .map(|s| s.per_object),
            m.stores
                .iter()
                .find(|s| s.store == label::KUBE)
                .map(|s| s.per_object),
        ),
        Err(_) => (None, None),
    };
    out.push(Target {
        what: "heap bytes per cached object no more than kube-runtime's Store".into(),
        measured: match (ours, theirs) {
            (Some(a), Some(b)) => format!(
                "{} vs {} ({})",
                fmt_bytes(a),
                fmt_bytes(b),
                fmt_ratio(a / b)
            ),
            _ => "—".into(),
        },
        met: ratio(ours, theirs).map(|x| x <= 1.0),
    });
    out.extend(r.e2e.targets.iter().cloned());
    out.extend(r.relay.targets.iter().cloned());
    out
}

/// The random-order read targets (issue #20): one reader at least as fast as kube-runtime's
/// `Store::get` and within 1.2x of the unsynchronized map; two readers at least 1.3x
/// kube-runtime's; every size, idle and with the writer.
fn random_targets(r: &Results) -> Vec<Target> {
    use random_reads::{CACHE_GET, KUBE_GET, MAP_GET};
    if r.random.is_empty() {
        return Vec::new();
    }
    let ns = |store: &str, n: usize, readers: usize, writer: bool| {
        random_reads::find(&r.random, store, n, readers, writer).map(|row| row.ns_per_read)
    };
    let wall = |store: &str, n: usize, readers: usize, writer: bool| {
        random_reads::find(&r.random, store, n, readers, writer).map(|row| row.wall_ns_per_read)
    };
    let sizes: Vec<usize> = {
        let mut v: Vec<usize> = r.random.iter().map(|row| row.objects).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    // (objects, writer, ratio) over every size and writer setting, of CPU time (the verdicts')
    // or of wall-clock time (shown beside them).
    let ratios_of = |figure: &dyn Fn(&str, usize, usize, bool) -> Option<f64>,
                     readers: usize,
                     num: &str,
                     den: &str|
     -> Vec<(usize, bool, f64)> {
        sizes
            .iter()
            .flat_map(|&n| [(n, false), (n, true)])
            .filter_map(|(n, w)| {
                ratio(figure(num, n, readers, w), figure(den, n, readers, w)).map(|x| (n, w, x))
            })
            .collect()
    };
    let ratios = |readers: usize, num: &str, den: &str| ratios_of(&ns, readers, num, den);
    // The worst wall-clock ratio of the same comparison, for the "measured" column.
    let wall_worst = |readers: usize, num: &str, den: &str, highest: bool| {
        let all = ratios_of(&wall, readers, num, den);
        let pick = |a: &&(usize, bool, f64), b: &&(usize, bool, f64)| a.2.total_cmp(&b.2);
        if highest {
            all.iter().max_by(pick).copied()
        } else {
            all.iter().min_by(pick).copied()
        }
    };
    let show = |(n, w, x): (usize, bool, f64)| {
        format!(
            "{} at {n} objects{}",
            fmt_ratio(x),
            if w { " with the writer" } else { ", idle" }
        )
    };
    let mut out = Vec::new();
    let measured = |worst: Option<(usize, bool, f64)>, wall: Option<(usize, bool, f64)>| {
        worst.map_or_else(
            || "—".into(),
            |w| {
                format!(
                    "worst {}{}",
                    show(w),
                    wall.map_or_else(String::new, |x| format!(
                        " (wall clock, throughput: worst {})",
                        show(x)
                    ))
                )
            },
        )
    };
    let one = ratios(1, KUBE_GET, CACHE_GET);
    let worst = one.iter().copied().min_by(|a, b| a.2.total_cmp(&b.2));
    out.push(Target {
        what: "random-order reads, one reader: `Cache::get` at least as fast as kube-runtime \
               `Store::get` (≥ 1.0x; every size, idle and with the writer)"
            .into(),
        measured: measured(worst, wall_worst(1, KUBE_GET, CACHE_GET, false)),
        met: worst.map(|w| w.2 >= 1.0),
    });
    let limit = ratios(1, CACHE_GET, MAP_GET);
    let worst = limit.iter().copied().max_by(|a, b| a.2.total_cmp(&b.2));
    out.push(Target {
        what: "random-order reads, one reader: `Cache::get` within 1.2x of the unsynchronized \
               `HashMap` (every size, idle and with the writer)"
            .into(),
        measured: measured(worst, wall_worst(1, CACHE_GET, MAP_GET, true)),
        met: worst.map(|w| w.2 <= 1.2),
    });
    let two = ratios(2, KUBE_GET, CACHE_GET);
    let worst = two.iter().copied().min_by(|a, b| a.2.total_cmp(&b.2));
    out.push(Target {
        what: "random-order reads, two readers: `Cache::get` at least 1.3x kube-runtime \
               `Store::get` (every size, idle and with the writer)"
            .into(),
        measured: measured(worst, wall_worst(2, KUBE_GET, CACHE_GET, false)),
        met: worst.map(|w| w.2 >= 1.3),
    });
    out
}

/// The random-order read section (part of section 1).
fn render_random(s: &mut String, r: &Results) {
    use random_reads::{CACHE_GET, KUBE_GET, MAP_GET, READER_GET};
    let _ = writeln!(s, "### Random-order reads, one and two reader threads\n");
    if r.random.is_empty() {
        let _ = writeln!(s, "_Not measured in this run._\n");
        return;
    }
    let _ = writeln!(
        s,
        "Each reader thread reads names in an order drawn up front at random over the whole key \
         space (a precomputed index sequence per thread; no random number generator on the \
         measured path), as a reconciler reads, in chunks of 1,024 reads with the clock read \
         once per chunk. CPU time per read per thread (the thread's own run time from \
         `/proc/thread-self/schedstat`, so that time the scheduler gave other processes on this \
         shared machine does not count; cache misses and cache-line transfers do); each figure is the median of {} rounds in \
         which the stores' phases alternate (phases of {:.0} ms). The writer, when present, \
         applies `Apply` events paced to {} to the store being read (for the unsynchronized \
         `HashMap`, which nothing can write while it is read, to a repocache store beside it, \
         so that the machine carries the same load). `kube / x` above 1 means x is faster.\n",
        r.random.first().map_or(0, |row| row.rounds.len()),
        r.random_phase_ms,
        fmt_rate(r.writer_rate),
    );
    let _ = writeln!(
        s,
        "| objects | readers | writer | kube-runtime `Store::get` | repocache `Cache::get` | repocache `Reader::get` | unsynchronized `HashMap` | kube / `Cache::get` | `Cache::get` / `HashMap` | kube / `Reader::get` |"
    );
    let _ = writeln!(
        s,
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut configs: Vec<(usize, usize, bool)> = r
        .random
        .iter()
        .map(|row| (row.objects, row.readers, row.writer))
        .collect();
    configs.dedup();
    for &(n, readers, writer) in &configs {
        let ns = |store| random_reads::find(&r.random, store, n, readers, writer);
        let v = |store| ns(store).map(|row| row.ns_per_read);
        let rate = ns(CACHE_GET)
            .and_then(|row| row.writer_events_per_sec)
            .map_or_else(|| "—".to_owned(), |x| format!("{} achieved", fmt_rate(x)));
        let _ = writeln!(
            s,
            "| {n} | {readers} | {rate} | {} | {} | {} | {} | {} | {} | {} |",
            opt_ns(v(KUBE_GET)),
            opt_ns(v(CACHE_GET)),
            opt_ns(v(READER_GET)),
            opt_ns(v(MAP_GET)),
            opt_ratio(ratio(v(KUBE_GET), v(CACHE_GET))),
            opt_ratio(ratio(v(CACHE_GET), v(MAP_GET))),
            opt_ratio(ratio(v(KUBE_GET), v(READER_GET))),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "The same phases in wall-clock time per read per thread, the inverse of a reader's \
         throughput: it also counts the time a reader waits, parked on a lock while the writer \
         holds it or descheduled while more threads than cores run (two readers and the writer \
         on two cores), which CPU time leaves out. The verdicts above are CPU time's.\n"
    );
    let _ = writeln!(
        s,
        "| objects | readers | writer | kube-runtime `Store::get` | repocache `Cache::get` | repocache `Reader::get` | unsynchronized `HashMap` | kube / `Cache::get` | kube / `Reader::get` |"
    );
    let _ = writeln!(
        s,
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for &(n, readers, writer) in &configs {
        let v = |store| {
            random_reads::find(&r.random, store, n, readers, writer).map(|row| row.wall_ns_per_read)
        };
        let _ = writeln!(
            s,
            "| {n} | {readers} | {} | {} | {} | {} | {} | {} | {} |",
            if writer { "yes" } else { "—" },
            opt_ns(v(KUBE_GET)),
            opt_ns(v(CACHE_GET)),
            opt_ns(v(READER_GET)),
            opt_ns(v(MAP_GET)),
            opt_ratio(ratio(v(KUBE_GET), v(CACHE_GET))),
            opt_ratio(ratio(v(KUBE_GET), v(READER_GET))),
        );
    }
    let _ = writeln!(s);
    if let Some(svg) = &r.random_svg {
        let _ = writeln!(
            s,
            "![Random-order read cost against object count]({svg})\n\n_Time per read per thread \
             against the number of cached objects, no writer; solid: one reader, dashed: two \
             readers._\n"
        );
    }
}

/// The whole report as Markdown.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let c = &r.criterion;
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "<!-- Generated by `{}` (crates/bench). Do not edit by hand: run it again. -->\n",
        r.command
    );
    let _ = writeln!(
        s,
        "{}This file is generated by `cargo xtask bench` from one run of the benchmark suite in \
         `crates/bench`. Every figure stands beside its comparison **from the same run**, as a ratio. \
         Absolute numbers depend on the machine below; the ratios are what the targets are about.\n",
        if r.mode == "smoke" {
            "**Smoke run (debug build, tiny sizes): these figures only show that the suite runs.**\n\n"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "| | |\n| --- | --- |");
    let _ = writeln!(s, "| commit | `{}` |", r.info.commit);
    let _ = writeln!(
        s,
        "| run | {} ({} mode, report binary {:.0} s) |",
        r.info.started, r.mode, r.elapsed_secs
    );
    let _ = writeln!(s, "| machine | {} cores, {} |", r.info.cores, r.info.cpu);
    let _ = writeln!(s, "| load average at start | {} |", r.info.load);
    let _ = writeln!(s, "| compiler | {} (release profile) |", r.info.rustc);
    let _ = writeln!(
        s,
        "| object | `PackageRepository`, {} bytes of JSON (labels, annotations incl. last-applied-configuration, spec.url, basic auth via Secret refs, Ready condition, uid, resourceVersion, creationTimestamp; no managedFields) |",
        r.object_json_bytes
    );
    let _ = writeln!(
        s,
        "| timer floor | {} per timed read (subtracted from every latency sample) |\n",
        fmt_ns(r.timer_floor as f64)
    );
    let _ = writeln!(
        s,
        "On a 2-core machine, reader and writer threads each take a core; other processes (builds) \
         running at the same time show up in the tails. Compare the stores within one run.\n"
    );

    // Targets.
    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(s, "| target | measured | verdict |\n| --- | --- | --- |");
    for t in targets(r) {
        let _ = writeln!(s, "| {} | {} | {} |", t.what, t.measured, verdict(t.met));
    }
    let _ = writeln!(s);

    // 1. get.
    let _ = writeln!(s, "## 1. `get` by name\n");
    let _ = writeln!(
        s,
        "### Steady state, no writer (criterion, time per read)\n"
    );
    if c.available() {
        let _ = writeln!(
            s,
            "| objects | repocache `Cache::get` | repocache `Reader::get` | kube-runtime `Store::get` | `RwLock<HashMap>` | `HashMap` + `Arc` clone (limit) | `Cache::get` / limit | `Reader::get` / limit | kube / repocache |"
        );
        let _ = writeln!(
            s,
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for &n in &r.sizes {
            let ours = c.ns(ids::GET, ids::GET_REPOCACHE, n);
            let reader = c.ns(ids::GET, ids::GET_REPOCACHE_READER, n);
            let kube = c.ns(ids::GET, ids::GET_KUBE, n);
            let lock = c.ns(ids::GET, ids::GET_RWLOCK, n);
            let limit = c.ns(ids::GET, ids::GET_LIMIT, n);
            let _ = writeln!(
                s,
                "| {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
                opt_ns(ours),
                opt_ns(reader),
                opt_ns(kube),
                opt_ns(lock),
                opt_ns(limit),
                opt_ratio(ratio(ours, limit)),
                opt_ratio(ratio(reader, limit)),
                opt_ratio(ratio(kube, ours)),
            );
        }
        let _ = writeln!(
            s,
            "\n`Cache::get` works through `&self` from any thread and pays arc-swap's guard on every \
             read; `Reader::get` (`Cache::reader()`, one per thread, `&mut self`) only checks with a \
             relaxed load that its snapshot is still current."
        );
    } else {
        let _ = writeln!(s, "_criterion benches not run in this mode._");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "### Latency per read, idle and with a writer applying {} `Apply` events\n",
        fmt_rate(r.writer_rate)
    );
    let _ = writeln!(
        s,
        "One reader thread; the writer (when present) on another thread. Each phase ran {:.2} s \
         (latency) + {:.2} s (throughput), split into three rounds in which idle and writer \
         phases alternate (the samples of a phase's rounds merged), so that drift of the machine \
         over the run falls on both alike; the `{}` row ran in one piece. The writer drives repocache as its reflector does: it \
         stages each event and publishes at most once per millisecond (the default publish \
         interval), each publish carrying every event since the last; the row \
         `{}` is the same cache with the interval off (`publish_interval(Duration::ZERO)`).\n",
        r.phase_secs.0,
        r.phase_secs.1,
        label::REPOCACHE_PER_EVENT,
        label::REPOCACHE_PER_EVENT
    );
    let _ = writeln!(
        s,
        "| objects | store | writer | reads/s | p50 | p99 | p99.9 | max | p99.9 vs repocache (same load) |"
    );
    let _ = writeln!(
        s,
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for &n in &r.sizes {
        for run in r.latency.iter().filter(|x| x.objects == n) {
            let writer = run.writer.map_or_else(
                || "—".to_owned(),
                |w| format!("{} achieved", fmt_rate(w.rate)),
            );
            let vs = ratio(
                Some(pct(&run.hist, 0.999)),
                r.p999(label::REPOCACHE, n, run.writer.is_some()),
            );
            let _ = writeln!(
                s,
                "| {n} | {} | {writer} | {} | {} | {} | {} | {} | {} |",
                run.store,
                fmt_rate(run.reads_per_sec),
                fmt_ns(pct(&run.hist, 0.5)),
                fmt_ns(pct(&run.hist, 0.99)),
                fmt_ns(pct(&run.hist, 0.999)),
                fmt_ns(run.hist.max() as f64),
                opt_ratio(vs),
            );
        }
    }
    let _ = writeln!(s);
    if let Some(svg) = &r.svg {
        let _ = writeln!(
            s,
            "![Read latency distributions at {} objects]({svg})\n\n_Fraction of reads taking at \
             least x, log-log; solid: no writer, dashed: with the writer._\n",
            r.largest()
        );
    }

    render_random(&mut s, r);

    // 2. list.
    let _ = writeln!(s, "## 2. `list` / full snapshot (criterion)\n");
    if c.available() {
        let _ = writeln!(
            s,
            "| objects | `snapshot()` | `snapshot().iter().count()` | `Cache::list()` | kube-runtime `state()` | `state()` / `snapshot()` | `state()` / `list()` |"
        );
        let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for &n in &r.sizes {
            let snap = c.ns(ids::LIST, ids::LIST_SNAPSHOT, n);
            let iter = c.ns(ids::LIST, ids::LIST_SNAPSHOT_ITER, n);
            let list = c.ns(ids::LIST, ids::LIST_REPOCACHE_LIST, n);
            let state = c.ns(ids::LIST, ids::LIST_KUBE_STATE, n);
            let _ = writeln!(
                s,
                "| {n} | {} | {} | {} | {} | {} | {} |",
                opt_ns(snap),
                opt_ns(iter),
                opt_ns(list),
                opt_ns(state),
                opt_ratio(ratio(state, snap)),
                opt_ratio(ratio(state, list)),
            );
        }
    } else {
        let _ = writeln!(s, "_criterion benches not run in this mode._");
    }
    let _ = writeln!(s);

    // 3. relist.
    let relist_n = r.relist.first().map_or(0, |x| x.objects);
    let _ = writeln!(
        s,
        "## 3. Reader wait during a relist of {relist_n} objects\n"
    );
    let _ = writeln!(
        s,
        "A writer runs full relists (`Init`, {relist_n} × `InitApply` with every object at a new \
         resourceVersion, `InitDone`) while one reader thread reads by name and times every read \
         that starts during a relist. The noise control relists a repocache store the same way \
         while its reader reads an unsynchronized map that nothing writes: its longest read is \
         what the machine itself adds (scheduling, interrupts, other processes, the writer's \
         memory traffic); a store's longest wait near the control's is noise, not waiting.\n"
    );
    let _ = writeln!(
        s,
        "| reader of | relists | reads timed | p99 | p99.99 | longest wait | median of per-relist longest | longest vs repocache | relist duration (writer) |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let ours = r.relist_max(label::REPOCACHE);
    for run in &r.relist {
        let h = &run.wait.hist;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            run.store,
            run.wait.relists,
            h.len(),
            fmt_ns(pct(h, 0.99)),
            fmt_ns(pct(h, 0.9999)),
            fmt_ns(h.max() as f64),
            opt_ns(r.relist_median_longest(run.store)),
            opt_ratio(ratio(Some(h.max() as f64), ours)),
            fmt_ns(run.wait.relist_mean_ns as f64),
        );
    }
    let _ = writeln!(s);

    // 4. apply.
    let _ = writeln!(s, "## 4. Event apply throughput (criterion)\n");
    if c.available() {
        let _ = writeln!(
            s,
            "| objects | repocache, reflector default (`stage` + `publish_due`, 1 ms) | repocache `apply` (publish per event) | repocache `apply_batch` ({} events, one publish) | kube-runtime `apply_watcher_event` | default / kube | `apply` / kube | `apply_batch` / kube |",
            ids::APPLY_BATCH
        );
        let _ = writeln!(
            s,
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for &n in &r.sizes {
            let default = c.ns(ids::APPLY, ids::APPLY_REPOCACHE, n).map(|ns| 1e9 / ns);
            let one = c
                .ns(ids::APPLY, ids::APPLY_REPOCACHE_PER_EVENT, n)
                .map(|ns| 1e9 / ns);
            let batch = c
                .ns(ids::APPLY, ids::APPLY_REPOCACHE_BATCH, n)
                .map(|ns| 1e9 * ids::APPLY_BATCH as f64 / ns);
            let kube = c.ns(ids::APPLY, ids::APPLY_KUBE, n).map(|ns| 1e9 / ns);
            let rate = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), fmt_rate);
            let _ = writeln!(
                s,
                "| {n} | {} | {} | {} | {} | {} | {} | {} |",
                rate(default),
                rate(one),
                rate(batch),
                rate(kube),
                opt_ratio(ratio(default, kube)),
                opt_ratio(ratio(one, kube)),
                opt_ratio(ratio(batch, kube)),
            );
        }
        let _ = writeln!(
            s,
            "\nEach event is an `Apply` of a cached object at a new resourceVersion, built in \
             criterion's untimed setup. repocache takes the event by value; kube-runtime borrows \
             it and clones the object into its map (as its reflector does), so that clone is part \
             of its figure. The reflector's default stages each event and publishes at most once \
             per millisecond (a quiet watch's event at once); between publishes the writer \
             updates its maps in place, while a publish per event copies the changed paths of \
             both persistent maps for every event.\n"
        );
    } else {
        let _ = writeln!(s, "_criterion benches not run in this mode._\n");
    }

    // 5. memory.
    let _ = writeln!(s, "## 5. Memory\n");
    match &r.memory {
        Ok(m) => {
            let _ = writeln!(
                s,
                "Heap bytes requested from the allocator (counting `#[global_allocator]`, in a \
                 process of its own), {} objects. One object alone (in its `Arc`) is {}. The \
                 objects were created with `kubectl apply` (they carry the last-applied \
                 annotation): repocache's default transform drops it, with managedFields; \
                 kube-runtime's Store and the map keep what they are given.\n",
                m.objects,
                fmt_bytes(m.object_bytes as f64)
            );
            let kube = m.stores.iter().find(|x| x.store == label::KUBE);
            let _ = writeln!(
                s,
                "| store | bytes per object | overhead per object (beyond the object) | total | peak during a relist | peak / steady | per object vs kube-runtime |"
            );
            let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
            for st in &m.stores {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    st.store,
                    fmt_bytes(st.per_object),
                    fmt_bytes(st.per_object - m.object_bytes as f64),
                    fmt_bytes(st.steady_bytes as f64),
                    fmt_bytes(st.relist_peak_bytes as f64),
                    fmt_ratio(st.relist_peak_bytes as f64 / st.steady_bytes.max(1) as f64),
                    opt_ratio(kube.map(|k| st.per_object / k.per_object)),
                );
            }
            let _ = writeln!(s);
        }
        Err(e) => {
            let _ = writeln!(s, "_not measured: {e}_\n");
        }
    }

    // 6. end to end.
    let _ = writeln!(s, "## 6. End to end (against `apisim` over HTTP)\n");
    match &r.e2e.section {
        Some(section) => {
            let _ = writeln!(s, "{section}");
        }
        None => {
            let _ = writeln!(s, "_Not measured in this run._\n");
        }
    }

    // 7. the relay.
    let _ = writeln!(s, "## 7. The relay: one watch per kind for many clients\n");
    match &r.relay.section {
        Some(section) => {
            let _ = writeln!(s, "{section}");
        }
        None => {
            let _ = writeln!(s, "_Not measured in this run._\n");
        }
    }

    // Method.
    let _ = writeln!(s, "## Method\n");
    let _ = writeln!(
        s,
        "- **Steady state** (`get`, `list`, apply): criterion benches in `crates/bench/benches/` \
         (one iteration = one call; the figure is criterion's slope estimate, or its mean). Reads \
         cycle through every cached name with keys built beforehand (kube-runtime's `ObjectRef` \
         too, which favours it).\n\
         - **Per-read latency**: each read timed alone with two `Instant::now()` calls and \
         recorded in an HdrHistogram (3 significant digits); the timer floor (median of an empty \
         timed section) is subtracted. Timing single reads instead of batches keeps a reader that \
         waited on a lock visible in the tail. Throughput comes from a separate untimed phase \
         with the same load.\n\
         - **Writer**: a thread applies `Apply` events at a fresh resourceVersion, round-robin over \
         the cached objects, paced to {} (it sleeps ~100 µs, then applies what is due). The \
         unsynchronized `HashMap` has no writer: it is the idle limit only.\n\
         - **Relist**: every read that starts while the writer is inside a relist is timed; the \
         longest one is the longest any reader waited.\n\
         - **Memory**: sizes requested from a counting global allocator; the relist peak includes \
         the previous state, the relist buffer and the new state.\n",
        fmt_rate(r.writer_rate)
    );
    s
}
