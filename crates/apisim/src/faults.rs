//! Fault injection state: failing and slowing requests, and the signals that close, stall and
//! restart open watches and connections.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::errors::ApiError;

/// Fail the next `count` requests matching (`verb`, `resource`) with `code`.
///
/// JSON body of `POST /apisim/faults/fail`. `verb`/`resource` absent = any resource request
/// (discovery and control requests are only matched when `verb` names them explicitly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailSpec {
    /// Kubernetes verb to match (`get`, `list`, `watch`, …); `None` = any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource to match (`packagerepositories`, `packagerepositories/status`); `None` = any.
    #[serde(default)]
    pub resource: Option<String>,
    /// HTTP status to answer with (429, 500, 503, 504, …).
    pub code: u16,
    /// How many matching requests to fail (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// `Retry-After` seconds (sent as header and `details.retryAfterSeconds`); default 1 for 429.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    /// Status message; a code-specific default when absent.
    #[serde(default)]
    pub message: Option<String>,
    /// Answer with an HTML error page (`text/html`, as a proxy or load balancer in front of the
    /// API server would) instead of a `Status` object.
    #[serde(default)]
    pub html: bool,
}

fn one() -> u32 {
    1
}

impl FailSpec {
    /// Fail the next `count` requests matching `verb`/`resource` (use `"*"` or `""` for any).
    pub fn new(verb: &str, resource: &str, code: u16, count: u32) -> Self {
        let any = |s: &str| (!s.is_empty() && s != "*").then(|| s.to_string());
        FailSpec {
            verb: any(verb),
            resource: any(resource),
            code,
            count,
            retry_after_seconds: None,
            message: None,
            html: false,
        }
    }

    /// Answer with an HTML error page instead of a `Status` object.
    pub fn html_page(mut self) -> Self {
        self.html = true;
        self
    }
}

/// A failure taken from the injector for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// The error (its code, message and `Retry-After`).
    pub error: ApiError,
    /// Render it as an HTML page instead of a `Status` object.
    pub html: bool,
}

/// Delay matching requests. JSON body of `POST /apisim/faults/latency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySpec {
    /// Kubernetes verb to match; `None` = any.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource to match; `None` = any.
    #[serde(default)]
    pub resource: Option<String>,
    /// Added latency in milliseconds.
    pub latency_ms: u64,
    /// Apply to this many requests, then drop the rule; `None` = until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

/// The stall state of watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stall {
    pub active: bool,
    pub until: Option<Instant>,
}

impl Stall {
    pub fn stalled_now(&self) -> bool {
        self.active && self.until.is_none_or(|u| Instant::now() < u)
    }
}

/// All fault state.
pub(crate) struct Faults {
    fails: Mutex<Vec<FailSpec>>,
    latencies: Mutex<Vec<LatencySpec>>,
    /// Stall signal for watches.
    pub stall: watch::Sender<Stall>,
    /// Bumped to close every open watch stream.
    pub close_watches: watch::Sender<u64>,
    /// Bumped to drop every open connection (restart).
    pub drop_connections: watch::Sender<u64>,
}

fn matches(
    verb: &Option<String>,
    resource: &Option<String>,
    req_verb: &str,
    req_resource: &str,
    is_resource_request: bool,
) -> bool {
    if !is_resource_request && verb.is_none() {
        return false;
    }
    verb.as_deref().is_none_or(|v| v == req_verb)
        && resource.as_deref().is_none_or(|r| r == req_resource)
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            fails: Mutex::new(Vec::new()),
            latencies: Mutex::new(Vec::new()),
            stall: watch::channel(Stall::default()).0,
            close_watches: watch::channel(0).0,
            drop_connections: watch::channel(0).0,
        }
    }
}

impl Faults {
    pub fn add_fail(&self, spec: FailSpec) {
        if spec.count > 0 {
            self.fails.lock().push(spec);
        }
    }

    pub fn add_latency(&self, spec: LatencySpec) {
        if spec.count != Some(0) {
            self.latencies.lock().push(spec);
        }
    }

    pub fn clear(&self) {
        self.fails.lock().clear();
        self.latencies.lock().clear();
        self.release();
    }

