//! `pods/{name}/exec` without a WebSocket upgrade, and what the API server refuses before it
//! upgrades: 400 with upstream's messages, 404 for a pod that is not there; the subresource in
//! discovery. (The sessions themselves: the relay's tests run `kubectl exec` against apisim,
//! directly and through the relay.)

use apisim::{ResourceDef, Server, ServerConfig};
use serde_json::json;

use crate::common::get;

const EXEC: &str = "/api/v1/namespaces/default/pods/web/exec";

#[tokio::test]
async fn exec_refusals_and_discovery() {
    let s = Server::start(ServerConfig::default().with_resource(ResourceDef::pods()))
        .await
        .unwrap();
    s.control()
        .create(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "example/web"}]},
        }))
        .unwrap();
    let addr = s.addr();
    let message = |r: &crate::common::Resp| r.json()["message"].as_str().unwrap().to_owned();

    // Not an upgrade (SPDY's POST, or a plain GET): 400.
    let r = get(addr, &format!("{EXEC}?command=echo&stdout=true")).await;
    assert_eq!(r.status, 400);
    assert!(
        message(&r).starts_with("Upgrade request required"),
        "{}",
        message(&r)
    );
    // Checked before the upgrade, as upstream: the command, the container, the pod.
    let r = get(addr, EXEC).await;
    assert_eq!(r.status, 400);
    assert_eq!(message(&r), "you must specify at least 1 command");
    let r = get(addr, &format!("{EXEC}?command=true&container=sidecar")).await;
    assert_eq!(r.status, 400);
    assert_eq!(message(&r), "container sidecar is not valid for pod web");
    let r = get(
        addr,
        "/api/v1/namespaces/default/pods/gone/exec?command=true",
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["reason"], "NotFound");
    // Other subresources of a pod stay unknown.
    let r = get(addr, "/api/v1/namespaces/default/pods/web/attach").await;
    assert_eq!(r.status, 404);

    let doc = get(addr, "/api/v1").await.json();
    let names: Vec<&str> = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        names.contains(&"pods") && names.contains(&"pods/exec"),
        "{names:?}"
    );
}
