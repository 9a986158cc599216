//! Every fault, through the Rust handle and through the `/apisim/...` control endpoints, plus
//! request accounting.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use crate::common::*;
use apisim::{FailSpec, Fault, LatencySpec, Server, ServerConfig};
use http::Method;
use serde_json::json;

async fn server() -> apisim::ServerHandle {
    Server::start(ServerConfig::default().with_bookmark_interval(Duration::from_millis(50)))
        .await
        .unwrap()
}

async fn control(
    s: &apisim::ServerHandle,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = post_json(s.addr(), path, &body).await;
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

#[tokio::test]
async fn close_watches_ends_streams() {
    let s = server().await;
    let mut w1 = Watch::open(s.addr(), &format!("{PR}?watch=true")).await;
    let mut w2 = Watch::open(s.addr(), &format!("{PR}?watch=true")).await;
    assert!(s.wait_for_watches(2, T).await);
    s.close_watches();
    w1.expect_end().await;
    w2.expect_end().await;
    // and over HTTP
    let mut w3 = Watch::open(s.addr(), &format!("{PR}?watch=true")).await;
    assert!(s.wait_for_watches(1, T).await);
    assert_eq!(
        control(&s, "/apisim/faults/close-watches", json!({})).await["watches"],
        1
    );
    w3.expect_end().await;
    eventually("every watch is closed", || s.open_watches() == 0).await;
}

#[tokio::test]
async fn stall_holds_events_and_bookmarks_until_released() {
    let s = server().await;
    let a = s.addr();
    let mut w = Watch::open(a, &format!("{PR}?watch=true&allowWatchBookmarks=true")).await;
    assert!(s.wait_for_watches(1, T).await);
    s.stall_watches(None);
    s.create(repo("a", "u")).unwrap();
    assert!(
        w.next_line_within(Duration::from_millis(300))
            .await
            .is_none(),
        "stalled: nothing, not even bookmarks"
    );
    // a watch opened during the stall stalls too (after its response head)
    let mut late = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert_eq!(late.status, 200);
    assert!(
        late.next_line_within(Duration::from_millis(100))
            .await
            .is_none()
    );
    s.release_watches();
    let e = w.next_event(false).await;
    assert_eq!((e["type"].as_str(), name_of(&e)), (Some("ADDED"), "a"));
    assert_eq!(name_of(&late.next_event(false).await), "a");
    // timed stall over HTTP: it runs from when the server handles the request, so the clock
    // starts before the request is sent (started after the answer, the bound would depend on
    // how long a busy machine takes to deliver it)
    let t0 = Instant::now();
    control(
        &s,
        "/apisim/faults/stall-watches",
        json!({"durationMs": 200}),
    )
    .await;
    s.create(repo("b", "u")).unwrap();
    let e = w.next_event(false).await;
    assert_eq!(name_of(&e), "b");
    assert!(
        t0.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
    control(&s, "/apisim/faults/stall-watches", json!({})).await;
    control(&s, "/apisim/faults/release-watches", json!({})).await;
    s.create(repo("c", "u")).unwrap();
    assert_eq!(name_of(&w.next_event(false).await), "c");
}

#[tokio::test]
async fn fail_next_requests_with_status() {
    let s = server().await;
    let a = s.addr();
    s.fail_next(FailSpec::new("list", "packagerepositories", 429, 2));
    for _ in 0..2 {
        let r = get(a, PR).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.headers["retry-after"], "1");
        let st = r.json();
        assert_eq!(
            (st["kind"].as_str(), st["reason"].as_str()),
            (Some("Status"), Some("TooManyRequests"))
        );
        assert_eq!(st["details"]["retryAfterSeconds"], 1);
    }
    assert_eq!(get(a, PR).await.status, 200);
    // other verbs are untouched; each code gets its reason
    for (code, reason) in [
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
    ] {
        control(
            &s,
            "/apisim/faults/fail",
            json!({"verb": "get", "resource": "packagerepositories", "code": code}),
        )
        .await;
        assert_eq!(get(a, PR).await.status, 200);
        let r = get(a, &format!("{PR}/x")).await;
        assert_eq!(r.status, code);
        assert_eq!(r.json()["reason"], reason);
    }
    // watches fail before the stream starts
    control(
        &s,
        "/apisim/faults/fail",
        json!({"verb": "watch", "code": 503, "count": 1, "message": "down"}),
    )
    .await;
    let r = get(a, &format!("{PR}?watch=true")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["message"], "down");
    // a wildcard rule does not hit control or discovery requests
    s.fail_next(FailSpec::new("*", "*", 500, 1));
    assert_eq!(get(a, "/apis").await.status, 200);
    assert_eq!(get(a, "/apisim/faults").await.status, 200);
    assert_eq!(get(a, PR).await.status, 500);
    // bad control bodies
    assert_eq!(
        post_json(a, "/apisim/faults/fail", &json!({"code": 200}))
            .await
            .status,
        400
    );
    assert_eq!(
        call(
            a,
            Method::POST,
            "/apisim/faults/fail",
            Some("application/json"),
            b"nope"
        )
        .await
        .status,
        400
    );
    assert_eq!(get(a, "/apisim/nothing").await.status, 404);
}

#[tokio::test]
async fn latency_is_added_to_matching_requests() {
    let s = server().await;
    let a = s.addr();
    s.add_latency(LatencySpec {
        verb: Some("get".into()),
        resource: None,
        latency_ms: 200,
        count: Some(1),
    });
    let t0 = Instant::now();
    get(a, &format!("{PR}/x")).await;
    assert!(t0.elapsed() >= Duration::from_millis(200));
    let rec = s.requests().into_iter().last().unwrap();
    assert!(rec.duration_us >= 200_000);
    control(
        &s,
        "/apisim/faults/latency",
        json!({"verb": "list", "latencyMs": 150}),
    )
    .await;
    let t0 = Instant::now();
    get(a, PR).await;
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let faults = get(a, "/apisim/faults").await.json();
    assert_eq!(faults["latency"][0]["latencyMs"], 150);
    assert_eq!(
        call(a, Method::DELETE, "/apisim/faults", None, b"")
            .await
            .status,
        200
    );
    assert!(s.faults().1.is_empty());
}

#[tokio::test]
async fn compaction_makes_resumes_410() {
    let s = server().await;
    let a = s.addr();
    s.create(repo("a", "u")).unwrap();
    let rv = s.resource_version();
    s.compact();
    let mut w = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={rv}")).await;
    let e = w.next_event(false).await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["code"].as_u64()),
        (Some("ERROR"), Some(410))
    );
    w.expect_end().await;
    // resuming from the list taken after compaction works
    let l = get(a, PR).await.json();
    let mut w = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={}", rv_of(&l))).await;
    s.create(repo("b", "u")).unwrap();
    assert_eq!(name_of(&w.next_event(false).await), "b");
    control(&s, "/apisim/faults/compact", json!({})).await;
    let mut w = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={}", rv_of(&l))).await;
    assert_eq!(w.next_event(false).await["type"], "ERROR");
}

