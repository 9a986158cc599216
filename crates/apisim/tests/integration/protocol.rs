//! The wire protocol over raw HTTP: discovery, verbs, resourceVersion semantics, pagination,
//! selectors, watch semantics and malformed input.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use crate::common::*;
use apisim::{ResourceDef, Server, ServerConfig};
use http::{Method, StatusCode};
use serde_json::json;

async fn server() -> apisim::ServerHandle {
    Server::start(ServerConfig::default().with_bookmark_interval(Duration::from_millis(50)))
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_documents() {
    let s = server().await;
    let a = s.addr();
    let v = get(a, "/version").await.json();
    assert_eq!(v["major"], "1");
    assert_eq!(get(a, "/api").await.json()["versions"][0], "v1");
    let apis = get(a, "/apis").await.json();
    assert_eq!(apis["kind"], "APIGroupList");
    assert_eq!(apis["groups"][0]["name"], "packages.glasskube.dev");
    assert_eq!(
        get(a, "/apis/packages.glasskube.dev").await.json()["kind"],
        "APIGroup"
    );
    let rl = get(a, "/apis/packages.glasskube.dev/v1alpha1").await.json();
    assert_eq!(rl["groupVersion"], "packages.glasskube.dev/v1alpha1");
    let names: Vec<&str> = rl["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "packagerepositories",
        "packagerepositories/status",
        "packages",
        "clusterpackages",
        "packageinfos",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(
        get(a, "/api/v1").await.json()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "namespaces")
    );
    assert_eq!(get(a, "/apis/nope.example.com/v1").await.status, 404);
    // aggregated discovery requested → legacy JSON, so clients fall back
    let stream = tokio::net::TcpStream::connect(a).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/apis")
        .header("host", a.to_string())
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let r = sender.send_request(req).await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    for h in ["/healthz", "/readyz", "/livez"] {
        let r = get(a, h).await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"ok");
    }
    assert_eq!(get(a, "/openapi/v2").await.status, 404);
    assert_eq!(get(a, "/openapi/v3").await.status, 200);
    assert_eq!(
        get(a, "/openapi/v3/apis/packages.glasskube.dev/v1alpha1")
            .await
            .status,
        200
    );
    assert_eq!(s.count("discovery", ""), 14);
}

#[tokio::test]
async fn create_get_replace_delete() {
    let s = server().await;
    let a = s.addr();
    let r = post_json(a, PR, &repo("a", "https://a")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let created = r.json();
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert_eq!(created["metadata"]["generation"], 1);
    let rv1 = rv_of(&created);

    let dup = post_json(a, PR, &repo("a", "https://a")).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["reason"], "AlreadyExists");
    assert_eq!(dup.json()["details"]["name"], "a");

    let got = get(a, &format!("{PR}/a")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), created);
    let missing = get(a, &format!("{PR}/zz")).await;
    assert_eq!(missing.status, 404);
    let st = missing.json();
    assert_eq!(
        (
            st["kind"].as_str(),
            st["reason"].as_str(),
            st["code"].as_u64()
        ),
        (Some("Status"), Some("NotFound"), Some(404))
    );
    assert_eq!(
        st["details"],
        json!({"name": "zz", "group": "packages.glasskube.dev", "kind": "packagerepositories"})
    );

    // PUT with the current resourceVersion: spec change bumps generation
    let mut upd = created.clone();
    upd["spec"]["url"] = json!("https://a2");
    let put = call(
        a,
        Method::PUT,
        &format!("{PR}/a"),
        Some("application/json"),
        upd.to_string().as_bytes(),
    )
    .await;
    assert_eq!(put.status, 200);
    let put = put.json();
    assert_eq!(put["metadata"]["generation"], 2);
    assert!(rv_of(&put) > rv1);
    // stale resourceVersion → 409 Conflict
    let stale = call(
        a,
        Method::PUT,
        &format!("{PR}/a"),
        Some("application/json"),
        upd.to_string().as_bytes(),
    )
    .await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.json()["reason"], "Conflict");
    // PUT without resourceVersion is unconditional
    let mut uncond = repo("a", "https://a3");
    uncond["metadata"]["labels"] = json!({"x": "1"});
    let r = call(
        a,
        Method::PUT,
        &format!("{PR}/a"),
        Some("application/json"),
        uncond.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["uid"], created["metadata"]["uid"]);
    // PUT of a missing object → 404
    let r = call(
        a,
        Method::PUT,
        &format!("{PR}/nope"),
        Some("application/json"),
        repo("nope", "u").to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 404);
    // name mismatch → 400
    let r = call(
        a,
        Method::PUT,
        &format!("{PR}/a"),
        Some("application/json"),
        repo("b", "u").to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);

    let del = call(a, Method::DELETE, &format!("{PR}/a"), None, b"").await;
    assert_eq!(del.status, 200);
    assert_eq!(del.json()["metadata"]["name"], "a");
    assert_eq!(get(a, &format!("{PR}/a")).await.status, 404);
    assert_eq!(
        call(a, Method::DELETE, &format!("{PR}/a"), None, b"")
            .await
            .status,
        404
    );
    assert_eq!(s.count("create", "packagerepositories"), 2);
    assert_eq!(s.count("update", "packagerepositories"), 5);
    assert_eq!(s.count("delete", "packagerepositories"), 2);
}