    /// Consume a failure for this request, if one matches.
    pub fn take_failure(
        &self,
        verb: &str,
        resource: &str,
        is_resource_request: bool,
    ) -> Option<Injected> {
        let mut fails = self.fails.lock();
        let idx = fails
            .iter()
            .position(|f| matches(&f.verb, &f.resource, verb, resource, is_resource_request))?;
        let f = fails.get_mut(idx)?;
        f.count = f.count.saturating_sub(1);
        let retry = f.retry_after_seconds.or((f.code == 429).then_some(1));
        let error = ApiError::injected(f.code, f.message.clone(), retry);
        let html = f.html;
        if f.count == 0 {
            fails.remove(idx);
        }
        Some(Injected { error, html })
    }

    /// Total latency to add to this request (consuming counted rules).
    pub fn take_latency(&self, verb: &str, resource: &str, is_resource_request: bool) -> Duration {
        let mut total = 0u64;
        let mut lats = self.latencies.lock();
        for l in lats.iter_mut() {
            if matches(&l.verb, &l.resource, verb, resource, is_resource_request) {
                total = total.saturating_add(l.latency_ms);
                if let Some(c) = l.count.as_mut() {
                    *c = c.saturating_sub(1);
                }
            }
        }
        lats.retain(|l| l.count != Some(0));
        Duration::from_millis(total)
    }

    pub fn pending_failures(&self) -> Vec<FailSpec> {
        self.fails.lock().clone()
    }

    pub fn latencies(&self) -> Vec<LatencySpec> {
        self.latencies.lock().clone()
    }

    pub fn stall_watches(&self, duration: Option<Duration>) {
        let until = duration.map(|d| Instant::now() + d);
        self.stall.send_replace(Stall {
            active: true,
            until,
        });
    }

    pub fn release(&self) {
        self.stall.send_replace(Stall::default());
    }

    pub fn close_watches(&self) {
        self.close_watches.send_modify(|g| *g += 1);
    }

    pub fn drop_connections(&self) {
        self.drop_connections.send_modify(|g| *g += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_n_then_stop() {
        let f = Faults::default();
        f.add_fail(FailSpec::new("list", "packagerepositories", 503, 2));
        assert!(f.take_failure("get", "packagerepositories", true).is_none());
        assert_eq!(
            f.take_failure("list", "packagerepositories", true)
                .map(|e| e.error.code),
            Some(503)
        );
        assert_eq!(
            f.take_failure("list", "packagerepositories", true)
                .map(|e| e.error.code),
            Some(503)
        );
        assert!(
            f.take_failure("list", "packagerepositories", true)
                .is_none()
        );
    }

    #[test]
    fn wildcard_skips_non_resource_requests() {
        let f = Faults::default();
        f.add_fail(FailSpec::new("*", "*", 500, 1));
        assert!(f.take_failure("discovery", "", false).is_none());
        assert!(f.take_failure("watch", "packages", true).is_some());
        let e = {
            f.add_fail(FailSpec::new("", "", 429, 1));
            f.take_failure("get", "x", true).unwrap()
        };
        assert_eq!(e.error.retry_after, Some(1));
        assert!(!e.html);
        f.add_fail(FailSpec::new("list", "", 502, 1).html_page());
        assert!(f.take_failure("list", "x", true).unwrap().html);
    }

    #[test]
    fn latency_counts_down() {
        let f = Faults::default();
        f.add_latency(LatencySpec {
            verb: Some("get".into()),
            resource: None,
            latency_ms: 50,
            count: Some(1),
        });
        assert_eq!(f.take_latency("list", "a", true), Duration::ZERO);
        assert_eq!(f.take_latency("get", "a", true), Duration::from_millis(50));
        assert_eq!(f.take_latency("get", "a", true), Duration::ZERO);
    }

    #[test]
    fn stall_expires() {
        let s = Stall {
            active: true,
            until: Some(Instant::now()),
        };
        assert!(!s.stalled_now());
        assert!(
            Stall {
                active: true,
                until: None
            }
            .stalled_now()
        );
    }
}
