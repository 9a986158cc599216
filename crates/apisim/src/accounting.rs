//! Request accounting: an ordered log of every request and counters per (verb, resource).

use std::collections::{BTreeMap, VecDeque};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The verb of requests to discovery, version, health and OpenAPI endpoints.
pub const VERB_DISCOVERY: &str = "discovery";
/// The verb of requests to apisim's own `/apisim/...` control endpoints.
pub const VERB_CONTROL: &str = "control";

/// One served request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position in the log since the last reset (0-based).
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string (without `?`), empty if none.
    pub query: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), or [`VERB_DISCOVERY`] / [`VERB_CONTROL`].
    pub verb: String,
    /// Resource plural, with `/status` for the subresource; empty for non-resource requests.
    pub resource: String,
    /// Namespace from the URL, if any.
    pub namespace: Option<String>,
    /// HTTP status code returned (for watches: the code of the response head).
    pub status: u16,
    /// Time to the response head, in microseconds (for watches: until the stream started).
    pub duration_us: u64,
}

#[derive(Default)]
struct Inner {
    log: VecDeque<RequestRecord>,
    counts: BTreeMap<(String, String), u64>,
    next_seq: u64,
}

/// The request log and counters.
#[derive(Default)]
pub(crate) struct Accounting {
    inner: Mutex<Inner>,
}

/// Bound on the log length; the oldest records are dropped beyond it (counters keep counting).
const MAX_LOG: usize = 100_000;

impl Accounting {
    pub fn record(&self, mut rec: RequestRecord) {
        let mut inner = self.inner.lock();
        rec.seq = inner.next_seq;
        inner.next_seq += 1;
        *inner
            .counts
            .entry((rec.verb.clone(), rec.resource.clone()))
            .or_default() += 1;
        if inner.log.len() >= MAX_LOG {
            inner.log.pop_front();
        }
        inner.log.push_back(rec);
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().log.iter().cloned().collect()
    }

    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.inner
            .lock()
            .counts
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.inner.lock().counts.clone()
    }

    pub fn reset(&self) {
        *self.inner.lock() = Inner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(verb: &str, resource: &str) -> RequestRecord {
        RequestRecord {
            seq: 0,
            method: "GET".into(),
            path: "/x".into(),
            query: String::new(),
            verb: verb.into(),
            resource: resource.into(),
            namespace: None,
            status: 200,
            duration_us: 1,
        }
    }

    #[test]
    fn counts_and_reset() {
        let a = Accounting::default();
        a.record(rec("list", "packagerepositories"));
        a.record(rec("list", "packagerepositories"));
        a.record(rec("get", "packagerepositories/status"));
        assert_eq!(a.count("list", "packagerepositories"), 2);
        assert_eq!(a.count("get", "packagerepositories/status"), 1);
        assert_eq!(a.requests()[2].seq, 2);
        a.reset();
        assert_eq!(a.count("list", "packagerepositories"), 0);
        assert!(a.requests().is_empty());
    }
}
