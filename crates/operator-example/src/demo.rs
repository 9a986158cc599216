//! Sample data for the embedded mode and the tests: generated Packages and ClusterPackages spread
//! over the project's fixture repositories (`apisim::seed::REPOSITORIES_YAML`, seeded beside
//! `apisim::seed::PACKAGES_YAML`) and three namespaces.

use serde_json::{Value, json};

/// The fixture repositories' names.
pub const REPOSITORIES: [&str; 5] = [
    "glasskube",
    "private-basic",
    "inline-basic",
    "team-bearer",
    "team-bearer-ref",
];
/// The namespaces generated Packages live in.
pub const NAMESPACES: [&str; 3] = ["analytics", "platform", "data"];

/// `n` generated packages: every fifth a ClusterPackage, the others Packages spread over
/// [`NAMESPACES`]; their repositories cycle through [`REPOSITORIES`] and "none" (the default
/// repository; alternately an absent and an empty `repositoryName`).
pub fn generated_packages(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut info = json!({"name": format!("app-{i:02}"), "version": "v1.0.0+1"});
            match i % 6 {
                5 if i % 12 == 5 => {}
                5 => info["repositoryName"] = json!(""),
                r => info["repositoryName"] = json!(REPOSITORIES[r]),
            }
            let mut metadata = json!({"name": format!("pkg-{i:02}")});
            let kind = if i % 5 == 0 {
                "ClusterPackage"
            } else {
                metadata["namespace"] = json!(NAMESPACES[(i / 6) % NAMESPACES.len()]);
                "Package"
            };
            json!({
                "apiVersion": glasskube_api::API_VERSION,
                "kind": kind,
                "metadata": metadata,
                "spec": {"packageInfo": info},
            })
        })
        .collect()
}
