//! A short-lived process that starts a cache and answers one read, on mimalloc, the allocator
//! the `repocache` CLI ships with: see [`repocache_bench::start`].

/// The allocator the `repocache` CLI ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    repocache_bench::start::main("repocache-bench-start")
}
