//! kube-rs against apisim: typed and dynamic CRUD, patches, status, errors, discovery.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use apisim::{Server, ServerConfig};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A minimal local stand-in for Glasskube's PackageRepository.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "packages.glasskube.dev",
    version = "v1alpha1",
    kind = "PackageRepository",
    status = "RepoStatus"
)]
pub struct RepoSpec {
    pub url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct RepoStatus {
    #[serde(default)]
    pub message: Option<String>,
}

const SEED: &str = apisim::seed::REPOSITORIES_YAML;

fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("packages.glasskube.dev", "v1alpha1", "PackageRepository"),
        "packagerepositories",
    )
}

fn api_err(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_crud() {
    let s = Server::start(ServerConfig::default().with_seed_yaml(SEED).unwrap())
        .await
        .unwrap();
    let api: Api<PackageRepository> = Api::all(s.client());
    let seeded = api.list(&ListParams::default()).await.unwrap();
    assert!(seeded.items.len() >= 3);
    assert_eq!(
        seeded.metadata.resource_version,
        Some(s.resource_version().to_string())
    );
    let glasskube = api.get("glasskube").await.unwrap();
    assert_eq!(
        glasskube.spec.url,
        "https://packages.dl.glasskube.dev/packages"
    );

    let created = api
        .create(
            &PostParams::default(),
            &PackageRepository::new(
                "mine",
                RepoSpec {
                    url: "https://mine".into(),
                },
            ),
        )
        .await
        .unwrap();
    assert!(created.uid().is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let (code, reason) = api_err(
        api.create(
            &PostParams::default(),
            &PackageRepository::new("mine", RepoSpec { url: "x".into() }),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut changed = created.clone();
    changed.spec.url = "https://mine2".into();
    let replaced = api
        .replace("mine", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    // replacing again with the now stale resourceVersion → 409 Conflict
    let (code, reason) = api_err(
        api.replace("mine", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    let merged = api
        .patch(
            "mine",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.labels().get("a").map(String::as_str), Some("b"));
    let jp: json_patch::Patch = serde_json::from_value(
        json!([{"op": "replace", "path": "/spec/url", "value": "https://jp"}]),
    )
    .unwrap();
    let patched = api
        .patch("mine", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.spec.url, "https://jp");
    let st = api
        .patch_status(
            "mine",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"message": "synced"}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().message.as_deref(), Some("synced"));
    assert_eq!(
        api.get_status("mine")
            .await
            .unwrap()
            .status
            .unwrap()
            .message
            .as_deref(),
        Some("synced")
    );
    // strategic merge is refused for custom resources, as upstream
    let (code, _) = api_err(
        api.patch(
            "mine",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"url": "s"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 415);
    let (code, _) = api_err(
        api.patch(
            "mine",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({"spec": {"url": "s"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 415);

    let labelled = api
        .list(&ListParams::default().labels("a=b"))
        .await
        .unwrap();
    assert_eq!(labelled.items.len(), 1);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=glasskube"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    let deleted = api.delete("mine", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_left());
    let (code, reason) = api_err(api.get("mine").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert!(api.get_opt("mine").await.unwrap().is_none());
    assert_eq!(s.count("delete", "packagerepositories"), 1);
    assert_eq!(s.count("patch", "packagerepositories/status"), 1);
    assert_eq!(s.count("get", "packagerepositories/status"), 1);
}

#[tokio::test]
async fn dynamic_crud_and_pagination() {
    let s = Server::start(ServerConfig::default()).await.unwrap();
    let ar = api_resource();
    let api: Api<DynamicObject> = Api::all_with(s.client(), &ar);
    for i in 0..7 {
        let mut o = DynamicObject::new(&format!("r{i}"), &ar);
        o.data = json!({"spec": {"url": format!("https://r{i}")}});
        api.create(&PostParams::default(), &o).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let page = api.list(&lp).await.unwrap();
    let first_rv = page.metadata.resource_version.clone();
    assert_eq!(page.metadata.remaining_item_count, Some(4));
    names.extend(page.items.iter().map(|o| o.name_any()));
    let mut token = page.metadata.continue_;
    // writes between pages do not show up in the paginated snapshot
    api.delete("r6", &DeleteParams::default()).await.unwrap();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        lp = lp.continue_token(&t);
        let page = api.list(&lp).await.unwrap();
        assert_eq!(page.metadata.resource_version, first_rv);
        names.extend(page.items.iter().map(|o| o.name_any()));
        token = page.metadata.continue_;
    }
    assert_eq!(names, ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]);
    let mut o = api.get("r0").await.unwrap();
    o.data["spec"]["url"] = json!("https://changed");
    let r = api.replace("r0", &PostParams::default(), &o).await.unwrap();
    assert_eq!(r.data["spec"]["url"], "https://changed");
}

#[tokio::test]
async fn discovery_and_version() {
    let s = Server::start(ServerConfig::default()).await.unwrap();
    let client = s.client();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let d = kube::Discovery::new(client).run().await.unwrap();
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk(
            "packages.glasskube.dev",
            "v1alpha1",
            "Package",
        ))
        .unwrap();
    assert_eq!(ar.plural, "packages");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(sr, _)| sr.plural == "status")
    );
}
