//! The policy at work (only when a [`Policy`] is loaded): every request's bearer token is
//! authenticated and every resource request authorized before its verb runs (401 / 403 with
//! upstream's `Status` bodies), and the review APIs answer from the policy:
//! `POST /apis/authentication.k8s.io/v1/tokenreviews`, `…/selfsubjectreviews` (`kubectl auth
//! whoami`), `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` and
//! `…/selfsubjectaccessreviews` (`kubectl auth can-i`), with their discovery documents.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, header};
use k8s_openapi::api::authentication::v1 as authn;
use k8s_openapi::api::authorization::v1 as authz;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::media::{decode_object, json_response, read_body};
use super::route::{ResourcePath, Route};
use crate::errors::ApiError;
use crate::policy::{AUTHENTICATED_GROUP, Attributes, Policy, User};
use crate::server::Shared;

const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";

/// One of the review APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Review {
    Token,
    SelfSubject,
    SubjectAccess,
    SelfSubjectAccess,
}

impl Review {
    const ALL: [Review; 4] = [
        Review::Token,
        Review::SelfSubject,
        Review::SubjectAccess,
        Review::SelfSubjectAccess,
    ];

    fn group(self) -> &'static str {
        match self {
            Review::Token | Review::SelfSubject => AUTHN,
            Review::SubjectAccess | Review::SelfSubjectAccess => AUTHZ,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Review::Token => "tokenreviews",
            Review::SelfSubject => "selfsubjectreviews",
            Review::SubjectAccess => "subjectaccessreviews",
            Review::SelfSubjectAccess => "selfsubjectaccessreviews",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Review::Token => "TokenReview",
            Review::SelfSubject => "SelfSubjectReview",
            Review::SubjectAccess => "SubjectAccessReview",
            Review::SelfSubjectAccess => "SelfSubjectAccessReview",
        }
    }

    /// What any authenticated user may create (upstream's `system:basic-user` role).
    fn is_self(self) -> bool {
        matches!(self, Review::SelfSubject | Review::SelfSubjectAccess)
    }

    fn of(rp: &ResourcePath<'_>) -> Option<Review> {
        let t = &rp.target;
        if rp.res.is_some()
            || t.version != "v1"
            || t.namespace.is_some()
            || t.name.is_some()
            || t.subresource.is_some()
        {
            return None;
        }
        Review::ALL
            .into_iter()
            .find(|r| r.group() == t.group && r.plural() == t.resource)
    }
}

/// The review API a request names, when a policy is loaded.
pub(super) fn review_of(shared: &Shared, route: &Route<'_>) -> Option<Review> {
    match route {
        Route::Resource(rp) if shared.config.policy.is_some() => Review::of(rp),
        _ => None,
    }
}

/// The bearer token of a request's `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authentication and authorization of a request that is not for the control API: `Ok(None)`
/// without a policy, the caller with one; 401 without a known token, 403 for a resource request
/// no rule allows.
pub(super) fn check(
    shared: &Shared,
    route: &Route<'_>,
    headers: &HeaderMap,
) -> Result<Option<User>, ApiError> {
    let Some(policy) = &shared.config.policy else {
        return Ok(None);
    };
    let Some(user) = bearer(headers).and_then(|t| policy.authenticate(t)) else {
        tracing::debug!("request without a known bearer token: 401");
        return Err(ApiError::from_wire(k8s_wire::Status::unauthorized()));
    };
    if let Route::Resource(rp) = route {
        if Review::of(rp).is_some_and(Review::is_self) {
            return Ok(Some(user));
        }
        let t = &rp.target;
        let attrs = Attributes {
            verb: rp.verb,
            group: t.group,
            resource: t.resource,
            subresource: t.subresource,
            namespace: t.namespace,
            name: t.name,
        };
        if !policy.allows(&user, &attrs) {
            tracing::debug!(
                verb = rp.verb,
                resource = t.resource,
                "denied by the policy: 403"
            );
            return Err(forbidden(&user.username, &attrs));
        }
    }
    // Discovery, OpenAPI, /version and health: any authenticated user (upstream's
    // system:discovery and system:public-info-viewer roles).
    Ok(Some(user))
}

fn forbidden(username: &str, a: &Attributes<'_>) -> ApiError {
    let target = k8s_wire::ForbiddenTarget {
        group: a.group,
        resource: a.resource,
        subresource: a.subresource,
        namespace: a.namespace,
        name: a.name,
    };
    ApiError::from_wire(k8s_wire::Status::forbidden(username, a.verb, &target))
}

async fn decode<T: DeserializeOwned>(review: Review, req: Request) -> Result<T, ApiError> {
    let headers = req.headers().clone();
    let body = read_body(req).await?;
    let obj = decode_object(&headers, &body)?;
    serde_json::from_value(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as a {}: {e}",
            review.kind()
        ))
    })
}

fn created<T: Serialize>(obj: &T) -> Result<Response, ApiError> {
    let v = serde_json::to_value(obj).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(StatusCode::CREATED, &v))
}

fn user_info(user: &User) -> authn::UserInfo {
    authn::UserInfo {
        username: Some(user.username.clone()),
        uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
        groups: Some(user.groups.clone()),
        extra: None,
    }
}

