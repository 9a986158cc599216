//! GET and LIST through the relay equal apisim's own answers, and are served from snapshots.

use serde_json::{Value, json};

use crate::common::{self, REPOS, drop_managed_fields, get, request};

/// A list's items and kind (its resourceVersion is the snapshot's, its continue token the
/// relay's own: compared separately).
fn items(list: &Value) -> Value {
    json!({"kind": list["kind"], "apiVersion": list["apiVersion"], "items": list["items"]})
}

#[tokio::test]
async fn gets_and_lists_equal_apisims_answers_and_come_from_snapshots() {
    let server = common::apisim().await;
    let control = server.control();
    control
        .create(common::repo(
            "labelled-a",
            json!({"team": "data", "tier": "gold"}),
        ))
        .unwrap();
    control
        .create(common::repo("labelled-b", json!({"team": "web"})))
        .unwrap();
    let relay = common::ready(common::builder(&server)).await;
    let direct = repocache_test_support::client_without_retry(&server);
    let through = common::client(&relay);
    // Wait for the relay's snapshot to hold both creations.
    repocache_test_support::eventually("the relay's cache holds the new objects", || {
        relay
            .watch_window("PackageRepository")
            .is_some_and(|(_, current)| current >= control.resource_version())
    })
    .await;

    let pkgs = "/apis/packages.glasskube.dev/v1alpha1";
    for path in [
        format!("{REPOS}/glasskube"),
        format!("{REPOS}?labelSelector=team%3Ddata"),
        format!("{REPOS}?labelSelector=team+in+%28data%2Cweb%29%2Ctier%21%3Dgold"),
        format!("{REPOS}?labelSelector=%21tier"),
        format!("{REPOS}?fieldSelector=metadata.name%3Dglasskube"),
        format!("{REPOS}?fieldSelector=metadata.name%21%3Dglasskube"),
        REPOS.to_owned(),
        format!("{REPOS}?resourceVersion=0"),
        format!("{pkgs}/packages"),
        format!("{pkgs}/namespaces/analytics/packages"),
        format!("{pkgs}/namespaces/nowhere/packages"),
        format!("{pkgs}/clusterpackages"),
        format!("{pkgs}/packageinfos"),
    ] {
        let a = get(&direct, &path).await;
        let b = get(&through, &path).await;
        assert_eq!(a.status, b.status, "{path}");
        assert!(b.served_locally(), "{path}: not answered from the snapshot");
        let (a, b) = (drop_managed_fields(a.json()), drop_managed_fields(b.json()));
        if a["kind"].as_str().is_some_and(|k| k.ends_with("List")) {
            assert_eq!(items(&a), items(&b), "{path}");
            assert!(b["metadata"]["resourceVersion"].is_string(), "{path}");
        } else {
            assert_eq!(a, b, "{path}");
        }
    }

    // A missing object: the same 404 Status, from the snapshot.
    let path = format!("{REPOS}/no-such-repo");
    let (a, b) = (get(&direct, &path).await, get(&through, &path).await);
    assert_eq!((a.status, b.status), (404, 404));
    assert!(b.served_locally());
    assert_eq!(a.json()["reason"], b.json()["reason"]);
    assert_eq!(a.json()["message"], b.json()["message"]);

    // Pagination: limit=1 walked with the relay's continue tokens gives apisim's items.
    let mut walked = Vec::new();
    let mut next = format!("{REPOS}?limit=1");
    loop {
        let page = get(&through, &next).await;
        assert_eq!(page.status, 200);
        assert!(page.served_locally());
        let page = drop_managed_fields(page.json());
        assert!(page["items"].as_array().unwrap().len() <= 1);
        walked.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["metadata"]["continue"].as_str() {
            Some(token) if !token.is_empty() => {
                next = format!("{REPOS}?limit=1&continue={token}");
            }
            _ => break,
        }
    }
    let all = drop_managed_fields(get(&direct, REPOS).await.json());
    assert_eq!(Value::Array(walked), all["items"]);

    // NotOlderThan a version the snapshot reflects: served; Exact, or a version the snapshot
    // does not reflect: the server's answer, whatever it is.
    let rv = get(&through, REPOS).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = get(&through, &format!("{REPOS}?resourceVersion={rv}")).await;
    assert!(b.served_locally());
    for path in [
        format!("{REPOS}?resourceVersion={rv}&resourceVersionMatch=Exact"),
        format!("{REPOS}?resourceVersion=999999"),
        format!("{REPOS}?resourceVersionMatch=Exact"),
        format!("{REPOS}?labelSelector=%3D%3D%3D"),
    ] {
        let a = get(&direct, &path).await;
        let b = get(&through, &path).await;
        assert!(!b.served_locally(), "{path}: must go to the server");
        assert_eq!(a.status, b.status, "{path}");
        if a.status != 200 {
            assert_eq!(a.json()["reason"], b.json()["reason"], "{path}");
        }
    }
}

#[tokio::test]
async fn writes_pass_through_and_are_read_back_from_the_snapshot() {
    let server = common::apisim().await;
    let relay = common::ready(common::builder(&server)).await;
    let through = common::client(&relay);
    let created = request(
        &through,
        "POST",
        REPOS,
        Some(common::repo("written-through", json!({"via": "relay"}))),
    )
    .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert!(!created.served_locally());
    // Read-your-own-writes: the very next GET is answered from a snapshot that has it.
    let read = get(&through, &format!("{REPOS}/written-through")).await;
    assert_eq!(read.status, 200);
    assert!(read.served_locally(), "read after the write went upstream");
    assert_eq!(
        read.json()["metadata"]["resourceVersion"],
        created.json()["metadata"]["resourceVersion"]
    );
    assert!(
        server
            .control()
            .get("packagerepositories", None, "written-through")
            .is_ok()
    );
    // While the relay's own watch is stalled, a write through the relay is still read back
    // (the read goes upstream until the snapshot has the write), never a stale 404.
    let control = server.control();
    control.stall_watches(None);
    let created = request(
        &through,
        "POST",
        REPOS,
        Some(common::repo("while-stalled", json!({}))),
    )
    .await;
    assert_eq!(created.status, 201);
    let read = get(&through, &format!("{REPOS}/while-stalled")).await;
    assert_eq!(read.status, 200, "a read after a write missed it");
    assert!(!read.served_locally());
    control.release_watches();
    // A delete passes through too, and the next read sees it gone.
    let deleted = request(
        &through,
        "DELETE",
        &format!("{REPOS}/written-through"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    let gone = get(&through, &format!("{REPOS}/written-through")).await;
    assert_eq!(gone.status, 404);
    assert!(gone.served_locally());
    // Discovery and other kinds go upstream.
    let discovery = get(&through, "/apis/packages.glasskube.dev/v1alpha1").await;
    assert_eq!(discovery.status, 200);
    assert!(!discovery.served_locally());
    assert!(relay.stats().proxied >= 3);
}

#[tokio::test]
async fn a_unix_socket_is_private_to_its_owner_and_serves() {
    use std::os::unix::fs::PermissionsExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = common::apisim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sock");
    let relay =
        common::ready(common::builder(&server).listen(repocache_relay::Listen::Unix(path.clone())))
            .await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is not private");
    assert!(relay.kubeconfig(None).is_none());
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    stream
        .write_all(
            format!("GET {REPOS}/glasskube HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(common::T, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(repocache::layer::GENERATION_HEADER),
        "{answer}"
    );
    assert!(answer.contains("\"name\":\"glasskube\""), "{answer}");
    drop(relay);
    assert!(!path.exists(), "the socket outlived the relay");
}
