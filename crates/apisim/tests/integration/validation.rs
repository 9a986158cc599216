//! Schema validation over the wire: create, update, merge and JSON patches and the status
//! subresource are checked against the CRDs' types (422 Invalid, as kube-apiserver answers);
//! the Control side doors are not.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;
use apisim::{Server, ServerConfig};
use http::Method;
use serde_json::json;

#[tokio::test]
async fn writes_of_the_wrong_type_are_refused_with_422() {
    let s = Server::start(ServerConfig::default()).await.unwrap();
    let a = s.addr();
    assert_eq!(
        post_json(a, PR, &repo("ok", "https://ok.example"))
            .await
            .status,
        201
    );

    // Create.
    let mut bad = repo("bad", "https://bad.example");
    bad["spec"]["auth"] = json!({"basic": {"password": {"redacted": "<redacted>"}}});
    let r = post_json(a, PR, &bad).await;
    assert_eq!(r.status, 422);
    let status = r.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "PackageRepository.packages.glasskube.dev \"bad\" is invalid: spec.auth.basic.password: Invalid value: \"object\": spec.auth.basic.password in body must be of type string: \"object\""
    );
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.auth.basic.password"
    );
    assert_eq!(status["details"]["kind"], "PackageRepository");
    assert_eq!(
        s.get("packagerepositories", None, "bad").unwrap_err().code,
        404
    );

    // Merge patch and JSON patch: the result is checked; the object is unchanged.
    let path = format!("{PR}/ok");
    for (content_type, body) in [
        (
            "application/merge-patch+json",
            json!({"spec": {"url": {"redacted": "x"}}}),
        ),
        (
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/spec/url", "value": 7}]),
        ),
    ] {
        let r = call(
            a,
            Method::PATCH,
            &path,
            Some(content_type),
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(r.status, 422, "{content_type}");
        assert_eq!(r.json()["details"]["causes"][0]["field"], "spec.url");
    }
    // Update.
    let mut current = s.get("packagerepositories", None, "ok").unwrap();
    current["spec"]["auth"] = json!({"bearer": {"token": ["t"]}});
    let r = call(
        a,
        Method::PUT,
        &path,
        Some("application/json"),
        current.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 422);
    // The status subresource checks the status.
    let mut with_status = s.get("packagerepositories", None, "ok").unwrap();
    with_status["status"] = json!({"conditions": [{"type": "Ready", "status": true}]});
    let r = call(
        a,
        Method::PUT,
        &format!("{path}/status"),
        Some("application/json"),
        with_status.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["details"]["causes"][0]["field"],
        "status.conditions[0].status"
    );
    assert_eq!(
        s.get("packagerepositories", None, "ok").unwrap()["spec"]["url"],
        "https://ok.example"
    );
    // Right types pass.
    let r = call(
        a,
        Method::PATCH,
        &path,
        Some("application/merge-patch+json"),
        json!({"spec": {"auth": {"basic": {"password": "pw", "username": null}}}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);

    // The side doors plant what the server would refuse (hostile-input tests need them).
    s.merge_patch(
        "packagerepositories",
        None,
        "ok",
        &json!({"spec": {"url": 42}}),
    )
    .unwrap();
    assert_eq!(
        s.get("packagerepositories", None, "ok").unwrap()["spec"]["url"],
        42
    );
}
