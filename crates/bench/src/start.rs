//! One short-lived process that does what a command-line tool with a cache does (Glasskube's
//! CLI, issue #18): it builds a `kube::Client`, starts a cache of `PackageRepository` objects
//! (warm from a cache directory, or cold), and answers one read. The `repocache-bench` report
//! binary starts it again and again to measure a warm start *from process start*: the time from
//! `spawn` to the line the process prints when its first read answered.
//!
//! Two binaries run this program and differ only in their allocator, which is most of a warm
//! start's cost in a fresh process (every decoded object lands on fresh pages):
//! `repocache-bench-start` runs on mimalloc, as the `repocache` CLI ships, and
//! `repocache-bench-start-system` on the system allocator (glibc's malloc on Linux), as a
//! program that does not choose one.
//!
//! Usage: `repocache-bench-start URL NAME [CACHE_DIR]`. With `CACHE_DIR` the cache starts from
//! the file a cache of the same server left there (`Persist::new(CACHE_DIR, URL).user("bench")`,
//! the identity the report binary writes it with) and the first `get(NAME)` that answers is
//! timed; without, the cache syncs first (`wait_ready`), as a cold start must. Prints
//! `answered` on stdout, then stops the cache and exits 0; on any failure, one line on stderr
//! and exit 1 (2 for a usage error).
// The program's output is its protocol with the report binary.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use glasskube_api::PackageRepository;
use kube::Api;
use repocache::ReflectorBuilder;
use repocache::persist::Persist;

/// The longest a cache may take to answer (a sync of 10,000 objects takes well under a second).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The program: `program` is the binary's name (for its usage and error lines).
pub fn main(program: &str) -> ExitCode {
    // `RUST_LOG=repocache=debug` shows the stages of the warm start on stderr (run it by hand:
    // the report binary starts it without `RUST_LOG`).
    crate::log_from_env();
    tracing::debug!("main");
    let usage = format!("usage: {program} URL NAME [CACHE_DIR]");
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(name)) = (args.next(), args.next()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let dir = args.next().map(PathBuf::from);
    if args.next().is_some() {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    match run(&url, &name, dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `#[tokio::main]` does: a multi-threaded runtime, then the program.
fn run(url: &str, name: &str, dir: Option<PathBuf>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(answer(url, name, dir))
}

async fn answer(url: &str, name: &str, dir: Option<PathBuf>) -> anyhow::Result<()> {
    // The stages a fresh process goes through, as debug events (`RUST_LOG=repocache_bench=debug`).
    tracing::debug!("runtime started");
    let uri: http::Uri = url.parse().context("the server's URL")?;
    let mut config = kube::Config::new(uri);
    // A real cluster's kubeconfig gives its CA, and kube trusts that alone; with none kube loads
    // and parses the system's CA roots (145 here, ~4 ms of every start, cold and warm alike),
    // a cost a CLI against a real cluster does not pay. apisim speaks plain HTTP: no roots.
    config.root_cert = Some(Vec::new());
    let client = kube::Client::try_from(config).context("building a client")?;
    tracing::debug!("client built");
    let mut builder = ReflectorBuilder::new(Api::<PackageRepository>::all(client));
    let warm = dir.is_some();
    if let Some(dir) = dir {
        builder = builder.persist(Persist::new(dir, url).user("bench"));
    }
    let started = Instant::now();
    let (cache, handle) = builder.start();
    if warm {
        anyhow::ensure!(
            cache.state().is_warm_start(),
            "no warm start: the cache directory holds no usable file"
        );
    } else {
        cache
            .wait_ready(TIMEOUT)
            .await
            .context("the initial sync")?;
    }
    while cache.get(name).is_none() {
        anyhow::ensure!(started.elapsed() < TIMEOUT, "{name} never answered");
        tokio::task::yield_now().await;
    }
    tracing::debug!("answered");
    let mut out = std::io::stdout().lock();
    writeln!(out, "answered").context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    drop(out);
    handle.stop().await;
    Ok(())
}
