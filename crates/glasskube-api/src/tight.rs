//! Deserializers that leave decoded collections at exactly the capacity they need.
//!
//! serde's `Vec<T>` visitor starts empty when the format gives no size hint (serde_json reading
//! text never does) and grows by doubling, so a `status.conditions` with one entry ends up with
//! room for four. Objects decoded off the wire live for a long time in caches, where that slack
//! is paid per object; the `Vec` fields of the four kinds' spec and status types therefore use
//! [`vec`] through `#[serde(deserialize_with = "crate::tight::vec")]`. Serialization and the
//! generated schema are unchanged (schemars ignores `deserialize_with`).

use serde::{Deserialize, Deserializer};

/// Deserializes a `Vec<T>` and shrinks it to its length.
pub(crate) fn vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut v = Vec::<T>::deserialize(deserializer)?;
    v.shrink_to_fit();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{ClusterPackage, Package, PackageInfo, PackageRepository};

    fn condition() -> serde_json::Value {
        json!({
            "type": "Ready",
            "status": "True",
            "reason": "SyncCompleted",
            "message": "repository index fetched: 142 packages",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
        })
    }

    fn owned(kind: &str, name: &str) -> serde_json::Value {
        json!({
            "group": "packages.glasskube.dev",
            "version": "v1alpha1",
            "kind": kind,
            "name": name,
        })
    }

    /// Decodes `value` from its JSON text (as a watch stream delivers it: no size hints, unlike
    /// `serde_json::from_value`), checks it encodes back to the same JSON, and returns it.
    fn decode_text<K>(value: &serde_json::Value) -> K
    where
        K: serde::de::DeserializeOwned + serde::Serialize,
    {
        let text = serde_json::to_string(value).unwrap();
        let decoded: K = serde_json::from_str(&text).unwrap();
        assert_eq!(&serde_json::to_value(&decoded).unwrap(), value);
        decoded
    }

    #[test]
    fn package_repository_conditions_have_exact_capacity() {
        let value = json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageRepository",
            "metadata": {"name": "glasskube"},
            "spec": {"url": "https://packages.dl.glasskube.dev/packages"},
            "status": {"conditions": [condition()]},
        });
        let repo: PackageRepository = decode_text(&value);
        let status = repo.status.unwrap();
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions.capacity(), 1);
    }

    #[test]
    fn package_status_vecs_have_exact_capacity() {
        let status = json!({
            "version": "v1.16.1+1",
            "conditions": [condition()],
            "ownedResources": [owned("Deployment", "cert-manager")],
            "ownedPackageInfos": [owned("PackageInfo", "cert-manager--v1.16.1-1")],
            "ownedPackages": [owned("Package", "dep-a"), owned("Package", "dep-b")],
        });
        let spec = json!({"packageInfo": {"name": "cert-manager", "version": "v1.16.1+1"}});
        let pkg: Package = decode_text(&json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "Package",
            "metadata": {"name": "cert-manager", "namespace": "default"},
            "spec": spec,
            "status": status,
        }));
        let cp: ClusterPackage = decode_text(&json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "ClusterPackage",
            "metadata": {"name": "cert-manager"},
            "spec": spec,
            "status": status,
        }));
        for s in [pkg.status.unwrap(), cp.status.unwrap()] {
            assert_eq!(s.conditions.capacity(), 1);
            assert_eq!(s.owned_resources.capacity(), 1);
            assert_eq!(s.owned_package_infos.capacity(), 1);
            assert_eq!(s.owned_packages.len(), 2);
            assert_eq!(s.owned_packages.capacity(), 2);
        }
    }

    #[test]
    fn package_info_conditions_have_exact_capacity() {
        let info: PackageInfo = decode_text(&json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageInfo",
            "metadata": {"name": "cert-manager--v1.16.1-1"},
            "spec": {"name": "cert-manager", "version": "v1.16.1+1", "repositoryUrl": "glasskube"},
            "status": {"conditions": [condition()], "version": "v1.16.1+1"},
        }));
        assert_eq!(info.status.unwrap().conditions.capacity(), 1);
    }

    #[test]
    fn absent_and_empty_vecs_still_decode() {
        let repo: PackageRepository = decode_text(&json!({
            "apiVersion": "packages.glasskube.dev/v1alpha1",
            "kind": "PackageRepository",
            "metadata": {"name": "glasskube"},
            "spec": {"url": "https://packages.dl.glasskube.dev/packages"},
            "status": {},
        }));
        assert!(repo.status.unwrap().conditions.is_empty());
        let text = r#"{"apiVersion":"packages.glasskube.dev/v1alpha1","kind":"PackageRepository",
            "metadata":{"name":"g"},"spec":{"url":"u"},"status":{"conditions":[]}}"#;
        let repo: PackageRepository = serde_json::from_str(text).unwrap();
        assert_eq!(repo.status.unwrap().conditions.capacity(), 0);
    }
}
