//! `cargo xtask miri`: the writer's tests under Miri (`cargo +nightly miri test`), so that
//! undefined behaviour reachable from safe code — user code that panics or misbehaves inside
//! the writer, say — is caught as a habit and in CI.
//!
//! Runs these test targets of `repocache`: `integration` (its modules `writer`, `model` with few
//! proptest cases, `subscriptions` and `indexes`: the binary leaves out its other suites under
//! `cfg(miri)`) and `user_code` (panicking indexers and transforms, inconsistent `meta()`; its
//! own binary for its panic hook), under
//! Tree Borrows (`-Zmiri-tree-borrows`: imbl's `InlineArray::remove` trips Stacked Borrows on
//! its own). Installs the `miri` and `rust-src` components of the nightly toolchain when they are
//! missing; when that fails it exits with [`UNAVAILABLE`] and says so, so that CI can warn
//! loudly and go on.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Exit code when Miri is not available and could not be installed.
pub const UNAVAILABLE: u8 = 3;

/// The test targets of `repocache` that run under Miri.
/// `integration` holds the `writer`, `model`, `subscriptions` and `indexes` suites (and, outside
/// Miri, more: see `crates/repocache/tests/integration/main.rs`).
const TESTS: &[&str] = &["integration", "user_code"];

/// Proptest cases per property under Miri (unless `PROPTEST_CASES` is set): Miri runs about a
/// thousand times slower than a debug build.
const PROPTEST_CASES: &str = "2";

const USAGE: &str = "usage: cargo xtask miri [-- <test harness args>]";

/// `cargo xtask miri [-- <test harness args>]`.
pub fn run(args: &[String]) -> ExitCode {
    let harness: &[String] = match args {
        [] => &[],
        [sep, rest @ ..] if sep == "--" => rest,
        [other, ..] => {
            eprintln!("xtask miri: unexpected argument `{other}` ({USAGE})");
            return ExitCode::from(2);
        }
    };
    if let Err(why) = ensure_miri() {
        eprintln!(
            "xtask miri: Miri is not available and could not be installed: {why} \
             (try `rustup toolchain install nightly` and `rustup +nightly component add miri rust-src`)"
        );
        return ExitCode::from(UNAVAILABLE);
    }
    let mut cmd = nightly_cargo();
    cmd.current_dir(crate::workspace_root())
        .args(["miri", "test", "-p", "repocache"]);
    for test in TESTS {
        cmd.args(["--test", test]);
    }
    if !harness.is_empty() {
        cmd.arg("--").args(harness);
    }
    // Miri's isolation hides the environment: forward the proptest case count.
    let mut flags = std::env::var("MIRIFLAGS").unwrap_or_default();
    for flag in ["-Zmiri-tree-borrows", "-Zmiri-env-forward=PROPTEST_CASES"] {
        if !flags.contains(flag) {
            flags = format!("{flags} {flag}").trim().to_owned();
        }
    }
    cmd.env("MIRIFLAGS", &flags);
    if std::env::var_os("PROPTEST_CASES").is_none() {
        cmd.env("PROPTEST_CASES", PROPTEST_CASES);
    }
    eprintln!(
        "xtask miri: cargo +nightly miri test -p repocache --test {} (MIRIFLAGS={flags})",
        TESTS.join(" --test ")
    );
    let started = Instant::now();
    match cmd.status() {
        Ok(status) if status.success() => {
            eprintln!(
                "xtask miri: passed in {:.0} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!(
                "xtask miri: failed ({status}) after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("xtask miri: cannot run cargo +nightly: {e}");
            ExitCode::from(UNAVAILABLE)
        }
    }
}

/// `cargo +nightly`, without the variables through which the stable toolchain that runs xtask
/// would leak into it.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    cmd
}

/// Whether `cargo +nightly miri` runs; when it does not, tries to add the components once.
fn ensure_miri() -> Result<(), String> {
    if miri_runs() {
        return Ok(());
    }
    eprintln!("xtask miri: adding the miri and rust-src components of the nightly toolchain");
    let added = Command::new("rustup")
        .args(["+nightly", "component", "add", "miri", "rust-src"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if !added.success() {
        return Err(format!(
            "`rustup +nightly component add miri rust-src` failed ({added})"
        ));
    }
    if miri_runs() {
        Ok(())
    } else {
        Err("`cargo +nightly miri --version` still fails after adding the components".into())
    }
}

fn miri_runs() -> bool {
    nightly_cargo()
        .args(["miri", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
