//! Resource definitions: what the server serves (group, version, kind, plural, scope, …).
//!
//! The Glasskube kinds are not written here: they are read from the CustomResourceDefinitions
//! under `deploy/crds/` (generated from glasskube-api's types by `cargo xtask crds`, guarded by
//! `cargo xtask crds --check`), which the build script compiles in, every `.yaml` file of the
//! directory. A kind added there is served (and validated, see `validation.rs`) with no change
//! here. Tests may register more resources ([`crate::ServerConfig::with_resource`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

// `CRDS`: (file name, YAML) of every file under deploy/crds/, in file-name order.
include!(concat!(env!("OUT_DIR"), "/crds.rs"));

/// A CustomResourceDefinition that does not describe a resource apisim can serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CustomResourceDefinition: {0}")]
pub struct CrdError(String);

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

    /// The resources a CustomResourceDefinition (as YAML or JSON) defines: one per served
    /// version, with its group, names (`plural`, `singular`, `kind`, `shortNames`, `listKind`),
    /// scope and `status` subresource, as kube-apiserver serves them.
    pub fn from_crd_yaml(text: &str) -> Result<Vec<ResourceDef>, CrdError> {
        let crd: Value = serde_yaml::from_str(text).map_err(|e| CrdError(e.to_string()))?;
        ResourceDef::from_crd(&crd)
    }

    /// [`from_crd_yaml`](Self::from_crd_yaml) for a CRD already parsed.
    pub fn from_crd(crd: &Value) -> Result<Vec<ResourceDef>, CrdError> {
        if crd["kind"] != "CustomResourceDefinition" {
            return Err(CrdError(format!("kind is {}", crd["kind"])));
        }
        let spec = &crd["spec"];
        let text = |v: &Value, what: &str| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| CrdError(format!("{what} is missing")))
        };
        let group = text(&spec["group"], "spec.group")?;
        let names = &spec["names"];
        let kind = text(&names["kind"], "spec.names.kind")?;
        let plural = text(&names["plural"], "spec.names.plural")?;
        let singular = names["singular"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map_or_else(|| kind.to_lowercase(), str::to_owned);
        let list_kind = names["listKind"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("{kind}List"), str::to_owned);
        let short_names: Vec<String> = names["shortNames"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let namespaced = match spec["scope"].as_str() {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            other => return Err(CrdError(format!("spec.scope is {other:?}"))),
        };
        let versions = spec["versions"]
            .as_array()
            .ok_or_else(|| CrdError("spec.versions is missing".to_owned()))?;
        let mut defs = Vec::new();
        for v in versions.iter().filter(|v| v["served"] != false) {
            defs.push(ResourceDef {
                group: group.clone(),
                version: text(&v["name"], "spec.versions[].name")?,
                kind: kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                namespaced,
                short_names: short_names.clone(),
                list_kind: list_kind.clone(),
                status_subresource: v.pointer("/subresources/status").is_some(),
            });
        }
        Ok(defs)
    }

    /// The Glasskube kinds, read from the CRDs under `deploy/crds/` (compiled in). A file that
    /// does not parse is logged and left out (`cargo xtask crds --check` and this crate's tests
    /// keep them valid).
    pub fn glasskube() -> Vec<ResourceDef> {
        let mut defs = Vec::new();
        for (file, yaml) in CRDS {
            match ResourceDef::from_crd_yaml(yaml) {
                Ok(found) => defs.extend(found),
                Err(err) => tracing::warn!(file, %err, "apisim: a compiled-in CRD is left out"),
            }
        }
        defs
    }

    /// core/v1 Namespace (cluster-scoped, short name `ns`).
    pub fn namespaces() -> Self {
        ResourceDef::new("", "v1", "Namespace", "namespaces", false)
            .with_short_names(&["ns"])
            .with_status()
    }

    /// core/v1 Pod (namespaced, short name `po`, `status` subresource), with apisim's `exec`
    /// subresource: a small set of built-in commands (`echo`, `cat`, `true`, `false`, `exit N`)
    /// over WebSocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`), as kubectl exec asks. Not
    /// registered by default: a test that execs registers it with
    /// [`ServerConfig::with_resource`](crate::ServerConfig::with_resource).
    pub fn pods() -> Self {
        ResourceDef::new("", "v1", "Pod", "pods", true)
            .with_short_names(&["po"])
            .with_status()
    }

    /// Whether this is core/v1 Pod (which has apisim's `exec` subresource).
    pub fn is_pod(&self) -> bool {
        self.group.is_empty() && self.version == "v1" && self.kind == "Pod"
    }

    /// core/v1 ConfigMap (namespaced, short name `cm`).
    pub fn config_maps() -> Self {
        ResourceDef::new("", "v1", "ConfigMap", "configmaps", true).with_short_names(&["cm"])
    }

    /// The Glasskube kinds ([`glasskube`](Self::glasskube)) plus core/v1 namespaces: what a
    /// server registers by default.
    pub fn defaults() -> Vec<ResourceDef> {
        let mut defs = ResourceDef::glasskube();
        defs.push(ResourceDef::namespaces());
        defs
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

    const GROUP: &str = "packages.glasskube.dev";
    const VERSION: &str = "v1alpha1";

    #[test]
    fn lookups() {
        let r = Registry::new(ResourceDef::defaults());
        assert_eq!(r.find_name("pkg"), r.find(GROUP, VERSION, "packages"));
        assert_eq!(
            r.find_name("packagerepositories.packages.glasskube.dev"),
            r.find(GROUP, VERSION, "packagerepositories")
        );
        assert!(
            r.find_kind("packages.glasskube.dev/v1alpha1", "PackageInfo")
                .is_some()
        );
        assert!(r.find_kind("v1", "Namespace").is_some());
        assert_eq!(r.groups().len(), 1);
    }

    /// Every compiled-in CRD parses, and the kinds come out as the hand-written definitions
    /// that used to stand here said (names, short names, scope, status subresource).
    #[test]
    fn glasskube_kinds_come_from_the_crds() {
        let mut defs = ResourceDef::glasskube();
        assert_eq!(defs.len(), CRDS.len());
        defs.sort_by(|a, b| a.plural.cmp(&b.plural));
        // Today's four kinds (a kind added later may sit among them).
        let known = [
            "clusterpackages",
            "packageinfos",
            "packagerepositories",
            "packages",
        ];
        let summary: Vec<_> = defs
            .iter()
            .filter(|d| known.contains(&d.plural.as_str()))
            .map(|d| {
                assert_eq!((d.group.as_str(), d.version.as_str()), (GROUP, VERSION));
                assert_eq!(d.list_kind, format!("{}List", d.kind));
                assert_eq!(d.singular, d.kind.to_lowercase());
                assert!(d.status_subresource, "{}", d.kind);
                (
                    d.kind.as_str(),
                    d.plural.as_str(),
                    d.namespaced,
                    d.short_names.join(","),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("ClusterPackage", "clusterpackages", false, "clpkg".into()),
                ("PackageInfo", "packageinfos", false, "pkgi".into()),
                (
                    "PackageRepository",
                    "packagerepositories",
                    false,
                    String::new()
                ),
                ("Package", "packages", true, "pkg".into()),
            ]
        );
    }

    #[test]
    fn crds_that_cannot_be_served_are_errors() {
        assert!(ResourceDef::from_crd_yaml("a: [").is_err());
        assert!(ResourceDef::from_crd_yaml("kind: ConfigMap").is_err());
        let crd = |scope: &str| {
            format!(
                "kind: CustomResourceDefinition\nspec: {{group: g.example, scope: {scope}, \
                 names: {{kind: Widget, plural: widgets}}, \
                 versions: [{{name: v1, served: true}}, {{name: v0, served: false}}]}}"
            )
        };
        assert!(ResourceDef::from_crd_yaml(&crd("Galaxy")).is_err());
        let defs = ResourceDef::from_crd_yaml(&crd("Namespaced")).unwrap();
        assert_eq!(defs.len(), 1, "the unserved version is left out");
        let w = &defs[0];
        assert_eq!((w.version.as_str(), w.singular.as_str()), ("v1", "widget"));
        assert_eq!(w.list_kind, "WidgetList");
        assert!(w.namespaced && !w.status_subresource && w.short_names.is_empty());
    }
}
