//! The crate's one table of wire cases, each checked in both directions:
//! `parse(s) == x` (so `parse(build(x)) == x`) and `build(x) == s` (so `build(parse(s)) == s`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::Method;
use serde_json::json;

use super::*;

const G: &str = "packages.glasskube.dev";
const PR: &str = "packagerepositories";

fn t(group: &'static str, resource: &'static str) -> Target<'static> {
    Target::collection(group, "v1alpha1", resource)
}

fn core(resource: &'static str) -> Target<'static> {
    Target::collection("", "v1", resource)
}

fn ns(mut t: Target<'static>, ns: &'static str) -> Target<'static> {
    t.namespace = Some(ns);
    t
}

fn named(mut t: Target<'static>, name: &'static str) -> Target<'static> {
    t.name = Some(name);
    t
}

fn sub(mut t: Target<'static>, sub: &'static str) -> Target<'static> {
    t.subresource = Some(sub);
    t
}

fn opts(f: impl FnOnce(&mut ListOptions)) -> ListOptions {
    let mut o = ListOptions::default();
    f(&mut o);
    o
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// One request: (method, path, query) on the wire, and what it means.
struct Case {
    method: Method,
    path: &'static str,
    query: &'static str,
    want: Request<'static>,
}

fn req(verb: Verb, target: Target<'static>, options: ListOptions) -> Request<'static> {
    Request {
        target,
        verb,
        options,
    }
}

fn cases() -> Vec<Case> {
    let case = |method: Method, path, query, want| Case {
        method,
        path,
        query,
        want,
    };
    vec![
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories",
            "",
            req(Verb::List, t(G, PR), ListOptions::default()),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories/glasskube",
            "",
            req(
                Verb::Get,
                named(t(G, PR), "glasskube"),
                ListOptions::default(),
            ),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/namespaces/ns/packages/a",
            "",
            req(
                Verb::Get,
                named(ns(t(G, "packages"), "ns"), "a"),
                ListOptions::default(),
            ),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/namespaces/ns/packages",
            "labelSelector=app+in+%28a%2Cb%29&limit=2",
            req(
                Verb::List,
                ns(t(G, "packages"), "ns"),
                opts(|o| {
                    o.label_selector = s("app in (a,b)");
                    o.limit = s("2");
                }),
            ),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories",
            "allowWatchBookmarks=true&resourceVersion=12&timeoutSeconds=290&watch=true",
            req(
                Verb::Watch,
                t(G, PR),
                opts(|o| {
                    o.allow_watch_bookmarks = s("true");
                    o.resource_version = s("12");
                    o.timeout_seconds = s("290");
                    o.watch = s("true");
                }),
            ),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories",
            "watch=1",
            req(Verb::Watch, t(G, PR), opts(|o| o.watch = s("1"))),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories",
            "watch=false",
            req(Verb::List, t(G, PR), opts(|o| o.watch = s("false"))),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories",
            "allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&watch=true",
            req(
                Verb::Watch,
                t(G, PR),
                opts(|o| {
                    o.allow_watch_bookmarks = s("true");
                    o.resource_version_match = s("NotOlderThan");
                    o.send_initial_events = s("true");
                    o.watch = s("true");
                }),
            ),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/watch/namespaces/ns/packages",
            "",
            req(
                Verb::Watch,
                Target {
                    legacy_watch: true,
                    ..ns(t(G, "packages"), "ns")
                },
                ListOptions::default(),
            ),
        ),
        case(
            Method::GET,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories",
            "continue=3.2&fieldSelector=metadata.name%3Da&limit=2",
            req(
                Verb::List,
                t(G, PR),
                opts(|o| {
                    o.continue_token = s("3.2");
                    o.field_selector = s("metadata.name=a");
                    o.limit = s("2");
                }),
            ),
        ),
        case(
            Method::POST,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories",
            "dryRun=All",
            req(
                Verb::Create,
                t(G, PR),
                opts(|o| o.other.push(("dryRun".into(), "All".into()))),
            ),
        ),
        case(
            Method::PUT,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories/a/status",
            "",
            req(
                Verb::Update,
                sub(named(t(G, PR), "a"), "status"),
                ListOptions::default(),
            ),
        ),
        case(
            Method::PATCH,
            "/apis/packages.glasskube.dev/v1alpha1/namespaces/ns/packages/a",
            "fieldManager=kubectl&pretty=true",
            req(
                Verb::Patch,
                named(ns(t(G, "packages"), "ns"), "a"),
                opts(|o| {
                    o.other.push(("fieldManager".into(), "kubectl".into()));
                    o.other.push(("pretty".into(), "true".into()));
                }),
            ),
        ),
        case(
            Method::DELETE,
            "/apis/packages.glasskube.dev/v1alpha1/packagerepositories/a",
            "",
            req(Verb::Delete, named(t(G, PR), "a"), ListOptions::default()),
        ),
        case(
            Method::DELETE,
            "/apis/packages.glasskube.dev/v1alpha1/namespaces/ns/packages",
            "labelSelector=team%3Dblue",
            req(
                Verb::DeleteCollection,
                ns(t(G, "packages"), "ns"),
                opts(|o| o.label_selector = s("team=blue")),
            ),
        ),
        // The core group: /api/v1, namespaces themselves and their subresources.
        case(
            Method::GET,
            "/api/v1/namespaces",
            "",
            req(Verb::List, core("namespaces"), ListOptions::default()),
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/kube-system",
            "",
            req(
                Verb::Get,
                named(core("namespaces"), "kube-system"),
                ListOptions::default(),
            ),
        ),
        case(
            Method::PUT,
            "/api/v1/namespaces/kube-system/finalize",
            "",
            req(
                Verb::Update,
                sub(named(core("namespaces"), "kube-system"), "finalize"),
                ListOptions::default(),
            ),
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/kube-system/status",
            "",
            req(
                Verb::Get,
                sub(named(core("namespaces"), "kube-system"), "status"),
                ListOptions::default(),
            ),
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/kube-system/configmaps",
            "resourceVersion=0",
            req(
                Verb::List,
                ns(core("configmaps"), "kube-system"),
                opts(|o| o.resource_version = s("0")),
            ),
        ),
        case(
            Method::GET,
            "/api/v1/namespaces/kube-system/configmaps/x",
            "",
            req(
                Verb::Get,
                named(ns(core("configmaps"), "kube-system"), "x"),
                ListOptions::default(),
            ),
        ),
        case(
            Method::GET,
            "/api/v1/nodes/n1/status",
            "",
            req(
                Verb::Get,
                sub(named(core("nodes"), "n1"), "status"),
                ListOptions::default(),
            ),
        ),
    ]
}

#[test]
fn requests_parse_and_build_both_ways() {
    for c in cases() {
        let got = Request::parse(&c.method, c.path, c.query)
            .unwrap_or_else(|e| panic!("{} {}?{}: {e}", c.method, c.path, c.query));
        assert_eq!(got, c.want, "parse {} {}?{}", c.method, c.path, c.query);
        let (method, path, query) = c.want.build();
        assert_eq!(
            (method, path.as_str(), query.as_str()),
            (c.method.clone(), c.path, c.query),
            "build {:?}",
            c.want
        );
        // Each part on its own, too.
        assert_eq!(Target::parse(&path).unwrap(), c.want.target);
        assert_eq!(ListOptions::parse(&query).unwrap(), c.want.options);
    }
}

#[test]
fn head_is_read_as_get() {
    let r = Request::parse(&Method::HEAD, "/api/v1/namespaces", "").unwrap();
    assert_eq!(r.verb, Verb::List);
}

#[test]
fn what_is_no_resource_request() {
    for (path, want) in [
        ("/apis/g/v1", TargetError::NotAResource("/apis/g/v1".into())),
        ("/apis", TargetError::NotAResource("/apis".into())),
        ("/api/v1", TargetError::NotAResource("/api/v1".into())),
        ("/version", TargetError::NotAResource("/version".into())),
        (
            "apis/g/v1/things",
            TargetError::NotAResource("apis/g/v1/things".into()),
        ),
        (
            "/apis/g/v1/things/",
            TargetError::EmptySegment("/apis/g/v1/things/".into()),
        ),
        (
            "/apis//v1/things",
            TargetError::EmptySegment("/apis//v1/things".into()),
        ),
        (
            "/apis/g/v1/a/b/c/d",
            TargetError::TooManySegments("/apis/g/v1/a/b/c/d".into()),
        ),
        (
            "/apis/g/v1/watch/namespaces/n/a/b/c/d",
            TargetError::TooManySegments("/apis/g/v1/watch/namespaces/n/a/b/c/d".into()),
        ),
    ] {
        assert_eq!(Target::parse(path), Err(want), "{path}");
    }
    assert_eq!(
        Request::parse(&Method::OPTIONS, "/api/v1/namespaces", ""),
        Err(RequestError::Method(Method::OPTIONS))
    );
    assert!(matches!(
        ListOptions::parse("a=%zz"),
        Err(QueryError::Malformed(_))
    ));
    assert!(matches!(
        ListOptions::parse("a=%ff"),
        Err(QueryError::Malformed(_))
    ));
}

#[test]
fn repeated_parameters_keep_the_last_and_say_so() {
    let o = ListOptions::parse("limit=1&limit=2").unwrap();
    assert_eq!((o.limit(), o.repeated), (Ok(2), true));
    let o = ListOptions::parse("dryRun=x&dryRun=All").unwrap();
    assert_eq!((o.get("dryRun"), o.repeated), (Some("All"), true));
    assert!(!ListOptions::parse("limit=1&dryRun=All").unwrap().repeated);
}

/// Upstream's resourceVersion rules for LIST ("Semantics for get and list").
#[test]
fn list_versions() {
    let v = |q: &str| ListOptions::parse(q).unwrap().list_version();
    for (q, want) in [
        ("", Ok(ListVersion::MostRecent)),
        ("resourceVersion=", Ok(ListVersion::MostRecent)),
        ("resourceVersion=0", Ok(ListVersion::Any)),
        (
            "resourceVersion=0&resourceVersionMatch=NotOlderThan",
            Ok(ListVersion::Any),
        ),
        ("resourceVersion=12", Ok(ListVersion::NotOlderThan(12))),
        (
            "resourceVersion=12&resourceVersionMatch=NotOlderThan",
            Ok(ListVersion::NotOlderThan(12)),
        ),
        (
            "resourceVersion=12&resourceVersionMatch=Exact",
            Ok(ListVersion::Exact(12)),
        ),
        ("continue=x", Ok(ListVersion::MostRecent)),
        (
            "resourceVersion=x",
            Err(QueryError::InvalidResourceVersion("x".into())),
        ),
        (
            "resourceVersion=-1",
            Err(QueryError::InvalidResourceVersion("-1".into())),
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            Err(QueryError::UnsupportedMatch("Newest".into())),
        ),
        (
            "resourceVersionMatch=Exact",
            Err(QueryError::MatchWithoutVersion),
        ),
        (
            "continue=x&resourceVersion=1",
            Err(QueryError::VersionWithContinue),
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            Err(QueryError::ExactZero),
        ),
    ] {
        assert_eq!(v(q), want, "{q}");
        if let Err(e) = want {
            assert_eq!(
                e.is_invalid_list_options(),
                !matches!(e, QueryError::InvalidResourceVersion(_)),
                "{q}"
            );
        }
    }
}

/// Upstream's rules for where a WATCH starts ("Semantics for watch", streaming lists).
#[test]
fn watch_starts() {
    let w = |q: &str| ListOptions::parse(q).unwrap().watch_start();
    let init = "sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan";
    for (q, want) in [
        (String::new(), Ok(WatchStart::StateThenChanges)),
        ("resourceVersion=0".into(), Ok(WatchStart::StateThenChanges)),
        ("resourceVersion=7".into(), Ok(WatchStart::ChangesAfter(7))),
        (
            "sendInitialEvents=false".into(),
            Ok(WatchStart::ChangesFromNow),
        ),
        (
            "sendInitialEvents=false&resourceVersion=7&resourceVersionMatch=NotOlderThan".into(),
            Ok(WatchStart::ChangesAfter(7)),
        ),
        (
            init.into(),
            Ok(WatchStart::InitialEvents {
                not_older_than: None,
            }),
        ),
        (
            format!("{init}&resourceVersion=3"),
            Ok(WatchStart::InitialEvents {
                not_older_than: Some(3),
            }),
        ),
        (
            "sendInitialEvents=true&allowWatchBookmarks=true".into(),
            Err(QueryError::InitialEventsNeedNotOlderThan),
        ),
        (
            "sendInitialEvents=true&resourceVersionMatch=NotOlderThan".into(),
            Err(QueryError::InitialEventsNeedBookmarks),
        ),
        (
            "sendInitialEvents=false&resourceVersion=1&resourceVersionMatch=Exact".into(),
            Err(QueryError::WatchMatchUnsupported),
        ),
        (
            "resourceVersion=1&resourceVersionMatch=NotOlderThan".into(),
            Err(QueryError::WatchMatchWithoutInitialEvents),
        ),
        (
            "resourceVersion=abc".into(),
            Err(QueryError::InvalidResourceVersion("abc".into())),
        ),
    ] {
        assert_eq!(w(&q), want, "{q}");
    }
}

#[test]
fn scalar_parameters() {
    let o = |q: &str| ListOptions::parse(q).unwrap();
    assert_eq!(o("").limit(), Ok(0));
    assert_eq!(o("limit=-3").limit(), Ok(0));
    assert_eq!(
        o("limit=x").limit(),
        Err(QueryError::InvalidLimit("x".into()))
    );
    assert_eq!(o("timeoutSeconds=0").timeout_seconds(), Ok(None));
    assert_eq!(o("timeoutSeconds=5").timeout_seconds(), Ok(Some(5)));
    assert_eq!(
        o("timeoutSeconds=x").timeout_seconds(),
        Err(QueryError::InvalidTimeout("x".into()))
    );
    assert_eq!(o("watch=T").watch(), Ok(true));
    assert_eq!(o("watch=0").watch(), Ok(false));
    assert_eq!(
        o("watch=yes").watch(),
        Err(QueryError::InvalidBool {
            param: "watch",
            value: "yes".into()
        })
    );
    assert_eq!(o("sendInitialEvents=").send_initial_events(), Ok(None));
    assert_eq!(o("continue=").continue_token(), None);
}

#[test]
fn continue_tokens_both_ways() {
    for (text, token) in [
        (
            "0.0",
            ContinueToken {
                snapshot: 0,
                offset: 0,
            },
        ),
        (
            "3.2",
            ContinueToken {
                snapshot: 3,
                offset: 2,
            },
        ),
        (
            "18446744073709551615.7",
            ContinueToken {
                snapshot: u64::MAX,
                offset: 7,
            },
        ),
    ] {
        assert_eq!(ContinueToken::decode(text), Ok(token));
        assert_eq!(token.encode(), text);
    }
    for bad in ["", "3", "3.", ".2", "a.b", "3.2.1", "-1.2"] {
        let e = ContinueToken::decode(bad).unwrap_err();
        assert_eq!(e.to_string(), format!("continue key is not valid: {bad}"));
    }
}

#[test]
fn watch_events_both_ways() {
    for (ty, text) in [
        (EventType::Added, "ADDED"),
        (EventType::Modified, "MODIFIED"),
        (EventType::Deleted, "DELETED"),
        (EventType::Bookmark, "BOOKMARK"),
        (EventType::Error, "ERROR"),
    ] {
        assert_eq!(ty.as_str(), text);
        let object = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        let line = encode_line(text, &object);
        assert_eq!(
            line,
            format!(
                "{{\"type\":\"{text}\",\"object\":{{\"metadata\":{{\"name\":\"a\",\"resourceVersion\":\"7\"}}}}}}\n"
            )
        );
        let ev = WatchEvent::<serde_json::Value>::decode(line.as_bytes()).unwrap();
        assert_eq!(
            ev,
            WatchEvent {
                event_type: ty,
                object: object.clone()
            }
        );
        // And back: serde writes the same line as encode_line (type first).
        assert_eq!(format!("{}\n", serde_json::to_string(&ev).unwrap()), line);
    }
    assert!(WatchEvent::<serde_json::Value>::decode(b"{\"type\":\"NOPE\",\"object\":{}}").is_err());
    assert!(WatchEvent::<serde_json::Value>::decode(b"{this is not json").is_err());
}

#[test]
fn status_bodies_both_ways() {
    let cases = [
        (
            Status::not_found(G, PR, "x"),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"packagerepositories.packages.glasskube.dev \"x\" not found","reason":"NotFound","details":{"name":"x","group":"packages.glasskube.dev","kind":"packagerepositories"},"code":404}"#,
        ),
        (
            Status::not_found("", "configmaps", "x"),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"configmaps"},"code":404}"#,
        ),
        (
            Status::expired_continue(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.","reason":"Expired","code":410}"#,
        ),
        (
            Status::failure(Reason::Timeout, "Too large resource version: 9, current: 3")
                .with_details(StatusDetails {
                    causes: vec![StatusCause {
                        reason: "ResourceVersionTooLarge".into(),
                        message: "Too large resource version".into(),
                        field: String::new(),
                    }],
                    retry_after_seconds: Some(1),
                    ..StatusDetails::default()
                }),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too large resource version: 9, current: 3","reason":"Timeout","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},"code":504}"#,
        ),
        (
            Status::failure(Reason::MethodNotAllowed, "no").with_details(StatusDetails::default()),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no","reason":"MethodNotAllowed","details":{},"code":405}"#,
        ),
        (
            Status::failure(Reason::InternalError, "boom").with_code(502),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"boom","reason":"InternalError","code":502}"#,
        ),
    ];
    for (status, text) in cases {
        assert_eq!(status.to_json(), text);
        assert_eq!(Status::from_json(text.as_bytes()).unwrap(), status);
    }
    // A reason this crate does not know still decodes.
    let s = Status::from_json(br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotAcceptable","code":406}"#).unwrap();
    assert_eq!((s.reason, s.code), (Reason::Unknown, 406));
}

