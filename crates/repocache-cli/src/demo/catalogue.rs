//! The demo's generated package catalogue: PackageInfo objects spread across the fixture's
//! repositories, each with up to two dependencies on later packages (so the graph has no
//! cycle).

use serde_json::{Value, json};

/// The repositories packages are spread across (all in the fixtures; `glasskube` is the
/// default one, and dependencies on its packages name no repository).
pub const REPOSITORIES: [&str; 5] = [
    "glasskube",
    "private-basic",
    "inline-basic",
    "team-bearer",
    "team-bearer-ref",
];

/// One package of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CataloguePackage {
    /// `pkg-007`.
    pub name: String,
    /// `v1.0.7`.
    pub version: String,
    /// The repository holding it.
    pub repository: &'static str,
    /// Indices of the packages it depends on.
    pub dependencies: Vec<usize>,
}

impl CataloguePackage {
    /// The PackageInfo's object name, e.g. `pkg-007--v1.0.7`.
    pub fn info_name(&self) -> String {
        info_name(&self.name, &self.version)
    }
}

/// The PackageInfo object name of a package version (upstream's `name--version` style).
pub fn info_name(name: &str, version: &str) -> String {
    format!("{name}--{}", version.replace('+', "-"))
}

/// The generated catalogue.
#[derive(Clone, Debug)]
pub struct Catalogue {
    /// Packages by index.
    pub packages: Vec<CataloguePackage>,
}

impl Catalogue {
    /// A catalogue of `size` packages (at least 1).
    pub fn generate(size: usize) -> Self {
        let size = size.max(1);
        let packages = (0..size)
            .map(|i| {
                let mut dependencies: Vec<usize> = [i + 1 + i % 3, i + 2 + (i * 7) % 5]
                    .into_iter()
                    .filter(|&j| j < size)
                    .collect();
                dependencies.dedup();
                CataloguePackage {
                    name: format!("pkg-{i:03}"),
                    version: format!("v1.0.{i}"),
                    repository: REPOSITORIES[i % REPOSITORIES.len()],
                    dependencies,
                }
            })
            .collect();
        Self { packages }
    }

    /// The catalogue as PackageInfo objects for apisim's seed. Each carries its dependencies
    /// in `status.manifest.dependencies` ({name, version, repository}; no repository for
    /// packages of the default repository).
    pub fn seed(&self) -> Vec<Value> {
        self.packages
            .iter()
            .map(|p| {
                let dependencies: Vec<Value> = p
                    .dependencies
                    .iter()
                    .map(|&j| {
                        let d = &self.packages[j];
                        let mut dep = json!({"name": d.name, "version": d.version});
                        if d.repository != REPOSITORIES[0] {
                            dep["repository"] = json!(d.repository);
                        }
                        dep
                    })
                    .collect();
                json!({
                    "apiVersion": glasskube_api::API_VERSION,
                    "kind": "PackageInfo",
                    "metadata": {"name": p.info_name()},
                    "spec": {"name": p.name, "version": p.version, "repositoryUrl": p.repository},
                    "status": {
                        "version": p.version,
                        "manifest": {"name": p.name, "dependencies": dependencies},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "SyncCompleted",
                            "message": "manifest resolved", "lastTransitionTime": "2026-11-01T10:00:00Z"}]
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_point_forward_only() {
        let catalogue = Catalogue::generate(30);
        for (i, p) in catalogue.packages.iter().enumerate() {
            assert!(p.dependencies.iter().all(|&j| j > i && j < 30));
        }
        assert_eq!(catalogue.packages[0].info_name(), "pkg-000--v1.0.0");
        assert_eq!(catalogue.seed().len(), 30);
    }
}
