//! HTTP request handling: routing Kubernetes paths by hand (they are too irregular for a router),
//! accounting, fault application, and the verbs.

mod control;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use k8s_selectors::{FieldSelector, LabelSelector};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounting::{RequestRecord, VERB_CONTROL, VERB_DISCOVERY};
use crate::discovery;
use crate::errors::{ApiError, Reason};
use crate::resources::{ResId, ResourceDef};
use crate::server::Shared;
use crate::store::{Filter, Preconditions, WatchStart};
use crate::validation::{self, Part};
use crate::watch::{self, WatchRequest};

/// Upstream's request body limit (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A parsed resource path.
#[derive(Debug, Clone)]
struct ResourcePath {
    res: Option<ResId>,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    legacy_watch: bool,
}

#[derive(Debug, Clone)]
enum Route {
    Resource(ResourcePath),
    Discovery(DiscoveryPath),
    Control(Vec<String>),
    NotFound,
}

#[derive(Debug, Clone)]
enum DiscoveryPath {
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

type Query = Vec<(String, String)>;

fn q<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn route(shared: &Shared, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let reg = &shared.store.registry;
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
        ["api", v, rest @ ..] => resource_path(reg, "", v, rest),
        ["apis", g, v, rest @ ..] => resource_path(reg, g, v, rest),
        ["apisim", rest @ ..] => Route::Control(rest.iter().map(|s| s.to_string()).collect()),
        _ => Route::NotFound,
    }
}

fn resource_path(
    reg: &crate::resources::Registry,
    group: &str,
    version: &str,
    segs: &[&str],
) -> Route {
    let (legacy_watch, segs) = match segs {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, segs),
    };
    let namespaced_path = match segs {
        ["namespaces", _, third, rest @ ..] => {
            !rest.is_empty()
                || reg.find(group, version, third).is_some()
                || reg.find(group, version, "namespaces").is_none()
                || !matches!(*third, "status" | "finalize")
        }
        _ => false,
    };
    let (namespace, rest) = match (namespaced_path, segs) {
        (true, ["namespaces", ns, rest @ ..]) => (Some((*ns).to_string()), rest),
        _ => (None, segs),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Route::NotFound,
    };
    let res = reg.find(group, version, plural);
    Route::Resource(ResourcePath {
        res,
        plural: plural.to_string(),
        namespace,
        name: name.map(String::from),
        subresource: sub.map(String::from),
        legacy_watch,
    })
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1" | "True" | "TRUE"))
}

/// The Kubernetes verb of a resource request.
fn verb_of(method: &Method, rp: &ResourcePath, query: &Query) -> &'static str {
    let collection = rp.name.is_none();
    match *method {
        Method::GET | Method::HEAD
            if collection && (rp.legacy_watch || truthy(q(query, "watch"))) =>
        {
            "watch"
        }
        Method::GET | Method::HEAD if collection => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

/// Entry point for every request.
pub(crate) async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let route = route(&shared, &path);
    let (verb, resource, namespace, is_resource) = match &route {
        Route::Resource(rp) => {
            let query: Query = parse_query(&raw_query).unwrap_or_default();
            let resource = match &rp.subresource {
                Some(s) => format!("{}/{s}", rp.plural),
                None => rp.plural.clone(),
            };
            (
                verb_of(&method, rp, &query).to_string(),
                resource,
                rp.namespace.clone(),
                true,
            )
        }
        Route::Discovery(_) | Route::NotFound => {
            (VERB_DISCOVERY.to_string(), String::new(), None, false)
        }
        Route::Control(_) => (VERB_CONTROL.to_string(), String::new(), None, false),
    };

    let is_control = matches!(route, Route::Control(_));
    let response = if is_control {
        control::handle(&shared, &method, route_control(&route), &raw_query, req).await
    } else {
        let latency = shared.faults.take_latency(&verb, &resource, is_resource);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match shared.faults.take_failure(&verb, &resource, is_resource) {
            Some(injected) if injected.html => {
                tracing::debug!(%verb, %resource, code = injected.error.code, "injected HTML failure");
                html_error_page(&injected.error)
            }
            Some(injected) => {
                tracing::debug!(%verb, %resource, code = injected.error.code, "injected failure");
                injected.error.into_response()
            }
            None => match handle(&shared, route, &method, &verb, &raw_query, req).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            },
        }
    };
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, %verb, %resource, status, "request");
    shared.accounting.record(RequestRecord {
        seq: 0,
        method: method.to_string(),
        path,
        query: raw_query,
        verb,
        resource,
        namespace,
        status,
        duration_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
    });
    response
}

