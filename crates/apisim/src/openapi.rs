//! A minimal OpenAPI v3 surface (`/openapi/v3` and `/openapi/v3/{api|apis/group}/{version}`).
//!
//! kubectl (≥ 1.27) decides how to validate `create`/`apply` input by reading the OpenAPI v3
//! document of the object's group-version: if the PATCH operation of the kind declares the
//! `fieldValidation` query parameter, kubectl leaves validation to the server (it sends
//! `fieldValidation=Strict`). Without any OpenAPI, kubectl refuses to create objects unless given
//! `--validate=false`. So apisim serves just enough: one path per resource with its verbs, the
//! `x-kubernetes-group-version-kind` extension, and the query parameters; no schemas (every object
//! validates, as with a CRD whose schema preserves unknown fields). The PATCH operations list only
//! JSON-patch and merge-patch bodies, so `kubectl apply` uses a JSON merge patch, as for CRDs.
//! `/openapi/v2` stays 404 (kubectl only needs it when v3 is missing).

use serde_json::{Map, Value, json};

use crate::resources::{Registry, ResourceDef};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub(crate) fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in reg.defs() {
        let gv = (d.group.clone(), d.version.clone());
        if !gvs.contains(&gv) {
            gvs.push(gv);
        }
    }
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=apisim")}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn gvk(d: &ResourceDef) -> Value {
    json!({"group": d.group, "version": d.version, "kind": d.kind})
}

fn ok_response() -> Value {
    json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}})
}

fn object_body(types: &[&str]) -> Value {
    let content: Map<String, Value> = types
        .iter()
        .map(|t| ((*t).to_string(), json!({"schema": {"type": "object"}})))
        .collect();
    json!({"required": true, "content": content})
}

/// `/openapi/v3/{api|apis/group}/{version}`, if served.
pub(crate) fn group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = reg
        .defs()
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let write_params = || {
        json!([
            param("dryRun"),
            param("fieldManager"),
            param("fieldValidation")
        ])
    };
    let mut paths = Map::new();
    for d in defs {
        let base = if d.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                gv_path(group, version),
                d.plural
            )
        } else {
            format!("/{}/{}", gv_path(group, version), d.plural)
        };
        let ext = gvk(d);
        paths.insert(
            base.clone(),
            json!({
                "get": {"operationId": format!("list{}", d.kind), "x-kubernetes-action": "list",
                        "x-kubernetes-group-version-kind": ext, "responses": ok_response()},
                "post": {"operationId": format!("create{}", d.kind), "x-kubernetes-action": "post",
                         "x-kubernetes-group-version-kind": ext, "parameters": write_params(),
                         "requestBody": object_body(&["application/json", "application/yaml"]), "responses": ok_response()},
            }),
        );
        let mut item_paths = vec![(format!("{base}/{{name}}"), "")];
        if d.status_subresource {
            item_paths.push((format!("{base}/{{name}}/status"), "Status"));
        }
        for (p, suffix) in item_paths {
            paths.insert(
                p,
                json!({
                    "get": {"operationId": format!("read{}{suffix}", d.kind), "x-kubernetes-action": "get",
                            "x-kubernetes-group-version-kind": ext, "responses": ok_response()},
                    "put": {"operationId": format!("replace{}{suffix}", d.kind), "x-kubernetes-action": "put",
                            "x-kubernetes-group-version-kind": ext, "parameters": write_params(),
                            "requestBody": object_body(&["application/json", "application/yaml"]), "responses": ok_response()},
                    "patch": {"operationId": format!("patch{}{suffix}", d.kind), "x-kubernetes-action": "patch",
                              "x-kubernetes-group-version-kind": ext, "parameters": write_params(),
                              "requestBody": object_body(&["application/json-patch+json", "application/merge-patch+json"]),
                              "responses": ok_response()},
                    "delete": {"operationId": format!("delete{}{suffix}", d.kind), "x-kubernetes-action": "delete",
                               "x-kubernetes-group-version-kind": ext, "parameters": [param("dryRun")], "responses": ok_response()},
                }),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (apisim)", "version": format!("v{}.{}.0", crate::discovery::KUBE_MAJOR, crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_docs() {
        let reg = Registry::new(ResourceDef::defaults());
        let idx = index(&reg);
        assert!(
            idx["paths"]["apis/packages.glasskube.dev/v1alpha1"]["serverRelativeURL"].is_string()
        );
        assert!(idx["paths"]["api/v1"].is_object());
        let doc = group_version(&reg, "packages.glasskube.dev", "v1alpha1").unwrap();
        let patch = &doc["paths"]["/apis/packages.glasskube.dev/v1alpha1/namespaces/{namespace}/packages/{name}"]
            ["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Package");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(group_version(&reg, "nope", "v1").is_none());
    }
}
