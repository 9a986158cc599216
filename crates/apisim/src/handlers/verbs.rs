//! The verbs of resource requests (get, list, watch, create, update, patch, delete,
//! deletecollection) and the discovery documents. Query parameters and their resourceVersion
//! rules are read by `k8s-wire`; a value that does not parse is a 400, a combination upstream
//! forbids a 422 Invalid `ListOptions`, with upstream's messages.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use k8s_selectors::{FieldSelector, LabelSelector};
use k8s_wire::{ListOptions, ListVersion, QueryError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::media::{decode_object, json_response, media_type, read_body};
use super::route::{DiscoveryPath, ResourcePath, Route};
use crate::discovery;
use crate::errors::{ApiError, Reason};
use crate::resources::{ResId, ResourceDef};
use crate::server::Shared;
use crate::store::{Filter, Preconditions, WatchStart};
use crate::validation::{self, Part};
use crate::watch::{self, WatchRequest};

/// A query string that does not parse is a 400.
fn parse_query(raw: &str) -> Result<ListOptions, ApiError> {
    ListOptions::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A query error as upstream answers it: 422 Invalid `ListOptions` for a forbidden combination,
/// 400 for a value that does not parse.
fn query_error(e: QueryError) -> ApiError {
    if e.is_invalid_list_options() {
        list_options_invalid(&e.to_string())
    } else {
        ApiError::bad_request(e.to_string())
    }
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

fn dry_run(query: &ListOptions) -> Result<bool, ApiError> {
    match query.get("dryRun") {
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

/// The namespace and selectors of a LIST, WATCH or DELETE collection; a selector that does not
/// parse is a 400 BadRequest with upstream's message (`k8s-selectors`).
fn filter_of(query: &ListOptions, namespace: Option<String>) -> Result<Filter, ApiError> {
    Ok(Filter {
        namespace,
        labels: LabelSelector::parse(query.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        fields: FieldSelector::parse(query.field_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    })
}

pub(super) async fn handle(
    shared: &Arc<Shared>,
    route: Route<'_>,
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
            let t = &rp.target;
            if (!def.namespaced && t.namespace.is_some())
                || (def.namespaced && t.namespace.is_none() && t.name.is_some())
            {
                return Err(ApiError::path_not_found());
            }
            if t.subresource == Some("exec") && def.is_pod() && t.name.is_some() {
                return super::exec::handle(shared, res, &rp, raw_query, req).await;
            }
            if let Some(sub) = t.subresource
                && (sub != "status" || !def.status_subresource)
            {
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
        DiscoveryPath::Apis => {
            let mut doc = discovery::api_group_list(reg);
            super::review::add_groups(shared, &mut doc);
            doc
        }
        DiscoveryPath::Group(g) => discovery::api_group(reg, &g)
            .or_else(|| super::review::api_group(shared, &g))
            .ok_or_else(ApiError::path_not_found)?,
        DiscoveryPath::GroupVersion(g, v) => discovery::api_resource_list(reg, &g, &v)
            .or_else(|| super::review::api_resource_list(shared, &g, &v))
            .ok_or_else(ApiError::path_not_found)?,
    };
    Ok(json_response(StatusCode::OK, &doc))
}

async fn resource_verb(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    res: ResId,
    rp: ResourcePath<'_>,
    verb: &str,
    query: &ListOptions,
    req: Request,
) -> Result<Response, ApiError> {
    let ns = rp.target.namespace;
    let status_only = rp.target.subresource.is_some();
    match (verb, rp.target.name) {
        ("get", Some(name)) => Ok(json_response(
            StatusCode::OK,
            &shared.store.get(res, ns, name)?,
        )),
        ("list", None) => list(shared, def, res, rp.namespace(), query),
        ("watch", None) => watch(shared, res, rp.namespace(), query),
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
            let filter = filter_of(query, rp.namespace())?;
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
    query: &ListOptions,
) -> Result<Response, ApiError> {
    // Checked in this order: the version parses, the limit parses, the combination is valid.
    query.resource_version().map_err(query_error)?;
    let limit = query.limit().map_err(query_error)?;
    let cont = query.continue_token();
    let current = shared.store.current_rv();
    match query.list_version().map_err(query_error)? {
        ListVersion::MostRecent | ListVersion::Any => {}
        ListVersion::NotOlderThan(x) if x > current => return Err(ApiError::too_large(x, current)),
        ListVersion::NotOlderThan(_) => {}
        ListVersion::Exact(x) if x < current => return Err(ApiError::too_old(x, current)),
        ListVersion::Exact(x) if x > current => return Err(ApiError::too_large(x, current)),
        ListVersion::Exact(_) => {}
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
    query: &ListOptions,
) -> Result<Response, ApiError> {
    // Checked in this order: the version parses, the timeout parses, the combination is valid.
    query.resource_version().map_err(query_error)?;
    let timeout = match query.timeout_seconds().map_err(query_error)? {
        None => shared.config.default_watch_timeout,
        Some(t) => Some(Duration::from_secs(t)),
    };
    let wire_start = query.watch_start().map_err(query_error)?;
    let bookmarks = query.allow_watch_bookmarks().unwrap_or(false);
    let current = shared.store.current_rv();
    let start = match wire_start {
        k8s_wire::WatchStart::InitialEvents { not_older_than } => {
            if let Some(x) = not_older_than
                && x > current
            {
                return Err(ApiError::too_large(x, current));
            }
            WatchStart::Current
        }
        k8s_wire::WatchStart::StateThenChanges => WatchStart::Current,
        k8s_wire::WatchStart::ChangesFromNow => WatchStart::From(current),
        k8s_wire::WatchStart::ChangesAfter(x) => WatchStart::From(x),
    };
    let filter = filter_of(query, namespace)?;
    let body = watch::start(
        shared.clone(),
        WatchRequest {
            res,
            filter,
            start,
            initial_events_end: matches!(wire_start, k8s_wire::WatchStart::InitialEvents { .. }),
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