/// An error answered the way a proxy or load balancer in front of the API server answers:
/// an HTML page, not a `Status` object.
fn html_error_page(err: &ApiError) -> Response {
    let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = format!(
        "{} {}",
        code.as_u16(),
        code.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut resp = (code, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    if let Some(secs) = err.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn route_control(route: &Route) -> &[String] {
    match route {
        Route::Control(segs) => segs,
        _ => &[],
    }
}

fn parse_query(raw: &str) -> Result<Query, ApiError> {
    let uri: http::Uri = format!("/?{raw}")
        .parse()
        .map_err(|_| ApiError::bad_request("malformed query string"))?;
    axum::extract::Query::<Query>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    let mut r = (code, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("length limit") {
                ApiError::new(
                    Reason::RequestEntityTooLarge,
                    "the request entity is too large",
                )
            } else {
                ApiError::bad_request(format!("reading request body: {msg}"))
            }
        })
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decode a JSON (or YAML) object body for create/update.
fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let mt = media_type(headers);
    let v: Value = match mt.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as YAML: {e}"
                ))
            })?,
        other => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml"
                ),
            ));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(v)
}

/// Upstream's decoder requires kind and apiVersion and checks them against the URL.
fn check_type(def: &ResourceDef, obj: &Value, raw: &[u8]) -> Result<(), ApiError> {
    let snippet =
        String::from_utf8_lossy(raw.get(..raw.len().min(200)).unwrap_or(raw)).into_owned();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{snippet}'"
        )));
    }
    if av.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{snippet}'"
        )));
    }
    if av != def.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    if kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    Ok(())
}

fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match q(query, "dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::new(
            Reason::BadRequest,
            format!("Invalid dry run value: \"{other}\"; supported values: All"),
        )),
    }
}

fn list_options_invalid(msg: &str) -> ApiError {
    ApiError::new(Reason::Invalid, format!("ListOptions.meta.k8s.io \"\" is invalid: {msg}"))
        .with_details(json!({"group": "meta.k8s.io", "kind": "ListOptions", "causes": [{"reason": "FieldValueInvalid", "message": msg}]}))
}

fn parse_rv(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: \"{s}\""))),
    }
}

