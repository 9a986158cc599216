//! [`Metrics`]: the Prometheus view of every tracked cache's [`Stats`], rendered on scrape.
//!
//! The figures live in the caches' own lock-free counters; a scrape reads them through
//! [`Cache::stats`] and encodes them. Nothing is updated twice, and the read path never touches
//! the registry.

use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::cache::{AnyCache, Cache};
use crate::stats::{DELAY_BUCKETS, DecodingMode, Stats};

/// The metrics of a set of caches, labelled by kind, for one Prometheus registry.
///
/// Cheap to clone; every clone tracks the same caches. Register it once with
/// [`register`](Self::register), then pass it to each cache's
/// [`ReflectorBuilder::metrics`](crate::ReflectorBuilder::metrics) (or call
/// [`track`](Self::track)).
///
/// Families (all labelled `kind`): `repocache_reads_total{result}`,
/// `repocache_api_requests_total{reason}`, `repocache_watch_events_total{type}`,
/// `repocache_relists_total{reason}`, `repocache_decode_failures_total`,
/// `repocache_rejected_lines_total{reason}` (watch lines rejected before decoding, see
/// [`LineRejection`](crate::stats::LineRejection)),
/// `repocache_decoding_robust` (1 once the reflector decodes each object on its own, see
/// [`DecodingMode`]), `repocache_objects`,
/// `repocache_snapshot_age_seconds`, `repocache_since_confirmed_seconds`,
/// `repocache_resource_version`, `repocache_generation`, `repocache_ready`,
/// `repocache_state{state}` and the histogram `repocache_event_to_visible_seconds`.
#[derive(Clone, Default)]
pub struct Metrics {
    sources: Arc<Mutex<Vec<Arc<dyn AnyCache>>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("caches", &self.sources().len())
            .finish()
    }
}

impl Metrics {
    /// Metrics tracking no cache yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers these metrics with `registry` (once per registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }

