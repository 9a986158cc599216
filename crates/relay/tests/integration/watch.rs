//! WATCH of cached kinds from the relay's hub: resume inside and outside the history, bookmarks,
//! streaming lists, timeouts, selectors, and a slow watcher closed while a fast one keeps up.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{self, Lines, REPOS};

fn rv_of(event: &Value) -> u64 {
    event["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn name_of(event: &Value) -> &str {
    event["object"]["metadata"]["name"].as_str().unwrap()
}

#[tokio::test]
async fn a_watch_resumes_inside_the_history_and_gets_410_outside_it() {
    let server = common::apisim().await;
    let control = server.control();
    let relay = common::ready(common::builder(&server).history(5)).await;
    let through = common::client(&relay);
    let mut rvs = Vec::new();
    for i in 0..10 {
        let created = control
            .create(common::repo(&format!("r{i}"), json!({})))
            .unwrap();
        rvs.push(
            created["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    let last = *rvs.last().unwrap();
    repocache_test_support::eventually("the hub has every event", || {
        relay
            .watch_window("PackageRepository")
            .is_some_and(|(_, current)| current >= last)
    })
    .await;
    // Inside: from the 7th creation's version, the 8th to 10th, in order, from the hub.
    let mut lines = Lines::open(
        &through,
        &format!("{REPOS}?watch=true&resourceVersion={}", rvs[6]),
    )
    .await;
    assert_eq!(lines.status, 200);
    for (i, rv) in rvs.iter().enumerate().skip(7) {
        let event = lines.next_event().await.unwrap();
        assert_eq!(event["type"], "ADDED");
        assert_eq!(name_of(&event), format!("r{i}"));
        assert_eq!(rv_of(&event), *rv);
    }
    // Outside: a version before the history's window is 410 Expired, as upstream says it.
    let mut lines = Lines::open(
        &through,
        &format!("{REPOS}?watch=true&resourceVersion={}", rvs[1]),
    )
    .await;
    assert_eq!(lines.status, 200);
    let error = lines.next().await.unwrap();
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert!(
        lines.next().await.is_none(),
        "the stream ends after the 410"
    );
    assert_eq!(relay.stats().watch_expired, 1);
    // Served by the relay: apisim saw one watch per kind, no more.
    assert_eq!(control.open_watches(), 4);
}

#[tokio::test]
async fn a_watch_from_a_version_the_hub_has_not_reached_gets_only_later_changes() {
    let server = common::apisim().await;
    let control = server.control();
    let relay = common::ready(common::builder(&server)).await;
    let through = common::client(&relay);
    // The relay's own watch lags: a client that read the server directly is ahead of it.
    control.stall_watches(None);
    let seen = control
        .create(common::repo("seen-upstream", json!({})))
        .unwrap();
    let rv = seen["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut lines = Lines::open(
        &through,
        &format!("{REPOS}?watch=true&resourceVersion={rv}"),
    )
    .await;
    control.release_watches();
    repocache_test_support::eventually("the hub catches up", || {
        relay
            .watch_window("PackageRepository")
            .is_some_and(|(_, current)| current >= rv.parse::<u64>().unwrap())
    })
    .await;
    control.create(common::repo("after", json!({}))).unwrap();
    let event = lines.next_event().await.unwrap();
    assert_eq!(
        name_of(&event),
        "after",
        "a change the client already had came again"
    );
}

#[tokio::test]
async fn streaming_lists_bookmarks_timeouts_and_selectors() {
    let server = common::apisim().await;
    let control = server.control();
    let relay =
        common::ready(common::builder(&server).bookmark_interval(Duration::from_millis(50))).await;
    let through = common::client(&relay);

    // sendInitialEvents=true: every object as ADDED, then the initial-events-end bookmark.
    let mut lines = Lines::open(
        &through,
        &format!("{REPOS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
    )
    .await;
    let mut names = Vec::new();
    let end = loop {
        let line = lines.next().await.unwrap();
        if line["type"] == "BOOKMARK" {
            break line;
        }
        assert_eq!(line["type"], "ADDED");
        names.push(name_of(&line).to_owned());
    };
    let expected: Vec<String> = control
        .list("packagerepositories")
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, expected);
    assert_eq!(
        end["object"]["metadata"]["annotations"][repocache_relay::INITIAL_EVENTS_END],
        "true"
    );
    // Bookmarks follow, and a change arrives after them.
    let bookmark = lines.next().await.unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    control.create(common::repo("late", json!({}))).unwrap();
    let event = lines.next_event().await.unwrap();
    assert_eq!(
        (event["type"].as_str(), name_of(&event)),
        (Some("ADDED"), "late")
    );

    // timeoutSeconds: the stream ends by itself.
    let mut timed = Lines::open(&through, &format!("{REPOS}?watch=true&timeoutSeconds=1")).await;
    let mut seen = 0;
    while timed.next().await.is_some() {
        seen += 1;
    }
    assert_eq!(seen, expected.len() + 1, "the state, then the end");

    // A label selector: an object entering it is ADDED, leaving it DELETED.
    let mut selected = Lines::open(
        &through,
        &format!(
            "{REPOS}?watch=true&labelSelector=team%3Ddata&resourceVersion=0&sendInitialEvents=false"
        ),
    )
    .await;
    control
        .create(common::repo("mover", json!({"team": "web"})))
        .unwrap();
    control
        .merge_patch(
            "packagerepositories",
            None,
            "mover",
            &json!({"metadata": {"labels": {"team": "data"}}}),
        )
        .unwrap();
    control
        .merge_patch(
            "packagerepositories",
            None,
            "mover",
            &json!({"spec": {"url": "https://moved.example"}}),
        )
        .unwrap();
    control
        .merge_patch(
            "packagerepositories",
            None,
            "mover",
            &json!({"metadata": {"labels": {"team": "web"}}}),
        )
        .unwrap();
    let types: Vec<(String, String)> = [
        selected.next_event().await.unwrap(),
        selected.next_event().await.unwrap(),
        selected.next_event().await.unwrap(),
    ]
    .iter()
    .map(|e| {
        (
            e["type"].as_str().unwrap().to_owned(),
            name_of(e).to_owned(),
        )
    })
    .collect();
    assert_eq!(
        types,
        [
            ("ADDED", "mover"),
            ("MODIFIED", "mover"),
            ("DELETED", "mover")
        ]
        .map(|(t, n)| (t.to_owned(), n.to_owned()))
    );
    assert_eq!(control.open_watches(), 4);
}

#[tokio::test]
async fn a_slow_watcher_is_closed_while_a_fast_one_keeps_receiving() {
    let server = common::apisim().await;
    let control = server.control();
    let relay = common::ready(common::builder(&server).watch_buffer(8)).await;
    let through = common::client(&relay);
    let addr = relay
        .url()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();

    // The slow one: a raw connection that asks for a watch and never reads.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!("GET {REPOS}?watch=true&resourceVersion=0&sendInitialEvents=false HTTP/1.1\r\nHost: relay\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut fast = Lines::open(
        &through,
        &format!("{REPOS}?watch=true&resourceVersion=0&sendInitialEvents=false"),
    )
    .await;
    repocache_test_support::eventually("both watches are open", || relay.stats().watches_open == 2)
        .await;

    // Enough bytes to fill the slow connection's socket buffers and its 8-line buffer.
    let filler = "x".repeat(64 * 1024);
    let n = 400;
    let writer = tokio::spawn(async move {
        for i in 0..n {
            let mut obj = common::repo(&format!("big-{i}"), json!({}));
            obj["metadata"]["annotations"] = json!({"filler": filler});
            control.create(obj).unwrap();
            tokio::task::yield_now().await;
        }
    });
    for i in 0..n {
        let event = fast.next_event().await.unwrap();
        assert_eq!(name_of(&event), format!("big-{i}"));
    }
    writer.await.unwrap();
    repocache_test_support::eventually("the slow watcher is closed", || {
        relay.stats().watches_closed_slow == 1
    })
    .await;
    // Its connection is gone: reading it reaches the end.
    let mut sink = vec![0u8; 1 << 20];
    let end = tokio::time::timeout(common::T, async {
        loop {
            match slow.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the slow connection was never closed");
    assert_eq!(relay.stats().watches_open, 1);
    // Dropping the relay ends the open watch too.
    drop(relay);
    let end = tokio::time::timeout(common::T, async { while fast.next().await.is_some() {} }).await;
    assert!(end.is_ok(), "a watch outlived its relay");
}
