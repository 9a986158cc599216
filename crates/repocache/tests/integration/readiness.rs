//! Readiness: `ready()` resolves on the first `InitDone` only; the bounded wait times out with a
//! typed error; readiness survives later relists; a writer that goes away wakes the waiters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::common::obj;
use k8s_openapi::api::core::v1::ConfigMap;
use repocache::{Error, Event, Writer};

#[tokio::test(start_paused = true)]
async fn bounded_wait_times_out_with_a_typed_error() {
    let mut writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(obj("a", 1, "a")));
    let err = cache.wait_ready(Duration::from_secs(5)).await.unwrap_err();
    match err {
        Error::ReadyTimeout { kind, waited } => {
            assert_eq!(kind, "ConfigMap");
            assert_eq!(waited, Duration::from_secs(5));
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err_message_is_readable(
        &cache.wait_ready(Duration::from_millis(1)).await
    ));
}

fn err_message_is_readable(result: &Result<(), Error>) -> bool {
    matches!(result, Err(e) if e.to_string() == "ConfigMap cache not ready after 1ms")
}

#[tokio::test]
async fn ready_resolves_on_the_first_init_done_only() {
    let mut writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.ready().await }
    });
    writer.apply(Event::Init);
    writer.apply(Event::InitApply(obj("a", 1, "a")));
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "ready before InitDone");
    assert!(!cache.is_ready());
    writer.apply(Event::InitDone);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("ready() resolves after InitDone")
        .unwrap()
        .unwrap();
    assert!(cache.is_ready());
    assert_eq!(cache.snapshot().len(), 1);
}

#[tokio::test]
async fn readiness_stays_across_later_relists() {
    let mut writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    writer.apply_batch([Event::Init, Event::InitDone]);
    assert!(cache.is_ready());
    writer.apply(Event::Init);
    assert!(
        cache.is_ready(),
        "a relist in progress keeps the cache ready"
    );
    cache.wait_ready(Duration::from_secs(1)).await.unwrap();
    writer.apply(Event::InitDone);
    assert!(cache.is_ready());
}

#[tokio::test]
async fn a_writer_dropped_before_sync_wakes_waiters_with_an_error() {
    let writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.ready().await }
    });
    drop(writer);
    let result = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(Error::Stopped { .. })));
    assert!(!cache.is_ready());
}

#[tokio::test]
async fn a_writer_dropped_after_sync_stops_the_cache_and_keeps_its_snapshot() {
    let mut writer = Writer::<ConfigMap>::new();
    let cache = writer.cache();
    writer.apply_batch([
        Event::Init,
        Event::InitApply(obj("a", 1, "a")),
        Event::InitDone,
    ]);
    assert!(cache.is_ready());
    assert_eq!(cache.state(), repocache::CacheState::Ready);
    drop(writer);
    assert!(!cache.is_ready(), "a stopped cache is never ready");
    assert!(cache.state().is_stopped());
    assert!(matches!(cache.ready().await, Err(Error::Stopped { .. })));
    assert!(cache.get("a").is_some(), "the last snapshot stays readable");
}
