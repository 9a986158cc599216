//! Item 7: propagation. A write on the server (apisim's control `merge_patch`: an ordinary
//! write that gets a resourceVersion and a watch event) until the change is visible to the
//! program: for repocache, until `Cache::subscribe()` delivers the `Updated` change (published,
//! so already in the snapshot; the snapshot is checked too); for kube-runtime, until its
//! `reflector` stream yields the event (it yields after writing the store).
//!
//! One write at a time: the next write starts when the previous one arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{Stream, StreamExt as _};
use glasskube_api::PackageRepository;
use hdrhistogram::Histogram;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event, watcher};
use repocache::{Change, ReflectorBuilder};
use serde_json::json;

use super::sim::{self, RESOURCE, Sim};
use crate::{fixture, measure};

/// How long one change may take to arrive before the run is called failed.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes made before timing starts (connections warm, watch open).
const WARMUP: usize = 20;

/// One side's propagation figures.
#[derive(Clone, Debug)]
pub struct PropagationRun {
    /// Which side, as the report names it.
    pub side: &'static str,
    /// How arrival was observed.
    pub method: &'static str,
    /// Write → arrival, nanoseconds.
    pub hist: Histogram<u64>,
    /// Arrivals whose object was not yet the new version in the snapshot / store.
    pub not_visible: u64,
    /// repocache only: mean time from the event's arrival at the reflector to the publish that
    /// made it visible (the cache's own `event_to_visible` figure).
    pub inside_mean: Option<Duration>,
}

/// Every write of the process gets a distinct value (a patch that changes nothing is a no-op on
/// the server: no new resourceVersion, no event).
static SEQ: AtomicU64 = AtomicU64::new(0);

