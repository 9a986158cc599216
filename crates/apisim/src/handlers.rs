//! HTTP request handling: routing Kubernetes paths, accounting, fault application, then the
//! verbs. The concepts live in submodules: `route` (which path is what, and its verb), `verbs`
//! (the resource verbs and discovery), `media` (bodies and media types); the control API
//! (`/apisim/*`) is below.
//!
//! Module direction: `handlers` -> `watch` -> `server` (the shared state, `Control`); nothing
//! below `handlers` imports it (`listen` is the one module that does, to build the router).

mod media;
mod route;
mod verbs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounting::{RequestRecord, VERB_CONTROL, VERB_DISCOVERY};
use crate::errors::ApiError;
use crate::faults::{FailSpec, LatencySpec};
use crate::server::{Control, Shared};
use media::{html_error_page, json_response, read_body};
use route::{Route, route_control};

/// Entry point for every request.
pub(crate) async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let cleaned = route::clean(&path);
    let route = route::route(&shared, &method, &cleaned, &raw_query);
    let (verb, resource, namespace, is_resource) = match &route {
        Route::Resource(rp) => (rp.verb.to_string(), rp.resource(), rp.namespace(), true),
        Route::Discovery(_) | Route::NotFound => {
            (VERB_DISCOVERY.to_string(), String::new(), None, false)
        }
        Route::Control(_) => (VERB_CONTROL.to_string(), String::new(), None, false),
    };

    let is_control = matches!(route, Route::Control(_));
    let response = if is_control {
        handle_control(&shared, &method, route_control(&route), &raw_query, req).await
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
            None => match verbs::handle(&shared, route, &method, &verb, &raw_query, req).await {
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

// ---- control endpoints ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StallBody {
    #[serde(default)]
    duration_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestartBody {
    #[serde(default = "yes")]
    keep_objects: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
struct LineBody {
    #[serde(default)]
    line: Option<String>,
}

#[derive(Default, Deserialize)]
struct ResourceQuery {
    #[serde(default)]
    resource: Option<String>,
}

fn parse_resource_query(raw: &str) -> Result<ResourceQuery, ApiError> {
    let uri: http::Uri = format!("/?{raw}")
        .parse()
        .map_err(|_| ApiError::bad_request("malformed query string"))?;
    axum::extract::Query::<ResourceQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

#[derive(Deserialize)]
struct InjectBody {
    resource: String,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum SideDoorBody {
    Put {
        object: Value,
    },
    Delete {
        resource: String,
        #[serde(default)]
        namespace: Option<String>,
        name: String,
    },
}

fn parse_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid control body: {e}")))
}

fn parse_json_required<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid control body: {e}")))
}

impl Default for RestartBody {
    fn default() -> Self {
        RestartBody { keep_objects: true }
    }
}

async fn handle_control(
    shared: &Arc<Shared>,
    method: &Method,
    segs: &[String],
    raw_query: &str,
    req: Request,
) -> Response {
    match control(shared, method, segs, raw_query, req).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

async fn control(
    shared: &Arc<Shared>,
    method: &Method,
    segs: &[String],
    raw_query: &str,
    req: Request,
) -> Result<Value, ApiError> {
    let c = Control {
        shared: shared.clone(),
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let body = read_body(req).await?;
    let ok = |extra: Value| -> Result<Value, ApiError> {
        let mut v = json!({"ok": true, "resourceVersion": c.resource_version().to_string()});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        Ok(v)
    };
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["requests"]) => {
            let counts: Vec<Value> = c
                .counts()
                .into_iter()
                .map(|((verb, resource), count)| json!({"verb": verb, "resource": resource, "count": count}))
                .collect();
            Ok(json!({"requests": c.requests(), "counts": counts}))
        }
        (Method::DELETE, ["requests"]) => {
            c.reset_requests();
            ok(json!({}))
        }
        (Method::GET, ["state"]) => {
            serde_json::to_value(c.state()).map_err(|e| ApiError::internal(e.to_string()))
        }
        (Method::GET, ["faults"]) => {
            let (fails, lats) = c.faults();
            Ok(
                json!({"fail": fails, "latency": lats, "stalled": shared.faults.stall.borrow().stalled_now()}),
            )
        }
        (Method::DELETE, ["faults"]) => {
            c.clear_faults();
            ok(json!({}))
        }
        (Method::POST, ["faults", "fail"]) => {
            let spec: FailSpec = parse_json_required(&body)?;
            if !(400..=599).contains(&spec.code) {
                return Err(ApiError::bad_request(
                    "code must be an HTTP error status (400-599)",
                ));
            }
            c.fail_next(spec);
            ok(json!({}))
        }
        (Method::POST, ["faults", "latency"]) => {
            let spec: LatencySpec = parse_json_required(&body)?;
            c.add_latency(spec);
            ok(json!({}))
        }
        (Method::POST, ["faults", "close-watches"]) => {
            let n = c.open_watches();
            c.close_watches();
            ok(json!({"watches": n}))
        }
        (Method::POST, ["faults", "stall-watches"]) => {
            let b: StallBody = parse_json(&body)?;
            c.stall_watches(b.duration_ms.map(Duration::from_millis));
            ok(json!({"watches": c.open_watches()}))
        }
        (Method::POST, ["faults", "release-watches"]) => {
            c.release_watches();
            ok(json!({}))
        }
        (Method::POST, ["faults", "compact"]) => {
            c.compact();
            ok(json!({}))
        }
        (Method::POST, ["faults", "restart"]) => {
            let b: RestartBody = parse_json(&body)?;
            shared.store.restart(b.keep_objects);
            // Let this response go out before the connections (this one included) are dropped.
            let s = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                s.faults.drop_connections();
            });
            ok(json!({}))
        }
        (Method::POST, ["faults", "malformed-line"]) => {
            let b: LineBody = parse_json(&body)?;
            let n = c.inject_malformed_line(b.line.as_deref());
            ok(json!({"watches": n}))
        }
        (Method::POST, ["faults", "undecodable"]) => {
            let b: InjectBody = parse_json_required(&body)?;
            let n = match b.object {
                Some(obj) => c.inject_event(
                    &b.resource,
                    b.event_type.as_deref().unwrap_or("MODIFIED"),
                    &obj,
                )?,
                None => c.inject_undecodable(&b.resource)?,
            };
            ok(json!({"watches": n}))
        }
        // The body, byte for byte (no newline added, not necessarily UTF-8), to the open watches
        // of `?resource=`: see `Control::inject_bytes`.
        (Method::POST, ["faults", "inject-bytes"]) => {
            let q = parse_resource_query(raw_query)?;
            let resource = q
                .resource
                .ok_or_else(|| ApiError::bad_request("the resource query parameter is required"))?;
            let n = c.inject_bytes(&resource, body)?;
            ok(json!({"watches": n}))
        }
        (Method::POST, ["faults", "inject-event"]) => {
            let b: InjectBody = parse_json_required(&body)?;
            let obj = b
                .object
                .ok_or_else(|| ApiError::bad_request("object is required"))?;
            let n = c.inject_event(
                &b.resource,
                b.event_type.as_deref().unwrap_or("MODIFIED"),
                &obj,
            )?;
            ok(json!({"watches": n}))
        }
        (Method::POST, ["faults", "side-door"]) => {
            let b: SideDoorBody = parse_json_required(&body)?;
            let obj = match b {
                SideDoorBody::Put { object } => c.side_door_put(object)?,
                SideDoorBody::Delete {
                    resource,
                    namespace,
                    name,
                } => c.side_door_delete(&resource, namespace.as_deref(), &name)?,
            };
            ok(json!({"object": obj}))
        }
        (_, ["requests" | "state" | "faults"]) | (_, ["faults", _]) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::path_not_found()),
    }
}
