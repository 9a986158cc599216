//! The layer's counters: requests answered from a snapshot or passed to the server, by kind,
//! verb and outcome; read as [`LayerStats`] and rendered for Prometheus by [`LayerMetrics`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use super::route::{Verb, verb_name, verb_slot};

/// What became of one request that went through the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Outcome {
    /// Answered from the snapshot: the object, or a list page.
    Served,
    /// Answered from the snapshot: 404 NotFound (a miss of a ready, fresh cache).
    NotFound,
    /// Answered locally: 410 Expired for a continue token whose snapshot is gone.
    Expired,
    /// Answered locally: 500, an object that would not serialize (never expected).
    Error,
    /// Answered locally from the last snapshot of a failing or stale cache, with a `Warning`
    /// header (only with [`CacheLayer::serve_stale_on_error`](super::CacheLayer::serve_stale_on_error)).
    ServedStale,
    /// Passed through: the request asked to bypass the cache.
    Bypass,
    /// Passed through: no cache for this kind (or namespace), or not a resource request.
    NotCached,
    /// Passed through: a verb the layer never answers (writes, watches).
    Verb,
    /// Passed through: something a snapshot cannot honour (a subresource, an exact
    /// resourceVersion, a selector or parameter the layer does not evaluate, another media type).
    Unsupported,
    /// Passed through: the cache has not completed its first sync.
    NotReady,
    /// Passed through: the cache is stale beyond the layer's bound, failing, or stopped.
    Stale,
    /// Passed through: a write through this layer returned a resourceVersion that the snapshot
    /// has not reached yet (read-your-own-writes; see [`CacheLayer::own_writes_wait`](super::CacheLayer::own_writes_wait)).
    Behind,
}

impl Outcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Served,
        Outcome::NotFound,
        Outcome::Expired,
        Outcome::Error,
        Outcome::ServedStale,
        Outcome::Bypass,
        Outcome::NotCached,
        Outcome::Verb,
        Outcome::Unsupported,
        Outcome::NotReady,
        Outcome::Stale,
        Outcome::Behind,
    ];

    /// A one-word name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::NotFound => "not_found",
            Outcome::Expired => "expired",
            Outcome::Error => "error",
            Outcome::ServedStale => "served_stale",
            Outcome::Bypass => "bypass",
            Outcome::NotCached => "not_cached",
            Outcome::Verb => "verb",
            Outcome::Unsupported => "unsupported",
            Outcome::NotReady => "not_ready",
            Outcome::Stale => "stale",
            Outcome::Behind => "behind",
        }
    }

    /// Whether the layer answered the request itself (no request reached the server).
    pub fn is_local(self) -> bool {
        matches!(
            self,
            Outcome::Served
                | Outcome::NotFound
                | Outcome::Expired
                | Outcome::Error
                | Outcome::ServedStale
        )
    }

    /// Whether the request was a fallback: one the layer would have answered, had the
    /// cache been ready and fresh.
    pub fn is_fallback(self) -> bool {
        matches!(self, Outcome::NotReady | Outcome::Stale | Outcome::Behind)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The eight verbs and `other` (not a resource request), times every outcome.
const CELLS: usize = (Verb::ALL.len() + 1) * Outcome::ALL.len();

/// One kind's counters: a dense verb × outcome table of atomics.
pub(crate) struct Counters {
    kind: String,
    cells: Box<[AtomicU64]>,
}

impl Counters {
    pub(crate) fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            cells: (0..CELLS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, verb: Option<Verb>, outcome: Outcome) {
        let cell = verb_slot(verb) * Outcome::ALL.len() + outcome.index();
        if let Some(c) = self.cells.get(cell) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fill(&self, out: &mut Vec<LayerCount>) {
        for verb in Verb::ALL.map(Some).into_iter().chain([None]) {
            for outcome in Outcome::ALL {
                let cell = verb_slot(verb) * Outcome::ALL.len() + outcome.index();
                let count = self
                    .cells
                    .get(cell)
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                if count > 0 {
                    out.push(LayerCount {
                        kind: self.kind.clone(),
                        verb,
                        outcome,
                        count,
                    });
                }
            }
        }
    }
}

/// One row of [`LayerStats`]: how many requests of a kind and verb had an outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerCount {
    /// The kind (`PackageRepository`), or `other` for requests no cache is registered for.
    pub kind: String,
    /// The request's verb; `None` for a request that is not a resource request (discovery,
    /// other paths; counted as verb `other`).
    pub verb: Option<Verb>,
    /// What became of it.
    pub outcome: Outcome,
    /// How many.
    pub count: u64,
}

/// The layer's figures at one moment: the non-zero counts, by kind, verb and outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// The non-zero counts.
    pub counts: Vec<LayerCount>,
}