    /// A new registry holding just these metrics.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        self.register(&mut registry);
        registry
    }

    /// Adds a cache whose figures these metrics report.
    pub fn track<K: Send + Sync + 'static, F>(&self, cache: &Cache<K, F>) {
        let source = cache.erased();
        match self.sources.lock() {
            Ok(mut sources) => sources.push(source),
            Err(poisoned) => poisoned.into_inner().push(source),
        }
    }

    /// The figures of every tracked cache, now.
    pub fn stats(&self) -> Vec<Stats> {
        self.sources().iter().map(|s| s.stats()).collect()
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry()).is_err() {
            tracing::warn!("metrics could not be rendered");
        }
        out
    }

    fn sources(&self) -> Vec<Arc<dyn AnyCache>> {
        match self.sources.lock() {
            Ok(sources) => sources.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Encodes one family: a descriptor, then one sample per label set.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    ty: MetricType,
    samples: impl IntoIterator<Item = (Vec<(&'a str, String)>, M)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, ty)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn kind(stats: &Stats) -> Vec<(&'static str, String)> {
    vec![("kind", stats.kind.clone())]
}

fn with(stats: &Stats, key: &'static str, value: &str) -> Vec<(&'static str, String)> {
    vec![("kind", stats.kind.clone()), (key, value.to_owned())]
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let all = self.stats();
        let counter = MetricType::Counter;
        let gauge = MetricType::Gauge;
        family(
            &mut encoder,
            "repocache_reads",
            "Cache reads by result.",
            counter,
            all.iter().flat_map(|s| {
                [
                    (with(s, "result", "hit"), ConstCounter::new(s.hits)),
                    (with(s, "result", "miss"), ConstCounter::new(s.misses)),
                ]
            }),
        )?;
        family(
            &mut encoder,
            "repocache_api_requests",
            "Live requests to the API server, by reason.",
            counter,
            all.iter().flat_map(|s| {
                s.api_requests
                    .map(|(r, n)| (with(s, "reason", r.as_str()), ConstCounter::new(n)))
            }),
        )?;
        family(
            &mut encoder,
            "repocache_watch_events",
            "Watcher events received, by type.",
            counter,
            all.iter().flat_map(|s| {
                s.events
                    .map(|(t, n)| (with(s, "type", t.as_str()), ConstCounter::new(n)))
            }),
        )?;
        family(
            &mut encoder,
            "repocache_relists",
            "Completed relists, by reason.",
            counter,
            all.iter().flat_map(|s| {
                s.relists
                    .map(|(r, n)| (with(s, "reason", r.as_str()), ConstCounter::new(n)))
            }),
        )?;
        family(
            &mut encoder,
            "repocache_decode_failures",
            "Objects skipped because they did not decode.",
            counter,
            all.iter()
                .map(|s| (kind(s), ConstCounter::new(s.decode_failures))),
        )?;
        family(
            &mut encoder,
            "repocache_rejected_lines",
            "Watch lines rejected before decoding (too long, not UTF-8, not a JSON object, a malformed ERROR event), by reason; each costs a relist.",
            counter,
            all.iter().flat_map(|s| {
                s.rejected_lines
                    .map(|(r, n)| (with(s, "reason", r.as_str()), ConstCounter::new(n)))
            }),
        )?;
        family(
            &mut encoder,
            "repocache_decoding_robust",
            "1 once an object did not decode and the reflector decodes each object on its own; 0 on the typed fast path.",
            gauge,
            all.iter().map(|s| {
                (
                    kind(s),
                    ConstGauge::new(i64::from(s.decoding == DecodingMode::Robust)),
                )
            }),
        )?;
        family(
            &mut encoder,
            "repocache_objects",
            "Objects in the current snapshot.",
            gauge,
            all.iter().map(|s| {
                (
                    kind(s),
                    ConstGauge::new(i64::try_from(s.objects).unwrap_or(i64::MAX)),
                )
            }),
        )?;
        family(
            &mut encoder,
            "repocache_snapshot_age_seconds",
            "Age of the current snapshot.",
            gauge,
            all.iter()
                .map(|s| (kind(s), ConstGauge::new(s.snapshot_age.as_secs_f64()))),
        )?;
        family(
            &mut encoder,
            "repocache_since_confirmed_seconds",
            "Time since the watch last confirmed the snapshot.",
            gauge,
            all.iter()
                .map(|s| (kind(s), ConstGauge::new(s.since_confirmed.as_secs_f64()))),
        )?;
        family(
            &mut encoder,
            "repocache_resource_version",
            "The snapshot's resourceVersion (0 when not numeric).",
            gauge,
            all.iter().map(|s| {
                let rv = s
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                (kind(s), ConstGauge::new(rv))
            }),
        )?;
        family(
            &mut encoder,
            "repocache_generation",
            "The snapshot's generation.",
            gauge,
            all.iter().map(|s| {
                (
                    kind(s),
                    ConstGauge::new(i64::try_from(s.generation).unwrap_or(i64::MAX)),
                )
            }),
        )?;
        family(
            &mut encoder,
            "repocache_ready",
            "1 once the first sync has completed.",
            gauge,
            all.iter()
                .map(|s| (kind(s), ConstGauge::new(i64::from(s.ready)))),
        )?;
        family(
            &mut encoder,
            "repocache_state",
            "1 for the cache's current state.",
            gauge,
            all.iter()
                .map(|s| (with(s, "state", s.state.as_str()), ConstGauge::new(1i64))),
        )?;

        let mut histogram = encoder.encode_descriptor(
            "repocache_event_to_visible_seconds",
            "Delay from an event's arrival at the reflector to the publish that made it visible.",
            None,
            MetricType::Histogram,
        )?;
        for s in &all {
            let d = &s.event_to_visible;
            let mut buckets: Vec<(f64, u64)> = DELAY_BUCKETS
                .iter()
                .zip(d.per_bucket.iter())
                .map(|(b, n)| (*b, *n))
                .collect();
            buckets.push((f64::MAX, d.per_bucket.last().copied().unwrap_or(0)));
            let labels = kind(s);
            histogram
                .encode_family(&labels)?
                .encode_histogram::<Vec<(String, String)>>(
                    d.sum.as_secs_f64(),
                    d.count,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