#[tokio::test]
async fn status_subresource_and_patches() {
    let s = server().await;
    let a = s.addr();
    let mut body = repo("a", "https://a");
    body["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    let created = post_json(a, PR, &body).await.json();
    assert!(
        created.get("status").is_none(),
        "status is dropped on create for kinds with a status subresource"
    );

    let merge = |p: serde_json::Value, path: String| async move {
        call(
            a,
            Method::PATCH,
            &path,
            Some("application/merge-patch+json"),
            p.to_string().as_bytes(),
        )
        .await
    };
    // status through /status: no generation bump
    let r = merge(json!({"status": {"phase": "ok"}}), format!("{PR}/a/status")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"]["phase"], "ok");
    assert_eq!(r.json()["metadata"]["generation"], 1);
    // spec through /status is ignored
    let r = merge(
        json!({"spec": {"url": "https://evil"}}),
        format!("{PR}/a/status"),
    )
    .await;
    assert_eq!(r.json()["spec"]["url"], "https://a");
    // status through the main resource is ignored; spec bumps generation
    let r = merge(
        json!({"spec": {"url": "https://b"}, "status": {"phase": "nope"}}),
        format!("{PR}/a"),
    )
    .await;
    assert_eq!(r.json()["status"]["phase"], "ok");
    assert_eq!(r.json()["spec"]["url"], "https://b");
    assert_eq!(r.json()["metadata"]["generation"], 2);
    // GET /status returns the object
    assert_eq!(
        get(a, &format!("{PR}/a/status")).await.json()["status"]["phase"],
        "ok"
    );
    // JSON patch
    let jp = json!([{"op": "replace", "path": "/spec/url", "value": "https://c"}, {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}]);
    let r = call(
        a,
        Method::PATCH,
        &format!("{PR}/a"),
        Some("application/json-patch+json"),
        jp.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["url"], "https://c");
    assert_eq!(r.json()["metadata"]["labels"]["k"], "v");
    // failing JSON patch test op → 422
    let jp = json!([{"op": "test", "path": "/spec/url", "value": "nope"}]);
    let r = call(
        a,
        Method::PATCH,
        &format!("{PR}/a"),
        Some("application/json-patch+json"),
        jp.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 422);
    // merge patch with a stale resourceVersion → 409
    let r = merge(
        json!({"metadata": {"resourceVersion": "1"}, "spec": {"url": "x"}}),
        format!("{PR}/a"),
    )
    .await;
    assert_eq!(r.status, 409);
    // no-op patch: no new resourceVersion
    let before = s.resource_version();
    let r = merge(json!({"spec": {"url": "https://c"}}), format!("{PR}/a")).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.resource_version(), before);
    // unsupported patch types → 415
    for ct in [
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "text/plain",
    ] {
        let r = call(a, Method::PATCH, &format!("{PR}/a"), Some(ct), b"{}").await;
        assert_eq!(r.status, 415, "{ct}");
        assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    }
    // status subresource on a kind without one → 404
    let s2 = Server::start(ServerConfig::default().with_resource(ResourceDef::config_maps()))
        .await
        .unwrap();
    let cm = "/api/v1/namespaces/default/configmaps";
    let r = post_json(s2.addr(), cm, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["metadata"]["namespace"], "default");
    assert_eq!(get(s2.addr(), &format!("{cm}/c/status")).await.status, 404);
    assert_eq!(
        get(s2.addr(), "/api/v1/configmaps").await.json()["items"][0]["data"]["k"],
        "v"
    );
}

#[tokio::test]
async fn malformed_input_is_rejected_not_fatal() {
    let s = server().await;
    let a = s.addr();
    let bad = |status: StatusCode, reason: &str, r: &Resp| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let st = r.json();
        assert_eq!(st["kind"], "Status");
        assert_eq!(st["reason"], reason);
        assert!(!st["message"].as_str().unwrap().is_empty());
    };
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &call(a, Method::POST, PR, Some("application/json"), b"{not json").await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &call(a, Method::POST, PR, Some("application/json"), b"[1,2]").await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &post_json(a, PR, &json!({"metadata": {"name": "x"}})).await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &post_json(
            a,
            PR,
            &json!({"apiVersion": "v1", "kind": "PackageRepository", "metadata": {"name": "x"}}),
        )
        .await,
    );
    bad(StatusCode::BAD_REQUEST, "BadRequest", &post_json(a, PR, &json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "Package", "metadata": {"name": "x"}})).await);
    bad(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &post_json(a, PR, &json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "PackageRepository", "metadata": {}})).await);
    bad(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &post_json(a, PR, &repo("UPPER_case", "u")).await,
    );
    bad(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        &call(
            a,
            Method::POST,
            PR,
            Some("application/vnd.kubernetes.protobuf"),
            b"x",
        )
        .await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &get(a, &format!("{PR}?labelSelector=a%20in%20b")).await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &get(a, &format!("{PR}?fieldSelector=spec.url%3Dx")).await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &get(a, &format!("{PR}?watch=true&labelSelector=!!")).await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &get(a, &format!("{PR}?limit=abc")).await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &get(a, &format!("{PR}?resourceVersion=abc")).await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &get(a, &format!("{PR}?continue=%%%")).await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &get(a, &format!("{PR}?watch=1&timeoutSeconds=-1")).await,
    );
    bad(
        StatusCode::NOT_FOUND,
        "NotFound",
        &get(a, "/apis/packages.glasskube.dev/v1alpha1/widgets").await,
    );
    bad(
        StatusCode::NOT_FOUND,
        "NotFound",
        &get(
            a,
            "/apis/packages.glasskube.dev/v1alpha1/namespaces/x/packagerepositories",
        )
        .await,
    );
    bad(
        StatusCode::NOT_FOUND,
        "NotFound",
        &get(a, "/apis/packages.glasskube.dev/v1alpha1/packages/p").await,
    );
    bad(
        StatusCode::NOT_FOUND,
        "NotFound",
        &get(a, &format!("{PR}/a/b/c/d")).await,
    );
    bad(
        StatusCode::NOT_FOUND,
        "NotFound",
        &get(a, &format!("{PR}/a/scale")).await,
    );
    bad(
        StatusCode::NOT_FOUND,
        "NotFound",
        &get(a, "/nothing/here").await,
    );
    bad(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &call(a, Method::PUT, PR, Some("application/json"), b"{}").await,
    );
    bad(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &call(
            a,
            Method::POST,
            &format!("{PR}/a"),
            Some("application/json"),
            b"{}",
        )
        .await,
    );
    bad(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &call(a, Method::POST, "/apis", None, b"").await,
    );
    bad(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &call(
            a,
            Method::POST,
            "/apis/packages.glasskube.dev/v1alpha1/packages",
            Some("application/json"),
            b"{}",
        )
        .await,
    );
    post_json(a, PR, &repo("a", "u")).await;
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &call(
            a,
            Method::PATCH,
            &format!("{PR}/a"),
            Some("application/merge-patch+json"),
            b"{oops",
        )
        .await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &call(
            a,
            Method::PATCH,
            &format!("{PR}/a"),
            Some("application/json-patch+json"),
            b"{\"op\":1}",
        )
        .await,
    );
    bad(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &call(
            a,
            Method::DELETE,
            &format!("{PR}/a"),
            Some("application/json"),
            b"{bad",
        )
        .await,
    );
    bad(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &call(
            a,
            Method::POST,
            PR,
            Some("application/json"),
            &vec![b' '; 4 * 1024 * 1024],
        )
        .await,
    );
    // the server is still fine
    assert_eq!(get(a, &format!("{PR}/a")).await.status, 200);
}

