//! Project automation, run as `cargo xtask <subcommand>`.
//!
//! Subcommands:
//! - `crds [--check]`: write the generated CustomResourceDefinitions into `deploy/crds/`, or with
//!   `--check` only compare and exit 1 when the committed files differ from the types.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use glasskube_api::crd;

const USAGE: &str = "usage: cargo xtask crds [--check]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("crds") => crds(&args[1..]),
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
