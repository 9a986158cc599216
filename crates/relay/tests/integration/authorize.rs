//! `authorize::Authorizer` against apisim with the project's policy (`fixtures/policy.yaml`):
//! allowed, denied (the 403 body equal to apisim's own for the same request), invalid token
//! (401), decisions cached (apisim's review requests counted) and expiring, and a review endpoint
//! that fails (503, never cached).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use apisim::{FailSpec, Server, ServerConfig, ServerHandle};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use repocache_relay::authorize::{
    AuthorizeConfig, Authorizer, Denied, ResourceAttributes, UserInfo,
};
use repocache_test_support::PATIENCE;

const GROUP: &str = "packages.glasskube.dev";
const LONG: Duration = Duration::from_secs(3600);

async fn apisim() -> ServerHandle {
    repocache_test_support::apisim_with(
        ServerConfig::default()
            .with_policy_yaml(apisim::seed::POLICY_YAML)
            .unwrap(),
    )
    .await
}

/// The relay's own identity: may create TokenReviews and SubjectAccessReviews. No kube retries,
/// so that a failing review fails at once.
fn authorizer(s: &ServerHandle, ttl: Duration) -> Authorizer {
    let mut config = kube::Config::new(s.url().parse().unwrap());
    config.auth_info.token = Some("relay-token".to_owned().into());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    Authorizer::new(
        client,
        AuthorizeConfig {
            decision_ttl: ttl,
            ..AuthorizeConfig::default()
        },
    )
}