#[tokio::test]
async fn restart_drops_connections_keeps_or_wipes_objects() {
    let s = server().await;
    let a = s.addr();
    s.create(repo("a", "u")).unwrap();
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert_eq!(name_of(&w.next_event(false).await), "a");
    let before = s.resource_version();
    let rv = s.restart(true);
    assert!(rv > before, "counter continues");
    w.expect_end().await;
    assert_eq!(get(a, &format!("{PR}/a")).await.status, 200);
    // history is gone: resuming from before the restart is 410
    let mut old = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={before}")).await;
    assert_eq!(old.next_event(false).await["object"]["code"], 410);
    // wipe over HTTP: the response arrives, then connections drop
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert_eq!(name_of(&w.next_event(false).await), "a");
    control(&s, "/apisim/faults/restart", json!({"keepObjects": false})).await;
    w.expect_end().await;
    assert!(
        get(a, PR).await.json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(s.resource_version() > rv);
}

/// A watch opened before a restart ends before it says anything of the server after it: no
/// bookmark at (or past) the restart's resourceVersion and no event written after it. Otherwise
/// a client would resume from that bookmark, get no 410, and never learn of a wipe's deletions
/// (the chaos harness's one unexplained failure: a cache holding the wiped objects beside the
/// new ones). The HTTP control API keeps connections 100 ms after a restart: ten bookmark ticks.
#[tokio::test]
async fn a_watch_from_before_a_restart_ends_before_any_later_version() {
    let s =
        Server::start(ServerConfig::default().with_bookmark_interval(Duration::from_millis(10)))
            .await
            .unwrap();
    let a = s.addr();
    s.create(repo("a", "u")).unwrap();
    let mut w = Watch::open(a, &format!("{PR}?watch=true&allowWatchBookmarks=true")).await;
    assert_eq!(name_of(&w.next_event(false).await), "a");
    let restarted: u64 = control(&s, "/apisim/faults/restart", json!({"keepObjects": false})).await
        ["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    s.create(repo("b", "u")).unwrap();
    let mut seen = Vec::new();
    loop {
        match w.next_line().await {
            Line::End => break,
            Line::Event(v) => seen.push(v),
            Line::Raw(l) => panic!("unexpected raw line {l:?}"),
        }
    }
    let later: Vec<_> = seen
        .iter()
        .filter(|v| rv_of(&v["object"]) >= restarted)
        .collect();
    assert!(
        later.is_empty(),
        "the watch from before the restart (at {restarted}) went on: {later:?}"
    );
}

#[tokio::test]
async fn malformed_line_and_undecodable_object() {
    let s = server().await;
    let a = s.addr();
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert!(s.wait_for_watches(1, T).await);
    assert_eq!(s.inject_malformed_line(None), 1);
    match w.next_line().await {
        Line::Raw(l) => assert!(serde_json::from_str::<serde_json::Value>(&l).is_err()),
        _ => panic!("expected a raw line"),
    }
    // the stream goes on
    s.create(repo("a", "u")).unwrap();
    assert_eq!(name_of(&w.next_event(false).await), "a");
    assert_eq!(s.inject_undecodable("packagerepositories").unwrap(), 1);
    let e = w.next_event(false).await;
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["spec"]["url"], 42);
    assert_eq!(e["object"]["kind"], "PackageRepository");
    // over HTTP
    control(
        &s,
        "/apisim/faults/malformed-line",
        json!({"line": "garbage here"}),
    )
    .await;
    match w.next_line().await {
        Line::Raw(l) => assert_eq!(l, "garbage here"),
        _ => panic!("expected a raw line"),
    }
    control(
        &s,
        "/apisim/faults/undecodable",
        json!({"resource": "packagerepositories"}),
    )
    .await;
    assert_eq!(w.next_event(false).await["object"]["spec"]["url"], 42);
    control(&s, "/apisim/faults/inject-event", json!({"resource": "packagerepositories", "type": "ADDED", "object": {"kind": "PackageRepository", "metadata": {"name": "ghost"}}})).await;
    assert_eq!(name_of(&w.next_event(false).await), "ghost");
    // injected events are not stored
    assert_eq!(get(a, &format!("{PR}/ghost")).await.status, 404);
    // unknown resource → 404
    assert_eq!(
        post_json(
            a,
            "/apisim/faults/undecodable",
            &json!({"resource": "widgets"})
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn inject_bytes_over_http_sends_the_body_byte_for_byte() {
    let s = server().await;
    let a = s.addr();
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert!(s.wait_for_watches(1, T).await);
    // A line that is not UTF-8, then the start of one that never ends.
    let line = b"{\"type\":\"ADDED\",\"object\":\"\xff\xfe\"}\n".to_vec();
    let r = call(
        a,
        Method::POST,
        "/apisim/faults/inject-bytes?resource=packagerepositories",
        Some("application/octet-stream"),
        &line,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["watches"], 1);
    let r = call(
        a,
        Method::POST,
        "/apisim/faults/inject-bytes?resource=packagerepositories.packages.glasskube.dev",
        None,
        b"{\"never\":",
    )
    .await;
    assert_eq!(r.json()["watches"], 1, "plural.group names work too");
    // (the helper reads lines lossily: the invalid bytes show as U+FFFD)
    let text = match w.next_line().await {
        Line::Raw(l) => l,
        Line::Event(v) => v.to_string(),
        Line::End => panic!("expected the injected line"),
    };
    assert!(text.contains('\u{fffd}'), "{text:?}");
    s.close_watches();
    assert!(matches!(w.next_line().await, Line::End));
    assert_eq!(w.rest(), b"{\"never\":", "no newline was added");
    // Exactly the bytes: check the invalid line through a second watch, byte for byte.
    let mut w2 = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert!(s.wait_for_watches(1, T).await);
    call(
        a,
        Method::POST,
        "/apisim/faults/inject-bytes?resource=packagerepositories",
        None,
        &line[..line.len() - 1],
    )
    .await;
    s.close_watches();
    assert!(matches!(w2.next_line().await, Line::End));
    assert_eq!(w2.rest(), &line[..line.len() - 1]);
    // Without a resource, 400; an unknown one, 404; GET, 405.
    let post = |path: &'static str| call(a, Method::POST, path, None, b"x");
    assert_eq!(post("/apisim/faults/inject-bytes").await.status, 400);
    assert_eq!(
        post("/apisim/faults/inject-bytes?resource=widgets")
            .await
            .status,
        404
    );
    assert_eq!(get(a, "/apisim/faults/inject-bytes").await.status, 405);
}

#[tokio::test]
async fn html_error_pages_instead_of_status() {
    let s = server().await;
    let a = s.addr();
    s.fail_next(FailSpec::new("list", "packagerepositories", 502, 1).html_page());
    let r = get(a, PR).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.headers["content-type"], "text/html");
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.starts_with("<html>"), "{body}");
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    assert_eq!(get(a, PR).await.status, 200);
    // over HTTP, with Retry-After
    control(
        &s,
        "/apisim/faults/fail",
        json!({"verb": "get", "code": 503, "html": true, "retryAfterSeconds": 2}),
    )
    .await;
    let r = get(a, &format!("{PR}/x")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "2");
    assert!(String::from_utf8_lossy(&r.body).contains("503 Service Unavailable"));
}

#[tokio::test]
async fn a_cut_line_ends_the_watch_mid_line() {
    let s = server().await;
    let a = s.addr();
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert!(s.wait_for_watches(1, T).await);
    let obj = repo("cut", "https://cut.example/");
    assert_eq!(
        s.inject_cut_line("packagerepositories", "ADDED", &obj)
            .unwrap(),
        1
    );
    assert!(matches!(w.next_line().await, Line::End));
    let rest = String::from_utf8_lossy(w.rest()).into_owned();
    assert!(rest.starts_with('{') && rest.len() > 20, "{rest}");
    assert!(serde_json::from_str::<serde_json::Value>(&rest).is_err());
    assert!(!rest.contains('\n'));
    // nothing was stored; later watches are unaffected
    assert_eq!(get(a, &format!("{PR}/cut")).await.status, 404);
    eventually("every watch is closed", || s.open_watches() == 0).await;
}

#[tokio::test]
async fn side_door_writes_are_silent() {
    let s = server().await;
    let a = s.addr();
    s.create(repo("a", "u")).unwrap();
    let mut w = Watch::open(a, &format!("{PR}?watch=true")).await;
    assert_eq!(name_of(&w.next_event(false).await), "a");
    let rv = s.resource_version();
    let mut changed = s.get("packagerepositories", None, "a").unwrap();
    changed["spec"]["url"] = json!("https://silently-changed");
    let put = s.side_door_put(changed).unwrap();
    assert_eq!(rv_of(&put), rv + 1);
    s.side_door_delete("packagerepositories", None, "a")
        .unwrap();
    let r = control(
        &s,
        "/apisim/faults/side-door",
        json!({"op": "put", "object": repo("b", "https://b")}),
    )
    .await;
    assert_eq!(r["object"]["metadata"]["name"], "b");
    control(
        &s,
        "/apisim/faults/side-door",
        json!({"op": "delete", "resource": "packagerepositories", "name": "b"}),
    )
    .await;
    control(
        &s,
        "/apisim/faults/side-door",
        json!({"op": "put", "object": repo("c", "https://c")}),
    )
    .await;
    assert_eq!(s.resource_version(), rv + 5);
    // nothing reached the watch; a real write afterwards does
    s.create(repo("d", "u")).unwrap();
    assert_eq!(name_of(&w.next_event(false).await), "d");
    // a resume from before the side-door writes does not replay them
    let mut r = Watch::open(a, &format!("{PR}?watch=true&resourceVersion={rv}")).await;
    assert_eq!(name_of(&r.next_event(false).await), "d");
    // but a LIST sees the truth
    let names: Vec<String> = s
        .list("packagerepositories")
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["c", "d"]);
}

#[tokio::test]
async fn request_log_and_counters() {
    let s = server().await;
    let a = s.addr();
    get(a, "/apis").await;
    get(a, PR).await;
    get(a, &format!("{PR}?limit=1")).await;
    post_json(a, PR, &repo("a", "u")).await;
    call(
        a,
        Method::PATCH,
        &format!("{PR}/a/status"),
        Some("application/merge-patch+json"),
        br#"{"status":{}}"#,
    )
    .await;
    assert_eq!(s.count("list", "packagerepositories"), 2);
    assert_eq!(s.count("create", "packagerepositories"), 1);
    assert_eq!(s.count("patch", "packagerepositories/status"), 1);
    assert_eq!(s.count("discovery", ""), 1);
    let log = s.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log[2].query, "limit=1");
    assert_eq!(
        (log[3].method.as_str(), log[3].status, log[3].verb.as_str()),
        ("POST", 201, "create")
    );
    let http_log = get(a, "/apisim/requests").await.json();
    assert_eq!(http_log["requests"].as_array().unwrap().len(), 5);
    assert!(
        http_log["counts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["verb"] == "list" && c["count"] == 2)
    );
    assert_eq!(s.count("control", ""), 1);
    assert_eq!(
        call(a, Method::DELETE, "/apisim/requests", None, b"")
            .await
            .status,
        200
    );
    // the reset itself is logged after the reset
    assert_eq!(s.requests().len(), 1);
    assert_eq!(s.count("list", "packagerepositories"), 0);
    s.reset_requests();
    assert!(s.requests().is_empty());
    let st = get(a, "/apisim/state").await.json();
    assert_eq!(st["objects"]["packagerepositories"], 1);
}

/// The surfaces a fault can be injected through.
#[derive(Debug, Clone, Copy)]
enum Surface {
    /// `Control::inject`.
    Rust,
    /// `POST /apisim/faults` with the `Fault` as JSON.
    Http,
    /// The per-fault route, `POST /apisim/faults/<name>`, with its own body.
    Route,
}

/// The per-fault route and body for `fault` (`None`: the fault has only `POST /apisim/faults`;
/// the per-fault routes are kept for the callers that had them). The match is exhaustive on
/// purpose: a new variant does not compile here until someone decides.
fn route_of(fault: &Fault) -> Option<(String, Vec<u8>)> {
    let j = |path: &str, v: serde_json::Value| {
        (format!("/apisim/faults/{path}"), v.to_string().into_bytes())
    };
    Some(match fault {
        Fault::Fail(spec) => j("fail", serde_json::to_value(spec).unwrap()),
        Fault::Latency(spec) => j("latency", serde_json::to_value(spec).unwrap()),
        Fault::CloseWatches => j("close-watches", json!({})),
        Fault::StallWatches { duration_ms } => {
            j("stall-watches", json!({"durationMs": duration_ms}))
        }
        Fault::ReleaseWatches => j("release-watches", json!({})),
        Fault::Compact => j("compact", json!({})),
        Fault::Restart { keep_objects } => j("restart", json!({"keepObjects": keep_objects})),
        Fault::MalformedLine { line } => j("malformed-line", json!({"line": line})),
        Fault::InjectEvent {
            resource,
            event_type,
            object,
        } => j(
            "inject-event",
            json!({"resource": resource, "type": event_type, "object": object}),
        ),
        Fault::Undecodable { resource } => j("undecodable", json!({"resource": resource})),
        Fault::InjectBytes { resource, bytes } => (
            format!("/apisim/faults/inject-bytes?resource={resource}"),
            bytes.to_vec(),
        ),
        Fault::CutLine {
            resource,
            event_type,
            object,
        } => j(
            "cut-line",
            json!({"resource": resource, "type": event_type, "object": object}),
        ),
        Fault::SideDoorPut { object } => j("side-door", json!({"op": "put", "object": object})),
        Fault::SideDoorDelete {
            resource,
            namespace,
            name,
        } => j(
            "side-door",
            json!({"op": "delete", "resource": resource, "namespace": namespace, "name": name}),
        ),
    })
}

/// Whether `fault` ends the open watches (then the transcript is read to the end, else up to
/// a marker written after it).
fn ends_watches(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::CloseWatches | Fault::Restart { .. } | Fault::CutLine { .. }
    )
}

