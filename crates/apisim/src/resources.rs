//! Resource definitions: what the server serves (group, version, kind, plural, scope, …).

use serde::{Deserialize, Serialize};

/// The Glasskube API group.
pub const GLASSKUBE_GROUP: &str = "packages.glasskube.dev";
/// The Glasskube API version.
pub const GLASSKUBE_VERSION: &str = "v1alpha1";

/// One served resource type, like a CRD's `spec.names` plus scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDef {
    /// API group; `""` for the core group (served under `/api/v1`).
    pub group: String,
    /// API version, e.g. `v1alpha1`.
    pub version: String,
    /// Kind, e.g. `PackageRepository`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `packagerepositories`.
    pub plural: String,
    /// Singular name, e.g. `packagerepository`.
    pub singular: String,
    /// Namespaced (`true`) or cluster-scoped (`false`).
    pub namespaced: bool,
    /// Short names, e.g. `["pkg"]`.
    pub short_names: Vec<String>,
    /// Kind of the list, e.g. `PackageRepositoryList`.
    pub list_kind: String,
    /// Whether the resource has the `status` subresource.
    pub status_subresource: bool,
}

impl ResourceDef {
    /// A definition with the usual derived names (`singular` = lowercase kind, `list_kind` = kind + "List").
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: Vec::new(),
            list_kind: format!("{kind}List"),
            status_subresource: false,
        }
    }

    /// Builder: set the short names.
    pub fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Builder: enable the `status` subresource.
    pub fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The Glasskube PackageRepository (cluster-scoped).
    pub fn package_repository() -> Self {
        ResourceDef::new(
            GLASSKUBE_GROUP,
            GLASSKUBE_VERSION,
            "PackageRepository",
            "packagerepositories",
            false,
        )
        .with_status()
    }

    /// The Glasskube Package (namespaced, short name `pkg`).
    pub fn package() -> Self {
        ResourceDef::new(
            GLASSKUBE_GROUP,
            GLASSKUBE_VERSION,
            "Package",
            "packages",
            true,
        )
        .with_short_names(&["pkg"])
        .with_status()
    }

    /// The Glasskube ClusterPackage (cluster-scoped, short name `clpkg`).
    pub fn cluster_package() -> Self {
        ResourceDef::new(
            GLASSKUBE_GROUP,
            GLASSKUBE_VERSION,
            "ClusterPackage",
            "clusterpackages",
            false,
        )
        .with_short_names(&["clpkg"])
        .with_status()
    }

    /// The Glasskube PackageInfo (cluster-scoped, short name `pkgi`).
    pub fn package_info() -> Self {
        ResourceDef::new(
            GLASSKUBE_GROUP,
            GLASSKUBE_VERSION,
            "PackageInfo",
            "packageinfos",
            false,
        )
        .with_short_names(&["pkgi"])
        .with_status()
    }

    /// core/v1 Namespace (cluster-scoped, short name `ns`).
    pub fn namespaces() -> Self {
        ResourceDef::new("", "v1", "Namespace", "namespaces", false)
            .with_short_names(&["ns"])
            .with_status()
    }

    /// core/v1 ConfigMap (namespaced, short name `cm`).
    pub fn config_maps() -> Self {
        ResourceDef::new("", "v1", "ConfigMap", "configmaps", true).with_short_names(&["cm"])
    }

    /// The four Glasskube kinds plus core/v1 namespaces: what a server registers by default.
    pub fn defaults() -> Vec<ResourceDef> {
        vec![
            ResourceDef::package_repository(),
            ResourceDef::package(),
            ResourceDef::cluster_package(),
            ResourceDef::package_info(),
            ResourceDef::namespaces(),
        ]
    }
}

/// Index of a resource in the [`Registry`].
pub(crate) type ResId = usize;

/// The set of served resources.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: Vec<ResourceDef>,
}

impl Registry {
    /// A registry of the given definitions; later duplicates of (group, version, plural) are ignored.
    pub fn new(defs: Vec<ResourceDef>) -> Self {
        let mut out: Vec<ResourceDef> = Vec::new();
        for d in defs {
            if !out
                .iter()
                .any(|o| o.group == d.group && o.version == d.version && o.plural == d.plural)
            {
                out.push(d);
            }
        }
        Registry { defs: out }
    }

    /// All definitions.
    pub fn defs(&self) -> &[ResourceDef] {
        &self.defs
    }

    pub(crate) fn get(&self, id: ResId) -> Option<&ResourceDef> {
        self.defs.get(id)
    }

    /// Find by group, version and plural.
    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResId> {
        self.defs
            .iter()
            .position(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// Find by `apiVersion` and `kind` (as written in an object).
    pub(crate) fn find_kind(&self, api_version: &str, kind: &str) -> Option<ResId> {
        self.defs
            .iter()
            .position(|d| d.api_version() == api_version && d.kind == kind)
    }

    /// Find by a resource name as a user types it: `plural`, `plural.group`, `singular`, or a short name.
    pub(crate) fn find_name(&self, name: &str) -> Option<ResId> {
        let (base, group) = match name.split_once('.') {
            Some((b, g)) => (b, Some(g)),
            None => (name, None),
        };
        let base = base.strip_suffix("/status").unwrap_or(base);
        self.defs.iter().position(|d| {
            group.is_none_or(|g| g == d.group)
                && (d.plural == base
                    || d.singular == base
                    || d.short_names.iter().any(|s| s == base))
        })
    }

    /// Group versions served, core excluded, in registration order: (group, versions).
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in self.defs.iter().filter(|d| !d.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    if !vs.contains(&d.version) {
                        vs.push(d.version.clone());
                    }
                }
                None => out.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        out
    }

    /// Whether `group/version` is served.
    pub(crate) fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.defs
            .iter()
            .any(|d| d.group == group && d.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let r = Registry::new(ResourceDef::defaults());
        assert_eq!(
            r.find_name("pkg"),
            r.find(GLASSKUBE_GROUP, GLASSKUBE_VERSION, "packages")
        );
        assert_eq!(
            r.find_name("packagerepositories.packages.glasskube.dev"),
            r.find(GLASSKUBE_GROUP, GLASSKUBE_VERSION, "packagerepositories")
        );
        assert!(
            r.find_kind("packages.glasskube.dev/v1alpha1", "PackageInfo")
                .is_some()
        );
        assert!(r.find_kind("v1", "Namespace").is_some());
        assert_eq!(r.groups().len(), 1);
    }
}
