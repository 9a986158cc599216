//! What the figures were measured on: the machine and the exact source.

use std::path::Path;
use std::process::Command;

/// The machine and source of one run.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// `git rev-parse --short HEAD`, with `-dirty` when the work tree has changes.
    pub commit: String,
    /// `rustc --version`.
    pub rustc: String,
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// The load average when the run started (`/proc/loadavg`, 1 minute).
    pub load: String,
}

impl RunInfo {
    /// Collects the run's facts; `root` is the git work tree.
    pub fn collect(root: &Path) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let head = run(root, "git", &["rev-parse", "--short", "HEAD"]);
        let dirty = run(root, "git", &["status", "--porcelain"]);
        let commit = match (head, dirty) {
            (Some(h), Some(d)) if !d.is_empty() => format!("{h}-dirty"),
            (Some(h), _) => h,
            (None, _) => "unknown".to_owned(),
        };
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            commit,
            rustc: run(root, "rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned()),
            started: k8s_openapi::jiff::Timestamp::now()
                .round(k8s_openapi::jiff::Unit::Second)
                .map_or_else(|_| "unknown".to_owned(), |t| t.to_string()),
            load: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next().map(str::to_owned))
                .unwrap_or_else(|| "?".to_owned()),
        }
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
