//! Where a warm start's time goes, phase by phase, in ns per object (issue #18): reading the
//! file, its checksum, splitting it into records, decoding the objects (one thread and the
//! loader's threads), building the snapshot and its index, and a client's setup; single-threaded
//! phases in CPU time (this thread's), the others in wall-clock time; and the same objects as
//! CBOR (a binary, self-describing serde format) against JSON; then real `start()` calls on a
//! file written by a cache, and the stages inside three of them (the loader's debug events).
//! `cargo run --release -p repocache-bench --example warm_profile [OBJECTS]`
// A measurement tool: any failure aborts it (nothing here is user input).
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use glasskube_api::PackageRepository;
use repocache::persist::format::{self, Header, Record};
use repocache::{Event, Writer};
use repocache_bench::fixture;
use repocache_bench::random_reads::thread_cpu_ns;

/// The best of `rounds` runs of `f`, in wall-clock ns (the machine is shared: the best run is the
/// least disturbed).
fn best<T>(rounds: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_nanos() as f64);
        out = Some(v);
    }
    (best, out.unwrap())
}

/// The best of `rounds` runs of `f` (single-threaded), in this thread's CPU ns (immune to
/// other processes taking the core).
fn best_cpu<T>(rounds: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let cpu = thread_cpu_ns();
        let v = f();
        let ns = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64,
            _ => t.elapsed().as_nanos() as f64,
        };
        best = best.min(ns);
        out = Some(v);
    }
    (best, out.unwrap())
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    // As the cache holds them: the default transform drops the last-applied annotation.
    let objects: Vec<PackageRepository> = fixture::repositories(n, 1)
        .into_iter()
        .map(|mut o| {
            if let Some(a) = o.metadata.annotations.as_mut() {
                a.remove(repocache::config::LAST_APPLIED_ANNOTATION);
            }
            o
        })
        .collect();
    let records: Vec<Record> = objects
        .iter()
        .map(|o| Record {
            flags: 0,
            json: serde_json::to_vec(&serde_json::to_value(o).unwrap()).unwrap(),
        })
        .collect();
    let header = Header {
        kind: "PackageRepository".into(),
        api_version: "packages.glasskube.dev/v1alpha1".into(),
        server: "s".into(),
        key: "k".into(),
        resource_version: Some("1".into()),
        written_at_ms: 0,
        objects: 0,
        credentials: false,
    };
    let bytes = format::encode(&header, &records);
    let path = std::env::temp_dir().join(format!("warm-profile-{}", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let per = |ns: f64| ns / n as f64;
    println!(
        "{n} objects, file {} B ({:.0} B/object)",
        bytes.len(),
        bytes.len() as f64 / n as f64
    );
    let (t, _) = best_cpu(5, || std::fs::read(&path).unwrap());
    println!("read file     {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (t, _) = best_cpu(5, || crc32fast::hash(&bytes[format::PREAMBLE..]));
    println!("crc           {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (t, _) = best_cpu(5, || format::decode(&bytes).unwrap().1.len());
    println!("split (+crc)  {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (_, recs) = format::decode(&bytes).unwrap();
    let (t, decoded) = best_cpu(3, || {
        recs.iter()
            .map(|(_, j)| serde_json::from_slice::<PackageRepository>(j).unwrap())
            .collect::<Vec<_>>()
    });
    println!("json decode 1 {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (t, sonic) = best_cpu(3, || {
        recs.iter()
            .map(|(_, j)| sonic_rs::from_slice::<PackageRepository>(j).unwrap())
            .collect::<Vec<_>>()
    });
    assert!(sonic == decoded, "sonic-rs decodes what serde_json decodes");
    println!("sonic-rs 1    {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let mut copies: Vec<Vec<u8>> = recs.iter().map(|(_, j)| j.to_vec()).collect();
    let (t, simd) = best_cpu(1, || {
        copies
            .iter_mut()
            .map(|j| simd_json::serde::from_slice::<PackageRepository>(j).unwrap())
            .collect::<Vec<_>>()
    });
    assert!(simd == decoded, "simd-json decodes what serde_json decodes");
    println!("simd-json 1   {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (t, _) = best_cpu(3, || {
        recs.iter()
            .filter(|(_, j)| serde_json::from_slice::<serde::de::IgnoredAny>(j).is_ok())
            .count()
    });
    println!("json skim     {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (t, _) = best_cpu(3, || {
        recs.iter()
            .filter(|(_, j)| serde_json::from_slice::<serde_json::Value>(j).is_ok())
            .count()
    });
    println!("json Value    {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let cbor: Vec<Vec<u8>> = objects
        .iter()
        .map(|o| {
            let mut v = Vec::new();
            ciborium::into_writer(o, &mut v).unwrap();
            v
        })
        .collect();
    let cbor_bytes: usize = cbor.iter().map(Vec::len).sum();
    let (t, back) = best_cpu(3, || {
        cbor.iter()
            .map(|c| ciborium::from_reader::<PackageRepository, _>(&c[..]).unwrap())
            .collect::<Vec<_>>()
    });
    assert!(back == objects, "CBOR round-trips the objects");
    println!(
        "cbor decode 1 {:8.0} ns/object  {:6.1} ms  ({:.0} B/object)",
        per(t),
        t / 1e6,
        cbor_bytes as f64 / n as f64
    );
    let (t, _) = best(3, || {
        std::thread::scope(|s| {
            let half = recs.len() / 2;
            let (a, b) = recs.split_at(half);
            let h = s.spawn(move || {
                a.iter()
                    .map(|(_, j)| serde_json::from_slice::<PackageRepository>(j).unwrap())
                    .collect::<Vec<_>>()
            });
            let mut v2: Vec<_> = b
                .iter()
                .map(|(_, j)| serde_json::from_slice::<PackageRepository>(j).unwrap())
                .collect();
            let mut v = h.join().unwrap();
            v.append(&mut v2);
            v
        })
    });
    println!("json decode 2 {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (t, _) = best_cpu(3, || decoded.clone());
    println!("clone objects {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    let (t, _) = best_cpu(3, || {
        let mut w = Writer::<PackageRepository>::new();
        w.apply(Event::Init);
        for o in decoded.clone() {
            w.apply(Event::InitApply(o));
        }
        w.apply(Event::InitDone);
        w.publish();
        w
    });
    println!(
        "writer (+clone){:7.0} ns/object  {:6.1} ms",
        per(t),
        t / 1e6
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let (t, _) = best(5, || {
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap()
    });
    println!("kube client   {:8.0} ns total", t);
    let _ = std::fs::remove_file(&path);

    // The real path: a cache with a cache directory syncs from apisim and writes its file at
    // stop; then apisim goes away and new caches load the file in `ReflectorBuilder::start()`
    // (read, check, decode, publish). Their client points nowhere: the LIST fails after the load.
    drop(_g);
    drop(rt);
    let dir = std::env::temp_dir().join(format!("warm-profile-dir-{}", std::process::id()));
    let persist = repocache::persist::Persist::new(&dir, "http://server.invalid").user("p");
    let sim =
        repocache_bench::e2e::sim::Sim::with_repositories(n, std::time::Duration::from_secs(60))
            .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (cache, handle) = repocache::ReflectorBuilder::new(
            kube::Api::<PackageRepository>::all(sim.client().unwrap()),
        )
        .persist(persist.clone())
        .start();
        cache
            .wait_ready(std::time::Duration::from_secs(60))
            .await
            .unwrap();
        handle.stop().await;
    });
    drop(sim);
    let _g = rt.enter();
    let client = || {
        let mut config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    };
    let (t, _) = best(5, || {
        let (cache, handle) =
            repocache::ReflectorBuilder::new(kube::Api::<PackageRepository>::all(client()))
                .persist(persist.clone())
                .start();
        assert_eq!(cache.list().len(), n, "loaded");
        drop(handle);
        cache
    });
    println!("start() real  {:8.0} ns/object  {:6.1} ms", per(t), t / 1e6);
    // The stages inside `start()` (the loader's and the reflector's debug events: read,
    // checked, decoded, the chunks each decoding thread took, the snapshot's build), for three
    // more starts.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("repocache=debug")
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            let t = Instant::now();
            let (cache, handle) =
                repocache::ReflectorBuilder::new(kube::Api::<PackageRepository>::all(client()))
                    .persist(persist.clone())
                    .start();
            let t = t.elapsed();
            assert_eq!(cache.list().len(), n, "loaded");
            drop(handle);
            println!(
                "start() {:.1} ms (the client included)",
                t.as_secs_f64() * 1e3
            );
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
