//! `Package`: a namespaced installation of a Glasskube package, and the spec/status types it shares
//! with [`ClusterPackage`](crate::ClusterPackage).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, HasConditions};

/// Desired state of a Package (and, wrapped in ClusterPackageSpec, of a ClusterPackage).
// Several `printcolumn(..)` entries repeat `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "packages.glasskube.dev",
    version = "v1alpha1",
    kind = "Package",
    plural = "packages",
    shortname = "pkg",
    namespaced,
    status = "PackageStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Package is a namespaced installation of a Glasskube package.",
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
#[serde(rename_all = "camelCase")]
pub struct PackageSpec {
    /// Which package, in which version, from which repository.
    pub package_info: PackageInfoTemplate,
    /// Helm-style values, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, ValueConfiguration>,
    /// Whether reconciliation of the package is suspended (absent means `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// `spec.packageInfo`: the package to install.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageInfoTemplate {
    /// Package name in the repository.
    pub name: String,
    /// Package version (e.g. `v1.16.1+1`).
    pub version: String,
    /// Name of the PackageRepository; absent or empty means the default repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_name: Option<String>,
}

/// One entry of `spec.values`: an inline `value` or a `valueFrom` reference.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueConfiguration {
    /// Inline value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueReference>,
}

/// `valueFrom`: exactly one of a ConfigMap key, a Secret key or another package's value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueReference {
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ObjectKeyValueSource>,
    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ObjectKeyValueSource>,
    /// A value of another package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_ref: Option<PackageValueSource>,
}

/// A key of a ConfigMap or Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKeyValueSource {
    /// Object name.
    pub name: String,
    /// Object namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key inside the object's data.
    pub key: String,
}

/// A value of another package.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageValueSource {
    /// Name of the other package.
    pub name: String,
    /// Name of the value in that package.
    pub value: String,
}

/// Observed state of a Package or ClusterPackage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageStatus {
    /// Installed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Standard conditions (`Ready`, ...).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::tight::vec"
    )]
    pub conditions: Vec<Condition>,
    /// Kubernetes objects the package created.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::tight::vec"
    )]
    pub owned_resources: Vec<OwnedResourceRef>,
    /// PackageInfos the package owns.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::tight::vec"
    )]
    pub owned_package_infos: Vec<OwnedResourceRef>,
    /// Packages (dependencies, components) the package owns.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::tight::vec"
    )]
    pub owned_packages: Vec<OwnedResourceRef>,
}

/// Reference to an object a package owns (upstream's `OwnedResourceRef`: an inline
/// group/version/kind plus name, namespace and deletion mark).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnedResourceRef {
    /// API group (empty for the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Object namespace (absent for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Set while the object is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_for_deletion: Option<bool>,
}

impl PackageInfoTemplate {
    /// The repository name, or `None` when absent or empty (meaning: the default repository).
    pub fn repository_name(&self) -> Option<&str> {
        self.repository_name.as_deref().filter(|n| !n.is_empty())
    }
}

impl PackageSpec {
    /// The repository name, or `None` when absent or empty (meaning: the default repository).
    pub fn repository_name(&self) -> Option<&str> {
        self.package_info.repository_name()
    }

    /// `true` if `suspend` is set to `true`.
    pub fn is_suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }
}

impl PackageStatus {
    /// The status's conditions.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl Package {
    /// The repository name, or `None` when absent or empty (meaning: the default repository).
    pub fn repository_name(&self) -> Option<&str> {
        self.spec.repository_name()
    }
}

impl HasConditions for Package {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], PackageStatus::conditions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_repo(repo: Option<&str>) -> PackageSpec {
        PackageSpec {
            package_info: PackageInfoTemplate {
                name: "quickwit".into(),
                version: "v1".into(),
                repository_name: repo.map(Into::into),
            },
            ..Default::default()
        }
    }

    #[test]
    fn repository_name_empty_means_default() {
        assert_eq!(with_repo(None).repository_name(), None);
        assert_eq!(with_repo(Some("")).repository_name(), None);
        assert_eq!(
            with_repo(Some("private")).repository_name(),
            Some("private")
        );
        let pkg = Package::new("q", with_repo(Some("private")));
        assert_eq!(pkg.repository_name(), Some("private"));
    }

    #[test]
    fn suspend_defaults_to_false() {
        let mut spec = with_repo(None);
        assert!(!spec.is_suspended());
        spec.suspend = Some(true);
        assert!(spec.is_suspended());
    }
}