#[test]
fn reasons_and_codes_agree() {
    for r in [
        Reason::BadRequest,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::Conflict,
        Reason::MethodNotAllowed,
        Reason::Expired,
        Reason::Gone,
        Reason::RequestEntityTooLarge,
        Reason::UnsupportedMediaType,
        Reason::Invalid,
        Reason::TooManyRequests,
        Reason::InternalError,
        Reason::ServiceUnavailable,
        Reason::Timeout,
    ] {
        assert_eq!(serde_json::to_value(r).unwrap(), json!(r.as_str()));
        // `for_code` picks one reason per code: Expired for 410, Conflict for 409.
        if !matches!(r, Reason::Gone | Reason::AlreadyExists) {
            assert_eq!(Reason::for_code(r.code()), r, "{r:?}");
        }
    }
}

#[test]
fn unauthorized_and_forbidden_bodies_are_upstreams() {
    assert_eq!(
        Status::unauthorized().to_json(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
    );
    let get = ForbiddenTarget {
        group: G,
        resource: PR,
        namespace: None,
        name: Some("glasskube"),
        subresource: None,
    };
    assert_eq!(
        Status::forbidden("alice", "get", &get).to_json(),
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"packagerepositories.packages.glasskube.dev \"glasskube\" is forbidden: User \"alice\" cannot get resource \"packagerepositories\" in API group \"packages.glasskube.dev\" at the cluster scope","reason":"Forbidden","details":{"name":"glasskube","group":"packages.glasskube.dev","kind":"packagerepositories"},"code":403}"#
    );
    // A core-group list in a namespace: no name, `in the namespace`, the group empty.
    let pods = ForbiddenTarget {
        resource: "pods",
        namespace: Some("default"),
        ..ForbiddenTarget::default()
    };
    assert_eq!(
        Status::forbidden("system:serviceaccount:default:x", "list", &pods).message,
        r#"pods is forbidden: User "system:serviceaccount:default:x" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    // A subresource is named in the sentence, not in the qualified resource or the details.
    let status = ForbiddenTarget {
        subresource: Some("status"),
        ..get
    };
    let s = Status::forbidden("alice", "update", &status);
    assert_eq!(
        s.message,
        r#"packagerepositories.packages.glasskube.dev "glasskube" is forbidden: User "alice" cannot update resource "packagerepositories/status" in API group "packages.glasskube.dev" at the cluster scope"#
    );
    assert_eq!(s.details.unwrap().kind, PR);
}
