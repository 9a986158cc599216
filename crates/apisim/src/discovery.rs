//! Discovery documents in the legacy (unaggregated) format: `/version`, `/api`, `/api/v1`,
//! `/apis`, `/apis/{group}`, `/apis/{group}/{version}`.
//!
//! Clients that ask for aggregated discovery (`as=APIGroupDiscoveryList` in `Accept`) get these
//! legacy documents with `Content-Type: application/json`, which makes client-go and kubectl fall
//! back to legacy discovery, as they do against old servers.

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceDef};

/// The Kubernetes version apisim claims to be.
pub const KUBE_MAJOR: &str = "1";
/// Minor version (the k8s-openapi feature the project builds with).
pub const KUBE_MINOR: &str = "33";

/// `/version`.
pub(crate) fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-apisim"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or_else(|| json!({}));
    json!({"name": group, "versions": vs, "preferredVersion": preferred})
}

/// `/apis`.
pub(crate) fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if served.
pub(crate) fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    reg.groups()
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| {
            let mut doc = group_doc(&g, &vs);
            if let Some(o) = doc.as_object_mut() {
                o.insert("kind".into(), json!("APIGroup"));
                o.insert("apiVersion".into(), json!("v1"));
            }
            doc
        })
}

fn resource_entries(d: &ResourceDef) -> Vec<Value> {
    let mut main = json!({
        "name": d.plural,
        "singularName": d.singular,
        "namespaced": d.namespaced,
        "kind": d.kind,
        "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
    });
    if !d.short_names.is_empty() {
        main["shortNames"] = json!(d.short_names);
    }
    let mut out = vec![main];
    if d.is_pod() {
        out.push(json!({
            "name": "pods/exec",
            "singularName": "",
            "namespaced": true,
            "kind": "PodExecOptions",
            "verbs": ["create", "get"],
        }));
    }
    if d.status_subresource {
        out.push(json!({
            "name": format!("{}/status", d.plural),
            "singularName": "",
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    out
}

/// `/api/v1` (group `""`) or `/apis/{group}/{version}`, if served.
pub(crate) fn api_resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let core_v1 = group.is_empty() && version == "v1";
    if !(reg.has_group_version(group, version) || core_v1) {
        return None;
    }
    let resources: Vec<Value> = reg
        .defs()
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .flat_map(resource_entries)
        .collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let reg = Registry::new(ResourceDef::defaults());
        let list = api_group_list(&reg);
        assert_eq!(list["groups"][0]["name"], "packages.glasskube.dev");
        assert_eq!(list["groups"][0]["preferredVersion"]["version"], "v1alpha1");
        let rl = api_resource_list(&reg, "packages.glasskube.dev", "v1alpha1").unwrap();
        let names: Vec<&str> = rl["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"packagerepositories/status"));
        assert!(names.contains(&"packages"));
        let pkg = rl["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "packages")
            .unwrap();
        assert_eq!(pkg["shortNames"][0], "pkg");
        assert_eq!(pkg["namespaced"], true);
        assert!(api_resource_list(&reg, "nope", "v1").is_none());
        assert!(api_resource_list(&reg, "", "v1").is_some());
        assert!(api_group(&reg, "packages.glasskube.dev").is_some());
    }
}
