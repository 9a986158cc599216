//! The JSON shapes of `/debug/caches`: [`CachesReport`] and [`CacheReport`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::Stats;

/// The body of `GET /debug/caches`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachesReport {
    /// One report per cache, in the order they were registered.
    pub caches: Vec<CacheReport>,
}

/// What one cache knows about itself, and optionally its objects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheReport {
    /// The kind the cache holds, e.g. `PackageRepository`.
    pub kind: String,
    /// One word: `starting`, `ready`, `stale`, `failed` or `stopped`.
    pub state: String,
    /// The state with its detail (how long stale or failing, and why).
    pub state_detail: String,
    /// Whether the first sync has completed.
    pub ready: bool,
    /// Whether the snapshot went unconfirmed for longer than the TTL.
    pub stale: bool,
    /// The TTL in seconds (0: disabled).
    pub ttl_seconds: f64,
    /// The snapshot's resourceVersion.
    pub resource_version: Option<String>,
    /// The newest resourceVersion the snapshot is known to reflect: its own, or a later one a
    /// watch BOOKMARK proved it current to ([`Cache::version`](crate::Cache::version)); what
    /// `repocache verify` compares a live LIST at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The snapshot's generation.
    pub generation: u64,
    /// Objects in the snapshot.
    pub object_count: usize,
    /// Seconds since the snapshot was built.
    pub snapshot_age_seconds: f64,
    /// Seconds since the snapshot was last confirmed by the watch or a relist.
    pub since_confirmed_seconds: f64,
    /// The last completed relist, if any.
    pub last_relist: Option<LastRelist>,
    /// The cache's counters.
    pub stats: StatsReport,
    /// The objects (redacted), when asked for with `?objects=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<Value>>,
}

/// The last completed relist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRelist {
    /// `initial`, `expired`, `ttl`, `manual` or `error`.
    pub reason: String,
    /// Seconds since it completed.
    pub ago_seconds: f64,
}

/// The counters of [`Stats`], by label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsReport {
    /// Reads that found their object.
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Live API requests by reason (`fallback`, `fresh`, `relist`, `watch`).
    pub api_requests: BTreeMap<String, u64>,
    /// Watcher events by type.
    pub events: BTreeMap<String, u64>,
    /// Completed relists by reason.
    pub relists: BTreeMap<String, u64>,
    /// Completed relists, all reasons.
    pub relists_total: u64,
    /// Objects skipped because they did not decode.
    pub decode_failures: u64,
    /// How the reflector decodes objects: `fast` (typed) or `robust` (each object on its own,
    /// since one did not decode). Empty from an endpoint that predates the field.
    #[serde(default)]
    pub decoding: String,
    /// Watch lines rejected before decoding, by reason (`too_long`, `not_utf8`,
    /// `not_an_object`, `malformed_error`; every reason, zeros included); each cost a relist
    /// (see [`LineRejection`](crate::stats::LineRejection)). Empty from an endpoint that predates the
    /// field.
    #[serde(default)]
    pub rejected_lines: BTreeMap<String, u64>,
    /// Events whose event-to-visible delay was measured.
    pub event_to_visible_count: u64,
    /// Sum of those delays, in seconds.
    pub event_to_visible_sum_seconds: f64,
}

impl CacheReport {
    /// The report of these figures (without objects).
    pub fn from_stats(stats: &Stats, stale: bool) -> Self {
        Self {
            kind: stats.kind.clone(),
            state: stats.state.as_str().to_owned(),
            state_detail: stats.state.to_string(),
            ready: stats.ready,
            stale,
            ttl_seconds: stats.ttl.as_secs_f64(),
            resource_version: stats.resource_version.clone(),
            version: stats.version,
            generation: stats.generation,
            object_count: stats.objects,
            snapshot_age_seconds: stats.snapshot_age.as_secs_f64(),
            since_confirmed_seconds: stats.since_confirmed.as_secs_f64(),
            last_relist: stats.last_relist.map(|(reason, ago)| LastRelist {
                reason: reason.as_str().to_owned(),
                ago_seconds: ago.as_secs_f64(),
            }),
            stats: StatsReport {
                hits: stats.hits,
                misses: stats.misses,
                api_requests: stats
                    .api_requests
                    .iter()
                    .map(|(r, n)| (r.as_str().to_owned(), *n))
                    .collect(),
                events: stats
                    .events
                    .iter()
                    .map(|(t, n)| (t.as_str().to_owned(), *n))
                    .collect(),
                relists: stats
                    .relists
                    .iter()
                    .map(|(r, n)| (r.as_str().to_owned(), *n))
                    .collect(),
                relists_total: stats.relists_total(),
                decode_failures: stats.decode_failures,
                decoding: stats.decoding.as_str().to_owned(),
                rejected_lines: stats
                    .rejected_lines
                    .iter()
                    .map(|(r, n)| (r.as_str().to_owned(), *n))
                    .collect(),
                event_to_visible_count: stats.event_to_visible.count,
                event_to_visible_sum_seconds: stats.event_to_visible.sum.as_secs_f64(),
            },
            objects: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;
    use crate::Writer;
    use crate::debug::CacheView;
    use crate::stats::LineRejection;

    #[test]
    fn the_report_shows_rejected_lines_by_reason() {
        let writer = Writer::<ConfigMap>::new();
        let cache = writer.cache();
        let counters = &writer.shared().counters;
        counters.record_rejected_line(LineRejection::NotUtf8);
        counters.record_rejected_line(LineRejection::NotAnObject);
        counters.record_rejected_line(LineRejection::NotAnObject);
        let report = CacheView::new(&cache).report(false, None);
        let expected: BTreeMap<String, u64> = [
            ("too_long", 0),
            ("not_utf8", 1),
            ("not_an_object", 2),
            ("malformed_error", 0),
        ]
        .into_iter()
        .map(|(r, n)| (r.to_owned(), n))
        .collect();
        assert_eq!(report.stats.rejected_lines, expected);
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["stats"]["rejectedLines"]["not_an_object"], 2, "{json}");
        // An endpoint that predates the field still reads.
        let mut old = json;
        if let Some(stats) = old["stats"].as_object_mut() {
            stats.remove("rejectedLines");
        }
        let read: CacheReport = serde_json::from_value(old).unwrap_or_else(|e| panic!("{e}"));
        assert!(read.stats.rejected_lines.is_empty());
    }
}
