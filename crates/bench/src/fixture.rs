//! Realistic `PackageRepository` objects, as a real cluster would serve them.
//!
//! Every object carries what the API server and `kubectl apply` put on one: name, uid,
//! resourceVersion, generation, creationTimestamp, a handful of labels, annotations including
//! `kubectl.kubernetes.io/last-applied-configuration`, a spec with a URL and basic auth through
//! Secret references, and a `Ready` status condition. managedFields are left out (clients that
//! cache objects usually strip them). About 1.3 KB of JSON per object.

use std::collections::BTreeMap;

use glasskube_api::condition::{READY, REASON_SYNC_COMPLETED, Time, new_condition};
use glasskube_api::{
    PackageRepository, PackageRepositoryAuthSpec, PackageRepositoryBasicAuthSpec,
    PackageRepositorySpec, PackageRepositoryStatus, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

/// The name of object `i` (stable across versions of the object).
pub fn name(i: usize) -> String {
    format!("packages-mirror-{i:05}.eu-central")
}

/// Object `i` at resourceVersion `rv`, as a reflector receives it: decoded from its JSON, so that
/// its strings and collections are allocated exactly as serde allocates them off the wire.
pub fn repository(i: usize, rv: u64) -> PackageRepository {
    let built = build(i, rv);
    serde_json::to_vec(&built)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or(built)
}

/// Object `i` at resourceVersion `rv`, built in memory.
fn build(i: usize, rv: u64) -> PackageRepository {
    let name = name(i);
    let url = format!("https://packages-{i:05}.mirrors.example.org/glasskube/packages/index");
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "glasskube".to_owned(),
        ),
        (
            "app.kubernetes.io/part-of".to_owned(),
            "package-mirrors".to_owned(),
        ),
        (
            "mirrors.example.org/region".to_owned(),
            "eu-central-1".to_owned(),
        ),
        (
            "mirrors.example.org/tier".to_owned(),
            format!("tier-{}", i % 3),
        ),
    ]);
    let last_applied = format!(
        concat!(
            r#"{{"apiVersion":"packages.glasskube.dev/v1alpha1","kind":"PackageRepository","#,
            r#""metadata":{{"annotations":{{}},"labels":{{"app.kubernetes.io/managed-by":"glasskube"}},"#,
            r#""name":"{name}"}},"spec":{{"url":"{url}","auth":{{"basic":{{"usernameSecretRef":"#,
            r#"{{"name":"{name}-credentials","key":"username"}},"passwordSecretRef":"#,
            r#"{{"name":"{name}-credentials","key":"password"}}}}}}}}}}"#
        ),
        name = name,
        url = url
    );
    let annotations = BTreeMap::from([
        (
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            last_applied,
        ),
        (
            "mirrors.example.org/owner".to_owned(),
            "platform-team@example.org".to_owned(),
        ),
    ]);
    let secret = |key: &str| SecretKeySelector {
        name: format!("{name}-credentials"),
        key: key.to_owned(),
        optional: None,
    };
    let created = Time(Timestamp::from_second(1_735_689_600 + i as i64).unwrap_or_default());
    PackageRepository {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            uid: Some(format!(
                "3f6e0c2a-{:04x}-4b1d-9a7e-{:012x}",
                i % 0x1_0000,
                i as u64 * 7919
            )),
            resource_version: Some(rv.to_string()),
            generation: Some(1 + (rv % 7) as i64),
            creation_timestamp: Some(created.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: PackageRepositorySpec {
            url,
            auth: Some(PackageRepositoryAuthSpec {
                basic: Some(PackageRepositoryBasicAuthSpec {
                    username_secret_ref: Some(secret("username")),
                    password_secret_ref: Some(secret("password")),
                    ..PackageRepositoryBasicAuthSpec::default()
                }),
                bearer: None,
            }),
        },
        status: Some(PackageRepositoryStatus {
            conditions: vec![new_condition(
                READY,
                true,
                REASON_SYNC_COMPLETED,
                "repository index fetched: 142 packages",
                created,
            )],
        }),
    }
}

/// Objects `0..n`, each at a distinct resourceVersion starting at `first_rv`.
pub fn repositories(n: usize, first_rv: u64) -> Vec<PackageRepository> {
    (0..n).map(|i| repository(i, first_rv + i as u64)).collect()
}

/// The JSON size of one fixture object, in bytes (for the report).
pub fn json_size() -> usize {
    serde_json::to_vec(&build(42, 1_000_042)).map_or(0, |v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_realistic_and_distinct() {
        let objs = repositories(3, 10);
        assert_eq!(objs[1].metadata.name.as_deref(), Some(name(1).as_str()));
        assert_ne!(objs[0].metadata.uid, objs[1].metadata.uid);
        assert_eq!(objs[2].metadata.resource_version.as_deref(), Some("12"));
        assert_eq!(objs[0].is_ready(), Some(true));
        let size = json_size();
        assert!(
            (900..3000).contains(&size),
            "fixture is {size} bytes of JSON"
        );
    }
}