#[tokio::test]
async fn list_resource_version_semantics() {
    let s = server().await;
    let a = s.addr();
    for n in ["a", "b"] {
        post_json(a, PR, &repo(n, "u")).await;
    }
    let cur = s.resource_version();
    let l = get(a, PR).await.json();
    assert_eq!(l["kind"], "PackageRepositoryList");
    assert_eq!(l["apiVersion"], "packages.glasskube.dev/v1alpha1");
    assert_eq!(rv_of(&l), cur);
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    assert_eq!(get(a, &format!("{PR}?resourceVersion=0")).await.status, 200);
    assert_eq!(
        get(
            a,
            &format!("{PR}?resourceVersion=0&resourceVersionMatch=NotOlderThan")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(
            a,
            &format!("{PR}?resourceVersion={cur}&resourceVersionMatch=Exact")
        )
        .await
        .status,
        200
    );
    let old = get(
        a,
        &format!("{PR}?resourceVersion=1&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(old.status, 410);
    assert_eq!(old.json()["reason"], "Expired");
    let fut = get(
        a,
        &format!(
            "{PR}?resourceVersion={}&resourceVersionMatch=NotOlderThan",
            cur + 10
        ),
    )
    .await;
    assert_eq!(fut.status, 504);
    assert_eq!(fut.json()["reason"], "Timeout");
    assert_eq!(
        get(a, &format!("{PR}?resourceVersionMatch=Exact"))
            .await
            .status,
        422
    );
    assert_eq!(
        get(
            a,
            &format!("{PR}?resourceVersion=0&resourceVersionMatch=Exact")
        )
        .await
        .status,
        422
    );
    assert_eq!(
        get(
            a,
            &format!("{PR}?resourceVersion=1&resourceVersionMatch=Sometimes")
        )
        .await
        .status,
        422
    );
    // kube-rs sends a leading '&'
    assert_eq!(
        get(a, &format!("{PR}?&limit=1")).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn pagination_over_http() {
    let s = server().await;
    let a = s.addr();
    for i in 0..5 {
        post_json(a, PR, &repo(&format!("r{i}"), "u")).await;
    }
    let p1 = get(a, &format!("{PR}?limit=2")).await.json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    let tok = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // a write between pages is invisible to the paginated list
    call(a, Method::DELETE, &format!("{PR}/r4"), None, b"").await;
    let p2 = get(a, &format!("{PR}?limit=2&continue={tok}")).await.json();
    assert_eq!(
        p2["metadata"]["resourceVersion"],
        p1["metadata"]["resourceVersion"]
    );
    let tok2 = p2["metadata"]["continue"].as_str().unwrap().to_string();
    let p3 = get(a, &format!("{PR}?limit=2&continue={tok2}"))
        .await
        .json();
    assert_eq!(p3["items"][0]["metadata"]["name"], "r4");
    assert!(p3["metadata"].get("continue").is_none());
    // with a selector remainingItemCount is unset, as upstream
    let sel = get(
        a,
        &format!("{PR}?limit=1&fieldSelector=metadata.name!%3Dr0"),
    )
    .await
    .json();
    assert!(sel["metadata"].get("remainingItemCount").is_none());
    assert!(sel["metadata"]["continue"].is_string());
    // resourceVersion together with continue → 422
    let p = get(a, &format!("{PR}?limit=1")).await.json();
    let t = p["metadata"]["continue"].as_str().unwrap().to_string();
    assert_eq!(
        get(a, &format!("{PR}?limit=1&continue={t}&resourceVersion=1"))
            .await
            .status,
        422
    );
    // compaction expires tokens
    s.compact();
    let gone = get(a, &format!("{PR}?limit=1&continue={t}")).await;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.json()["reason"], "Expired");
    assert_eq!(
        get(a, &format!("{PR}?limit=1&continue=999.1")).await.status,
        410
    );
}

#[tokio::test]
async fn selectors_and_namespaces_on_list() {
    let s = server().await;
    let a = s.addr();
    let pkgs = "/apis/packages.glasskube.dev/v1alpha1";
    for (ns, name, app) in [
        ("one", "p1", "web"),
        ("one", "p2", "db"),
        ("two", "p3", "web"),
    ] {
        let body = json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "Package",
                          "metadata": {"name": name, "labels": {"app": app}}, "spec": {}});
        assert_eq!(
            post_json(a, &format!("{pkgs}/namespaces/{ns}/packages"), &body)
                .await
                .status,
            201
        );
    }
    let names = |v: serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(get(a, &format!("{pkgs}/packages")).await.json()),
        ["p1", "p2", "p3"]
    );
    assert_eq!(
        names(
            get(a, &format!("{pkgs}/namespaces/one/packages"))
                .await
                .json()
        ),
        ["p1", "p2"]
    );
    assert_eq!(
        names(
            get(a, &format!("{pkgs}/packages?labelSelector=app%3Dweb"))
                .await
                .json()
        ),
        ["p1", "p3"]
    );
    assert_eq!(
        names(
            get(
                a,
                &format!("{pkgs}/packages?labelSelector=app%20notin%20(web)")
            )
            .await
            .json()
        ),
        ["p2"]
    );
    assert_eq!(
        names(
            get(
                a,
                &format!("{pkgs}/packages?fieldSelector=metadata.namespace%3D%3Dtwo")
            )
            .await
            .json()
        ),
        ["p3"]
    );
    assert_eq!(
        get(a, &format!("{pkgs}/namespaces/one/packages/p1"))
            .await
            .status,
        200
    );
    assert_eq!(
        get(a, &format!("{pkgs}/namespaces/two/packages/p1"))
            .await
            .status,
        404
    );
    // body namespace must match the URL
    let body = json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "Package", "metadata": {"name": "x", "namespace": "two"}});
    assert_eq!(
        post_json(a, &format!("{pkgs}/namespaces/one/packages"), &body)
            .await
            .status,
        400
    );
    // generateName and dryRun
    let generated = json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "Package", "metadata": {"generateName": "auto-"}});
    let r = post_json(a, &format!("{pkgs}/namespaces/one/packages"), &generated)
        .await
        .json();
    assert!(r["metadata"]["name"].as_str().unwrap().starts_with("auto-"));
    let rv = s.resource_version();
    let dry = post_json(a, &format!("{pkgs}/namespaces/one/packages?dryRun=All"), &json!({"apiVersion": "packages.glasskube.dev/v1alpha1", "kind": "Package", "metadata": {"name": "dry"}})).await;
    assert_eq!(dry.status, 201);
    assert_eq!(s.resource_version(), rv);
    assert_eq!(
        get(a, &format!("{pkgs}/namespaces/one/packages/dry"))
            .await
            .status,
        404
    );
    // deletecollection with a selector
    let r = call(
        a,
        Method::DELETE,
        &format!("{pkgs}/namespaces/one/packages?labelSelector=app%3Dweb"),
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(names(r.json()), ["p1"]);
    assert_eq!(s.count("deletecollection", "packages"), 1);
}

