//! The control API (`/apisim/...`): request accounting, server state, and fault injection.
//!
//! Every fault goes through [`Control::apply`] as a [`Fault`]: `POST /apisim/faults` takes the
//! enum itself as JSON (`{"fault": "closeWatches"}`); the per-fault routes
//! (`POST /apisim/faults/<kebab-name>`) map their older bodies onto the same variants.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::media::{json_response, read_body};
use crate::errors::ApiError;
use crate::faults::{FailSpec, Fault, LatencySpec};
use crate::server::{Control, DropConnections, Shared};

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

impl Default for RestartBody {
    fn default() -> Self {
        RestartBody { keep_objects: true }
    }
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

/// Answers one `/apisim/...` request (`segs`: the path segments after `/apisim/`).
pub(super) async fn handle(
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

/// The fault a per-fault route (`POST /apisim/faults/<route>`) asks for, from its body (and,
/// for `inject-bytes`, its query). `None`: no such route (answered 405, as it always was).
fn route_fault(route: &str, raw_query: &str, body: &Bytes) -> Result<Option<Fault>, ApiError> {
    let event = |b: InjectBody| -> Result<Fault, ApiError> {
        Ok(Fault::InjectEvent {
            resource: b.resource,
            event_type: b.event_type.unwrap_or_else(|| "MODIFIED".to_owned()),
            object: b
                .object
                .ok_or_else(|| ApiError::bad_request("object is required"))?,
        })
    };
    Ok(Some(match route {
        "fail" => Fault::Fail(parse_json_required::<FailSpec>(body)?),
        "latency" => Fault::Latency(parse_json_required::<LatencySpec>(body)?),
        "close-watches" => Fault::CloseWatches,
        "stall-watches" => Fault::StallWatches {
            duration_ms: parse_json::<StallBody>(body)?.duration_ms,
        },
        "release-watches" => Fault::ReleaseWatches,
        "compact" => Fault::Compact,
        "restart" => Fault::Restart {
            keep_objects: parse_json::<RestartBody>(body)?.keep_objects,
        },
        "malformed-line" => Fault::MalformedLine {
            line: parse_json::<LineBody>(body)?.line,
        },
        "inject-event" => event(parse_json_required(body)?)?,
        // With an `object`, this route has always sent that object (as `inject-event` does).
        "undecodable" => {
            let b: InjectBody = parse_json_required(body)?;
            if b.object.is_some() {
                event(b)?
            } else {
                Fault::Undecodable {
                    resource: b.resource,
                }
            }
        }
        // The body, byte for byte (no newline added, not necessarily UTF-8), to the open
        // watches of `?resource=`.
        "inject-bytes" => Fault::InjectBytes {
            resource: parse_resource_query(raw_query)?
                .resource
                .ok_or_else(|| ApiError::bad_request("the resource query parameter is required"))?,
            bytes: body.clone(),
        },
        "cut-line" => {
            let b: InjectBody = parse_json_required(body)?;
            Fault::CutLine {
                resource: b.resource,
                event_type: b.event_type.unwrap_or_else(|| "MODIFIED".to_owned()),
                object: b
                    .object
                    .ok_or_else(|| ApiError::bad_request("object is required"))?,
            }
        }
        "side-door" => match parse_json_required::<SideDoorBody>(body)? {
            SideDoorBody::Put { object } => Fault::SideDoorPut { object },
            SideDoorBody::Delete {
                resource,
                namespace,
                name,
            } => Fault::SideDoorDelete {
                resource,
                namespace,
                name,
            },
        },
        _ => return Ok(None),
    }))
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
    let ok = || json!({"ok": true, "resourceVersion": c.resource_version().to_string()});
    // A restart drops this request's connection too: let the answer go out first.
    let inject = |fault: Fault| -> Result<Value, ApiError> {
        Ok(c.apply(fault, DropConnections::Soon)?.to_json())
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
            Ok(ok())
        }
        (Method::GET, ["state"]) => {
            serde_json::to_value(c.state()).map_err(|e| ApiError::internal(e.to_string()))
        }
        (Method::GET, ["faults"]) => {
            let (fails, lats) = c.faults();
            Ok(json!({"fail": fails, "latency": lats, "stalled": c.watches_stalled()}))
        }
        (Method::DELETE, ["faults"]) => {
            c.clear_faults();
            Ok(ok())
        }
        (Method::POST, ["faults"]) => inject(parse_json_required(&body)?),
        (Method::POST, ["faults", route]) => match route_fault(route, raw_query, &body)? {
            Some(fault) => inject(fault),
            None => Err(ApiError::method_not_allowed()),
        },
        (_, ["requests" | "state" | "faults"]) | (_, ["faults", _]) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::path_not_found()),
    }
}