impl LayerStats {
    /// Requests of `kind` and `verb` with `outcome`.
    pub fn count(&self, kind: &str, verb: Verb, outcome: Outcome) -> u64 {
        self.sum(|c| c.kind == kind && c.verb == Some(verb) && c.outcome == outcome)
    }

    /// Requests of `kind` and `verb` the layer answered itself.
    pub fn local(&self, kind: &str, verb: Verb) -> u64 {
        self.sum(|c| c.kind == kind && c.verb == Some(verb) && c.outcome.is_local())
    }

    /// Requests of `kind` and `verb` the layer passed to the server (for whatever reason).
    pub fn passed_through(&self, kind: &str, verb: Verb) -> u64 {
        self.sum(|c| c.kind == kind && c.verb == Some(verb) && !c.outcome.is_local())
    }

    /// All requests the layer answered itself.
    pub fn total_local(&self) -> u64 {
        self.sum(|c| c.outcome.is_local())
    }

    /// All requests the layer passed to the server.
    pub fn total_passed_through(&self) -> u64 {
        self.sum(|c| !c.outcome.is_local())
    }

    fn sum(&self, pred: impl Fn(&LayerCount) -> bool) -> u64 {
        self.counts
            .iter()
            .filter(|c| pred(c))
            .map(|c| c.count)
            .sum()
    }
}

/// The counters of every kind a layer knows, plus the `other` bucket.
#[derive(Clone)]
pub(crate) struct CounterSet {
    pub(crate) kinds: Vec<Arc<Counters>>,
}

impl CounterSet {
    pub(crate) fn stats(&self) -> LayerStats {
        let mut counts = Vec::new();
        for c in &self.kinds {
            c.fill(&mut counts);
        }
        LayerStats { counts }
    }
}

/// The layer's counters as a Prometheus collector: the family
/// `repocache_layer_requests_total{kind, verb, source, outcome}`, where `source` is `cache`
/// (answered locally) or `server` (passed through). Rendered from the live counters on scrape.
#[derive(Clone)]
pub struct LayerMetrics {
    pub(crate) counters: CounterSet,
}

impl LayerMetrics {
    /// Registers the collector with `registry` (once per registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }

    /// The counters in Prometheus' text exposition format (a registry holding just them).
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            tracing::warn!("layer metrics could not be rendered");
        }
        out
    }
}

impl fmt::Debug for LayerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerMetrics")
            .field("kinds", &self.counters.kinds.len())
            .finish()
    }
}

impl Collector for LayerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let stats = self.counters.stats();
        let mut family = encoder.encode_descriptor(
            "repocache_layer_requests",
            "Requests through the client layer, by kind, verb, source (cache or server) and outcome.",
            None,
            MetricType::Counter,
        )?;
        for c in &stats.counts {
            let labels = [
                ("kind", c.kind.as_str()),
                ("verb", verb_name(c.verb)),
                (
                    "source",
                    if c.outcome.is_local() {
                        "cache"
                    } else {
                        "server"
                    },
                ),
                ("outcome", c.outcome.as_str()),
            ];
            ConstCounter::new(c.count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_and_other_count_apart_and_render_by_name() {
        let counters = Arc::new(Counters::new("PackageRepository"));
        counters.record(Some(Verb::Get), Outcome::Served);
        counters.record(Some(Verb::Get), Outcome::Served);
        counters.record(Some(Verb::DeleteCollection), Outcome::Verb);
        counters.record(None, Outcome::NotCached);
        let set = CounterSet {
            kinds: vec![counters],
        };
        let stats = set.stats();
        assert_eq!(
            stats.count("PackageRepository", Verb::Get, Outcome::Served),
            2
        );
        assert_eq!(
            stats.count("PackageRepository", Verb::List, Outcome::Served),
            0
        );
        assert_eq!(
            stats.count("PackageRepository", Verb::DeleteCollection, Outcome::Verb),
            1
        );
        assert_eq!(stats.total_passed_through(), 2);
        let other: Vec<_> = stats.counts.iter().filter(|c| c.verb.is_none()).collect();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].count, 1);
        let text = LayerMetrics { counters: set }.render();
        assert!(text.contains(r#"verb="get""#), "{text}");
        assert!(text.contains(r#"verb="deletecollection""#), "{text}");
        assert!(text.contains(r#"verb="other""#), "{text}");
    }
}