#[tokio::test]
async fn finalizers_over_http() {
    let s = server().await;
    let a = s.addr();
    let mut body = repo("f", "u");
    body["metadata"]["finalizers"] = json!(["example.com/hold"]);
    post_json(a, PR, &body).await;
    let mut w = Watch::open(
        a,
        &format!("{PR}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await;
    let d = call(a, Method::DELETE, &format!("{PR}/f"), None, b"").await;
    assert_eq!(d.status, 200);
    assert!(d.json()["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(get(a, &format!("{PR}/f")).await.status, 200);
    let ev = w.next_event(false).await;
    assert_eq!(ev["type"], "MODIFIED");
    assert!(ev["object"]["metadata"]["deletionTimestamp"].is_string());
    // a second delete is idempotent
    assert_eq!(
        call(a, Method::DELETE, &format!("{PR}/f"), None, b"")
            .await
            .status,
        200
    );
    let p = call(
        a,
        Method::PATCH,
        &format!("{PR}/f"),
        Some("application/merge-patch+json"),
        br#"{"metadata":{"finalizers":null}}"#,
    )
    .await;
    assert_eq!(p.status, 200);
    let ev = w.next_event(false).await;
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(rv_of(&ev["object"]), s.resource_version());
    assert_eq!(get(a, &format!("{PR}/f")).await.status, 404);
    // delete preconditions
    post_json(a, PR, &repo("g", "u")).await;
    let r = call(
        a,
        Method::DELETE,
        &format!("{PR}/g"),
        Some("application/json"),
        br#"{"preconditions":{"resourceVersion":"1"}}"#,
    )
    .await;
    assert_eq!(r.status, 409);
}

#[tokio::test]
async fn watch_initial_state_live_events_and_deleted_rv() {
    let s = server().await;
    let a = s.addr();
    post_json(a, PR, &repo("a", "u")).await;
    post_json(a, PR, &repo("b", "u")).await;
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert_eq!(w.status, 200);
    assert_eq!(w.headers["content-type"], "application/json");
    assert_eq!(w.headers["transfer-encoding"], "chunked");
    let e1 = w.next_event(false).await;
    let e2 = w.next_event(false).await;
    assert_eq!((e1["type"].as_str(), name_of(&e1)), (Some("ADDED"), "a"));
    assert_eq!((e2["type"].as_str(), name_of(&e2)), (Some("ADDED"), "b"));
    s.merge_patch(
        "packagerepositories",
        None,
        "a",
        &json!({"spec": {"url": "v"}}),
    )
    .unwrap();
    let e = w.next_event(false).await;
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["spec"]["url"], "v");
    let deleted = call(a, Method::DELETE, &format!("{PR}/b"), None, b"")
        .await
        .json();
    let e = w.next_event(false).await;
    assert_eq!(e["type"], "DELETED");
    assert_eq!(rv_of(&e["object"]), s.resource_version());
    assert_eq!(rv_of(&deleted), s.resource_version());
    // watch=1 and the legacy /watch/ path work too
    let mut w1 = Watch::open(a, &format!("{PR}?watch=1")).await;
    assert_eq!(name_of(&w1.next_event(false).await), "a");
    let mut w2 = Watch::open(
        a,
        "/apis/packages.glasskube.dev/v1alpha1/watch/packagerepositories",
    )
    .await;
    assert_eq!(name_of(&w2.next_event(false).await), "a");
    assert_eq!(s.count("watch", "packagerepositories"), 3);
}

#[tokio::test]
async fn watch_resume_from_history_and_too_old() {
    let s = Server::start(ServerConfig::default().with_history_size(3))
        .await
        .unwrap();
    let a = s.addr();
    post_json(a, PR, &repo("first", "u")).await;
    let rv0 = s.resource_version();
    for i in 0..2 {
        post_json(a, PR, &repo(&format!("r{i}"), "u")).await;
    }
    // replay events after rv0
    let mut w = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={rv0}")).await;
    assert_eq!(name_of(&w.next_event(false).await), "r0");
    assert_eq!(name_of(&w.next_event(false).await), "r1");
    assert!(
        w.next_line_within(Duration::from_millis(100))
            .await
            .is_none()
    );
    for i in 2..6 {
        post_json(a, PR, &repo(&format!("r{i}"), "u")).await;
    }
    // the window holds 3 events: resuming from rv0 is too old → one ERROR event, then the end
    let mut old = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={rv0}")).await;
    assert_eq!(old.status, 200);
    let ev = old.next_event(false).await;
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(
        ev["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: ")
    );
    old.expect_end().await;
    // a future resourceVersion → 504
    let fut = get(
        a,
        &format!(
            "{PR}?watch=true&resourceVersion={}",
            s.resource_version() + 5
        ),
    )
    .await;
    assert_eq!(fut.status, 504);
}

#[tokio::test]
async fn watch_label_selector_enter_and_leave() {
    let s = server().await;
    let a = s.addr();
    post_json(a, PR, &repo("a", "u")).await;
    let mut w = Watch::open(a, &format!("{PR}?watch=true&labelSelector=team%3Dblue")).await;
    let label = |v: serde_json::Value| {
        s.merge_patch(
            "packagerepositories",
            None,
            "a",
            &json!({"metadata": {"labels": v}}),
        )
        .unwrap()
    };
    label(json!({"team": "blue"}));
    let e = w.next_event(false).await;
    assert_eq!(e["type"], "ADDED", "moving into the selector is ADDED");
    label(json!({"team": "blue", "x": "1"}));
    assert_eq!(w.next_event(false).await["type"], "MODIFIED");
    let moved = label(json!({"team": "red"}));
    let e = w.next_event(false).await;
    assert_eq!(
        e["type"], "DELETED",
        "moving out of the selector is DELETED"
    );
    assert_eq!(
        e["object"]["metadata"]["labels"]["team"], "blue",
        "upstream sends the previous state"
    );
    assert_eq!(rv_of(&e["object"]), rv_of(&moved));
    // changes outside the selector are not sent
    label(json!({"team": "green"}));
    post_json(a, PR, &repo("other", "u")).await;
    let mut fw = Watch::open(
        a,
        &format!("{PR}?watch=true&fieldSelector=metadata.name%3Dother"),
    )
    .await;
    assert_eq!(name_of(&fw.next_event(false).await), "other");
    label(json!({"team": "blue"}));
    assert_eq!(w.next_event(false).await["type"], "ADDED");
    assert!(
        fw.next_line_within(Duration::from_millis(100))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn bookmarks_only_when_allowed() {
    let s = server().await;
    let a = s.addr();
    post_json(a, PR, &repo("a", "u")).await;
    let mut w = Watch::open(a, &format!("{PR}?watch=true&allowWatchBookmarks=true")).await;
    assert_eq!(w.next_event(false).await["type"], "ADDED");
    // side-door writes advance the counter; the bookmark reports the current resourceVersion
    s.side_door_put(repo("hidden", "u")).unwrap();
    let cur = s.resource_version();
    let bm = loop {
        let e = w.next_event(true).await;
        if e["type"] == "BOOKMARK" && rv_of(&e["object"]) == cur {
            break e;
        }
    };
    assert_eq!(bm["object"]["kind"], "PackageRepository");
    assert_eq!(
        bm["object"]["apiVersion"],
        "packages.glasskube.dev/v1alpha1"
    );
    assert_eq!(bm["object"]["metadata"].as_object().unwrap().len(), 1);
    let mut nb = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={cur}")).await;
    assert!(
        nb.next_line_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no bookmarks unless allowed"
    );
}

#[tokio::test]
async fn streaming_list_initial_events_end() {
    let s = server().await;
    let a = s.addr();
    for n in ["a", "b"] {
        post_json(a, PR, &repo(n, "u")).await;
    }
    let cur = s.resource_version();
    let mut w = Watch::open(a, &format!("{PR}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=0")).await;
    assert_eq!(w.next_event(false).await["type"], "ADDED");
    assert_eq!(w.next_event(false).await["type"], "ADDED");
    let bm = w.next_event(true).await;
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(
        bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(rv_of(&bm["object"]), cur);
    // without resourceVersion (consistent read) too
    let mut w2 = Watch::open(a, &format!("{PR}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")).await;
    w2.next_event(false).await;
    w2.next_event(false).await;
    assert!(w2.next_event(true).await["object"]["metadata"]["annotations"].is_object());
    // upstream validation
    assert_eq!(
        get(
            a,
            &format!("{PR}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan")
        )
        .await
        .status,
        422
    );
    assert_eq!(
        get(
            a,
            &format!("{PR}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true")
        )
        .await
        .status,
        422
    );
    assert_eq!(
        get(
            a,
            &format!("{PR}?watch=true&resourceVersion=1&resourceVersionMatch=NotOlderThan")
        )
        .await
        .status,
        422
    );
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream_cleanly() {
    let s = server().await;
    let start = std::time::Instant::now();
    let mut w = Watch::open(s.addr(), &format!("{PR}?watch=true&timeoutSeconds=1")).await;
    // The stream ends on its own (a watch without a timeout never does), and not before the
    // second asked for; no tight upper wall-clock bound, which a busy machine could break.
    tokio::time::timeout(T * 3, w.expect_end())
        .await
        .expect("timeoutSeconds=1 never ended the stream");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    eventually("every watch is closed", || s.open_watches() == 0).await;
}

#[tokio::test]
async fn dropping_the_handle_closes_watches() {
    let s = server().await;
    let a = s.addr();
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert!(s.wait_for_watches(1, T).await);
    drop(s);
    w.expect_end().await;
    assert!(
        tokio::net::TcpStream::connect(a).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn shutdown_waits_for_connections() {
    let s = server().await;
    let a = s.addr();
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    tokio::time::timeout(T, s.shutdown()).await.unwrap();
    w.expect_end().await;
}