/// The namespace and selectors of a LIST, WATCH or DELETE collection; a selector that does not
/// parse is a 400 BadRequest with upstream's message (`k8s-selectors`).
fn filter_of(query: &Query, namespace: Option<String>) -> Result<Filter, ApiError> {
    Ok(Filter {
        namespace,
        labels: LabelSelector::parse(q(query, "labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        fields: FieldSelector::parse(q(query, "fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    })
}

async fn handle(
    shared: &Arc<Shared>,
    route: Route,
    method: &Method,
    verb: &str,
    raw_query: &str,
    req: Request,
) -> Result<Response, ApiError> {
    match route {
        Route::NotFound => Err(ApiError::path_not_found()),
        Route::Control(_) => Err(ApiError::path_not_found()),
        Route::Discovery(d) => {
            if *method != Method::GET && *method != Method::HEAD {
                return Err(ApiError::method_not_allowed());
            }
            discovery_response(shared, d)
        }
        Route::Resource(rp) => {
            let query = parse_query(raw_query)?;
            let res = rp.res.ok_or_else(ApiError::path_not_found)?;
            let def = shared.store.def(res)?.clone();
            // Scope checks: cluster-scoped resources have no namespaced paths; namespaced objects
            // are only addressable inside a namespace.
            if (!def.namespaced && rp.namespace.is_some())
                || (def.namespaced && rp.namespace.is_none() && rp.name.is_some())
            {
                return Err(ApiError::path_not_found());
            }
            if let Some(sub) = &rp.subresource
                && (sub != "status" || !def.status_subresource)
            {
                return Err(ApiError::path_not_found());
            }
            if rp.name.as_deref().is_some_and(str::is_empty) {
                return Err(ApiError::path_not_found());
            }
            resource_verb(shared, &def, res, rp, verb, &query, req).await
        }
    }
}

fn discovery_response(shared: &Shared, d: DiscoveryPath) -> Result<Response, ApiError> {
    let reg = &shared.store.registry;
    let doc = match d {
        DiscoveryPath::Health => {
            let mut r = (StatusCode::OK, "ok").into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(r);
        }
        DiscoveryPath::OpenApiOther => return Err(ApiError::path_not_found()),
        DiscoveryPath::OpenApiV3Index => crate::openapi::index(reg),
        DiscoveryPath::OpenApiV3(g, v) => {
            crate::openapi::group_version(reg, &g, &v).ok_or_else(ApiError::path_not_found)?
        }
        DiscoveryPath::Version => discovery::version(),
        DiscoveryPath::Api => discovery::api_versions(&shared.addr.to_string()),
        DiscoveryPath::Apis => discovery::api_group_list(reg),
        DiscoveryPath::Group(g) => {
            discovery::api_group(reg, &g).ok_or_else(ApiError::path_not_found)?
        }
        DiscoveryPath::GroupVersion(g, v) => {
            discovery::api_resource_list(reg, &g, &v).ok_or_else(ApiError::path_not_found)?
        }
    };
    Ok(json_response(StatusCode::OK, &doc))
}

async fn resource_verb(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    res: ResId,
    rp: ResourcePath,
    verb: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let ns = rp.namespace.as_deref();
    let status_only = rp.subresource.is_some();
    match (verb, rp.name.as_deref()) {
        ("get", Some(name)) => Ok(json_response(
            StatusCode::OK,
            &shared.store.get(res, ns, name)?,
        )),
        ("list", None) => list(shared, def, res, rp.namespace.clone(), query),
        ("watch", None) => watch(shared, res, rp.namespace.clone(), query),
        ("create", None) => {
            if def.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let dry = dry_run(query)?;
            let headers = req.headers().clone();
            let body = read_body(req).await?;
            let obj = decode_object(&headers, &body)?;
            check_type(def, &obj, &body)?;
            validation::validate(def, &obj, Part::of(def, false))?;
            let created = shared.store.create(res, ns, obj, dry)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        ("update", Some(name)) => {
            let dry = dry_run(query)?;
            let headers = req.headers().clone();
            let body = read_body(req).await?;
            let obj = decode_object(&headers, &body)?;
            check_type(def, &obj, &body)?;
            validation::validate(def, &obj, Part::of(def, status_only))?;
            let updated = shared
                .store
                .update_with(res, ns, name, status_only, dry, |_| Ok(obj))?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        ("patch", Some(name)) => {
            let dry = dry_run(query)?;
            let mt = media_type(req.headers());
            let body = read_body(req).await?;
            let patched = patch(shared, res, ns, name, status_only, dry, &mt, &body)?;
            Ok(json_response(StatusCode::OK, &patched))
        }
        ("delete", Some(name)) if !status_only => {
            let body = read_body(req).await?;
            let (pre, body_dry) = delete_options(&body)?;
            let dry = dry_run(query)? || body_dry;
            let gone = shared.store.delete(res, ns, name, &pre, dry)?;
            Ok(json_response(StatusCode::OK, &gone))
        }
        ("deletecollection", None) => {
            let dry = dry_run(query)?;
            let filter = filter_of(query, rp.namespace.clone())?;
            let mut items = Vec::new();
            for (ons, oname) in shared.store.keys(res, &filter) {
                match shared.store.delete(
                    res,
                    ons.as_deref(),
                    &oname,
                    &Preconditions::default(),
                    dry,
                ) {
                    Ok(o) => items.push(o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let list = json!({
                "apiVersion": def.api_version(), "kind": def.list_kind,
                "metadata": {"resourceVersion": shared.store.current_rv().to_string()},
                "items": items,
            });
            Ok(json_response(StatusCode::OK, &list))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteOptionsBody {
    #[serde(default)]
    preconditions: Option<PreconditionsBody>,
    #[serde(default)]
    dry_run: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PreconditionsBody {
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
}

fn delete_options(body: &[u8]) -> Result<(Preconditions, bool), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Preconditions::default(), false));
    }
    let opts: DeleteOptionsBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as DeleteOptions: {e}"
        ))
    })?;
    let p = opts.preconditions.unwrap_or_default();
    let dry = opts.dry_run.is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok((
        Preconditions {
            uid: p.uid,
            resource_version: p.resource_version,
        },
        dry,
    ))
}

#[allow(clippy::too_many_arguments)]
fn patch(
    shared: &Shared,
    res: ResId,
    ns: Option<&str>,
    name: &str,
    status_only: bool,
    dry: bool,
    media_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    const ACCEPTED: &str =
        "accepted media types include: application/json-patch+json, application/merge-patch+json";
    enum Kind {
        Merge,
        Json,
    }
    let kind = match media_type {
        "application/merge-patch+json" => Kind::Merge,
        "application/json-patch+json" => Kind::Json,
        "application/strategic-merge-patch+json" => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - {ACCEPTED}, application/apply-patch+yaml"
                ),
            ));
        }
        "application/apply-patch+yaml" => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "apisim does not implement server-side apply (application/apply-patch+yaml) - {ACCEPTED}"
                ),
            ));
        }
        other => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!("the body of the request was in an unknown format ({other}) - {ACCEPTED}"),
            ));
        }
    };
    let patch: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })?;
    let def = shared.store.def(res)?.clone();
    match kind {
        Kind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            shared
                .store
                .update_with(res, ns, name, status_only, dry, |cur| {
                    let mut v = cur.clone();
                    json_patch::merge(&mut v, &patch);
                    validation::validate(&def, &v, Part::of(&def, status_only))?;
                    Ok(v)
                })
        }
        Kind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as a JSON patch: {e}"
                ))
            })?;
            shared
                .store
                .update_with(res, ns, name, status_only, dry, |cur| {
                    let mut v = cur.clone();
                    json_patch::patch(&mut v, &ops).map_err(|e| {
                        ApiError::invalid(&def.group, &def.kind, name, "json patch", &e.to_string())
                    })?;
                    validation::validate(&def, &v, Part::of(&def, status_only))?;
                    Ok(v)
                })
        }
    }
}

