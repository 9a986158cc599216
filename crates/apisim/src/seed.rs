//! Seed data: multi-document YAML (like `kubectl apply -f` files) into JSON objects.

use serde::Deserialize;
use serde_json::Value;

use crate::errors::Error;

/// The project's sample PackageRepositories (`fixtures/packagerepositories.yaml`, compiled in):
/// `glasskube` (default, Ready True), `private-basic` (Ready True), `inline-basic` (no status),
/// `team-bearer` (Ready False), `team-bearer-ref` (no status). The one place the fixtures are
/// read: the demo, the example operator and every test take them from here.
pub const REPOSITORIES_YAML: &str = include_str!("../../../fixtures/packagerepositories.yaml");
/// The project's sample packages (`fixtures/packages.yaml`, compiled in): two ClusterPackages,
/// one Package and a PackageInfo.
pub const PACKAGES_YAML: &str = include_str!("../../../fixtures/packages.yaml");
/// The project's sample policy (`fixtures/policy.yaml`, compiled in; see [`crate::policy`]):
/// `admin-token` (anything), `relay-token` (reads everything, creates TokenReviews and
/// SubjectAccessReviews), `alice-token` (reads PackageRepositories), `bob-token` (reads Packages
/// in `analytics` and gets the repository `glasskube` by name).
pub const POLICY_YAML: &str = include_str!("../../../fixtures/policy.yaml");

/// Parse multi-document YAML into objects. Empty documents (comments only, `---` at the end)
/// are skipped; a document that is not a mapping is an error, as is a `List` with no items.
/// `kind: List` documents are flattened into their `items`.
pub fn load_seed_yaml(yaml: &str) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let v = Value::deserialize(doc)
            .map_err(|e| Error::SeedYaml(format!("document {}: {e}", i + 1)))?;
        match v {
            Value::Null => {}
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = o.get("items").and_then(Value::as_array).ok_or_else(|| {
                    Error::SeedYaml(format!("document {}: List without items", i + 1))
                })?;
                out.extend(items.iter().cloned());
            }
            Value::Object(_) => out.push(v),
            _ => {
                return Err(Error::SeedYaml(format!(
                    "document {}: not a mapping",
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixtures() {
        let objs = load_seed_yaml(REPOSITORIES_YAML).unwrap();
        assert!(objs.len() >= 3);
        assert!(objs.iter().all(|o| o["kind"] == "PackageRepository"));
        let pk = load_seed_yaml(PACKAGES_YAML).unwrap();
        assert!(pk.iter().any(|o| o["kind"] == "Package"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(load_seed_yaml("a: [").is_err());
        assert!(load_seed_yaml("- 1\n- 2\n").is_err());
        assert!(load_seed_yaml("# nothing\n---\n").unwrap().is_empty());
    }
}
