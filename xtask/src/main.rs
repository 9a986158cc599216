//! Project automation, run as `cargo xtask <subcommand>`.
//!
//! Subcommands:
//! - `crds [--check]`: write the generated CustomResourceDefinitions into `deploy/crds/`, or with
//!   `--check` only compare and exit 1 when the committed files differ from the types.
//! - `bench [--quick | --check] [--e2e-part PART]...`: run the benchmark suite of `crates/bench`
//!   (criterion benches, then the report binary) in release mode and write `docs/BENCHMARKS.md`
//!   and `docs/bench/read-latency.svg`; `--quick` uses short measurement phases; `--check` only
//!   compiles the benches and runs each once in debug mode, plus the report binary on tiny sizes
//!   (the end-to-end part against apisim included) into a temporary directory (never `docs/`),
//!   for CI. `--e2e-part PART` (repeatable; `sync`, `propagation`, `load`, `consistent`, `warm`,
//!   `replicas`, `install`) is passed through to the report binary: only those parts of the
//!   end-to-end section run, the criterion benches and the micro part are skipped, and the
//!   report goes to `target/repocache-bench/BENCHMARKS-e2e.md` (never `docs/`, which a partial
//!   run would overwrite with "not run"); with `--check` it narrows the smoke run.
//! - `chaos [--seeds N] [--seed S] [--duration D] [--debug]`: seeded fault-injection runs of
//!   repocache against apisim (the `chaos` binary of `repocache-tests`, release build unless
//!   `--debug`); prints faults, writes, convergence and read latency, and the first failing
//!   seed with the command that reproduces it.
//! - `miri [-- <test harness args>]`: the writer, model, subscription, index and user-code tests
//!   of `repocache` under `cargo +nightly miri test` (Tree Borrows, few proptest cases); adds
//!   the `miri` and `rust-src` nightly components when missing, and exits 3 when Miri cannot be
//!   had (see `miri.rs`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod miri;
mod mutants;
#[cfg(test)]
mod tidy;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use glasskube_api::crd;

const USAGE: &str = "usage: cargo xtask crds [--check] | bench [--quick | --check] [--e2e-part PART]... | chaos [--seeds N] [--seed S] [--duration D] [--debug] | miri [-- <test args>] | mutants [--file F] [--check]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("crds") => crds(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("chaos") => chaos(&args[1..]),
        Some("miri") => miri::run(&args[1..]),
        Some("mutants") => mutants::main(&args[1..], &workspace_root()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown subcommand `{other}`")),
        None => usage_error("missing subcommand"),
    }
}

/// One line on stderr, exit code 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("xtask: {message} ({USAGE})");
    ExitCode::from(2)
}

/// The workspace root: xtask lives one directory below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

