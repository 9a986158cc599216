//! A short-lived process that starts a cache and answers one read, on the system allocator
//! (glibc's malloc on Linux): see [`repocache_bench::start`].

fn main() -> std::process::ExitCode {
    repocache_bench::start::main("repocache-bench-start-system")
}
