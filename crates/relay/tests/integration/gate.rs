//! The caller check (`--authorize`): every cached read passes it before it is answered; a denied
//! caller gets the check's answer and never data. (The TokenReview/SubjectAccessReview
//! implementation, `authorize::Authorizer`, is tested with apisim's policy on its own.)

use bytes::Bytes;
use futures::future::BoxFuture;
use repocache_relay::gate::{CallerCheck, Read};

use crate::common::{self, REPOS};

/// Allows the token `good` to read everything but the object `secret-one`.
struct Fake;

impl CallerCheck for Fake {
    fn check<'a>(
        &'a self,
        bearer_token: Option<&'a str>,
        read: Read<'a>,
    ) -> BoxFuture<'a, Result<(), http::Response<Bytes>>> {
        Box::pin(async move {
            let deny = |code: u16| {
                let mut r = http::Response::new(Bytes::from_static(b"{\"kind\":\"Status\"}"));
                *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
                r
            };
            match bearer_token {
                None => Err(deny(401)),
                Some("good") if read.name != Some("private-basic") => Ok(()),
                Some(_) => Err(deny(403)),
            }
        })
    }
}

async fn send(client: &kube::Client, uri: &str, token: Option<&str>) -> (u16, String) {
    let mut builder = http::Request::get(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let response = client
        .send(builder.body(Vec::new().into()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    if uri.contains("watch=true") {
        return (status, String::new());
    }
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_cached_read_passes_the_callers_check() {
    let server = common::apisim().await;
    let relay = common::ready(common::builder(&server).authorize(Fake)).await;
    let client = common::client(&relay);
    let (status, body) = send(&client, REPOS, None).await;
    assert_eq!(status, 401);
    assert!(!body.contains("glasskube"), "{body}");
    let (status, body) = send(&client, REPOS, Some("bad")).await;
    assert_eq!(status, 403);
    assert!(!body.contains("glasskube"), "{body}");
    let (status, body) = send(&client, &format!("{REPOS}/private-basic"), Some("good")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(&client, &format!("{REPOS}?watch=true"), Some("bad")).await;
    assert_eq!(status, 403);
    let (status, body) = send(&client, REPOS, Some("good")).await;
    assert_eq!(status, 200);
    assert!(body.contains("glasskube"), "{body}");
    assert_eq!(relay.stats().denied, 4);
    assert_eq!(relay.stats().watches_served, 0);
}
