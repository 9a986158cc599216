//! `PackageInfo`: the cluster-scoped, operator-maintained record of one package version's
//! manifest as fetched from a repository.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, HasConditions, Time};

/// Desired state of a PackageInfo.
// Several `printcolumn(..)` entries repeat `type_ = "string"`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "packages.glasskube.dev",
    version = "v1alpha1",
    kind = "PackageInfo",
    plural = "packageinfos",
    shortname = "pkgi",
    status = "PackageInfoStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "PackageInfo holds the manifest of one package version fetched from a repository.",
    printcolumn(
        name = "Desired version",
        type_ = "string",
        json_path = ".spec.version"
    ),
    printcolumn(
        name = "Current version",
        type_ = "string",
        json_path = ".status.version"
    ),
    printcolumn(
        name = "Last Updated",
        type_ = "date",
        json_path = ".status.lastUpdateTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PackageInfoSpec {
    /// Package name in the repository (required).
    pub name: String,
    /// Package version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Despite its JSON name `repositoryUrl`, this holds the repository NAME (the name of a
    /// PackageRepository), not a URL: an upstream quirk kept for wire compatibility. Prefer
    /// `PackageInfoSpec::repository_name()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_url: Option<String>,
}

/// Observed state of a PackageInfo.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageInfoStatus {
    /// The fetched package manifest, kept verbatim as an opaque JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::opaque_object_schema")]
    pub manifest: Option<serde_json::Value>,
    /// URL the manifest was fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_url: Option<String>,
    /// Standard conditions (`Ready`, ...).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::tight::vec"
    )]
    pub conditions: Vec<Condition>,
    /// When the manifest was last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_timestamp: Option<Time>,
    /// Version of the fetched manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl PackageInfoSpec {
    /// The repository name (stored in `repositoryUrl`), or `None` when absent or empty (meaning:
    /// the default repository).
    pub fn repository_name(&self) -> Option<&str> {
        self.repository_url.as_deref().filter(|n| !n.is_empty())
    }
}

impl PackageInfo {
    /// The repository name (stored in `spec.repositoryUrl`), or `None` when absent or empty.
    pub fn repository_name(&self) -> Option<&str> {
        self.spec.repository_name()
    }
}

impl HasConditions for PackageInfo {
    fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_url_holds_the_name() {
        let mut spec = PackageInfoSpec {
            name: "x".into(),
            ..Default::default()
        };
        assert_eq!(spec.repository_name(), None);
        spec.repository_url = Some(String::new());
        assert_eq!(spec.repository_name(), None);
        spec.repository_url = Some("glasskube".into());
        assert_eq!(
            PackageInfo::new("x--v1", spec).repository_name(),
            Some("glasskube")
        );
    }
}
