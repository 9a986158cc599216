//! The `repocache` binary under test as a child process: run it with a clean environment (no
//! token, no `RUST_LOG`, a kubeconfig that does not exist, warm-start files in a scratch
//! directory) and collect what it printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_repocache");

/// How one run ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub async fn repocache(args: &[&str]) -> Run {
    repocache_env(args, &[]).await
}

/// Runs the binary with `args`; `env` is set last (it may replace the defaults).
pub async fn repocache_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("REPOCACHE_TOKEN")
        .env_remove("RUST_LOG")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        // Warm-start files go to a scratch directory, never the user's ~/.cache.
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("repocache-cli-tests"),
        )
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("repocache did not finish in time")
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The CLI's contract for bad input: exit 2, one line on stderr that says `needle`, no panic.
pub fn assert_one_error_line(run: &Run, needle: &str) {
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "{needle:?} in {:?}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}
