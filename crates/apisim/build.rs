//! Compiles the CustomResourceDefinitions under `deploy/crds/` into apisim: writes
//! `$OUT_DIR/crds.rs`, one `include_str!` per `.yaml` file of the directory (in file-name
//! order), so that a kind `cargo xtask crds` adds there is served without a change to apisim.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let dir = manifest.join("../../deploy/crds");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path.canonicalize()?);
        }
    }
    files.sort();
    let mut out = String::from(
        "/// (file name, YAML) of every CustomResourceDefinition under `deploy/crds/`.\n\
         pub(crate) const CRDS: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        println!("cargo::rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let full = path.to_str().ok_or("a CRD path is not UTF-8")?;
        writeln!(out, "    ({name:?}, include_str!({full:?})),")?;
    }
    out.push_str("];\n");
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR")?).join("crds.rs"),
        out,
    )?;
    Ok(())
}