fn object_summary(o: &serde_json::Value) -> serde_json::Value {
    json!({"name": o["metadata"]["name"], "rv": o["metadata"]["resourceVersion"], "spec": o["spec"]})
}

/// Injects `fault` through `surface` into a fresh server (one object `a`, one open watch) and
/// returns everything observable: the answer, the fault rules, the state, the objects, one
/// LIST's status, and what the watch received.
async fn effect_of(fault: &Fault, surface: Surface) -> serde_json::Value {
    let s = Server::start(ServerConfig::default().with_seed([repo("a", "https://a.example/")]))
        .await
        .unwrap();
    let a = s.addr();
    let mut w = Watch::open(
        a,
        &format!("{PR}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await;
    assert!(s.wait_for_watches(1, T).await);
    let answer = match surface {
        Surface::Rust => s.inject(fault.clone()).unwrap().to_json(),
        Surface::Http => control(&s, "/apisim/faults", serde_json::to_value(fault).unwrap()).await,
        Surface::Route => {
            let (path, body) = route_of(fault).expect("a fault with a route");
            let r = call(a, Method::POST, &path, Some("application/json"), &body).await;
            assert_eq!(
                r.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&r.body)
            );
            r.json()
        }
    };
    let answer = json!({
        "ok": answer["ok"],
        "resourceVersion": answer["resourceVersion"],
        "watches": answer["watches"],
        "object": answer.get("object").map(object_summary),
    });
    let rules = get(a, "/apisim/faults").await.json();
    let mut state = serde_json::to_value(s.state()).unwrap();
    state.as_object_mut().unwrap().remove("openWatches");
    let objects: Vec<_> = s
        .list("packagerepositories")
        .unwrap()
        .iter()
        .map(object_summary)
        .collect();
    let list_status = get(a, PR).await.status.as_u16();
    s.release_watches();
    if ends_watches(fault) {
        eventually("every watch is closed", || s.open_watches() == 0).await;
    } else {
        s.create(repo("marker", "https://marker.example/")).unwrap();
    }
    let mut watch = Vec::new();
    loop {
        match w.next_line().await {
            Line::End => {
                watch.push(json!("END"));
                break;
            }
            Line::Raw(line) => watch.push(json!(line)),
            Line::Event(e) if e["type"] == "BOOKMARK" => {}
            Line::Event(e) => {
                let marker = e["object"]["metadata"]["name"] == "marker";
                watch.push(json!({"type": e["type"], "object": object_summary(&e["object"])}));
                if marker {
                    break;
                }
            }
        }
    }
    watch.push(json!(String::from_utf8_lossy(w.rest())));
    json!({"answer": answer, "rules": rules, "state": state, "objects": objects,
           "listStatus": list_status, "watch": watch})
}

/// Every fault, injected through `Control::inject`, `POST /apisim/faults` and its own route,
/// has the same effect: the three control surfaces cannot drift apart.
#[tokio::test]
async fn every_fault_has_the_same_effect_through_every_surface() {
    let examples = Fault::examples();
    // Every variant has an example (exhaustive on purpose: a new variant must be added here,
    // and then to `Fault::examples`).
    let mut seen = [false; 14];
    for f in &examples {
        let i = match f {
            Fault::Fail(_) => 0,
            Fault::Latency(_) => 1,
            Fault::CloseWatches => 2,
            Fault::StallWatches { .. } => 3,
            Fault::ReleaseWatches => 4,
            Fault::Compact => 5,
            Fault::Restart { .. } => 6,
            Fault::MalformedLine { .. } => 7,
            Fault::InjectEvent { .. } => 8,
            Fault::Undecodable { .. } => 9,
            Fault::InjectBytes { .. } => 10,
            Fault::CutLine { .. } => 11,
            Fault::SideDoorPut { .. } => 12,
            Fault::SideDoorDelete { .. } => 13,
        };
        seen[i] = true;
    }
    assert!(
        seen.iter().all(|s| *s),
        "a variant has no example: {seen:?}"
    );
    for f in &examples {
        // The JSON tag is the fault's name, and the JSON form reads back as the same fault.
        let v = serde_json::to_value(f).unwrap();
        assert_eq!(v["fault"], f.name(), "{v}");
        assert_eq!(&serde_json::from_value::<Fault>(v).unwrap(), f);
        let rust = effect_of(f, Surface::Rust).await;
        let mut surfaces = vec![Surface::Http];
        if route_of(f).is_some() {
            surfaces.push(Surface::Route);
        }
        for surface in surfaces {
            let other = effect_of(f, surface).await;
            assert_eq!(
                rust,
                other,
                "{} through {surface:?} differs from Control::inject",
                f.name()
            );
        }
    }
}

#[tokio::test]
async fn the_fault_route_refuses_bad_faults() {
    let s = server().await;
    let a = s.addr();
    let post =
        |v: serde_json::Value| async move { post_json(a, "/apisim/faults", &v).await.status };
    assert_eq!(post(json!({"fault": "noSuchFault"})).await, 400);
    assert_eq!(post(json!({"verb": "list", "code": 503})).await, 400);
    assert_eq!(post(json!({"fault": "fail", "code": 200})).await, 400);
    assert_eq!(
        post(json!({"fault": "undecodable", "resource": "widgets"})).await,
        404
    );
    assert_eq!(post(json!({"fault": "undecodable"})).await, 400);
    assert!(s.faults().0.is_empty());
    assert_eq!(
        call(a, Method::GET, "/apisim/faults/cut-line", None, b"")
            .await
            .status,
        405
    );
}
