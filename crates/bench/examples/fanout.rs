//! Measures the relay in front of an in-process apisim (one process; figures are rough on a
//! shared machine): memory per idle downstream watch, and fan-out latency (server write →
//! downstream delivery) to many watchers at a steady write rate.
//!
//! `cargo run --release -p repocache-relay --example fanout -- [IDLE_WATCHES] [WATCHERS] [EVENTS_PER_S] [SECONDS]`
//! (defaults 1000, 100, 1000, 5). The maintained measurement, with CPU per runtime and a control
//! row, is BENCHMARKS section 7 (`repocache-bench --relay-only`, `crates/bench/src/relay.rs`);
//! this example stays as a quick probe that builds with the relay alone.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use apisim::{Server, ServerConfig};
use glasskube_api::PackageRepository;
use repocache_relay::Relay;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

const REPOS: &str = "/apis/packages.glasskube.dev/v1alpha1/packagerepositories";

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time of the process (user + system), from /proc/self/stat, in clock ticks (1/100 s).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

async fn open_watch(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {REPOS}?watch=true&resourceVersion=0&sendInitialEvents=false HTTP/1.1\r\nHost: relay\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    s
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let idle = args.first().copied().unwrap_or(1000) as usize;
    let watchers = args.get(1).copied().unwrap_or(100) as usize;
    let rate = args.get(2).copied().unwrap_or(1000);
    let seconds = args.get(3).copied().unwrap_or(5);

    let server = Server::start(
        ServerConfig::default()
            .with_seed_yaml(apisim::seed::REPOSITORIES_YAML)
            .unwrap()
            .with_history_size(100_000),
    )
    .await
    .unwrap();
    let relay = Relay::builder(server.client())
        .kind::<PackageRepository>()
        .start()
        .await
        .unwrap();
    relay.wait_ready(Duration::from_secs(30)).await.unwrap();
    let addr = relay
        .url()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();

    // Memory per idle watch: RSS before and after `idle` open watches that receive nothing.
    // Warm up first (allocator arenas, the first connections).
    let mut warm = Vec::new();
    for _ in 0..50 {
        warm.push(open_watch(&addr).await);
    }
    while relay.stats().watches_open < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(warm);
    while relay.stats().watches_open > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = status_field("VmRSS:");
    let mut idle_streams = Vec::with_capacity(idle);
    for _ in 0..idle {
        idle_streams.push(open_watch(&addr).await);
    }
    while (relay.stats().watches_open as usize) < idle {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = status_field("VmRSS:");
    let per = (after.saturating_sub(before) as f64) * 1024.0 / idle as f64;
    println!(
        "idle watches: {idle}; RSS {before} KiB -> {after} KiB; {:.1} KiB per idle watch (both ends in this process: the relay's connection, watch task, buffers; the client's socket)",
        per / 1024.0
    );
    drop(idle_streams);
    while relay.stats().watches_open > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Fan-out: `watchers` readers, `rate` creations per second for `seconds`.
    let start = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let total = rate * seconds;
    let mut readers = Vec::new();
    for _ in 0..watchers {
        let stream = open_watch(&addr).await;
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            let mut got = 0u64;
            let mut mine = Vec::with_capacity(total as usize);
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(pos) = line.find("\"sent-ns\":\"") else {
                    continue;
                };
                let rest = &line[pos + 11..];
                let Some(end) = rest.find('"') else { continue };
                let sent: u64 = rest[..end].parse().unwrap_or(0);
                let now = start.elapsed().as_nanos() as u64;
                mine.push(now.saturating_sub(sent));
                got += 1;
                if got == total {
                    break;
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    while (relay.stats().watches_open as usize) < watchers {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let control = server.control();
    let cpu0 = cpu_ticks();
    let t0 = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut next = tokio::time::Instant::now();
    for i in 0..total {
        next += interval;
        tokio::time::sleep_until(next).await;
        let sent = start.elapsed().as_nanos() as u64;
        control
            .create(json!({
                "apiVersion": "packages.glasskube.dev/v1alpha1",
                "kind": "PackageRepository",
                "metadata": {"name": format!("fan-{i}"), "annotations": {"sent-ns": sent.to_string()}},
                "spec": {"url": "https://fan.example"},
            }))
            .unwrap();
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(60), r).await;
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_ticks().saturating_sub(cpu0) as f64 / 100.0;
    let mut all = std::mem::take(&mut *latencies.lock().unwrap());
    all.sort_unstable();
    println!(
        "fan-out: {watchers} watchers, {total} events at {rate}/s over {:.1} s: {} deliveries (expected {}); write -> delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; CPU {:.2} s for the whole process (apisim + relay + readers), {:.3} s per 1,000 events; closed as slow: {}",
        elapsed.as_secs_f64(),
        all.len(),
        total * watchers as u64,
        percentile(&all, 0.50) / 1000.0,
        percentile(&all, 0.99) / 1000.0,
        all.last().copied().unwrap_or(0) as f64 / 1e6,
        cpu,
        cpu / (total as f64 / 1000.0),
        relay.stats().watches_closed_slow,
    );
    println!(
        "apisim's request log: {} LIST, {} WATCH of packagerepositories",
        server.count("list", "packagerepositories"),
        server.count("watch", "packagerepositories")
    );
}