/// A SubjectAccessReview's decision for `user`.
fn decide(
    policy: &Policy,
    user: &User,
    resource: Option<&authz::ResourceAttributes>,
) -> authz::SubjectAccessReviewStatus {
    let Some(r) = resource else {
        // Non-resource requests (discovery, /version, health): any authenticated user.
        let allowed = user.groups.iter().any(|g| g == AUTHENTICATED_GROUP);
        return authz::SubjectAccessReviewStatus {
            allowed,
            reason: allowed.then(|| "apisim: any authenticated user".to_owned()),
            ..Default::default()
        };
    };
    let s = |v: &Option<String>| v.as_deref().unwrap_or_default().to_owned();
    let (verb, group, resource, sub, ns, name) = (
        s(&r.verb),
        s(&r.group),
        s(&r.resource),
        s(&r.subresource),
        s(&r.namespace),
        s(&r.name),
    );
    let attrs = Attributes {
        verb: &verb,
        group: &group,
        resource: &resource,
        subresource: Some(sub.as_str()).filter(|x| !x.is_empty()),
        namespace: Some(ns.as_str()).filter(|x| !x.is_empty()),
        name: Some(name.as_str()).filter(|x| !x.is_empty()),
    };
    match policy.allowing_rule(user, &attrs) {
        Some(i) => authz::SubjectAccessReviewStatus {
            allowed: true,
            reason: Some(format!("apisim: allowed by rule {i}")),
            ..Default::default()
        },
        None => authz::SubjectAccessReviewStatus::default(),
    }
}

/// Answers a review request (`caller`: who sent it, as [`check`] authenticated them).
pub(super) async fn handle(
    shared: &Arc<Shared>,
    review: Review,
    method: &Method,
    caller: Option<User>,
    req: Request,
) -> Result<Response, ApiError> {
    let Some(policy) = &shared.config.policy else {
        return Err(ApiError::path_not_found());
    };
    if *method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let caller = caller.unwrap_or_default();
    match review {
        Review::Token => {
            let mut tr: authn::TokenReview = decode(review, req).await?;
            let token = tr.spec.token.as_deref().unwrap_or_default();
            tr.status = Some(match policy.authenticate(token) {
                Some(user) => authn::TokenReviewStatus {
                    authenticated: Some(true),
                    user: Some(user_info(&user)),
                    audiences: tr.spec.audiences.clone(),
                    error: None,
                },
                None => authn::TokenReviewStatus {
                    authenticated: Some(false),
                    user: Some(authn::UserInfo::default()),
                    audiences: None,
                    error: Some("invalid bearer token".to_owned()),
                },
            });
            created(&tr)
        }
        Review::SelfSubject => {
            let mut ssr: authn::SelfSubjectReview = decode(review, req).await?;
            ssr.status = Some(authn::SelfSubjectReviewStatus {
                user_info: Some(user_info(&caller)),
            });
            created(&ssr)
        }
        Review::SubjectAccess => {
            let mut sar: authz::SubjectAccessReview = decode(review, req).await?;
            let spec = &sar.spec;
            let user = User {
                username: spec.user.clone().unwrap_or_default(),
                uid: spec.uid.clone().unwrap_or_default(),
                groups: spec.groups.clone().unwrap_or_default(),
            };
            if user.username.is_empty() && user.groups.is_empty() {
                return Err(invalid_sar(
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            if spec.resource_attributes.is_some() == spec.non_resource_attributes.is_some() {
                return Err(invalid_sar(
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
            sar.status = Some(decide(policy, &user, spec.resource_attributes.as_ref()));
            created(&sar)
        }
        Review::SelfSubjectAccess => {
            let mut ssar: authz::SelfSubjectAccessReview = decode(review, req).await?;
            let spec = &ssar.spec;
            if spec.resource_attributes.is_some() == spec.non_resource_attributes.is_some() {
                return Err(ApiError::invalid(
                    AUTHZ,
                    review.kind(),
                    "",
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
            ssar.status = Some(decide(policy, &caller, spec.resource_attributes.as_ref()));
            created(&ssar)
        }
    }
}

fn invalid_sar(field: &str, detail: &str) -> ApiError {
    ApiError::invalid(AUTHZ, Review::SubjectAccess.kind(), "", field, detail)
}

/// `/apis` with the review groups added (when a policy is loaded).
pub(super) fn add_groups(shared: &Shared, doc: &mut Value) {
    if shared.config.policy.is_none() {
        return;
    }
    if let Some(groups) = doc.get_mut("groups").and_then(Value::as_array_mut) {
        for g in [AUTHN, AUTHZ] {
            groups.push(group_doc(g));
        }
    }
}

fn group_doc(group: &str) -> Value {
    let v = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [v.clone()], "preferredVersion": v})
}

/// `/apis/<review group>`, when a policy is loaded.
pub(super) fn api_group(shared: &Shared, group: &str) -> Option<Value> {
    if shared.config.policy.is_none() || (group != AUTHN && group != AUTHZ) {
        return None;
    }
    let mut doc = group_doc(group);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/apis/<review group>/v1`, when a policy is loaded.
pub(super) fn api_resource_list(shared: &Shared, group: &str, version: &str) -> Option<Value> {
    if shared.config.policy.is_none() || version != "v1" || (group != AUTHN && group != AUTHZ) {
        return None;
    }
    let resources: Vec<Value> = Review::ALL
        .into_iter()
        .filter(|r| r.group() == group)
        .map(|r| {
            json!({"name": r.plural(), "singularName": "", "namespaced": false,
                   "kind": r.kind(), "verbs": ["create"]})
        })
        .collect();
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": format!("{group}/v1"), "resources": resources}))
}