fn list(
    shared: &Shared,
    def: &ResourceDef,
    res: ResId,
    namespace: Option<String>,
    query: &Query,
) -> Result<Response, ApiError> {
    let rv = parse_rv(q(query, "resourceVersion"))?;
    let rvm = q(query, "resourceVersionMatch").unwrap_or("");
    let cont = q(query, "continue").filter(|s| !s.is_empty());
    let limit: i64 = match q(query, "limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: \"{l}\"")))?,
    };
    let limit = u64::try_from(limit).unwrap_or(0);
    if !matches!(rvm, "" | "NotOlderThan" | "Exact") {
        return Err(list_options_invalid(&format!(
            "resourceVersionMatch: Unsupported value: \"{rvm}\": supported values: \"Exact\", \"NotOlderThan\""
        )));
    }
    if !rvm.is_empty() && rv.is_none() {
        return Err(list_options_invalid(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if cont.is_some() && (rv.is_some() || !rvm.is_empty()) {
        return Err(list_options_invalid(
            "resourceVersion: Forbidden: specifying resource version is not allowed when using continue",
        ));
    }
    if rvm == "Exact" && rv == Some(0) {
        return Err(list_options_invalid(
            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ));
    }
    let current = shared.store.current_rv();
    if let Some(x) = rv {
        if rvm == "Exact" {
            if x < current {
                return Err(ApiError::too_old(x, current));
            }
            if x > current {
                return Err(ApiError::too_large(x, current));
            }
        } else if x > current {
            return Err(ApiError::too_large(x, current));
        }
    }
    let filter = filter_of(query, namespace)?;
    let page = shared.store.list(res, &filter, limit, cont)?;
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(c) = page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    let body = json!({"apiVersion": def.api_version(), "kind": def.list_kind, "metadata": meta, "items": page.items});
    Ok(json_response(StatusCode::OK, &body))
}

fn watch(
    shared: &Arc<Shared>,
    res: ResId,
    namespace: Option<String>,
    query: &Query,
) -> Result<Response, ApiError> {
    let rv = parse_rv(q(query, "resourceVersion"))?;
    let rvm = q(query, "resourceVersionMatch").unwrap_or("");
    let bookmarks = truthy(q(query, "allowWatchBookmarks"));
    let send_initial = match q(query, "sendInitialEvents") {
        None | Some("") => None,
        Some(v) => Some(truthy(Some(v))),
    };
    let timeout = match q(query, "timeoutSeconds") {
        None | Some("") | Some("0") => shared.config.default_watch_timeout,
        Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds: \"{t}\""))
        })?)),
    };
    let current = shared.store.current_rv();
    let start = match send_initial {
        Some(true) => {
            if rvm != "NotOlderThan" {
                return Err(list_options_invalid(
                    "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !bookmarks {
                return Err(list_options_invalid(
                    "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks=true",
                ));
            }
            if let Some(x) = rv
                && x > current
            {
                return Err(ApiError::too_large(x, current));
            }
            WatchStart::Current
        }
        Some(false) => {
            if !rvm.is_empty() && rvm != "NotOlderThan" {
                return Err(list_options_invalid(
                    "resourceVersionMatch: Unsupported value for watch",
                ));
            }
            match rv {
                None | Some(0) => WatchStart::From(current),
                Some(x) => WatchStart::From(x),
            }
        }
        None => {
            if !rvm.is_empty() {
                return Err(list_options_invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            match rv {
                None | Some(0) => WatchStart::Current,
                Some(x) => WatchStart::From(x),
            }
        }
    };
    let filter = filter_of(query, namespace)?;
    let body = watch::start(
        shared.clone(),
        WatchRequest {
            res,
            filter,
            start,
            initial_events_end: send_initial == Some(true),
            bookmarks,
            timeout,
        },
    )?;
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}