fn patch() -> serde_json::Value {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    json!({"metadata": {"annotations": {"bench.repocache.dev/seq": seq.to_string()}}})
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Writes object `i mod n` and returns the new resourceVersion and the time of the write.
fn write(sim: &Sim, i: usize, n: usize) -> anyhow::Result<(String, String, Instant)> {
    let name = fixture::name(i % n);
    let control = sim.control();
    let started = Instant::now();
    let written = control
        .merge_patch(RESOURCE, None, &name, &patch())
        .map_err(|e| anyhow::anyhow!("merge_patch {name}: {e:?}"))?;
    let rv = sim::resource_version(&written)
        .context("written object has no resourceVersion")?
        .to_owned();
    Ok((name, rv, started))
}

/// repocache with its defaults: `updates` writes, each timed until the subscription delivers it.
pub async fn repocache(sim: &Sim, n: usize, updates: usize) -> anyhow::Result<PropagationRun> {
    repocache_with(sim, n, updates, None).await
}

/// repocache with the publish interval off (`publish_interval(Duration::ZERO)`): every event is
/// published as soon as it is applied.
pub async fn repocache_per_event(
    sim: &Sim,
    n: usize,
    updates: usize,
) -> anyhow::Result<PropagationRun> {
    repocache_with(sim, n, updates, Some(Duration::ZERO)).await
}

async fn repocache_with(
    sim: &Sim,
    n: usize,
    updates: usize,
    publish_interval: Option<Duration>,
) -> anyhow::Result<PropagationRun> {
    let control = sim.control();
    control.reset_requests();
    let mut builder = ReflectorBuilder::new(Api::<PackageRepository>::all(sim.client()?));
    if let Some(interval) = publish_interval {
        builder = builder.configure_cache(|c| c.publish_interval(interval));
    }
    let (cache, handle) = builder.start();
    cache.wait_ready(super::sync::SYNC_TIMEOUT).await?;
    sim::wait_for_watch_requests(&control, 1, Duration::from_secs(10)).await;
    let mut sub = cache.subscribe();
    // The current state first, then `Synced`.
    loop {
        match tokio::time::timeout(ARRIVAL_TIMEOUT, sub.next()).await {
            Ok(Some(Change::Synced { .. })) => break,
            Ok(Some(_)) => {}
            Ok(None) => bail!("the subscription ended"),
            Err(_) => bail!("no Synced from the subscription"),
        }
    }
    let mut hist = measure::histogram();
    let mut not_visible = 0;
    let inside_before = cache.stats().event_to_visible;
    let mut inside_at_warm = inside_before.clone();
    for i in 0..WARMUP + updates {
        if i == WARMUP {
            inside_at_warm = cache.stats().event_to_visible;
        }
        let (name, rv, started) = write(sim, i, n)?;
        loop {
            let change = tokio::time::timeout(ARRIVAL_TIMEOUT, sub.next())
                .await
                .with_context(|| format!("update {i} ({name} at {rv}) never arrived"))?
                .context("the subscription ended")?;
            if let Change::Updated { new, .. } = &change
                && new.metadata.resource_version.as_deref() == Some(rv.as_str())
            {
                break;
            }
        }
        let took = started.elapsed();
        let visible = cache
            .get(&name)
            .is_some_and(|o| o.metadata.resource_version.as_deref() == Some(rv.as_str()));
        if i >= WARMUP {
            hist.saturating_record(nanos(took).max(1));
            not_visible += u64::from(!visible);
        }
    }
    let inside = cache.stats().event_to_visible;
    let count = inside.count.saturating_sub(inside_at_warm.count);
    let inside_mean = (count > 0).then(|| {
        inside.sum.saturating_sub(inside_at_warm.sum) / u32::try_from(count).unwrap_or(u32::MAX)
    });
    drop(sub);
    handle.stop().await;
    Ok(PropagationRun {
        side: match publish_interval {
            None => "repocache",
            Some(_) => "repocache, publish interval 0",
        },
        method: "`Cache::subscribe()` delivers `Change::Updated` with the new resourceVersion",
        hist,
        not_visible,
        inside_mean,
    })
}

/// kube-runtime: `updates` writes, each timed until its `reflector` stream yields the event.
pub async fn kube(sim: &Sim, n: usize, updates: usize) -> anyhow::Result<PropagationRun> {
    let api = Api::<PackageRepository>::all(sim.client()?);
    let (store, writer) = reflector::store::<PackageRepository>();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    // Until the initial list is in.
    loop {
        match next(&mut stream).await? {
            Event::InitDone => break,
            _ => continue,
        }
    }
    let mut hist = measure::histogram();
    let mut not_visible = 0;
    for i in 0..WARMUP + updates {
        let (name, rv, started) = write(sim, i, n)?;
        loop {
            if let Event::Apply(obj) = next(&mut stream)
                .await
                .with_context(|| format!("update {i} ({name} at {rv}) never arrived"))?
                && obj.metadata.resource_version.as_deref() == Some(rv.as_str())
            {
                break;
            }
        }
        let took = started.elapsed();
        let visible = store
            .get(&ObjectRef::new(&name))
            .is_some_and(|o| o.metadata.resource_version.as_deref() == Some(rv.as_str()));
        if i >= WARMUP {
            hist.saturating_record(nanos(took).max(1));
            not_visible += u64::from(!visible);
        }
    }
    Ok(PropagationRun {
        side: "kube-runtime reflector",
        method: "its `reflector` stream yields `Event::Apply` with the new resourceVersion (after writing the store)",
        hist,
        not_visible,
        inside_mean: None,
    })
}

async fn next<S>(stream: &mut S) -> anyhow::Result<Event<PackageRepository>>
where
    S: Stream<Item = watcher::Result<Event<PackageRepository>>> + Unpin,
{
    match tokio::time::timeout(ARRIVAL_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => Ok(event),
        Ok(Some(Err(e))) => Err(e).context("kube-runtime watcher error"),
        Ok(None) => bail!("the kube-runtime stream ended"),
        Err(_) => bail!("nothing from the kube-runtime stream for {ARRIVAL_TIMEOUT:?}"),
    }
}
