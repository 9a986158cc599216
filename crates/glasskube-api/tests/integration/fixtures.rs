//! Every sample object in the repository's `fixtures/*.yaml` decodes into its typed kind and
//! encodes back to exactly the same JSON (no field lost, none added).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use glasskube_api::{ClusterPackage, HasConditions, Package, PackageInfo, PackageRepository};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const FIXTURES: &[(&str, &str)] = &[
    ("packagerepositories.yaml", apisim::seed::REPOSITORIES_YAML),
    ("packages.yaml", apisim::seed::PACKAGES_YAML),
];

/// All documents of all fixture files, as JSON.
fn documents() -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for (file, text) in FIXTURES {
        for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let yaml = serde_yaml::Value::deserialize(de).unwrap();
            let json = serde_json::to_value(yaml).unwrap();
            let name = json["metadata"]["name"].as_str().unwrap_or("?");
            docs.push((format!("{file}#{i} ({name})"), json));
        }
    }
    docs
}

fn round_trip<K: DeserializeOwned + serde::Serialize>(what: &str, doc: &Value) -> K {
    let typed: K = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what}: does not decode: {e}"));
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(&again, doc, "{what}: round trip changed the object");
    typed
}

fn repositories() -> Vec<PackageRepository> {
    documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] == "PackageRepository")
        .map(|(_, d)| serde_json::from_value(d).unwrap())
        .collect()
}

fn repository(name: &str) -> PackageRepository {
    repositories()
        .into_iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no fixture repository {name}"))
}

#[test]
fn every_fixture_round_trips() {
    let docs = documents();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (what, doc) in &docs {
        assert_eq!(doc["apiVersion"], glasskube_api::API_VERSION, "{what}");
        let kind = doc["kind"].as_str().unwrap().to_owned();
        match kind.as_str() {
            "PackageRepository" => drop(round_trip::<PackageRepository>(what, doc)),
            "Package" => drop(round_trip::<Package>(what, doc)),
            "ClusterPackage" => drop(round_trip::<ClusterPackage>(what, doc)),
            "PackageInfo" => drop(round_trip::<PackageInfo>(what, doc)),
            other => panic!("{what}: unexpected kind {other}"),
        }
        *counts.entry(kind).or_default() += 1;
    }
    // Guard against a fixture silently dropping out of the loop.
    assert_eq!(counts["PackageRepository"], 5);
    assert_eq!(counts["ClusterPackage"], 2);
    assert_eq!(counts["Package"], 1);
    assert_eq!(counts["PackageInfo"], 1);
}

#[test]
fn typed_fields_of_packages() {
    let docs = documents();
    let find = |name: &str| {
        docs.iter()
            .find(|(_, d)| d["metadata"]["name"] == name)
            .unwrap()
            .1
            .clone()
    };

    let cm: ClusterPackage = serde_json::from_value(find("cert-manager")).unwrap();
    assert_eq!(cm.spec.package_info.version, "v1.16.1+1");
    assert_eq!(cm.repository_name(), Some("glasskube"));

    let dash: ClusterPackage = serde_json::from_value(find("kubernetes-dashboard")).unwrap();
    assert_eq!(
        dash.repository_name(),
        None,
        "no repositoryName means the default repository"
    );

    let qw: Package = serde_json::from_value(find("my-quickwit")).unwrap();
    assert_eq!(qw.metadata.namespace.as_deref(), Some("analytics"));
    assert_eq!(qw.repository_name(), Some("private-basic"));
    assert_eq!(qw.spec.values["replicas"].value.as_deref(), Some("2"));
    let bucket = qw.spec.values["bucket"].value_from.as_ref().unwrap();
    let cm_ref = bucket.config_map_ref.as_ref().unwrap();
    assert_eq!(
        (cm_ref.name.as_str(), cm_ref.key.as_str()),
        ("quickwit-settings", "bucket")
    );
    assert_eq!(qw.spec.suspend, Some(false));
    assert!(!qw.spec.is_suspended());

    let pi: PackageInfo = serde_json::from_value(find("cert-manager--v1.16.1-1")).unwrap();
    assert_eq!(pi.repository_name(), Some("glasskube"));
    assert_eq!(pi.is_ready(), Some(true));
    let status = pi.status.as_ref().unwrap();
    assert!(
        status
            .resolved_url
            .as_deref()
            .unwrap()
            .ends_with("/package.yaml")
    );
    assert!(status.last_update_timestamp.is_some());
}

