//! The kubeconfig that points clients at a relay.

use serde_json::json;

/// The name of the cluster, user and context in the kubeconfig.
pub const CONTEXT: &str = "repocache-relay";

/// A kubeconfig (JSON; kubectl and client libraries read it like YAML) whose current context
/// talks to the relay at `url`, with `namespace` as its default namespace. Without
/// `authorize` its user has no credentials (the relay uses its own); with it, the user is left
/// for the caller's token (`kubectl --token`, or a `token` field added to the user).
pub fn render(url: &str, namespace: Option<&str>, authorize: bool) -> String {
    let mut context = json!({"cluster": CONTEXT, "user": CONTEXT});
    if let Some(ns) = namespace {
        context["namespace"] = json!(ns);
    }
    let user = if authorize {
        json!({"token": "REPLACE-WITH-YOUR-TOKEN"})
    } else {
        json!({})
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [{"name": CONTEXT, "context": context}],
        "current-context": CONTEXT,
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}
