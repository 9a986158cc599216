//! Section 6 of the report and its rows of the targets table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use repocache_cli::demo::DemoReport;

use super::E2eResults;
use super::consistent::{ConsistentResult, PolicyRun, quantile};
use super::load::{LoadResult, ReadsRun, ReplicaResult};
use super::sync::{SyncRow, median};
use crate::report::{TargetRow, fmt_bytes, fmt_ns, fmt_ratio};

/// The total install time reduction the seed reported for upstream's in-memory cache.
pub const SEED_REDUCTION: f64 = 0.30;

/// The propagation target: p99 under 5 ms on loopback.
const PROPAGATION_P99: Duration = Duration::from_millis(5);

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64
}

fn requests(map: &BTreeMap<String, u64>) -> String {
    if map.values().all(|&n| n == 0) {
        return "0".to_owned();
    }
    map.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(verb, n)| format!("{n} {verb}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn runs(v: &[Duration]) -> String {
    v.iter()
        .map(|d| fmt_ns(ns(*d)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn secs(d: Duration) -> String {
    if d.is_zero() {
        "0 s".to_owned()
    } else if d < Duration::from_secs(1) {
        fmt_ns(ns(d))
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn percent_less(before: f64, after: f64) -> String {
    if before <= 0.0 {
        return "—".to_owned();
    }
    let less = 100.0 * (1.0 - after / before);
    if less > 99.0 {
        format!("{less:.2}%")
    } else {
        format!("{less:.1}%")
    }
}

fn not_measured(s: &mut String, e: &str) {
    let _ = writeln!(s, "_Not measured: {e}_\n");
}

/// The section body and the targets.
pub fn render(r: &E2eResults) -> (String, Vec<TargetRow>) {
    let mut s = String::new();
    let mut targets = Vec::new();
    let c = &r.config;
    let _ = writeln!(
        s,
        "apisim (the embedded API server, `crates/apisim`) runs in this process on a Tokio runtime \
         of its own (two worker threads), standing in for kube-apiserver; the clients run on the \
         benchmark's runtime (two worker threads); everything talks HTTP/1.1 over 127.0.0.1. \
         Objects are the report's `PackageRepository` fixtures (seeded into apisim, which assigns \
         uid and resourceVersion). The machine's cores are shared by server and clients, so \
         absolute times include the server's work; the ratios compare like with like.\n"
    );

    sync_section(&mut s, &mut targets, r);
    propagation_section(&mut s, &mut targets, r);
    load_section(&mut s, &mut targets, r);
    install_section(&mut s, r);
    consistent_section(&mut s, r);
    warm_section(&mut s, &mut targets, r);

    let _ = writeln!(
        s,
        "_End-to-end part: {}; {} mode._\n",
        r.timings
            .iter()
            .map(|(part, secs)| format!("{part} {secs:.1} s"))
            .collect::<Vec<_>>()
            .join(", "),
        c.mode
    );
    (s, targets)
}

fn sync_section(s: &mut String, targets: &mut Vec<TargetRow>, r: &E2eResults) {
    let c = &r.config;
    let _ = writeln!(
        s,
        "### 6a. Initial sync of {} PackageRepositories\n",
        c.objects
    );
    let _ = writeln!(
        s,
        "From starting the watch until the cache is ready. repocache: \
         `ReflectorBuilder::new(api).watcher_config(cfg).start()`, then `Cache::wait_ready`. \
         kube-runtime: `watcher(api, cfg).default_backoff().reflect(writer)` driven by a spawned \
         task, until `Store::wait_until_ready`. The same `watcher::Config` on both sides, a fresh \
         `kube::Client` per run, {} repetitions per side (alternating which side goes first); \
         the figure is the median. Requests are what apisim counted until the cache was ready.\n",
        c.sync_reps
    );
    let rows = match &r.sync {
        Ok(rows) => rows,
        Err(e) => {
            not_measured(s, e);
            targets.push(TargetRow {
                what: format!(
                    "initial sync of {} objects no slower than kube-runtime's reflector",
                    c.objects
                ),
                measured: "—".into(),
                met: None,
            });
            return;
        }
    };
    let _ = writeln!(
        s,
        "| watcher config | repocache (median) | kube-runtime reflector (median) | repocache / kube | repocache runs | kube-runtime runs | requests until ready: repocache | kube-runtime |"
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | --- | --- | --- | --- |");
    for row in rows {
        let ours = median(&row.repocache);
        let theirs = median(&row.kube);
        let ratio = match (ours, theirs) {
            (Some(a), Some(b)) if !b.is_zero() => Some(a.as_secs_f64() / b.as_secs_f64()),
            _ => None,
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.strategy.label(),
            ours.map_or_else(|| "—".to_owned(), |d| fmt_ns(ns(d))),
            theirs.map_or_else(|| "—".to_owned(), |d| fmt_ns(ns(d))),
            ratio.map_or_else(|| "—".to_owned(), fmt_ratio),
            runs(&row.repocache),
            runs(&row.kube),
            requests(&row.repocache_requests),
            requests(&row.kube_requests),
        );
        targets.push(sync_target(row, ratio));
    }
    let _ = writeln!(s);
}

fn sync_target(row: &SyncRow, ratio: Option<f64>) -> TargetRow {
    TargetRow {
        what: format!(
            "initial sync of {} objects no slower than kube-runtime's reflector (median ratio ≤ 1.0), {}",
            row.objects,
            row.strategy.label()
        ),
        measured: match (ratio, median(&row.repocache), median(&row.kube)) {
            (Some(x), Some(a), Some(b)) => {
                format!("{x:.3}x ({} vs {})", fmt_ns(ns(a)), fmt_ns(ns(b)))
            }
            _ => "—".into(),
        },
        met: ratio.map(|x| x <= 1.0),
    }
}

fn propagation_section(s: &mut String, targets: &mut Vec<TargetRow>, r: &E2eResults) {
    let c = &r.config;
    let _ = writeln!(s, "### 6b. Propagation: server write → visible\n");
    let _ = writeln!(
        s,
        "{} updates per side, one at a time, round-robin over the {} objects (after 20 untimed \
         warm-up writes). Each update is a JSON merge patch of one annotation written through \
         apisim's control (`Control::merge_patch`: the same store write as an HTTP PATCH, with a \
         new resourceVersion and a watch event); the clock starts just before the write and \
         stops when the program sees the new resourceVersion. Then the snapshot (store) is \
         checked to hold it. Each side ran alone against the same server.\n\n\
         Each write here waits for the previous one to be seen, so consecutive events are less \
         than 1 ms apart: the `repocache` row (defaults) shows the cost of its publish \
         interval, which defers an event that arrives less than 1 ms after the last publish to \
         the end of that millisecond (on a quiet watch an event is published on arrival); the \
         `repocache, publish interval 0` row is the same cache publishing every event on \
         arrival.\n",
        c.updates, c.objects
    );
    let _ = writeln!(
        s,
        "| side | seen when | updates | p50 | p90 | p99 | max | p99 vs repocache | not yet in snapshot/store |"
    );
    let _ = writeln!(
        s,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let ours_p99 = r
        .propagation
        .first()
        .and_then(|p| p.as_ref().ok())
        .map(|p| pct(&p.hist, 0.99));
    for run in &r.propagation {
        match run {
            Ok(p) => {
                let p99 = pct(&p.hist, 0.99);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    p.side,
                    p.method,
                    p.hist.len(),
                    fmt_ns(pct(&p.hist, 0.5)),
                    fmt_ns(pct(&p.hist, 0.9)),
                    fmt_ns(p99),
                    fmt_ns(p.hist.max() as f64),
                    ours_p99
                        .filter(|&o| o > 0.0)
                        .map_or_else(|| "—".to_owned(), |o| fmt_ratio(p99 / o)),
                    p.not_visible,
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| — | _not measured: {e}_ | | | | | | | |");
            }
        }
    }
    let _ = writeln!(s);
    let ours = r.propagation.first().and_then(|p| p.as_ref().ok());
    if let Some(inside) = ours.and_then(|p| p.inside_mean) {
        let _ = writeln!(
            s,
            "Of repocache's figure, the time from the event's arrival at the reflector to the \
             publish that made it visible (the cache's own `event_to_visible` statistic) averaged \
             {}{}; the rest is apisim's write and fan-out, HTTP, JSON decoding and the \
             subscriber's wake-up.\n",
            fmt_ns(ns(inside)),
            r.propagation
                .get(2)
                .and_then(|p| p.as_ref().ok())
                .and_then(|p| p.inside_mean)
                .map_or_else(String::new, |zero| format!(
                    " (with publish interval 0: {})",
                    fmt_ns(ns(zero))
                )),
        );
    }
    let theirs = r.propagation.get(1).and_then(|p| p.as_ref().ok());
    targets.push(TargetRow {
        what: "propagation p99 under 5 ms on loopback (server write → `subscribe()` delivers it)"
            .into(),
        measured: match ours {
            Some(p) => format!(
                "p99 {} (p50 {}; publish interval 0: p99 {}; kube-runtime reflector p99 {})",
                fmt_ns(pct(&p.hist, 0.99)),
                fmt_ns(pct(&p.hist, 0.5)),
                r.propagation
                    .get(2)
                    .and_then(|p| p.as_ref().ok())
                    .map_or_else(|| "—".to_owned(), |z| fmt_ns(pct(&z.hist, 0.99))),
                theirs.map_or_else(|| "—".to_owned(), |t| fmt_ns(pct(&t.hist, 0.99)))
            ),
            None => "—".into(),
        },
        met: ours.map(|p| pct(&p.hist, 0.99) < ns(PROPAGATION_P99)),
    });
}

fn per_read(run: &ReadsRun) -> String {
    if run.reads == 0 {
        return "—".to_owned();
    }
    format!("{:.2}", run.total() as f64 / run.reads as f64)
}

fn load_section(s: &mut String, targets: &mut Vec<TargetRow>, r: &E2eResults) {
    let c = &r.config;
    let _ = writeln!(s, "### 6c. API load\n");
    let _ = writeln!(
        s,
        "**Reads.** The same reads sent uncached (`Api::get` / `Api::list` on one client, one at \
         a time, no client-side rate limit) and through repocache after its sync \
         (`Cache::get` / `Cache::list`); the requests are what apisim counted during the reads.\n"
    );
    let reads_ok = match &r.load {
        Ok(load) => {
            reads_table(s, load);
            let zero =
                load.cached.iter().map(ReadsRun::total).sum::<u64>() + load.cache_counted == 0;
            Some((zero, load))
        }
        Err(e) => {
            not_measured(s, e);
            None
        }
    };
    let _ = writeln!(
        s,
        "**Replicas.** {} replicas of one operator (each its own `kube::Client` and repocache \
         cache) start together against one apisim holding {} objects; once all are ready and \
         their watches open, every replica reads every object once per 100 ms for {}, \
         while apisim sends a bookmark every {} on each watch. The requests are what apisim \
         counted in that window (expected: none; the open watches are not requests of the \
         window).\n",
        c.replicas,
        c.replica_objects,
        secs(c.window),
        secs(c.bookmark_interval),
    );
    let replicas_ok = match &r.replicas {
        Ok(rep) => {
            replicas_table(s, rep);
            Some((
                rep.window_requests.values().sum::<u64>() + rep.cache_counted == 0,
                rep,
            ))
        }
        Err(e) => {
            not_measured(s, e);
            None
        }
    };
    let measured = match (reads_ok, replicas_ok) {
        (Some((_, load)), Some((_, rep))) => {
            let gets = load.cached.iter().find(|x| x.op == "get");
            let lists = load.cached.iter().find(|x| x.op == "list");
            format!(
                "{} requests for {} gets, {} for {} lists; {:.1} requests per replica over {} ({} replicas, {} watches open)",
                gets.map_or(0, ReadsRun::total),
                gets.map_or(0, |x| x.reads),
                lists.map_or(0, ReadsRun::total),
                lists.map_or(0, |x| x.reads),
                rep.window_requests.values().sum::<u64>() as f64 / rep.replicas.max(1) as f64,
                secs(rep.window),
                rep.replicas,
                rep.open_watches,
            )
        }
        _ => "—".into(),
    };
    targets.push(TargetRow {
        what: "zero API requests per read after sync (reads; replicas over a window)".into(),
        measured,
        met: match (reads_ok, replicas_ok) {
            (Some((a, _)), Some((b, _))) => Some(a && b),
            _ => None,
        },
    });
}

fn reads_table(s: &mut String, load: &LoadResult) {
    let _ = writeln!(
        s,
        "| reads ({} objects) | uncached: requests | uncached: time | repocache: requests | repocache: time | requests per read, uncached → repocache | time, uncached / repocache |",
        load.objects
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (u, c) in load.uncached.iter().zip(&load.cached) {
        let _ = writeln!(
            s,
            "| {} × `{}` | {} | {} | {} | {} | {} → {} | {} |",
            u.reads,
            u.op,
            u.total(),
            fmt_ns(ns(u.took)),
            c.total(),
            fmt_ns(ns(c.took)),
            per_read(u),
            per_read(c),
            if c.took.is_zero() {
                "—".to_owned()
            } else {
                fmt_ratio(u.took.as_secs_f64() / c.took.as_secs_f64())
            },
        );
    }
    let _ = writeln!(
        s,
        "\nThe cache's one-time cost: its sync took {} (apisim's count), and it counted {} \
         requests of its own during the reads (`Stats::api_requests`).\n",
        requests(&load.sync_requests),
        load.cache_counted
    );
}

fn replicas_table(s: &mut String, rep: &ReplicaResult) {
    let n = rep.replicas.max(1) as f64;
    let sync_total: u64 = rep.sync_requests.values().sum();
    let window_total: u64 = rep.window_requests.values().sum();
    let _ = writeln!(
        s,
        "| replicas | objects | all ready after | requests per replica during sync | reads in the window (all replicas) | requests in the window | per replica | counted by the caches | watches open at the end |"
    );
    let _ = writeln!(
        s,
        "| ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |"
    );
    let _ = writeln!(
        s,
        "| {} | {} | {} | {:.1} ({}) | {} | {} | {:.2} | {} | {} |\n",
        rep.replicas,
        rep.objects,
        secs(rep.sync_wall),
        sync_total as f64 / n,
        requests(&rep.sync_requests),
        rep.reads,
        requests(&rep.window_requests),
        window_total as f64 / n,
        rep.cache_counted,
        rep.open_watches,
    );
}

fn install_section(s: &mut String, r: &E2eResults) {
    let plan = r.config.install;
    let _ = writeln!(
        s,
        "### 6d. The seed's scenario: dependency-resolving installs\n"
    );
    let _ = writeln!(
        s,
        "The `repocache demo` workload, run through its library function \
         (`repocache_cli::demo::run`; the demo's default is N = 6) at N = {}: install {} packages (dependencies resolved \
         {} levels deep, catalogue of {}) reading repositories the way Glasskube does: one \
         repository LIST per package, two LISTs and a GET per dependency, a PackageInfo GET per \
         installed package ({} reads). Uncached, every read is a request through client-go's \
         client-side token bucket; through repocache, the caches' start and sync (one LIST and \
         one WATCH per kind, through the same bucket) are part of the total. The demo starts \
         its own apisim on the benchmark's runtime. N is the largest whose uncached run is \
         predicted (`(reads − burst) / qps` = {:.1} s) to fit the run's time budget.\n",
        plan.packages,
        plan.packages,
        super::install::DEPTH,
        super::install::CATALOGUE.max(plan.packages),
        plan.reads,
        plan.predicted.as_secs_f64(),
    );
    if plan.scaled {
        let _ = writeln!(
            s,
            "**The uncached side ran at {} requests/s (burst {}), not client-go's default 5/s \
             (burst 10)**, to keep this run short: its limiter wait and total time are scaled \
             down accordingly.\n",
            plan.qps, plan.burst
        );
    }
    let report: &DemoReport = match &r.install {
        Ok(report) => report,
        Err(e) => {
            not_measured(s, e);
            return;
        }
    };
    let u = &report.uncached;
    let c = &report.cached;
    let mut keys: Vec<(String, String)> = u
        .requests
        .keys()
        .chain(c.requests.keys())
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    let _ = writeln!(
        s,
        "| | uncached ({} requests/s, burst {}) | repocache | uncached / repocache |",
        plan.qps, plan.burst
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            fmt_ratio(a / b)
        } else {
            "—".to_owned()
        }
    };
    let _ = writeln!(
        s,
        "| API requests | {} | {} | {} |",
        u.total_requests(),
        c.total_requests(),
        ratio(u.total_requests() as f64, c.total_requests() as f64)
    );
    for (verb, resource) in &keys {
        let _ = writeln!(
            s,
            "| &nbsp;&nbsp;{verb} {resource} | {} | {} | |",
            u.count(verb, resource),
            c.count(verb, resource)
        );
    }
    let after_sync: u64 = report.cached_after_sync.values().sum();
    let _ = writeln!(
        s,
        "| reads sent to the API server (after the caches' sync) | {} | {} | |",
        u.total_requests(),
        after_sync
    );
    let _ = writeln!(
        s,
        "| rate-limiter wait | {} | {} | {} |",
        secs(u.limiter_wait),
        secs(c.limiter_wait),
        ratio(u.limiter_wait.as_secs_f64(), c.limiter_wait.as_secs_f64())
    );
    let _ = writeln!(
        s,
        "| total time | {} | {} | {} |\n",
        secs(u.total),
        secs(c.total),
        ratio(u.total.as_secs_f64(), c.total.as_secs_f64())
    );
    let _ = writeln!(
        s,
        "Reduction of the total install time: **{}** ({} → {}), against the **{:.0}%** the seed \
         reported for upstream's in-memory cache; {} fewer API requests. Same packages \
         installed both ways: {}.\n",
        percent_less(u.total.as_secs_f64(), c.total.as_secs_f64()),
        secs(u.total),
        secs(c.total),
        SEED_REDUCTION * 100.0,
        percent_less(u.total_requests() as f64, c.total_requests() as f64),
        if u.installed == c.installed {
            "yes"
        } else {
            "**no**"
        },
    );
    let _ = writeln!(
        s,
        "The scenario makes only the reads (no manifest download, no apply), so the uncached \
         total is almost all rate-limiter wait and the cached total almost all the caches' sync; \
         the seed's 30% is of whole installs, which also spend time on work no cache removes. \
         The comparable figure is the wait: {} of limiter wait uncached, {} through repocache.\n",
        secs(u.limiter_wait),
        secs(c.limiter_wait),
    );
}

fn consistent_section(s: &mut String, r: &E2eResults) {
    let _ = writeln!(
        s,
        "### 6e. Consistent reads against fresh reads\n\n\
         `ReadPolicy::Consistent` learns the server's current resourceVersion with one \
         `LIST limit=1`, waits until the snapshot has reached it and answers from the snapshot \
         (what kube-apiserver does for consistent reads from its watch cache, KEP-2340); \
         `ReadPolicy::Fresh` sends the read itself. One cache, its client behind a TCP proxy on \
         127.0.0.1 that counts every byte each way (HTTP heads, chunk framing, bodies; the \
         cache's open watch is counted too, alike for both policies). Quiet: no writes during \
         the reads. Busy: a writer patches the last tenth of the objects at a steady rate, so \
         the server's resourceVersion moves under every read; the reads go to the other \
         objects. Latency per read, one read at a time.\n"
    );
    match &r.consistent {
        Ok(c) => consistent_table(s, c),
        Err(e) => not_measured(s, e),
    }
}

fn consistent_table(s: &mut String, c: &ConsistentResult) {
    let _ = writeln!(
        s,
        "| server | read ({} objects) | policy | reads | from the snapshot | bytes per read (up + down) | p50 | p99 | max |",
        c.objects
    );
    let _ = writeln!(
        s,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for run in &c.runs {
        let _ = writeln!(
            s,
            "| {} | `{}` | `{}` | {} | {} | {} | {} | {} | {} |",
            run.server,
            run.op,
            run.policy,
            run.reads(),
            run.from_snapshot,
            fmt_bytes(run.bytes_per_read()),
            fmt_ns(ns(run.quantile(0.50))),
            fmt_ns(ns(run.quantile(0.99))),
            fmt_ns(ns(run.quantile(1.0))),
        );
    }
    let ratio = |server: &str, op: &str| -> Option<(f64, f64)> {
        let find = |policy: &str| {
            c.runs
                .iter()
                .find(|r: &&PolicyRun| r.server == server && r.op == op && r.policy == policy)
        };
        let (con, fresh) = (find("Consistent")?, find("Fresh")?);
        Some((
            fresh.bytes_per_read() / con.bytes_per_read().max(1.0),
            ns(fresh.quantile(0.5)) / ns(con.quantile(0.5)).max(1.0),
        ))
    };
    if let Some((bytes, time)) = ratio("quiet", "list") {
        let _ = writeln!(
            s,
            "\nA `Consistent` LIST of all {} objects, quiet server: {} fewer bytes on the wire \
             and {} faster at the median than a `Fresh` one.",
            c.objects,
            fmt_ratio(bytes),
            fmt_ratio(time)
        );
    }
    if let Some((bytes, time)) = ratio("busy", "list") {
        let _ = writeln!(
            s,
            "Busy server ({} writes/s, {} writes made): {} fewer bytes, {} faster at the median.",
            c.writes_per_sec,
            c.writes,
            fmt_ratio(bytes),
            fmt_ratio(time)
        );
    }
    let _ = writeln!(
        s,
        "A `GET` is one small object either way: there `Consistent` saves the server's work \
         (its `LIST limit=1` is as cheap as the GET) rather than bytes.\n"
    );
    let o = &c.own_writes;
    let row = |s: &mut String, what: &str, v: &[Duration]| {
        let _ = writeln!(
            s,
            "| {what} | {} | {} | {} | {} |",
            v.len(),
            fmt_ns(ns(quantile(v, 0.5))),
            fmt_ns(ns(quantile(v, 0.99))),
            fmt_ns(ns(quantile(v, 1.0))),
        );
    };
    let _ = writeln!(
        s,
        "**Read-your-own-writes through `CacheLayer`** (quiet, fault-free server): each pair is a \
         merge PATCH through a layered client then a GET of the same object through it. The \
         wait is measured directly: a PATCH through a plain client, then `Cache::wait_for` of \
         the resourceVersion it returned — the time the layer holds a write's response until \
         its snapshot reflects it.\n"
    );
    let _ = writeln!(s, "| | n | p50 | p99 | max |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
    row(
        s,
        "read-your-writes wait (write response → snapshot reflects it)",
        &o.waits,
    );
    row(
        s,
        "PATCH through the layer (wait included)",
        &o.layered_writes,
    );
    row(s, "PATCH through a plain client", &o.plain_writes);
    let _ = writeln!(
        s,
        "\nThe GETs right after the layered writes: {} answered from the snapshot, {} passed \
         through because the snapshot was behind (of {} pairs).\n",
        o.reads_local, o.reads_behind, o.pairs
    );
}

fn warm_section(s: &mut String, targets: &mut Vec<TargetRow>, r: &E2eResults) {
    let _ = writeln!(
        s,
        "### 6f. Warm start from a persisted snapshot\n\n\
         A cache with `CacheConfig::persist` starts from the file its previous run left: it \
         serves the file's objects at once (unverified, `Stale {{ reason: \"warm start\" }}`) and \
         is ready after one LIST; a cold cache answers its first read only after its initial \
         sync. Measured two ways against the same apisim. First in this process, which has run \
         every part before (its allocator's heap is warm, and fragmented): both start with a \
         fresh `kube::Client`, alternately; \"start\" is the `ReflectorBuilder::start()` call (for the warm cache it \
         reads, checks, decodes and publishes the file), \"first read\" the first `get` that \
         answers. Medians over the repetitions; requests are apisim's count from the start \
         until the cache is ready and watching.\n"
    );
    let w = match &r.warm {
        Ok(w) => w,
        Err(e) => {
            not_measured(s, e);
            targets.push(TargetRow {
                what: "warm start: first read within 10% of a cold start's, from process start"
                    .into(),
                measured: "—".into(),
                met: None,
            });
            return;
        }
    };
    let _ = writeln!(
        s,
        "| {} objects | start → first answered read | start → ready (verified) | requests until ready and watching (LIST pages / WATCH / other) |",
        w.objects
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
    let (l, wa, o) = w.cold_requests;
    let _ = writeln!(
        s,
        "| cold | {} | {} | {l} / {wa} / {o} |",
        secs(w.cold()),
        secs(w.cold())
    );
    let (l, wa, o) = w.warm_requests;
    let _ = writeln!(
        s,
        "| warm | {} | {} | {l} / {wa} / {o} |\n",
        secs(w.warm()),
        secs(super::warm::WarmResult::median_of(&w.warm_verified))
    );
    let _ = writeln!(
        s,
        "Then from process start, as a short-lived tool such as Glasskube's CLI runs, and as \
         the target is set: {} processes each way, alternately (cold, then warm from the same \
         file), of two builds of one program that differ only in the allocator: \
         `repocache-bench-start` on mimalloc, as the `repocache` CLI ships, and \
         `repocache-bench-start-system` on the system allocator (glibc's malloc on Linux). The \
         time is from `spawn` to the line a process prints at its first answered read (exec, \
         runtime, client and the start included; the client is given no CA roots, as apisim \
         speaks plain HTTP, where a real cluster's kubeconfig gives its CA: without either kube \
         would load the system's roots, ~4 ms of every start). A warm start decodes every \
         object into fresh memory, so the allocator's way with fresh pages is much of it. The \
         target's verdict is the CLI's build's:\n\n\
         | {} objects, process start → first answered read | cold | warm | warm / cold |\n\
         | --- | ---: | ---: | ---: |\n\
         | mimalloc (`repocache-bench-start`, as the CLI ships) | {} | {} | {:.1}% |\n\
         | system allocator (`repocache-bench-start-system`) | {} | {} | {:.1}% |\n",
        w.process_cold.len(),
        w.objects,
        secs(w.process_cold()),
        secs(w.process_warm()),
        100.0 * w.process_warm_share(),
        secs(w.process_cold_system()),
        secs(w.process_warm_system()),
        100.0 * w.process_warm_share_of(true),
    );
    let _ = writeln!(
        s,
        "Warm first read: {:.1}% of cold from process start ({:.1}% on the system allocator), \
         {:.1}% in one long-lived process. File: {} bytes, {:.0} bytes per object. Load \
         (the warm `start()` call): {:.0} objects/s.\n",
        100.0 * w.process_warm_share(),
        100.0 * w.process_warm_share_of(true),
        100.0 * w.warm_share(),
        w.file_bytes,
        w.bytes_per_object(),
        w.load_per_sec()
    );
    targets.push(TargetRow {
        what: format!(
            "warm start of {} objects: first read within 10% of a cold start's, from process \
             start (the CLI's build: mimalloc)",
            w.objects
        ),
        measured: format!(
            "{} vs {} ({:.1}%); system allocator {} vs {} ({:.1}%); in one long-lived process \
             {} vs {} ({:.1}%)",
            secs(w.process_warm()),
            secs(w.process_cold()),
            100.0 * w.process_warm_share(),
            secs(w.process_warm_system()),
            secs(w.process_cold_system()),
            100.0 * w.process_warm_share_of(true),
            secs(w.warm()),
            secs(w.cold()),
            100.0 * w.warm_share()
        ),
        met: Some(w.process_warm_share() <= 0.10),
    });
    targets.push(TargetRow {
        what:
            "warm start → verified costs the verifying LIST and one WATCH: what a cold start costs"
                .into(),
        measured: format!(
            "warm {} LIST pages / {} WATCH / {} other; cold {} / {} / {} (one paginated LIST: \
             kube-runtime's watcher asks 500 objects a page)",
            w.warm_requests.0,
            w.warm_requests.1,
            w.warm_requests.2,
            w.cold_requests.0,
            w.cold_requests.1,
            w.cold_requests.2
        ),
        met: Some(
            w.warm_requests == w.cold_requests && w.warm_requests.1 == 1 && w.warm_requests.2 == 0,
        ),
    });
}
