//! A guided tour of repocache against the embedded API server (apisim), seeded with the
//! project's fixtures: sync a cache, read it 10,000 times, watch a change arrive, and count
//! what reached the server.
//!
//! Run it with `cargo run -p repocache-tests --example tour`.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use glasskube_api::PackageRepository;
use kube::Api;
use repocache::{Cache, ReflectorBuilder};
use repocache_test_support::apisim;
use serde_json::json;

const REPOS: &str = "packagerepositories";

fn print_table(cache: &Cache<PackageRepository>) {
    let snapshot = cache.snapshot();
    println!(
        "  {} objects, generation {}, resourceVersion {}",
        snapshot.len(),
        snapshot.generation(),
        snapshot.resource_version().unwrap_or("-")
    );
    println!(
        "  {:<16} {:<48} {:<8} {:<7} READY",
        "NAME", "URL", "DEFAULT", "AUTH"
    );
    for repo in snapshot.iter() {
        let ready = match repo.is_ready() {
            Some(true) => "True",
            Some(false) => "False",
            None => "-",
        };
        println!(
            "  {:<16} {:<48} {:<8} {:<7} {ready}",
            repo.metadata.name.as_deref().unwrap_or_default(),
            repo.spec.url,
            repo.is_default(),
            repo.auth_kind().as_str(),
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = apisim().await;
    let control = server.control();
    println!("apisim listening on {}", server.url());

    let started = Instant::now();
    let (repos, handle) = ReflectorBuilder::new(Api::<PackageRepository>::all(server.client()))
        .ttl(Duration::from_secs(300))
        .start();
    repos.wait_ready(Duration::from_secs(10)).await?;
    println!("\n1. synced in {:.1?}:", started.elapsed());
    print_table(&repos);

    let before = control.requests().len();
    let started = Instant::now();
    let mut found = 0;
    for i in 0..10_000 {
        if i % 2 == 0 {
            found += repos.list().len();
        } else if repos.get("glasskube").is_some() {
            found += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "\n2. 10,000 reads ({found} objects returned) in {elapsed:.1?}: {} requests reached the server",
        control.requests().len() - before
    );

    let started = Instant::now();
    control.merge_patch(
        REPOS,
        None,
        "glasskube",
        &json!({"spec": {"url": "https://mirror.example.org/glasskube"}}),
    )?;
    while repos
        .get("glasskube")
        .is_some_and(|r| r.spec.url != "https://mirror.example.org/glasskube")
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "\n3. a URL change on the server was visible in the cache after {:.1?}",
        started.elapsed()
    );
    control.delete(REPOS, None, "inline-basic")?;
    while repos.get("inline-basic").is_some() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("   and a delete too:");
    print_table(&repos);

    let stats = repos.stats();
    println!(
        "\n4. what reached the server for PackageRepositories: {} LIST, {} WATCH, {} GET",
        control.count("list", REPOS),
        control.count("watch", REPOS),
        control.count("get", REPOS)
    );
    println!(
        "   cache: state {}, {} hits, {} misses, {} relists, {} events",
        stats.state,
        stats.hits,
        stats.misses,
        stats.relists_total(),
        stats.events.iter().map(|(_, n)| n).sum::<u64>()
    );
    handle.stop().await;
    Ok(())
}
