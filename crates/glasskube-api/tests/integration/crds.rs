//! The CRD YAML committed in `deploy/crds/` matches what the Rust types generate.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use glasskube_api::crd;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(crd::CRD_DIR);
    let drift = crd::check_dir(&dir).unwrap();
    let lines: Vec<String> = drift.iter().map(ToString::to_string).collect();
    assert!(
        drift.is_empty(),
        "deploy/crds/ differs from the types in glasskube-api:\n  {}\nrun `cargo xtask crds`",
        lines.join("\n  ")
    );
}

#[test]
fn check_and_write_round_trip_in_a_scratch_dir() {
    let dir = std::env::temp_dir().join(format!("glasskube-api-crds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let missing = crd::check_dir(&dir).unwrap();
    assert_eq!(missing.len(), 4);
    assert!(missing.iter().all(|d| matches!(d, crd::Drift::Missing(_))));

    let written = crd::write_dir(&dir).unwrap();
    assert_eq!(written.len(), 4);
    assert_eq!(crd::check_dir(&dir).unwrap(), vec![]);

    let first = &written[0];
    std::fs::write(first, "# edited\n").unwrap();
    std::fs::write(
        dir.join("old.packages.glasskube.dev.yaml"),
        format!("{}\n", crd::GENERATED_MARKER),
    )
    .unwrap();
    std::fs::write(dir.join("hand-written.yaml"), "kind: Other\n").unwrap();
    let drift = crd::check_dir(&dir).unwrap();
    assert_eq!(drift.len(), 3, "{drift:?}");

    // Writing fixes stale and removes old generated files; hand-written files stay (and are reported).
    crd::write_dir(&dir).unwrap();
    assert_eq!(
        crd::check_dir(&dir).unwrap(),
        vec![crd::Drift::Unexpected("hand-written.yaml".into())]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
