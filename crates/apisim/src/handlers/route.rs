//! Routing: which of discovery, a resource, or the control API a path names, and the verb of a
//! resource request. Resource paths and verbs are read by `k8s-wire`; the rest are apisim's own
//! (discovery documents, OpenAPI, health, `/apisim/*`).

use std::borrow::Cow;

use http::Method;
use k8s_wire::{ListOptions, Target, TargetError};

use crate::resources::ResId;
use crate::server::Shared;

/// A resource request: what its path names, the registered resource it names (if any), and its
/// Kubernetes verb.
#[derive(Debug, Clone)]
pub(super) struct ResourcePath<'a> {
    pub res: Option<ResId>,
    pub target: Target<'a>,
    /// The verb (`get`, `list`, `watch`, …; `unknown` for a method that is none).
    pub verb: &'static str,
}

impl ResourcePath<'_> {
    /// `plural` or `plural/subresource`, as the accounting names it.
    pub fn resource(&self) -> String {
        match self.target.subresource {
            Some(s) => format!("{}/{s}", self.target.resource),
            None => self.target.resource.to_string(),
        }
    }

    /// The namespace, owned.
    pub fn namespace(&self) -> Option<String> {
        self.target.namespace.map(str::to_owned)
    }
}

#[derive(Debug, Clone)]
pub(super) enum Route<'a> {
    Resource(ResourcePath<'a>),
    Discovery(DiscoveryPath),
    Control(Vec<String>),
    NotFound,
}

#[derive(Debug, Clone)]
pub(super) enum DiscoveryPath {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiV3Index,
    OpenApiV3(String, String),
    OpenApiOther,
}

/// The path with empty segments dropped (`/apis//g/v1/x/` is `/apis/g/v1/x`): apisim, like
/// Go's path cleaning in front of the API server, does not tell them apart.
pub(super) fn clean(path: &str) -> Cow<'_, str> {
    if !path.contains("//") && (path.len() <= 1 || !path.ends_with('/')) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Routes a (cleaned) path; `raw_query` decides between LIST and WATCH.
pub(super) fn route<'a>(
    shared: &Shared,
    method: &Method,
    path: &'a str,
    raw_query: &str,
) -> Route<'a> {
    match Target::parse(path) {
        Ok(target) => {
            let res = shared
                .store
                .registry
                .find(target.group, target.version, target.resource);
            // A query that does not parse is no watch here; the verb answers its 400.
            let watch = ListOptions::parse(raw_query)
                .ok()
                .and_then(|q| q.watch().ok())
                .unwrap_or(false);
            let verb = target
                .verb(method, watch)
                .map_or("unknown", k8s_wire::Verb::as_str);
            Route::Resource(ResourcePath { res, target, verb })
        }
        Err(TargetError::TooManySegments(_) | TargetError::EmptySegment(_)) => Route::NotFound,
        Err(TargetError::NotAResource(_)) => other(path),
    }
}

/// Discovery, OpenAPI, health and the control API.
fn other(path: &str) -> Route<'static> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Discovery(DiscoveryPath::Version),
        [h, ..] if matches!(*h, "healthz" | "readyz" | "livez") => {
            Route::Discovery(DiscoveryPath::Health)
        }
        ["openapi", "v3"] => Route::Discovery(DiscoveryPath::OpenApiV3Index),
        ["openapi", "v3", "api", v] => {
            Route::Discovery(DiscoveryPath::OpenApiV3(String::new(), (*v).to_string()))
        }
        ["openapi", "v3", "apis", g, v] => {
            Route::Discovery(DiscoveryPath::OpenApiV3((*g).to_string(), (*v).to_string()))
        }
        ["openapi", ..] | ["swagger.json"] => Route::Discovery(DiscoveryPath::OpenApiOther),
        ["api"] => Route::Discovery(DiscoveryPath::Api),
        ["apis"] => Route::Discovery(DiscoveryPath::Apis),
        ["apis", g] => Route::Discovery(DiscoveryPath::Group((*g).to_string())),
        ["api", v] => {
            Route::Discovery(DiscoveryPath::GroupVersion(String::new(), (*v).to_string()))
        }
        ["apis", g, v] => Route::Discovery(DiscoveryPath::GroupVersion(
            (*g).to_string(),
            (*v).to_string(),
        )),
        ["apisim", rest @ ..] => Route::Control(rest.iter().map(|s| s.to_string()).collect()),
        _ => Route::NotFound,
    }
}

pub(super) fn route_control<'r>(route: &'r Route<'_>) -> &'r [String] {
    match route {
        Route::Control(segs) => segs,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleaning_drops_empty_segments_only() {
        for (path, want) in [
            ("/apis/g/v1/x", "/apis/g/v1/x"),
            ("/apis//g/v1/x/", "/apis/g/v1/x"),
            ("/apis/g/v1/", "/apis/g/v1"),
            ("/", "/"),
            ("//", "/"),
        ] {
            assert_eq!(clean(path), want, "{path}");
        }
    }
}
