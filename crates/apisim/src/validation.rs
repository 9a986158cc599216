//! Structural-schema type checks, as kube-apiserver makes them for custom resources: the
//! Glasskube kinds are validated against the `openAPIV3Schema` of their CRDs (the files under
//! `deploy/crds/`, compiled in) on every create, update and patch that comes through the HTTP
//! API (the result of a patch is what is checked, as upstream does).
//!
//! What is checked: `type` (`string`, `integer`, `number`, `boolean`, `object`, `array`) of
//! every value the schema describes, through `properties`, `additionalProperties` (when it is a
//! schema) and `items`. `null` passes anywhere (the API server prunes it or accepts it as
//! `nullable`). Not checked: `required`, `format`, `enum`, patterns and CEL rules; unknown
//! fields are kept, not pruned. A violation is upstream's `422 Invalid` `Status`, with one
//! cause per wrong value, e.g. `spec.url: Invalid value: "integer": spec.url in body must be of
//! type string: "integer"`.
//!
//! The [`Control`](crate::Control) side doors (`create`, `replace`, `merge_patch`,
//! `side_door_put`, …) are not validated: tests use them to plant objects a server would have
//! refused (objects stored under an older schema, hostile input for decoders).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::errors::{ApiError, Reason};
use crate::resources::{CRDS, ResourceDef};

/// (group, version, kind).
type Gvk = (String, String, String);

/// (group, version, kind) → `openAPIV3Schema`.
type Schemas = HashMap<Gvk, Value>;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut out = Schemas::new();
        for (_, text) in CRDS {
            match crd_schemas(text) {
                Ok(found) => out.extend(found),
                Err(err) => tracing::warn!(%err, "apisim: a compiled-in CRD does not parse"),
            }
        }
        out
    })
}

/// The schemas of one CRD (YAML, possibly with comments and a leading `---`).
fn crd_schemas(text: &str) -> Result<Vec<(Gvk, Value)>, serde_yaml::Error> {
    let crd: Value = serde_yaml::from_str(text)?;
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default();
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    Ok(versions
        .iter()
        .filter_map(|v| {
            let schema = v.pointer("/schema/openAPIV3Schema")?;
            let version = v["name"].as_str()?;
            Some((
                (group.to_owned(), version.to_owned(), kind.to_owned()),
                schema.clone(),
            ))
        })
        .collect())
}

/// Which part of an object a write may change, and so which part is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything (a resource without a `status` subresource).
    Whole,
    /// Everything but `status` (the main resource of a kind with a `status` subresource).
    AllButStatus,
    /// `status` only (the `status` subresource).
    Status,
}

impl Part {
    /// The part a write to the main resource (`status_only` false) or to `/status` validates.
    pub(crate) fn of(def: &ResourceDef, status_only: bool) -> Self {
        match (status_only, def.status_subresource) {
            (true, _) => Part::Status,
            (false, true) => Part::AllButStatus,
            (false, false) => Part::Whole,
        }
    }
}

/// Checks `obj` (of `def`'s kind) against its CRD's schema; `Ok` for kinds without one.
pub(crate) fn validate(def: &ResourceDef, obj: &Value, part: Part) -> Result<(), ApiError> {
    let key = (def.group.clone(), def.version.clone(), def.kind.clone());
    let Some(schema) = schemas().get(&key) else {
        return Ok(());
    };
    let mut causes = Vec::new();
    let (Some(map), Some(properties)) = (obj.as_object(), schema["properties"].as_object()) else {
        return Ok(());
    };
    for (field, value) in map {
        let wanted = match (part, field.as_str()) {
            (Part::Status, f) => f == "status",
            (Part::AllButStatus, f) => f != "status",
            (Part::Whole, _) => true,
        };
        if let (true, Some(sub)) = (wanted, properties.get(field)) {
            check(sub, value, field, &mut causes);
        }
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(invalid(def, name, causes))
}

/// One wrong value: (field path, detail).
type Cause = (String, String);

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        return;
    }
    if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let fits = match wanted {
            "number" => value.is_number(),
            "integer" | "string" | "boolean" | "object" | "array" => actual == wanted,
            _ => true,
        };
        if !fits {
            causes.push((
                path.to_owned(),
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {wanted}: \"{actual}\""
                ),
            ));
            return;
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                let sub = properties.and_then(|p| p.get(key)).or(additional);
                if let Some(sub) = sub {
                    check(sub, v, &format!("{path}.{key}"), causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(sub, v, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

/// Upstream's `422 Invalid` for a custom resource: `Kind.group "name" is invalid: field:
/// detail` (or `[field: detail, …]` for several), one `FieldValueTypeInvalid` cause each.
fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
    let listed: Vec<String> = causes.iter().map(|(f, d)| format!("{f}: {d}")).collect();
    let summary = match listed.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let qualified = k8s_wire::qualified_resource(&def.group, &def.kind);
    ApiError::new(
        Reason::Invalid,
        format!("{qualified} \"{name}\" is invalid: {summary}"),
    )
    .with_details(json!({
        "name": name,
        "group": def.group,
        "kind": def.kind,
        "causes": causes
            .iter()
            .map(|(field, detail)| json!({
                "reason": "FieldValueTypeInvalid",
                "message": detail,
                "field": field,
            }))
            .collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(spec: Value) -> Value {
        json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository",
               "metadata": {"name": "r"}, "spec": spec})
    }

    #[test]
    fn every_glasskube_kind_has_its_schema() {
        for def in ResourceDef::defaults()
            .iter()
            .filter(|d| !d.group.is_empty())
        {
            let key = (def.group.clone(), def.version.clone(), def.kind.clone());
            assert!(schemas().contains_key(&key), "{}", def.kind);
        }
    }

    #[test]
    fn wrong_types_are_refused_with_upstreams_message() {
        let def = ResourceDef::glasskube()
            .into_iter()
            .find(|d| d.kind == "PackageRepository")
            .unwrap();
        let ok = repo(
            json!({"url": "https://x", "auth": {"basic": {"password": "pw", "username": null}}}),
        );
        assert!(validate(&def, &ok, Part::AllButStatus).is_ok());
        let bad =
            repo(json!({"url": 42, "auth": {"basic": {"password": {"redacted": "<redacted>"}}}}));
        let err = validate(&def, &bad, Part::AllButStatus).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "PackageRepository.packages.glasskube.dev \"r\" is invalid: [spec.auth.basic.password: Invalid value: \"object\": spec.auth.basic.password in body must be of type string: \"object\", spec.url: Invalid value: \"integer\": spec.url in body must be of type string: \"integer\"]"
        );
        let causes = &err.details.as_ref().unwrap()["causes"];
        assert_eq!(causes[0]["field"], "spec.auth.basic.password");
        assert_eq!(causes[1]["field"], "spec.url");
        // Arrays, integers and the status part.
        let mut with_status = ok.clone();
        with_status["status"] =
            json!({"conditions": [{"type": "Ready", "observedGeneration": 1.5}]});
        assert!(validate(&def, &with_status, Part::AllButStatus).is_ok());
        let err = validate(&def, &with_status, Part::Status).unwrap_err();
        assert!(
            err.message
                .contains("status.conditions[0].observedGeneration: Invalid value: \"number\""),
            "{}",
            err.message
        );
        // Kinds without a schema are not checked.
        assert!(validate(&ResourceDef::namespaces(), &json!({"spec": 1}), Part::Whole).is_ok());
    }
}
