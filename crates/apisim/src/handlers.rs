//! HTTP request handling: routing Kubernetes paths, accounting, fault application, then the
//! verbs. The concepts live in submodules: `route` (which path is what, and its verb), `verbs`
//! (the resource verbs and discovery), `media` (bodies and media types); the control API
//! (`/apisim/*`) is `control`.
//!
//! Module direction: `handlers` -> `watch` -> `server` (the shared state, `Control`); nothing
//! below `handlers` imports it (`listen` is the one module that does, to build the router).

mod control;
mod exec;
mod media;
mod review;
mod route;
mod verbs;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use crate::accounting::{RequestRecord, VERB_CONTROL, VERB_DISCOVERY};
use crate::server::Shared;
use media::html_error_page;
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
            None => {
                // With a policy: authentication and authorization first, as upstream's filters.
                let answer = match review::check(&shared, &route, req.headers()) {
                    Err(denied) => Err(denied),
                    Ok(caller) => match review::review_of(&shared, &route) {
                        Some(r) => review::handle(&shared, r, &method, caller, req).await,
                        None => {
                            verbs::handle(&shared, route, &method, &verb, &raw_query, req).await
                        }
                    },
                };
                answer.unwrap_or_else(IntoResponse::into_response)
            }
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