fn read(
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ResourceAttributes {
    ResourceAttributes {
        verb: verb.to_owned(),
        group: GROUP.to_owned(),
        version: "v1alpha1".to_owned(),
        resource: resource.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    }
}

/// The path apisim serves `read` at (a watch as `?watch=true`).
fn path_of(r: &ResourceAttributes) -> String {
    let mut p = format!("/apis/{}/{}", r.group, r.version);
    if let Some(ns) = &r.namespace {
        p.push_str(&format!("/namespaces/{ns}"));
    }
    p.push('/');
    p.push_str(&r.resource);
    if let Some(name) = &r.name {
        p.push('/');
        p.push_str(name);
    }
    if r.verb == "watch" {
        p.push_str("?watch=true");
    }
    p
}

/// apisim's own answer to `read` made with `token`: status, content type and body.
async fn apisim_answer(
    s: &ServerHandle,
    token: &str,
    r: &ResourceAttributes,
) -> (StatusCode, String, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::get(format!("{}{}", s.url(), path_of(r)))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(PATIENCE, client.request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    if status.is_success() {
        // An allowed watch never ends: the status is the answer.
        return (status, ct, Bytes::new());
    }
    let body = tokio::time::timeout(PATIENCE, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, ct, body)
}

/// The relay's answer for a denial, in the same shape.
fn relay_answer(d: Denied) -> (StatusCode, String, Bytes) {
    let r = d.into_response();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (r.status(), ct, r.into_body())
}

fn reviews(s: &ServerHandle) -> (u64, u64) {
    (
        s.count("create", "tokenreviews"),
        s.count("create", "subjectaccessreviews"),
    )
}

#[tokio::test]
async fn an_allowed_caller_is_named_and_allowed() {
    let s = apisim().await;
    let a = authorizer(&s, LONG);
    let alice = a.authenticate("alice-token").await.unwrap();
    assert_eq!(
        alice,
        UserInfo {
            username: "alice".into(),
            uid: "1001".into(),
            groups: vec!["repo-readers".into(), "system:authenticated".into()],
            extra: Default::default(),
        }
    );
    for r in [
        read("list", "packagerepositories", None, None),
        read("watch", "packagerepositories", None, None),
        read("get", "packagerepositories", None, Some("glasskube")),
    ] {
        a.authorize(&alice, &r).await.unwrap();
        // apisim agrees.
        assert_eq!(
            apisim_answer(&s, "alice-token", &r).await.0,
            StatusCode::OK,
            "{r:?}"
        );
    }
    // bob may get the one repository he is named for, and Packages in analytics.
    let bob = a.authenticate("bob-token").await.unwrap();
    a.authorize(
        &bob,
        &read("get", "packagerepositories", None, Some("glasskube")),
    )
    .await
    .unwrap();
    a.authorize(&bob, &read("list", "packages", Some("analytics"), None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_denied_read_gets_the_403_apisim_itself_gives() {
    let s = apisim().await;
    let a = authorizer(&s, LONG);
    let bob = a.authenticate("bob-token").await.unwrap();
    let alice = a.authenticate("alice-token").await.unwrap();
    for (token, user, r) in [
        (
            "bob-token",
            &bob,
            read("list", "packagerepositories", None, None),
        ),
        (
            "bob-token",
            &bob,
            read("get", "packagerepositories", None, Some("private-basic")),
        ),
        (
            "bob-token",
            &bob,
            read("watch", "packages", Some("default"), None),
        ),
        (
            "bob-token",
            &bob,
            read("get", "packages", Some("default"), Some("cert-manager")),
        ),
        (
            "alice-token",
            &alice,
            read("list", "packages", Some("analytics"), None),
        ),
    ] {
        let denied = a.authorize(user, &r).await.unwrap_err();
        assert!(matches!(denied, Denied::Forbidden { .. }), "{denied:?}");
        let ours = relay_answer(denied);
        let theirs = apisim_answer(&s, token, &r).await;
        assert_eq!(ours.0, StatusCode::FORBIDDEN, "{r:?}");
        assert_eq!(ours, theirs, "{r:?}: {}", String::from_utf8_lossy(&ours.2));
    }
}

#[tokio::test]
async fn an_unknown_or_missing_token_is_401_like_apisims() {
    let s = apisim().await;
    let a = authorizer(&s, LONG);
    let r = read("list", "packagerepositories", None, None);
    let denied = a.authenticate("forged-token").await.unwrap_err();
    assert!(matches!(denied, Denied::Unauthenticated), "{denied:?}");
    let ours = relay_answer(denied);
    assert_eq!(ours.0, StatusCode::UNAUTHORIZED);
    assert_eq!(ours, apisim_answer(&s, "forged-token", &r).await);
    assert_eq!(reviews(&s), (1, 0));
    // No token at all: 401 without asking the API server.
    assert!(matches!(
        a.authenticate("").await,
        Err(Denied::Unauthenticated)
    ));
    assert_eq!(reviews(&s), (1, 0));
}

#[tokio::test]
async fn decisions_are_cached_within_the_ttl() {
    let s = apisim().await;
    let a = authorizer(&s, LONG);
    let list = read("list", "packagerepositories", None, None);

    let alice = a.authenticate("alice-token").await.unwrap();
    a.authorize(&alice, &list).await.unwrap();
    assert_eq!(reviews(&s), (1, 1));
    // The same token and the same read again: no review.
    assert_eq!(a.authenticate("alice-token").await.unwrap(), alice);
    a.authorize(&alice, &list).await.unwrap();
    assert_eq!(reviews(&s), (1, 1));
    // Another read, another token: reviewed once each, then cached too.
    let get = read("get", "packagerepositories", None, Some("glasskube"));
    a.authorize(&alice, &get).await.unwrap();
    let bob = a.authenticate("bob-token").await.unwrap();
    assert_eq!(reviews(&s), (2, 2));
    // Denials are cached as well: unknown tokens and forbidden reads.
    for _ in 0..3 {
        assert!(matches!(
            a.authenticate("forged").await,
            Err(Denied::Unauthenticated)
        ));
        assert!(matches!(
            a.authorize(&bob, &list).await,
            Err(Denied::Forbidden { .. })
        ));
        a.authorize(&alice, &get).await.unwrap();
        a.authenticate("alice-token").await.unwrap();
    }
    assert_eq!(reviews(&s), (3, 3));
    // A clone shares the cache.
    a.clone().authorize(&alice, &list).await.unwrap();
    assert_eq!(reviews(&s), (3, 3));
}

/// Repeats `what` until apisim has seen `want` reviews (the TTL has run out and a new review was
/// made), or fails after PATIENCE. Polls; asserts no timing.
async fn until_reviews(s: &ServerHandle, want: (u64, u64), mut what: impl AsyncFnMut()) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        what().await;
        let seen = reviews(s);
        if seen == want {
            return;
        }
        assert!(
            seen.0 <= want.0 && seen.1 <= want.1,
            "more reviews than expected: {seen:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {seen:?} reviews, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn decisions_expire_after_the_ttl() {
    let s = apisim().await;
    let a = authorizer(&s, Duration::from_millis(200));
    let list = read("list", "packagerepositories", None, None);
    let alice = a.authenticate("alice-token").await.unwrap();
    a.authorize(&alice, &list).await.unwrap();
    assert_eq!(reviews(&s), (1, 1));
    // Asked again and again, the API server is asked once more after the TTL, for each kind.
    until_reviews(&s, (2, 1), async || {
        a.authenticate("alice-token").await.unwrap();
    })
    .await;
    until_reviews(&s, (2, 2), async || {
        a.authorize(&alice, &list).await.unwrap();
    })
    .await;
    // An expired denial is asked again too: bob, once allowed by a new policy, would get in.
    let bob = a.authenticate("bob-token").await.unwrap();
    assert!(a.authorize(&bob, &list).await.is_err());
    until_reviews(&s, (3, 4), async || {
        assert!(a.authorize(&bob, &list).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_failing_review_is_unavailable_and_not_cached() {
    let s = apisim().await;
    let a = authorizer(&s, LONG);
    let list = read("list", "packagerepositories", None, None);

    s.fail_next(FailSpec::new("create", "tokenreviews", 500, 1));
    let denied = a.authenticate("alice-token").await.unwrap_err();
    assert!(matches!(denied, Denied::Unavailable(_)), "{denied:?}");
    let r = denied.into_response();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(!String::from_utf8_lossy(r.body()).contains("alice"));
    // Not cached: the next attempt reviews again and succeeds.
    let alice = a.authenticate("alice-token").await.unwrap();
    assert_eq!(reviews(&s), (2, 0));

    s.fail_next(FailSpec::new("create", "subjectaccessreviews", 503, 1));
    assert!(matches!(
        a.authorize(&alice, &list).await,
        Err(Denied::Unavailable(_))
    ));
    a.authorize(&alice, &list).await.unwrap();
    assert_eq!(reviews(&s), (2, 2));

    // An API server that serves no review API (apisim without a policy): unavailable, not 401.
    let bare = Server::start(ServerConfig::default()).await.unwrap();
    let a = authorizer(&bare, LONG);
    assert!(matches!(
        a.authenticate("alice-token").await,
        Err(Denied::Unavailable(_))
    ));
    // A relay identity the API server refuses reviews to: unavailable as well.
    let mut config = kube::Config::new(s.url().parse().unwrap());
    config.auth_info.token = Some("alice-token".to_owned().into());
    let as_alice = Authorizer::new(
        kube::Client::try_from(config).unwrap(),
        AuthorizeConfig::default(),
    );
    assert!(matches!(
        as_alice.authenticate("bob-token").await,
        Err(Denied::Unavailable(_))
    ));
}

#[tokio::test]
async fn debug_shows_no_credential() {
    let s = apisim().await;
    let a = authorizer(&s, LONG);
    let alice = a.authenticate("alice-token").await.unwrap();
    let denied = a
        .authorize(
            &alice,
            &read("delete", "packagerepositories", None, Some("glasskube")),
        )
        .await
        .unwrap_err();
    let shown = format!("{a:?} {alice:?} {denied:?} {denied}");
    for secret in ["alice-token", "relay-token", "alice\"", "1001"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("cached_tokens: 1"), "{shown}");
}