#[test]
fn status_with_owned_refs_and_manifest_round_trips() {
    let doc = serde_json::json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1",
        "kind": "ClusterPackage",
        "metadata": {"name": "p"},
        "spec": {"packageInfo": {"name": "p", "version": "v1"}, "suspend": true,
                 "values": {"a": {"valueFrom": {"packageRef": {"name": "q", "value": "b"}}},
                            "s": {"valueFrom": {"secretRef": {"name": "s", "key": "k"}}}}},
        "status": {
            "version": "v1",
            "ownedResources": [
                {"group": "", "version": "v1", "kind": "ConfigMap", "name": "c", "namespace": "ns"},
                {"group": "apps", "version": "v1", "kind": "Deployment", "name": "d",
                 "namespace": "ns", "markedForDeletion": true}
            ],
            "ownedPackageInfos": [{"group": "packages.glasskube.dev", "version": "v1alpha1",
                                   "kind": "PackageInfo", "name": "p--v1"}],
            "ownedPackages": [{"group": "packages.glasskube.dev", "version": "v1alpha1",
                               "kind": "Package", "name": "q", "namespace": "x"}]
        }
    });
    let cp: ClusterPackage = round_trip("ClusterPackage with status", &doc);
    let status = cp.status.unwrap();
    assert_eq!(status.owned_resources[1].marked_for_deletion, Some(true));
    assert_eq!(status.owned_resources[0].group.as_deref(), Some(""));

    let pi = serde_json::json!({
        "apiVersion": "packages.glasskube.dev/v1alpha1",
        "kind": "PackageInfo",
        "metadata": {"name": "p--v1"},
        "spec": {"name": "p"},
        "status": {"manifest": {"name": "p", "dependencies": [{"name": "q", "version": "v1"}],
                                "helm": {"chartName": "p", "values": {"x": 1}}}}
    });
    let _: PackageInfo = round_trip("PackageInfo with manifest", &pi);
}

#[test]
fn default_repository_annotation() {
    let default: Vec<_> = repositories()
        .into_iter()
        .filter(PackageRepository::is_default)
        .filter_map(|r| r.metadata.name)
        .collect();
    assert_eq!(default, vec!["glasskube".to_owned()]);

    let mut repo = repository("glasskube");
    for (value, expected) in [
        ("false", false),
        ("True", false),
        ("", false),
        ("true", true),
    ] {
        repo.metadata.annotations.as_mut().unwrap().insert(
            glasskube_api::DEFAULT_REPOSITORY_ANNOTATION.to_owned(),
            value.to_owned(),
        );
        assert_eq!(repo.is_default(), expected, "annotation value {value:?}");
    }
    repo.metadata.annotations = None;
    assert!(!repo.is_default());
}

#[test]
fn ready_condition() {
    let ok = repository("glasskube");
    let cond = ok.ready_condition().unwrap();
    assert_eq!(cond.reason, glasskube_api::condition::REASON_SYNC_COMPLETED);
    assert_eq!(cond.message, "repo has 20 packages");
    assert_eq!(ok.is_ready(), Some(true));

    let failed = repository("team-bearer");
    assert_eq!(failed.is_ready(), Some(false));
    assert_eq!(
        failed.ready_condition().unwrap().reason,
        glasskube_api::condition::REASON_SYNC_FAILED
    );

    let no_status = repository("inline-basic");
    assert!(no_status.ready_condition().is_none());
    assert_eq!(no_status.is_ready(), None);
    // The trait gives the same answers.
    assert_eq!(HasConditions::is_ready(&ok), Some(true));
    assert_eq!(HasConditions::conditions(&no_status).len(), 0);
}
