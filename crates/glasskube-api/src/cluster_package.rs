//! `ClusterPackage`: a cluster-scoped installation of a Glasskube package. It has the same spec
//! and status as [`Package`](crate::Package).

use std::ops::{Deref, DerefMut};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, HasConditions};
use crate::package::{PackageSpec, PackageStatus};

/// Desired state of a ClusterPackage: the PackageSpec shared with Package.
///
/// Serializes exactly like PackageSpec and derefs to it, so `cp.spec.package_info` works.
// Several `printcolumn(..)` entries repeat `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "packages.glasskube.dev",
    version = "v1alpha1",
    kind = "ClusterPackage",
    plural = "clusterpackages",
    shortname = "clpkg",
    status = "PackageStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ClusterPackage is a cluster-scoped installation of a Glasskube package.",
    printcolumn(
        name = "Desired version",
        type_ = "string",
        json_path = ".spec.packageInfo.version"
    ),
    printcolumn(
        name = "Installed version",
        type_ = "string",
        json_path = ".status.version"
    )
)]
#[serde(transparent)]
pub struct ClusterPackageSpec(pub PackageSpec);

impl Deref for ClusterPackageSpec {
    type Target = PackageSpec;

    fn deref(&self) -> &PackageSpec {
        &self.0
    }
}

impl DerefMut for ClusterPackageSpec {
    fn deref_mut(&mut self) -> &mut PackageSpec {
        &mut self.0
    }
}

impl From<PackageSpec> for ClusterPackageSpec {
    fn from(spec: PackageSpec) -> Self {
        Self(spec)
    }
}

impl ClusterPackage {
    /// The repository name, or `None` when absent or empty (meaning: the default repository).
    pub fn repository_name(&self) -> Option<&str> {
        self.spec.repository_name()
    }
}

impl HasConditions for ClusterPackage {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], PackageStatus::conditions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::PackageInfoTemplate;

    #[test]
    fn spec_serializes_like_package_spec() {
        let inner = PackageSpec {
            package_info: PackageInfoTemplate {
                name: "cert-manager".into(),
                version: "v1".into(),
                repository_name: Some("glasskube".into()),
            },
            ..Default::default()
        };
        let cp = ClusterPackage::new("cert-manager", inner.clone().into());
        assert_eq!(cp.repository_name(), Some("glasskube"));
        let json = serde_json::to_value(&cp.spec).unwrap();
        assert_eq!(json, serde_json::to_value(&inner).unwrap());
    }
}