fn crds(args: &[String]) -> ExitCode {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        [other, ..] => return usage_error(&format!("unexpected argument `{other}` to crds")),
    };
    let root = workspace_root();
    let dir = root.join(crd::CRD_DIR);
    if check {
        match crd::check_dir(&dir) {
            Ok(drift) if drift.is_empty() => {
                println!("{} is up to date", crd::CRD_DIR);
                ExitCode::SUCCESS
            }
            Ok(drift) => {
                for d in &drift {
                    eprintln!("{}: {d}", crd::CRD_DIR);
                }
                eprintln!("CRDs differ from the types in glasskube-api: run `cargo xtask crds`");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("xtask crds --check: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        }
    } else {
        match crd::write_dir(&dir) {
            Ok(written) => {
                for path in written {
                    let shown = path.strip_prefix(&root).unwrap_or(&path);
                    println!("wrote {}", shown.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask crds: {}: {e}", dir.display());
                ExitCode::from(1)
            }
        }
    }
}

/// How `cargo xtask bench` runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BenchMode {
    Full,
    Quick,
    Check,
}

/// `cargo xtask bench`'s arguments: the mode and the `--e2e-part` values to pass through (the
/// report binary checks the names).
fn parse_bench_args(args: &[String]) -> Result<(BenchMode, Vec<String>), String> {
    let mut mode = None;
    let mut parts = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let set = match arg.as_str() {
            "--quick" => BenchMode::Quick,
            "--check" => BenchMode::Check,
            "--e2e-part" => {
                let part = it.next().ok_or("--e2e-part needs a value")?;
                parts.push(part.clone());
                continue;
            }
            other => return Err(format!("unexpected argument `{other}` to bench")),
        };
        if mode.replace(set).is_some() {
            return Err("give at most one of --quick, --check".to_owned());
        }
    }
    Ok((mode.unwrap_or(BenchMode::Full), parts))
}

fn bench(args: &[String]) -> ExitCode {
    let (mode, parts) = match parse_bench_args(args) {
        Ok(parsed) => parsed,
        Err(e) => return usage_error(&e),
    };
    let started = Instant::now();
    let result = match mode {
        BenchMode::Check => bench_check(&parts),
        BenchMode::Full | BenchMode::Quick if !parts.is_empty() => bench_parts(mode, &parts),
        BenchMode::Full | BenchMode::Quick => bench_run(mode),
    };
    match result {
        Ok(()) => {
            eprintln!(
                "xtask bench: done in {:.0} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The cargo that runs xtask (so that the same toolchain builds the benches).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// The cargo target directory.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// Runs one step, echoing it and its duration on stderr; fails when it fails.
fn step(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask bench: {what}");
    let started = Instant::now();
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    eprintln!(
        "xtask bench: {what}: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--e2e-part PART ...` as the report binary takes them.
fn part_args(parts: &[String]) -> Vec<&str> {
    parts
        .iter()
        .flat_map(|p| ["--e2e-part", p.as_str()])
        .collect()
}

/// `--check`: compile everything and run each bench once, in debug mode.
fn bench_check(parts: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    step(
        "unit tests, and each criterion bench once (test mode)",
        cargo()
            .current_dir(&root)
            .args(["test", "-p", "repocache-bench", "--lib", "--benches"]),
    )?;
    step(
        "build the report binaries (debug)",
        cargo()
            .current_dir(&root)
            .args(["build", "-p", "repocache-bench", "--bins"]),
    )?;
    let exe = target_dir(&root)
        .join("debug")
        .join(exe_name("repocache-bench"));
    step(
        "report binary on tiny sizes, end-to-end smoke included (--smoke, into a temporary directory)",
        Command::new(exe)
            .current_dir(&root)
            .arg("--smoke")
            .args(part_args(parts)),
    )
}

/// `--e2e-part PART ...` without `--check`: only those parts of the end-to-end section, in
/// release mode, into `target/repocache-bench/BENCHMARKS-e2e.md` (`docs/` untouched).
fn bench_parts(mode: BenchMode, parts: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    let target = target_dir(&root);
    step(
        "build the report binaries (release)",
        cargo()
            .current_dir(&root)
            .args(["build", "--release", "-p", "repocache-bench", "--bins"]),
    )?;
    let flag = if mode == BenchMode::Quick {
        "--quick"
    } else {
        "--full"
    };
    let dir = target.join("repocache-bench");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("BENCHMARKS-e2e.md");
    let command = format!(
        "cargo xtask bench{} {}",
        if mode == BenchMode::Quick {
            " --quick"
        } else {
            ""
        },
        part_args(parts).join(" ")
    );
    let exe = target.join("release").join(exe_name("repocache-bench"));
    step(
        &format!(
            "report binary, end-to-end parts {} only; writes {}",
            parts.join(", "),
            out.display()
        ),
        Command::new(exe)
            .current_dir(&root)
            .args([flag, "--e2e-only"])
            .args(part_args(parts))
            .arg("--out")
            .arg(&out)
            .arg("--svg")
            .arg(dir.join("read-latency.svg"))
            .args(["--command", &command]),
    )
}

fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// The full or quick run: criterion benches, then the report binary, in release mode.
fn bench_run(mode: BenchMode) -> anyhow::Result<()> {
    let root = workspace_root();
    let target = target_dir(&root);
    let quick = mode == BenchMode::Quick;
    step(
        "build the benches and report binaries (release)",
        cargo().current_dir(&root).args([
            "build",
            "--release",
            "-p",
            "repocache-bench",
            "--bins",
            "--benches",
        ]),
    )?;
    // A directory of our own, emptied first, so that the report never reads another run's
    // (or another engineer's) estimates.
    let criterion_home = target.join("repocache-bench").join("criterion");
    if criterion_home.exists() {
        std::fs::remove_dir_all(&criterion_home)?;
    }
    let criterion_args: &[&str] = if quick {
        &[
            "--noplot",
            "--warm-up-time",
            "0.3",
            "--measurement-time",
            "0.8",
            "--sample-size",
            "30",
            "--nresamples",
            "10000",
        ]
    } else {
        &[
            "--noplot",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "3",
            "--nresamples",
            "50000",
        ]
    };
    step(
        "criterion benches: get, list, apply",
        cargo()
            .current_dir(&root)
            .env("CRITERION_HOME", &criterion_home)
            .args(["bench", "-p", "repocache-bench", "--benches", "--"])
            .args(criterion_args),
    )?;
    let (flag, command) = if quick {
        ("--quick", "cargo xtask bench --quick")
    } else {
        ("--full", "cargo xtask bench")
    };
    let exe = target.join("release").join(exe_name("repocache-bench"));
    step(
        "report binary: latency, relist, memory, end to end against apisim; writes docs/BENCHMARKS.md",
        Command::new(exe)
            .current_dir(&root)
            .arg(flag)
            .arg("--criterion")
            .arg(&criterion_home)
            .args(["--command", command]),
    )
}

/// `cargo xtask chaos`: builds and runs the chaos binary of `repocache-tests`, passing the
/// arguments through (`--debug` picks the debug build instead of release).
fn chaos(args: &[String]) -> ExitCode {
    let debug = args.iter().any(|a| a == "--debug");
    let passed: Vec<&String> = args.iter().filter(|a| *a != "--debug").collect();
    let mut cmd = cargo();
    cmd.current_dir(workspace_root()).args([
        "run",
        "--quiet",
        "-p",
        "repocache-tests",
        "--bin",
        "chaos",
    ]);
    if !debug {
        cmd.arg("--release");
    }
    cmd.arg("--").args(passed);
    match cmd.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask chaos: cannot run cargo: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod bench_args {
    use super::*;

    fn parse(args: &[&str]) -> Result<(BenchMode, Vec<String>), String> {
        parse_bench_args(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn e2e_parts_pass_through_with_any_mode() {
        assert!(matches!(parse(&[]), Ok((BenchMode::Full, p)) if p.is_empty()));
        let (mode, parts) = parse(&["--e2e-part", "warm"]).unwrap();
        assert!(mode == BenchMode::Full && parts == ["warm"]);
        let (mode, parts) =
            parse(&["--quick", "--e2e-part", "warm", "--e2e-part", "sync"]).unwrap();
        assert!(mode == BenchMode::Quick && parts == ["warm", "sync"]);
        let (mode, parts) = parse(&["--e2e-part", "install", "--check"]).unwrap();
        assert!(mode == BenchMode::Check && parts == ["install"]);
        assert_eq!(
            part_args(&parts),
            ["--e2e-part", "install"],
            "as the report binary takes them"
        );
    }

    #[test]
    fn bad_bench_arguments_are_refused() {
        assert!(parse(&["--e2e-part"]).is_err());
        assert!(parse(&["--quick", "--check"]).is_err());
        assert!(parse(&["--full-speed"]).is_err());
    }
}
